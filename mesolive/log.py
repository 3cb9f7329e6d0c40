"""Logging set-up for the command line and the GUI."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from mesolive.redact import RedactingFormatter


class _StderrHandler(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is at each record, not as it was at set-up.

    Whoever swaps ``sys.stderr`` (a test's capture, an embedding program)
    and later closes the old one would otherwise leave mesolive writing
    into a closed file.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass  # always sys.stderr


def setup_logging(verbosity: int = 0) -> None:
    """``verbosity`` -1: warnings only, 0: info, 1+: debug. Messages go to stderr."""
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    handler = _StderrHandler()
    fmt = "%(levelname)s %(name)s: %(message)s" if verbosity > 0 else "mesolive: %(message)s"
    handler.setFormatter(RedactingFormatter(fmt))  # no password reaches a log
    root = logging.getLogger("mesolive")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
