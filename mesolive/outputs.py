"""Report files that never destroy what the user had.

Every verb that writes a file (``scan --json/--csv``, ``evaluate --plot``,
``models convert -o``) first calls :func:`check_outputs`, before any work
and before anything is written:

- an output that is one of the inputs, or the same path given twice, is refused;
- an existing file is refused unless ``--force`` (which then replaces it,
  still never an input);
- a folder that cannot be written is refused (missing folders are made);
- a pipe or a character device (``/dev/stdout``, ``/dev/null``, a shell's
  ``>(jq .)``) is written into as it is, with no ``--force``: replacing it
  by a file would break the pipe, or the system; any other special file (a
  block device, a socket) is refused.

Then :class:`AtomicFile` writes next to the target under a hidden temporary
name and renames it into place only when the run commits it, so a failed
run leaves the old file as it was and never a half-written one.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from mesolive.errors import InputError
from mesolive.paths import create_beside

log = logging.getLogger(__name__)


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def is_stream(path: Path) -> bool:
    """Whether ``path`` (links followed) is a pipe or a character device (never replaced)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def check_outputs(
    outputs: dict[str, str | os.PathLike[str] | None],
    inputs: Iterable[str | os.PathLike[str]],
    *,
    force: bool = False,
) -> None:
    """Refuse, in one line, any output that would destroy an input or a file the run did not make.

    Parameters
    ----------
    outputs
        Option name (``"--json"``) → the path given, or None when not given.
    inputs
        Every input as given and as expanded from folders; URIs that are not
        paths are ignored.
    force
        Allow replacing an existing file that is not an input.

    Raises
    ------
    InputError
        Naming the option and the path.
    """
    for opt, p in outputs.items():
        if p is not None and not str(p):
            raise InputError(f"{opt}: an empty file name")  # it was taken as not given
        if isinstance(p, str) and p.endswith(("/", os.sep)):  # a folder that need not exist
            raise InputError(f"{opt} {p}: names a folder; give a file name")
    given = {opt: Path(p).expanduser() for opt, p in outputs.items() if p is not None}
    in_paths = [Path(str(p)).expanduser() for p in inputs]
    seen: dict[Path, str] = {}
    for opt, path in given.items():
        key = Path(os.path.abspath(path))
        if key in seen:
            raise InputError(f"{opt} {path}: the same file as {seen[key]}")
        seen[key] = opt
        if any(_same(path, p) or key == Path(os.path.abspath(p)) for p in in_paths):
            raise InputError(f"{opt} {path}: that is an input; give another file name")
        if path.is_dir():
            raise InputError(f"{opt} {path}: is a folder; give a file name")
        if is_stream(path):
            continue  # written into as it is (module docstring)
        if path.exists() and not path.is_file():
            raise InputError(f"{opt} {path}: not a regular file, a pipe or a character device")
        if os.path.lexists(path) and not force:  # a link whose target is gone, too
            raise InputError(f"{opt} {path}: the file exists; pass --force to replace it")
        parent = key.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent  # missing folders are made when the file is written
        if not parent.is_dir():
            raise InputError(f"{opt} {path}: {parent} is not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise InputError(f"{opt} {path}: folder {parent} is not writable")


class AtomicFile:
    """A file written under a temporary name beside ``path``, renamed onto it by :meth:`commit`.

    Use as a context manager: leaving the block without :meth:`commit`
    (an error, Ctrl+C before anything was worth keeping) removes the
    temporary file and leaves ``path`` untouched. A pipe or character
    device (:func:`is_stream`) is written into directly: what was written
    there stays written.
    """

    def __init__(
        self, path: str | os.PathLike[str], option: str, mode: str = "w", **kw: Any
    ) -> None:
        self.path = Path(path).expanduser()
        self.option = option
        self.tmp: Path | None = None
        try:
            if is_stream(self.path):
                self.file: IO[Any] = open(self.path, mode, **kw)  # closed by commit()
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, self.tmp = create_beside(self.path)
        except OSError as e:
            raise InputError(f"{option} {self.path}: cannot write ({e.strerror or e})") from e
        self.file = os.fdopen(fd, mode, **kw)

    def commit(self) -> None:
        """Close the temporary file and move it onto ``path``."""
        try:
            self.file.close()
            if self.tmp is not None:
                os.replace(self.tmp, self.path)
        except OSError as e:
            self.discard()
            raise InputError(f"{self.option} {self.path}: cannot write ({e.strerror or e})") from e
        log.debug("wrote %s", self.path)

    def discard(self) -> None:
        """Drop what was written; ``path`` stays as it was."""
        try:
            self.file.close()
        except OSError:  # a full device or a closed pipe: the write already failed
            pass
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.file.closed or (self.tmp is not None and self.tmp.exists()):
            self.discard()


def write_atomic(
    path: str | os.PathLike[str],
    option: str,
    write: Callable[[IO[Any]], None],
    mode: str = "w",
    **kw: Any,
) -> None:
    """Write a whole file through ``write(file)`` and put it in place only if that succeeded."""
    with AtomicFile(path, option, mode, **kw) as out:
        try:
            write(out.file)
        except OSError as e:
            raise InputError(f"{option} {out.path}: cannot write ({e.strerror or e})") from e
        out.commit()
