"""Logging set-up for the command line and the GUI."""

from __future__ import annotations

import logging
import sys

from mesolive.redact import RedactingFormatter


def setup_logging(verbosity: int = 0) -> None:
    """``verbosity`` -1: warnings only, 0: info, 1+: debug. Messages go to stderr."""
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    fmt = "%(levelname)s %(name)s: %(message)s" if verbosity > 0 else "mesolive: %(message)s"
    handler.setFormatter(RedactingFormatter(fmt))  # no password reaches a log
    root = logging.getLogger("mesolive")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
