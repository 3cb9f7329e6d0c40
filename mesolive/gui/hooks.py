"""Testing and benchmarking hooks, switched on by environment variables.

``MESOLIVE_GUI_SCREENSHOT=PATH.png``
    After ``MESOLIVE_GUI_SCREENSHOT_AFTER`` frames were drawn (default 30; 0:
    1.5 s after start, whatever is shown), freeze the view, grab the screen
    (the X server's pixels on xcb, else the window's own rendering), save it
    to PATH.png, and write PATH.png.json with where the frame lies in the
    screenshot and the faces drawn. Then quit.
``MESOLIVE_GUI_QUIT_AFTER=SECONDS``
    Close the window (the normal, clean way) after that long, also as a
    time limit for a screenshot that never comes (a source that fails).
``MESOLIVE_GUI_STATS=PATH.json``
    Measure while running and write at exit: frames drawn and superseded,
    capture drops, a 10 ms heartbeat timer's largest gaps (GUI-thread
    stalls), resident memory and glibc's heap figures every few seconds
    (sampled by a thread of their own), and the wall-clock time of
    the first frame drawn (compare with ``MESOLIVE_GUI_T0``, the launcher's
    ``time.time()``, to get the time to first frame).
``MESOLIVE_GUI_EXPORT_EVERY=SECONDS`` (with ``MESOLIVE_GUI_EXPORT_DIR=FOLDER``)
    Every SECONDS after the first frame, export a session report
    (``FOLDER/report-N``) and save a snapshot (``FOLDER/snapshot-N.png``),
    as Ctrl+E and Ctrl+S do; the stats then count the heartbeat's gaps while
    files are being written apart from the others.
``MESOLIVE_GUI_STALL_SITES=1`` (with ``MESOLIVE_GUI_STATS``)
    Also run a :class:`~mesolive.gui.stalls.StallSampler` on the loaded
    heartbeat: where the GUI thread was, what else ran, and how much of each
    stall was its own work, CPU starvation or waiting (the stats'
    ``stall_sites``).
``MESOLIVE_GUI_TRACEMALLOC=FRAMES`` (with ``MESOLIVE_GUI_STATS``)
    Trace Python allocations (``tracemalloc``, FRAMES deep), take a
    snapshot a minute after the first frame and one at the end, and write the
    allocation sites that grew most in between (``memory_growth``). Slows
    the app: not for stall or fps figures.
``MESOLIVE_GUI_SETTINGS=PATH.ini``
    Keep settings there instead of the user's (see :mod:`settings`).
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QPoint, QRectF, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from mesolive.env import env_flag, env_float, env_int, env_path
from mesolive.gui.exporter import ExportOutcome
from mesolive.gui.overlay import face_band, label_text
from mesolive.gui.stalls import StallSampler
from mesolive.types import FrameResult

log = logging.getLogger(__name__)

ENV_SCREENSHOT = "MESOLIVE_GUI_SCREENSHOT"
ENV_SCREENSHOT_AFTER = "MESOLIVE_GUI_SCREENSHOT_AFTER"
ENV_QUIT_AFTER = "MESOLIVE_GUI_QUIT_AFTER"
ENV_STATS = "MESOLIVE_GUI_STATS"
ENV_T0 = "MESOLIVE_GUI_T0"
ENV_EXPORT_EVERY = "MESOLIVE_GUI_EXPORT_EVERY"
ENV_EXPORT_DIR = "MESOLIVE_GUI_EXPORT_DIR"
ENV_STALL_SITES = "MESOLIVE_GUI_STALL_SITES"
ENV_TRACEMALLOC = "MESOLIVE_GUI_TRACEMALLOC"
#: Seconds after the first frame of the tracemalloc baseline (imports and warm-up done).
TRACEMALLOC_BASELINE_S = 60.0


def _rss_mb() -> float | None:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _malloc_info() -> Callable[[], tuple[float, float, float]] | None:
    """glibc's ``mallinfo2`` as ``(in use, free but kept, mmapped)`` in MB; None elsewhere.

    Resident memory that grows while the C heap's bytes in use stay flat is
    memory the allocator keeps after it was freed (fragmented arenas), not
    memory the app still holds: tracemalloc, which sees only Python's and
    NumPy's allocations, cannot tell the two apart.
    """
    try:
        fn = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2

    def read() -> tuple[float, float, float]:
        m = fn()
        mb = 2**20
        return (
            round(m.uordblks / mb, 1),
            round(m.fordblks / mb, 1),
            round(m.hblkhd / mb, 1),
        )

    return read


class _Every(threading.Thread):
    """Calls ``fn`` now and every ``seconds`` in a thread of its own, until :meth:`stop`.

    Memory is sampled here, not on a GUI timer: ``mallinfo2`` walks every
    arena's free lists under the arena's lock, which took tens of
    milliseconds on a fragmented heap, and the GUI thread's stalls are what
    the benchmark measures.
    """

    def __init__(self, seconds: float, fn: Callable[[], None], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.seconds = seconds
        self.fn = fn
        self._quit = threading.Event()

    def run(self) -> None:
        self.fn()
        while not self._quit.wait(self.seconds):
            self.fn()

    def stop(self) -> None:
        self._quit.set()
        if self.is_alive():
            self.join(2.0)


class Gaps:
    """Gaps between heartbeat ticks: how many, the largest, a histogram for the p99.

    Gaps are counted in 10 µs bins, not kept one by one: at 100 ticks a
    second a list of floats grew by ~0.2 MB a minute per heartbeat, which the
    memory benchmark then measured as the app's own growth.
    """

    BIN = 1e-5  # seconds per histogram bin

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.bins: Counter[int] = Counter()  # gap in BIN units → ticks
        self.ticks = 0
        self.max_gap = 0.0
        self.over_50ms = 0

    def add(self, gap: float) -> None:
        self.bins[round(gap / self.BIN)] += 1
        self.ticks += 1
        self.max_gap = max(self.max_gap, gap)
        self.over_50ms += gap > 0.050

    def summary(self) -> dict[str, Any]:
        if not self.ticks:
            return {"ticks": 0}
        rank = int(0.99 * (self.ticks - 1))  # index of the p99 gap in sorted order
        seen = 0
        p99 = 0.0
        for b in sorted(self.bins):
            seen += self.bins[b]
            if seen > rank:
                p99 = b * self.BIN
                break
        return {
            "ticks": self.ticks,
            "interval_ms": 1000 * self.interval,
            "max_gap_ms": round(1000 * self.max_gap, 2),
            "p99_gap_ms": round(1000 * p99, 2),
            "max_stall_ms": round(1000 * (self.max_gap - self.interval), 2),
            "gaps_over_50ms": self.over_50ms,
        }


class Heartbeat(QObject):
    """A fast timer in the GUI thread; gaps between its ticks are stalls.

    With ``busy``, a gap that begins or ends while ``busy()`` is true (files
    being exported) goes to :attr:`busy_gaps`, the others to :attr:`gaps`.
    With ``sampler``, each tick is also its :meth:`StallSampler.beat`.
    """

    def __init__(
        self,
        interval_ms: int = 10,
        parent: QObject | None = None,
        busy: Callable[[], bool] | None = None,
        sampler: StallSampler | None = None,
    ) -> None:
        super().__init__(parent)
        self.interval = interval_ms / 1000
        self.gaps = Gaps(self.interval)
        self.busy_gaps = Gaps(self.interval)
        self._busy = busy
        self.sampler = sampler
        self._was_busy = False
        self._last: float | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._last = time.perf_counter()
        self._timer.start()
        if self.sampler is not None:
            self.sampler.beat()
            self.sampler.start()

    def stop(self) -> None:
        self._timer.stop()
        if self.sampler is not None:
            self.sampler.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        busy = self._busy is not None and self._busy()
        if self._last is not None:
            (self.busy_gaps if busy or self._was_busy else self.gaps).add(now - self._last)
        self._last, self._was_busy = now, busy
        if self.sampler is not None:
            self.sampler.beat(busy)


class TestingHooks(QObject):
    """Installs what the environment asks for on ``window`` (a MainWindow).

    Figures come from the session's read-only statistics
    (:meth:`Presenter.stats`); only the screenshot looks at widgets, for
    where the frame lies on screen and what is drawn.
    """

    def __init__(self, window: Any, env: Mapping[str, str] | None = None) -> None:
        super().__init__(window)
        env = os.environ if env is None else env
        self.window = window
        self.screenshot = env_path(ENV_SCREENSHOT, env)
        self.shot_after = env_int(ENV_SCREENSHOT_AFTER, 30, minimum=0, env=env)
        quit_after = env_float(ENV_QUIT_AFTER, 0.0, minimum=0.0, env=env)
        self.stats_path = env_path(ENV_STATS, env)
        t0 = env_float(ENV_T0, -1.0, env=env)
        self.t0_wall = None if t0 < 0 else t0
        self.t_start = time.monotonic()
        self.first_paint_wall: float | None = None
        self.rss: list[tuple[float, float]] = []
        self._malloc = _malloc_info()
        self.malloc: list[tuple[float, float, float, float]] = []  # t, in use, kept, mmapped
        self._shot_taken = False
        self.heartbeat: Heartbeat | None = None
        self.heartbeat_loaded: Heartbeat | None = None  # from the first frame on
        self.exports: list[ExportOutcome] = []  # reports and snapshots written, or failed
        self._exported = 0
        self._export_timer = QTimer(self)  # started with the first frame, when asked for
        export_every = env_float(ENV_EXPORT_EVERY, 0.0, minimum=0.0, env=env)
        export_dir = env_path(ENV_EXPORT_DIR, env)
        if export_every and export_dir is not None:
            self._export_timer.setInterval(int(export_every * 1000))
            self._export_timer.timeout.connect(lambda: self._export(export_dir))
            window.exporter.finished.connect(self.exports.append)
            window.exporter.snapshot_finished.connect(self.exports.append)
        window.video.painted_callbacks.append(self._on_painted)
        if quit_after:
            QTimer.singleShot(int(quit_after * 1000), self.quit)
        if self.screenshot and self.shot_after <= 0:
            self._shot_taken = True
            QTimer.singleShot(1500, self._take_screenshot)
        self._trace_frames = env_int(ENV_TRACEMALLOC, 0, minimum=0, env=env)
        self._trace_base: tracemalloc.Snapshot | None = None
        self._trace_last: tracemalloc.Snapshot | None = None
        if self.stats_path:
            self.heartbeat = Heartbeat(10, self)
            self.heartbeat.start()
            sampler = StallSampler() if env_flag(ENV_STALL_SITES, env) else None
            self.heartbeat_loaded = Heartbeat(
                10, self, busy=lambda: window.exporter.busy, sampler=sampler
            )
            if self._trace_frames:
                tracemalloc.start(self._trace_frames)
            self._memory = _Every(5.0, self._sample_rss, "mesolive-memory-sampler")
            self._memory.start()

    @property
    def active(self) -> bool:
        return bool(self.screenshot or self.stats_path)

    def _sample_rss(self) -> None:
        t = round(time.monotonic() - self.t_start, 1)
        mb = _rss_mb()
        if mb is not None:
            self.rss.append((t, round(mb, 1)))
        if self._malloc is not None:
            self.malloc.append((t, *self._malloc()))

    def _on_painted(self, result: FrameResult) -> None:
        if self.first_paint_wall is None:
            self.first_paint_wall = time.time()
            log.debug("first frame drawn")  # tests wait for this line before they signal
            if self.heartbeat_loaded is not None:
                self.heartbeat_loaded.start()
            if self._export_timer.interval() > 0:
                self._export_timer.start()
            if tracemalloc.is_tracing():
                QTimer.singleShot(int(TRACEMALLOC_BASELINE_S * 1000), self._trace_baseline)
        if (
            self.screenshot
            and not self._shot_taken
            and self.window.presenter.stats().painted >= self.shot_after
        ):
            self._shot_taken = True
            self.window.video.frozen = True  # what is grabbed is what the sidecar describes
            QTimer.singleShot(400, self._take_screenshot)

    def _trace_baseline(self) -> None:
        self._trace_base = tracemalloc.take_snapshot()

    def _trace_end(self) -> None:
        """The last snapshot, while the session still runs (its memory is freed at close)."""
        if tracemalloc.is_tracing():
            self._trace_last = tracemalloc.take_snapshot()
            tracemalloc.stop()

    def _memory_growth(self, top: int = 15) -> list[dict[str, Any]] | None:
        """The allocation sites that grew most since the baseline (tracemalloc runs only)."""
        if self._trace_base is None or self._trace_last is None:
            return None
        growth = []
        for d in self._trace_last.compare_to(self._trace_base, "traceback")[:top]:
            growth.append(
                {
                    "kib": round(d.size_diff / 1024, 1),
                    "count": d.count_diff,
                    "kib_now": round(d.size / 1024, 1),
                    "stack": [f"{f.filename}:{f.lineno}" for f in d.traceback],
                }
            )
        return growth

    def _take_screenshot(self) -> None:
        try:
            self._write_screenshot(Path(self.screenshot or "screenshot.png"))
        except Exception:
            log.exception("screenshot hook failed")
        self.window.video.frozen = False
        self.quit()

    def _write_screenshot(self, path: Path) -> None:
        win = self.window
        video = win.video
        result: FrameResult | None = video.result
        rect = video.image_rect()
        if QGuiApplication.platformName() == "xcb":
            screen = win.screen()
            pix = screen.grabWindow(0)  # what the X server shows, window manager and all
            origin = video.mapToGlobal(QPoint(0, 0)) - screen.geometry().topLeft()
            kind = "screen"
        else:
            pix = win.grab()
            origin = video.mapTo(win, QPoint(0, 0))
            kind = "window"
        dpr = pix.devicePixelRatio() or 1.0
        r = QRectF(rect.x() + origin.x(), rect.y() + origin.y(), rect.width(), rect.height())
        path.parent.mkdir(parents=True, exist_ok=True)
        pix.save(str(path))
        faces = []
        if result is not None:
            for f in result.faces:
                faces.append(
                    {
                        "track_id": f.track_id,
                        "xyxy": [float(v) for v in f.xyxy],
                        "running_score": float(f.running_score),
                        "n_scored": int(f.n_scored),
                        "verdict": f.verdict.value,
                        "label": label_text(f),
                        "band": face_band(f),
                    }
                )
        side = {
            "grab": kind,
            "platform": QGuiApplication.platformName(),
            "screenshot_size": [pix.width(), pix.height()],
            "image_rect": [r.x() * dpr, r.y() * dpr, r.width() * dpr, r.height() * dpr],
            "frame_index": result.frame.index if result is not None else None,
            "frame_size": [result.frame.width, result.frame.height] if result else None,
            "threshold": result.threshold if result is not None else None,
            "backend": win.presenter.stats().backend,
            "faces": faces,
            "windows": [  # visible top-level windows, e.g. the source picker at start-up
                w.windowTitle() for w in QApplication.topLevelWidgets() if w.isVisible()
            ],
            "banner": win.banner.label.text() if win.banner.isVisible() else "",
        }
        Path(str(path) + ".json").write_text(json.dumps(side, indent=1) + "\n")
        log.info("screenshot written to %s", path)

    def _export(self, folder: Path) -> None:
        """A report and a snapshot, as Ctrl+E and Ctrl+S make them (one still written: skipped)."""
        self._exported += 1
        self.window.export_report(str(folder / f"report-{self._exported}"))
        self.window.save_snapshot(str(folder / f"snapshot-{self._exported}.png"))

    def quit(self) -> None:
        if self.stats_path:
            self._memory.stop()
            self._sample_rss()  # the last sample while running, before the pipeline is freed
            self._trace_end()
        self.window.close_now()
        app = QGuiApplication.instance()
        if app is not None:
            app.quit()

    def write_stats(self) -> None:
        """Called once after the window shut down."""
        if not self.stats_path:
            return
        self._export_timer.stop()
        self._memory.stop()  # stopped at quit() already, unless that never ran
        for hb in (self.heartbeat, self.heartbeat_loaded):
            if hb is not None:
                hb.stop()
        sampler = self.heartbeat_loaded.sampler if self.heartbeat_loaded is not None else None
        s = self.window.presenter.stats()
        fps = None
        if s.t_first_paint is not None and s.t > s.t_first_paint:
            fps = (s.painted - 1) / (s.t - s.t_first_paint)
        stats = {
            "t0_wall": self.t0_wall,
            "first_paint_wall": self.first_paint_wall,
            "first_frame_s": (
                round(self.first_paint_wall - self.t0_wall, 3)
                if self.first_paint_wall is not None and self.t0_wall is not None
                else None
            ),
            "backend": s.backend,
            "painted": s.painted,
            "superseded": s.superseded,
            "results": s.results,
            "frames_read": s.frames_read,
            "capture_drops": s.capture_drops,
            "dropped_share": s.dropped_share,
            "fps_shown": fps,
            "latency_ema_ms": 1000 * s.latency_ema if s.latency_ema is not None else None,
            "errors": s.errors,
            "heartbeat_all": self.heartbeat.gaps.summary() if self.heartbeat else None,
            "heartbeat_running": (
                self.heartbeat_loaded.gaps.summary() if self.heartbeat_loaded else None
            ),
            "heartbeat_exports": (
                self.heartbeat_loaded.busy_gaps.summary() if self.heartbeat_loaded else None
            ),
            "exports": [{"path": str(o.base), "error": o.error} for o in self.exports],
            "rss_mb": self.rss,
            "malloc_mb": self.malloc,
            "stall_sites": (
                {
                    "running": sampler.summary(busy=False),
                    "exports": sampler.summary(busy=True),
                }
                if sampler is not None
                else None
            ),
            "memory_growth": self._memory_growth(),
        }
        Path(self.stats_path).write_text(json.dumps(stats, indent=1) + "\n")
