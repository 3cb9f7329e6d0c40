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

The other ``MESOLIVE_*`` settings are read where they apply, all through
:mod:`mesolive.env`.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mesolive.env import env_new_folder, env_path, new_folder
from mesolive.errors import InputError

_PKG = Path(__file__).resolve().parent


def resources_dir() -> Path:
    """The ``resources/`` folder: the checkout's, or the copy inside the wheel."""
    checkout = _PKG.parent / "resources"
    if checkout.is_dir():
        return checkout
    return _PKG / "resources"


def cache_dir() -> Path:
    env = env_path("MESOLIVE_CACHE_DIR")
    if env is not None:
        return env
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "mesolive"


def model_dir_override(cli_value: str | os.PathLike[str] | None = None) -> Path | None:
    """The offline model folder from ``--model-dir`` or ``MESOLIVE_MODEL_DIR``."""
    if cli_value:
        return Path(cli_value).expanduser()
    return env_path("MESOLIVE_MODEL_DIR")


def engine_dir(cli_value: str | os.PathLike[str] | None = None) -> Path:
    """The folder of TensorRT engines: ``--engine-dir``, else ``MESOLIVE_ENGINE_DIR``, else
    the checkout's ``engines/`` or the cache's. It need not exist yet (it is made when an
    engine is built).

    Raises
    ------
    InputError
        ``--engine-dir`` or ``MESOLIVE_ENGINE_DIR`` names something that is not a folder.
    """
    if cli_value:
        return new_folder(Path(cli_value).expanduser(), "--engine-dir ")
    value = env_new_folder("MESOLIVE_ENGINE_DIR")
    if value is not None:
        return value
    checkout = _PKG.parent / "engines"
    if (_PKG.parent / "pyproject.toml").is_file():
        return checkout
    return cache_dir() / "engines"


def cannot_write(path: Path, error: OSError) -> str:
    """The one-line message for a file mesolive could not write into its cache."""
    reason = error.strerror or str(error)
    return f"{path}: cannot write ({reason}); point MESOLIVE_CACHE_DIR at a writable folder"


def create_beside(path: Path) -> tuple[int, Path]:
    """Open a new hidden temporary file next to ``path``: (write-only descriptor, its path).

    The name is unique (several processes may write the same file at once, as
    the ranks of a torchrun job do with the face cache). The file is created
    with mode 0o666 less the user's umask, as ``open()`` makes a new file, so
    whatever is renamed onto ``path`` ends up as readable as any other file its
    user writes (``tempfile.mkstemp`` would leave it 0o600).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.part"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue  # another writer drew the same name


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A fresh temporary path beside ``path`` (:func:`create_beside`), renamed onto it
    when the block ends well.

    The last of several concurrent writers' renames wins and every reader sees
    a whole file. An exception leaves ``path`` as it was and removes the
    temporary file. The parent folder is created.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = create_beside(path)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: a temporary file beside it, then a rename."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)


@contextmanager
def opencv_name(path: Path, *, writing: bool = False) -> Iterator[str]:
    """A name of the existing file ``path`` that OpenCV can be given, during the block.

    OpenCV's Python binding encodes a file name as UTF-8 and crashes the
    process (a segmentation fault) on one that is not valid UTF-8: a Linux
    file name with other bytes, which Python holds as surrogate escapes.
    Such a file is opened here and named ``/proc/self/fd/N``, which FFmpeg's
    own open follows to the same file; the descriptor is closed after the
    block (FFmpeg holds its own by then). A file OpenCV is to write
    (``writing``: a recording in a folder of such a name) keeps its own name
    under its opened folder, ``/proc/self/fd/N/NAME``, since FFmpeg picks the
    container by the name's extension.

    Raises
    ------
    InputError
        Such a name where there is no ``/proc``, or a file to be written whose
        own name is not UTF-8 (one line: rename it).
    """
    name = str(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        yield name
        return
    if not Path("/proc/self/fd").is_dir():
        raise InputError(f"{path!a}: a file name that is not UTF-8 cannot be opened; rename it")
    tail = ""
    if writing:
        try:
            path.name.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(
                f"{path!a}: a file name that is not UTF-8 cannot be written; rename it"
            ) from None
        tail = "/" + path.name
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    else:
        fd = os.open(path, os.O_RDONLY)
    try:
        yield f"/proc/self/fd/{fd}{tail}"
    finally:
        os.close(fd)
