"""Quitting cleanly: Ctrl+Q in the window, and SIGINT / SIGTERM to the real app.

The signal tests start ``python -m mesolive -v --source test:`` (offscreen,
the synthetic demo source) as subprocesses, wait for the hooks' "first frame
drawn" line on stderr, send the signal, and check: the exit code is 130
(SIGINT) or 143 (SIGTERM) within 3 s of the signal, stderr holds no
traceback and no crash, and the settings of that run (``--threshold 0.63``)
were saved. SIGINT is sent to 20 runs, ``PARALLEL`` at a time, as issue 14
asks (about 15 s on 2 cores); ``MESOLIVE_GUI_QUIT_RUNS`` sets another count.
A double SIGINT and a SIGTERM run once each.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from mesolive.env import env_int

pytestmark = [pytest.mark.gui, pytest.mark.slow]
log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
RUNS = env_int("MESOLIVE_GUI_QUIT_RUNS", 20, minimum=1)
PARALLEL = 3
QUIT_WITHIN_S = 3.0  # the bound, from the signal to the process's exit
START_TIMEOUT_S = 90.0  # models loading on a loaded 2-core machine
#: A second SIGINT lands while the window shuts down, or in the interpreter's teardown.
SECOND_SIGNAL_AFTER_S = (0.005, 0.1)
THRESHOLD = "0.63"  # saved by the run's shutdown: proves its settings were written
WAIT_MS = 30_000


@dataclass
class AppRun:
    """One app subprocess and what happened to it."""

    proc: subprocess.Popen[bytes]
    stderr: Path
    settings: Path
    signals: list[int]
    gap: float = 0.0  # seconds between the signals
    t_signal: float | None = None
    t_exit: float | None = None
    pending: list[int] = field(default_factory=list)

    def err(self) -> str:
        return self.stderr.read_text(errors="replace")


def _launch(tmp_path: Path, i: int, signals: list[int], gap: float = 0.0) -> AppRun:
    stderr = tmp_path / f"app{i}.err"
    settings = tmp_path / f"app{i}.ini"
    env = dict(os.environ)
    env.update(QT_QPA_PLATFORM="offscreen", MESOLIVE_GUI_SETTINGS=str(settings))
    cmd = [sys.executable, "-m", "mesolive", "-v", "--source", "test:"]
    cmd += ["--every", "5", "--threads", "1", "--threshold", THRESHOLD]
    with stderr.open("wb") as f:
        proc = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=f, start_new_session=True
        )
    return AppRun(proc, stderr, settings, signals, gap)


def _signal_after_first_frame(runs: list[AppRun]) -> None:
    """Send each run its signals once it drew a frame; wait until all exited."""
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while any(r.t_exit is None for r in runs):
            now = time.monotonic()
            for r in runs:
                if r.t_exit is not None:
                    continue
                if r.proc.poll() is not None:
                    r.t_exit = now
                elif r.t_signal is None and "first frame drawn" in r.err():
                    r.proc.send_signal(r.signals[0])
                    r.t_signal = now
                    r.pending = r.signals[1:]
                elif r.pending and now - (r.t_signal or now) >= r.gap:
                    r.proc.send_signal(r.pending.pop(0))
                elif r.t_signal is None and now > deadline:
                    pytest.fail(f"no frame drawn within {START_TIMEOUT_S} s:\n{r.err()}")
                elif r.t_signal is not None and now - r.t_signal > QUIT_WITHIN_S + 10:
                    pytest.fail(f"still running {now - r.t_signal:.1f} s after the signal")
            time.sleep(0.01)
    finally:
        for r in runs:
            if r.proc.poll() is None:
                os.killpg(r.proc.pid, signal.SIGKILL)
                r.proc.wait()


def _check(r: AppRun) -> float:
    """Assert a clean quit; return the seconds from the first signal to the exit.

    A second signal that lands after Python disabled its handlers (the last
    part of the interpreter's teardown) ends the process by that signal:
    returncode -SIGINT here, 130 in a shell, like the exit code.
    """
    err = r.err()
    assert r.t_signal is not None and r.t_exit is not None
    took = r.t_exit - r.t_signal
    codes = {128 + r.signals[0]} | ({-r.signals[1]} if len(r.signals) > 1 else set())
    assert r.proc.returncode in codes, err
    assert "Traceback" not in err, err
    assert "Segmentation fault" not in err and "core dumped" not in err, err
    assert f"{signal.Signals(r.signals[0]).name}: quitting" in err, err
    assert took < QUIT_WITHIN_S, f"exit {took:.2f} s after the signal:\n{err}"
    saved = r.settings.read_text() if r.settings.is_file() else ""
    assert f"threshold={THRESHOLD}" in saved and "geometry=" in saved, saved
    return took


def test_sigint_quits_cleanly_every_time(tmp_path):
    times: list[float] = []
    for start in range(0, RUNS, PARALLEL):
        batch = [
            _launch(tmp_path, i, [signal.SIGINT]) for i in range(start, min(RUNS, start + PARALLEL))
        ]
        _signal_after_first_frame(batch)
        times += [_check(r) for r in batch]
    log.info("%d SIGINT runs: exit 130, %s s", len(times), sorted(round(t, 2) for t in times))


def test_sigterm_and_a_double_sigint_quit_cleanly(tmp_path):
    runs = [_launch(tmp_path, 0, [signal.SIGTERM])]
    runs += [
        _launch(tmp_path, i, [signal.SIGINT, signal.SIGINT], gap)
        for i, gap in enumerate(SECOND_SIGNAL_AFTER_S, 1)
    ]
    _signal_after_first_frame(runs)
    for r in runs:
        _check(r)


def test_ctrl_q_stops_the_threads_and_saves_the_settings(qtbot, qsettings):
    from mesolive.gui.main_window import MainWindow
    from tests.gui.conftest import parse

    win = MainWindow(parse("--every", "5", "--threshold", THRESHOLD), qsettings)
    qtbot.addWidget(win)
    win.show()
    win.activateWindow()
    qtbot.waitActive(win)
    assert win.start_source("test:")
    qtbot.waitUntil(lambda: win.video.painted >= 1, timeout=WAIT_MS)
    qtbot.keyClick(win, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not win.isVisible(), timeout=WAIT_MS)
    # saved by the close itself: nothing but the window's shutdown writes settings
    assert qsettings.value("pipeline/threshold") in (THRESHOLD, float(THRESHOLD))
    assert qsettings.value("source/last") == "test:"
    assert win.shutdown() is True  # the close's own result: no thread left
