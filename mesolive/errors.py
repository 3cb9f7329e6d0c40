"""The small exception hierarchy of mesolive.

Every error a user can cause (bad input, a missing model, no network) is a
:class:`MesoliveError`; the CLI prints its message as one line and exits with
its ``exit_code``. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class MesoliveError(Exception):
    """Base class: a problem the user can act on, shown as one line."""

    exit_code: int = 2


class ModelError(MesoliveError):
    """A model is unknown, missing, corrupt or of the wrong architecture."""


class DownloadError(ModelError):
    """A model could not be downloaded or failed its checksum."""


class InputError(MesoliveError):
    """An input file, folder or argument cannot be used."""


class OutputError(InputError):
    """A report file cannot be written: the whole run stops, unlike one bad input."""


class BackendUnavailable(MesoliveError):
    """An inference back end (TensorRT, pycuda, a CUDA driver) is missing."""


class EngineIncompatible(MesoliveError):
    """A TensorRT engine does not match this machine or this model."""


class EngineBuildError(MesoliveError):
    """Building a TensorRT engine failed."""


class SourceError(MesoliveError):
    """A frame source cannot be opened or has failed."""


class ClusterError(MesoliveError):
    """A Ray cluster cannot be reached or started, or Ray is not installed (``scan --cluster``)."""


def check_count(option: str, value: int | None, least: int = 1, most: int | None = None) -> None:
    """An option's whole number below ``least`` or above ``most`` as one line (None: the
    option was not given)."""
    if value is not None and value < least:
        raise InputError(f"{option} {value}: expected a whole number ≥ {least}")
    if value is not None and most is not None and value > most:
        raise InputError(f"{option} {value}: at most {most}")


def describe(exc: BaseException) -> str:
    """An unexpected exception as one line: its type and its message, white space collapsed.

    For failures that are not :class:`MesoliveError` (a library's own error on
    one input); their tracebacks are logged at debug level (``-v``).
    """
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
