"""Python's cyclic garbage collector, run on the GUI thread only while workers run.

CPython collects cycles in whichever thread's allocation crosses the
threshold. When that is the capture or inference thread and the garbage
holds Qt objects (a closed dialog's menu, a widget in a reference cycle),
their destructors run off the GUI thread, which Qt forbids; in the test
suite it deadlocked: the inference thread, importing a module, collected a
``QMenu`` and waited for the GIL inside ``QObject::~QObject`` while the GUI
thread waited for that object's Qt mutex. pyqtgraph ships a helper for the
same reason (``pyqtgraph.util.garbage_collector``).

While any session's threads run (:func:`hold` .. :func:`release`, called by
the presenter on the GUI thread), automatic collection is off and a timer on
the GUI thread collects each generation once its count passes the threshold
CPython itself would use. Reference counting still frees everything else at
once, in any thread.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QTimer

INTERVAL_MS = 500
"""How often the GUI thread checks whether a generation is due."""

_holders = 0
_was_enabled = True
_timer: QTimer | None = None


def hold() -> None:
    """Before starting worker threads (GUI thread): collect here, then only here."""
    global _holders, _was_enabled, _timer
    _holders += 1
    if _holders > 1:
        return
    _was_enabled = gc.isenabled()
    gc.collect()  # what earlier sessions left, on this thread
    gc.disable()
    _timer = QTimer()
    _timer.setInterval(INTERVAL_MS)
    _timer.timeout.connect(collect_due)
    _timer.start()


def release() -> None:
    """After the worker threads stopped (GUI thread): collect once, restore automatic."""
    global _holders, _timer
    if _holders == 0:
        return
    _holders -= 1
    if _holders > 0:
        return
    if _timer is not None:
        _timer.stop()
        _timer.deleteLater()
        _timer = None
    gc.collect()
    if _was_enabled:
        gc.enable()


def collect_due() -> int:
    """Collect the oldest generation whose count passed CPython's threshold; objects found."""
    counts, thresholds = gc.get_count(), gc.get_threshold()
    for generation in (2, 1, 0):
        if counts[generation] > thresholds[generation]:
            return gc.collect(generation)
    return 0
