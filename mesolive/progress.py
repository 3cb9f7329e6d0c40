"""Progress bars on stderr that leave no thread behind."""

from __future__ import annotations

import sys
from typing import Any


def progress_bar(*args: Any, **kwargs: Any):
    """A ``tqdm`` bar on stderr without tqdm's monitor thread.

    The monitor thread only retunes ``miniters`` and would outlive the bar
    (a dangling thread at shutdown), so it is switched off.
    """
    from tqdm import tqdm

    tqdm.monitor_interval = 0
    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(*args, **kwargs)
