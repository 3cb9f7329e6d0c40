"""Where mesolive keeps things: resources, the per-user cache, model folders.

Environment settings (each also has a CLI option where it matters):

``MESOLIVE_MODEL_DIR``
    A folder that already holds model files (offline use, tests). Files are
    read from there and never downloaded into it.
``MESOLIVE_CACHE_DIR``
    The per-user cache: downloaded weights, converted ONNX graphs, user-trained
    models. Default: ``$XDG_CACHE_HOME/mesolive`` (``~/.cache/mesolive``),
    ``%LOCALAPPDATA%\\mesolive`` on Windows, ``~/Library/Caches/mesolive`` on macOS.
``MESOLIVE_ENGINE_DIR``
    Where TensorRT engines live; default ``engines/`` of a source checkout,
    else ``<cache>/engines``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_PKG = Path(__file__).resolve().parent


def resources_dir() -> Path:
    """The ``resources/`` folder: the checkout's, or the copy inside the wheel."""
    checkout = _PKG.parent / "resources"
    if checkout.is_dir():
        return checkout
    return _PKG / "resources"


def cache_dir() -> Path:
    env = os.environ.get("MESOLIVE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "mesolive"


def model_dir_override(cli_value: str | os.PathLike[str] | None = None) -> Path | None:
    """The offline model folder from ``--model-dir`` or ``MESOLIVE_MODEL_DIR``."""
    value = cli_value or os.environ.get("MESOLIVE_MODEL_DIR")
    return Path(value).expanduser() if value else None


def engine_dir(cli_value: str | os.PathLike[str] | None = None) -> Path:
    value = cli_value or os.environ.get("MESOLIVE_ENGINE_DIR")
    if value:
        return Path(value).expanduser()
    checkout = _PKG.parent / "engines"
    if (_PKG.parent / "pyproject.toml").is_file():
        return checkout
    return cache_dir() / "engines"
