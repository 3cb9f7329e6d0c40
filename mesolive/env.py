"""Typed reads of mesolive's ``MESOLIVE_*`` environment variables.

Every read goes through here, so a value that cannot be used is one line
naming the variable and what it takes (an :class:`InputError`), never a
traceback or a misleading error further on. An unset or empty variable means
"not set". ``env`` stands in for :data:`os.environ` (the GUI passes its own).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from mesolive.errors import InputError, check_count

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")
URL_SCHEMES = ("http", "https", "file")


def _raw(name: str, env: Mapping[str, str] | None) -> str:
    return (os.environ if env is None else env).get(name, "").strip()


def env_flag(name: str, env: Mapping[str, str] | None = None) -> bool:
    """A yes/no switch: 1/true/yes/on or 0/false/no/off (any case); unset is off."""
    value = _raw(name, env)
    if not value or value.lower() in FALSE:
        return False
    if value.lower() in TRUE:
        return True
    raise InputError(
        f"{name}={value}: expected one of {', '.join(TRUE)} (on) or {', '.join(FALSE)} (off)"
    )


def env_int(
    name: str, default: int, minimum: int | None = None, env: Mapping[str, str] | None = None
) -> int:
    """A whole number of at least ``minimum``; ``default`` when unset."""
    value = _raw(name, env)
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or (minimum is not None and number < minimum):
        bound = f" ≥ {minimum}" if minimum is not None else ""
        raise InputError(f"{name}={value}: expected a whole number{bound}")
    return number


def env_float(
    name: str, default: float, minimum: float | None = None, env: Mapping[str, str] | None = None
) -> float:
    """A finite number of at least ``minimum``; ``default`` when unset."""
    value = _raw(name, env)
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or (minimum is not None and number < minimum):
        bound = f" ≥ {minimum:g}" if minimum is not None else ""
        raise InputError(f"{name}={value}: expected a number{bound}")
    return number


def env_path(name: str, env: Mapping[str, str] | None = None) -> Path | None:
    """A folder or file path (``~`` expanded); ``None`` when unset."""
    value = (os.environ if env is None else env).get(name, "")
    return Path(value).expanduser() if value else None


def check_threads(threads: int | None) -> None:
    """Refuse a ``--threads`` count under 1 or over 4 per core (at least 256 are taken:
    100,000 hung ONNX Runtime); None is the default, taken. ``main`` checks every verb's
    here, the pipeline and the trainer their own."""
    check_count("--threads", threads, most=max(256, 4 * (os.cpu_count() or 1)))


def env_folder(name: str, holding: str, env: Mapping[str, str] | None = None) -> Path | None:
    """A folder (of ``holding``) that must exist when set; ``None`` when unset."""
    folder = env_path(name, env)
    if folder is not None and not folder.is_dir():
        raise InputError(f"{name}={folder}: not a folder of {holding}")
    return folder


def env_new_folder(name: str, env: Mapping[str, str] | None = None) -> Path | None:
    """A folder that need not be there yet (it is made when written) but is no file;
    ``None`` when unset."""
    folder = env_path(name, env)
    return None if folder is None else new_folder(folder, f"{name}=")


def new_folder(folder: Path, given_as: str) -> Path:
    """``folder``, which need not be there yet but is no file; ``given_as`` names where it
    came from in the error (``"--engine-dir "``, ``"MESOLIVE_ENGINE_DIR="``)."""
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{given_as}{folder}: not a folder")
    return folder


def env_url(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """An http(s) or file URL without a trailing slash; ``None`` when unset."""
    value = _raw(name, env)
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme.lower() not in URL_SCHEMES or not (parts.netloc or parts.path):
        starts = ", ".join(f"{s}://" for s in URL_SCHEMES)
        raise InputError(f"{name}={value}: expected a URL starting with {starts}")
    return value.rstrip("/")


def check_settings(env: Mapping[str, str] | None = None) -> None:
    """The settings read only when they come into play, checked at every start, so that
    a bad value is one line then, not later in a run or silently never:
    ``MESOLIVE_OFFLINE`` and ``MESOLIVE_DOWNLOAD_BASE`` (read for a download) and
    ``MESOLIVE_CALIBRATION`` (read by ``--precision auto``, which would otherwise
    quietly run float32), and that ``MESOLIVE_CACHE_DIR`` and ``MESOLIVE_ENGINE_DIR``
    name no file (an engine folder of ``/etc/passwd`` was taken without a word).
    ``MESOLIVE_MODEL_DIR`` may name a folder that is not there (``make run`` points it
    at ``../shared/models``; elsewhere models are downloaded)."""
    env_flag("MESOLIVE_OFFLINE", env)
    env_url("MESOLIVE_DOWNLOAD_BASE", env)
    env_folder("MESOLIVE_CALIBRATION", "face crops", env)
    env_new_folder("MESOLIVE_CACHE_DIR", env)
    env_new_folder("MESOLIVE_ENGINE_DIR", env)
