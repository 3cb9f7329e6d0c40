"""Where a GUI stall went: Python stacks and per-thread CPU while the heartbeat is late.

A :class:`StallSampler` is a plain thread of its own. The GUI thread's
heartbeat calls :meth:`StallSampler.beat` at each tick; when no tick has come
for :attr:`~StallSampler.late_after` seconds the sampler, every
:attr:`~StallSampler.poll` seconds until the next tick:

- records the watched thread's Python stack (``sys._current_frames()``);
- notes the other threads that used CPU since its previous look, with the
  innermost frame of each Python one (a Python thread on the CPU while the
  GUI thread waits most likely holds the GIL; a thread in ONNX Runtime or
  OpenCV usually does not). Threads Python does not know are named by the
  kernel, and a thread inherits the name of the one that started it:
  ONNX Runtime's pool threads show as ``mesolive-infere``.

Each stall is also split by the kernel's scheduler statistics of the
watched thread (``/proc/self/task/TID/schedstat``: time on a CPU, time
runnable but waiting for one) into

- **own work**: the GUI thread on a CPU (our Python or Qt's C++);
- **CPU starvation**: runnable, but every core busy with something else;
- **waiting**: neither: for the GIL (another thread holds it), a lock, the
  disk or the X server.

Stacks are taken with the GIL, so a sample waits until the sampler gets it:
in a stall caused by a thread that keeps the GIL, the samples come late and
show where the GUI thread was when that thread let go; and a GUI thread
busy in Python waits a little for the GIL the sampler takes to look (part
of "waiting" is the sampler's own). Linux only for the scheduler figures;
elsewhere they are absent and the stacks remain.

The sampler never touches Qt. Between stalls it costs one wake-up and one
``pread`` of an open ``/proc`` file (about 1 µs) every ``poll`` seconds;
while a stall lasts, one ``pread`` per thread and a stack walk per look.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

#: Frames of a stack kept for a site (innermost first).
SITE_DEPTH = 4

Site = tuple[str, ...]


def _frame_text(frame: FrameType) -> str:
    code = frame.f_code
    return f"{code.co_name} ({os.path.basename(code.co_filename)}:{frame.f_lineno})"


def stack_site(frame: FrameType | None, depth: int = SITE_DEPTH) -> Site:
    """The innermost ``depth`` frames of a stack as ``"function (file.py:line)"`` texts."""
    out: list[str] = []
    while frame is not None and len(out) < depth:
        out.append(_frame_text(frame))
        frame = frame.f_back
    return tuple(out)


class _SchedStats:
    """Each thread's nanoseconds on a CPU and waiting for one, from open ``/proc`` files."""

    def __init__(self) -> None:
        self._fds: dict[int, int] = {}
        self.names: dict[int, str] = {}
        self.available = os.path.isdir("/proc/self/task")

    def read(self, only: int | None = None) -> dict[int, tuple[int, int]]:
        """Thread ID → (ns on a CPU, ns runnable but waiting for one), since it started.

        Every thread of the process, or ``only`` that one. Each file read lets go
        of the GIL once, so between stalls only the watched thread is read.
        """
        if not self.available:
            return {}
        if only is not None:
            tids = [only]
        else:
            try:
                tids = [int(t) for t in os.listdir("/proc/self/task")]
            except OSError:
                return {}
            for tid in set(self._fds) - set(tids):
                os.close(self._fds.pop(tid))
                self.names.pop(tid, None)
        out: dict[int, tuple[int, int]] = {}
        for tid in tids:
            fd = self._fds.get(tid)
            try:
                if fd is None:
                    fd = self._fds[tid] = os.open(f"/proc/self/task/{tid}/schedstat", os.O_RDONLY)
                    with open(f"/proc/self/task/{tid}/comm") as f:
                        self.names[tid] = f.read().strip()
                on_cpu, waiting, _ = os.pread(fd, 128, 0).split()
            except (OSError, ValueError):
                continue  # the thread ended meanwhile
            out[tid] = (int(on_cpu), int(waiting))
        return out

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


@dataclass
class Stall:
    """One late heartbeat: its length, where the watched thread was, what else ran.

    Attributes
    ----------
    t
        ``time.perf_counter()`` of the last tick before it.
    seconds
        From that tick to the next one.
    busy
        An export was running at either tick.
    sites
        The watched thread's site (innermost frame first) at each look →
        ``[seconds, on a CPU, runnable without one]`` of the time up to that
        look (the rest, after the last look, goes to the last site). The
        scheduler figures stay 0 where the kernel does not give them.
    others
        ``(thread name, innermost frame or "(native)")`` → CPU seconds of other
        threads while it lasted.
    """

    t: float
    seconds: float = 0.0
    busy: bool = False
    sites: dict[Site, list[float]] = field(default_factory=dict)
    others: Counter[tuple[str, str]] = field(default_factory=Counter)
    scheduled: bool = False  # the kernel gave the watched thread's figures

    def share(self, i: int) -> float:
        """Seconds of figure ``i`` (0 time, 1 on a CPU, 2 runnable) over all sites."""
        return sum(v[i] for v in self.sites.values())


class StallSampler(threading.Thread):
    """Samples the watched thread whenever its heartbeat is late (see the module's text).

    Parameters
    ----------
    late_after
        Seconds without a tick after which a stall is sampled (the
        heartbeat's own period must be well below it).
    poll
        Seconds between two looks while waiting and while sampling.
    watched
        ``threading.get_ident()`` of the thread whose stack is sampled; the
        caller's by default (create it in the GUI thread).
    """

    def __init__(
        self, late_after: float = 0.040, poll: float = 0.005, watched: int | None = None
    ) -> None:
        super().__init__(name="mesolive-stall-sampler", daemon=True)
        self.late_after = late_after
        self.poll = poll
        self.watched = threading.get_ident() if watched is None else watched
        self._watched_tid = threading.get_native_id() if watched is None else None
        self.stalls: list[Stall] = []
        self._last: float | None = None  # perf_counter of the newest tick (GUI thread writes)
        self._busy = False
        self._quit = threading.Event()
        self._sched = _SchedStats()

    # -- the GUI thread -----------------------------------------------------------------

    def beat(self, busy: bool = False) -> None:
        """A heartbeat tick: the watched thread is running its event loop now."""
        self._busy = busy  # written before _last: a stall that ends sees this tick's value
        self._last = time.perf_counter()

    def stop(self, timeout: float = 1.0) -> None:
        self._quit.set()
        if self.is_alive():
            self.join(timeout)
        self._sched.close()

    # -- the sampler's thread -------------------------------------------------------------

    def run(self) -> None:
        seen: float | None = None  # the tick the mark belongs to
        stall: Stall | None = None
        site: Site = ()
        prev = self._sched.read()
        mark = (0.0, prev)  # (time, scheduler figures) up to which the stall is shared out
        while not self._quit.wait(self.poll):
            last = self._last
            if last is None:
                continue
            t = time.perf_counter()
            late = last == seen and t - last > self.late_after
            # the stacks at t, before the kernel's figures: reading those gives the GIL up
            # once a file, and a watched thread running Python holds it a switch interval
            # (5 ms) each time, so by their end the watched thread is elsewhere
            frames = sys._current_frames() if late else {}
            ticked = self._last != last  # just before the stacks were read: they are after it
            # every thread while a stall lasts, else the watched one (its figures at the tick)
            now = self._sched.read(None if late else self._watched_tid)
            if last != seen:  # a tick since the previous look
                if stall is not None:
                    stall.seconds = last - stall.t
                    stall.busy = stall.busy or self._busy
                    self._add(stall, site, last - mark[0], mark[1], now)  # the rest
                    self.stalls.append(stall)
                    stall = None
                seen, mark = last, (last, now)
            elif late:
                if stall is None:
                    stall = Stall(t=last, busy=self._busy)
                sampled = self._sample(stall, frames, prev, now)
                # Stacks read after a tick are not the stall's: the next look ends the
                # stall and gives its time up to the tick to the site before (unless there
                # was none).
                if not ticked or not stall.sites:
                    site = sampled
                    self._add(stall, site, t - mark[0], mark[1], now)
                    mark = (t, now)
            prev = now

    def _add(
        self,
        stall: Stall,
        site: Site,
        seconds: float,
        then: dict[int, tuple[int, int]],
        now: dict[int, tuple[int, int]],
    ) -> None:
        """Give ``site`` the time from ``then`` to ``now``, and the watched thread's figures."""
        tid = self._watched_tid
        cpu = waited = 0.0
        if tid is not None and tid in then and tid in now:
            cpu = (now[tid][0] - then[tid][0]) / 1e9
            waited = (now[tid][1] - then[tid][1]) / 1e9
            stall.scheduled = True
        v = stall.sites.setdefault(site, [0.0, 0.0, 0.0])
        v[0] += seconds
        v[1] += cpu
        v[2] += waited

    def _sample(
        self,
        stall: Stall,
        frames: dict[int, FrameType],
        prev: dict[int, tuple[int, int]],
        now: dict[int, tuple[int, int]],
    ) -> Site:
        """The watched thread's site in ``frames`` (``sys._current_frames()``); notes the
        other threads on a CPU since ``prev``."""
        names = {t.native_id: (t.name, t.ident) for t in threading.enumerate()}
        me = threading.get_native_id()
        for tid, (cpu, _) in now.items():
            if tid in (me, self._watched_tid) or tid not in prev:
                continue
            used = (cpu - prev[tid][0]) / 1e9
            if used <= 0.0005:
                continue
            name, ident = names.get(tid, (self._sched.names.get(tid, str(tid)), None))
            frame = frames.get(ident) if ident is not None else None
            where = _frame_text(frame) if frame is not None else "(native)"
            stall.others[(name, where)] += used
        return stack_site(frames.get(self.watched))

    # -- results --------------------------------------------------------------------------

    def summary(self, busy: bool | None = None, top: int = 12) -> dict[str, Any]:
        """Totals, the top sites by stalled time, the busiest other threads, the longest stalls.

        ``busy`` picks the stalls during exports (True), outside them (False)
        or all (None). Each site's time is split into on a CPU, runnable and
        waiting (the GIL, locks, the X server) by the kernel's figures.
        """
        stalls = [s for s in self.stalls if busy is None or s.busy == busy]
        sites: defaultdict[Site, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
        site_stalls: Counter[Site] = Counter()
        others: Counter[tuple[str, str]] = Counter()
        for s in stalls:
            for site, v in s.sites.items():
                acc = sites[site]
                for i in range(3):
                    acc[i] += v[i]
            site_stalls.update(s.sites.keys())
            others.update(s.others)
        scheduled = [s for s in stalls if s.scheduled]

        def ms(x: float) -> float:
            return round(1000 * x, 1)

        def split(seconds: float, cpu: float, runnable: float) -> dict[str, float]:
            return {
                "ms": ms(seconds),
                "on_cpu_ms": ms(cpu),
                "runnable_ms": ms(runnable),
                "waiting_ms": ms(max(0.0, seconds - cpu - runnable)),
            }

        return {
            "late_after_ms": ms(self.late_after),
            "stalls": len(stalls),
            "stalled_ms": ms(sum(s.seconds for s in stalls)),
            "scheduled": split(  # the stalls with the kernel's figures
                sum(s.seconds for s in scheduled),
                sum(s.share(1) for s in scheduled),
                sum(s.share(2) for s in scheduled),
            ),
            "sites": [
                {**split(*v), "stalls": site_stalls[site], "stack": list(site)}
                for site, v in sorted(sites.items(), key=lambda kv: -kv[1][0])[:top]
            ],
            "others": [
                {"thread": name, "where": where, "cpu_ms": ms(t)}
                for (name, where), t in others.most_common(top)
            ],
            "longest": [
                {
                    **split(s.seconds, s.share(1), s.share(2)),
                    "busy": s.busy,
                    "sites": [
                        list(site)
                        for site, _ in sorted(s.sites.items(), key=lambda kv: -kv[1][0])[:3]
                    ],
                    "others": [
                        {"thread": n, "where": w, "cpu_ms": ms(t)}
                        for (n, w), t in s.others.most_common(4)
                    ],
                }
                for s in sorted(stalls, key=lambda s: -s.seconds)[:5]
            ],
        }
