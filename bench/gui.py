"""Desktop app benchmark: fps shown, drops, GUI-thread stalls, first frame, memory.

Runs the real app (``python -m mesolive --source CLIP``) in a subprocess,
under Xvfb when there is no display, with the testing hooks of
``mesolive/gui/hooks.py``:

- frames drawn per second and the share of captured frames never drawn
  (dropped by the analysis or replaced before a paint), target ≥ 30 fps and
  ≤ 1 %;
- a 10 ms heartbeat QTimer in the GUI thread: its largest gap is the longest
  stall, target ≤ 50 ms while no export runs;
- every ``--export-every`` seconds a session report and a snapshot are
  written (as Ctrl+E and Ctrl+S do): the longest stall while they are being
  written, target ≤ 100 ms;
- seconds from launch to the first frame on screen (models cached by a
  warm-up launch first), target ≤ 3 s;
- resident memory sampled every 5 s: growth from the first minute (or the
  first fifth of the run) to the end, target ≤ 5 %; beside it glibc's heap
  figures over the same span (bytes in use, freed but kept by the
  allocator, mmapped), which tell live memory from fragmentation (the app
  caps glibc's arenas, ``mesolive/heap.py``; ``MALLOC_ARENA_MAX=16`` in the
  environment runs it with glibc's own limit on a 2-core machine);
- where the stalls went (``mesolive/gui/stalls.py``, off with
  ``--no-sampler``): a thread samples the GUI thread's Python stack while
  the heartbeat is over 40 ms late, notes the other threads on a CPU, and
  splits each stall by the kernel's scheduler figures into the GUI thread's
  own work, CPU starvation (runnable, no core free) and waiting (the GIL, a
  lock, the X server); the top sites are printed by stalled time;
- with ``--tracemalloc N``: the Python allocation sites that grew most from
  a minute after the first frame to the end (a slower run: its stall and
  fps figures do not count).

The clip loops (the ``Loop video files`` setting) so any duration works::

    python bench/gui.py --seconds 600          # the 10-minute run
    python bench/gui.py --seconds 30 --every 3 --export-every 0

Numbers depend on the machine and on what else runs: this prints what one
run measured, with the targets beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "videos" / "synthetic" / "group_pan_720p30.mp4"


def _launch(args: argparse.Namespace, seconds: float, tmp: Path, tag: str) -> dict:
    stats = tmp / f"{tag}.json"
    ini = tmp / "settings.ini"
    ini.write_text("[source]\nloop_files=true\n")
    env = dict(os.environ)
    env.update(
        MESOLIVE_GUI_SETTINGS=str(ini),
        MESOLIVE_GUI_STATS=str(stats),
        MESOLIVE_GUI_QUIT_AFTER=str(seconds),
        MESOLIVE_GUI_EXPORT_EVERY=str(args.export_every if tag == "run" else 0),
        MESOLIVE_GUI_EXPORT_DIR=str(tmp / "exports"),
        MESOLIVE_GUI_STALL_SITES="0" if args.no_sampler or tag != "run" else "1",
        MESOLIVE_GUI_TRACEMALLOC=str(args.tracemalloc if tag == "run" else 0),
    )
    env.setdefault("MESOLIVE_MODEL_DIR", str(ROOT.parent / "shared" / "models"))
    env.setdefault("MESOLIVE_CACHE_DIR", str(tmp / "cache"))
    cmd = [
        sys.executable,
        "-m",
        "mesolive",
        "--source",
        str(args.source),
        "--every",
        str(args.every),
    ]
    cmd += ["--models", ",".join(args.models), "-q"]
    if args.backend:
        cmd += ["--backend", args.backend]
    if not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")) and env.get("QT_QPA_PLATFORM") != (
        "offscreen"
    ):
        if shutil.which("xvfb-run") is None:
            raise SystemExit("no display and no xvfb-run: install xvfb or set QT_QPA_PLATFORM")
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1920x1080x24", *cmd]
    env["MESOLIVE_GUI_T0"] = repr(time.time())
    # its own process group: on a timeout, xvfb-run's Xvfb and the app go too
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=seconds + 120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise SystemExit("the app did not quit in time:\n" + out) from None
    if proc.returncode != 0 or not stats.is_file():
        sys.stderr.write(out)
        raise SystemExit(f"the app failed (exit code {proc.returncode})")
    return json.loads(stats.read_text())


def _memory_growth(rss: list[list[float]], seconds: float) -> tuple[float, float, float] | None:
    """(baseline MB, final MB, growth %): baseline after a minute or a fifth of the run."""
    if len(rss) < 3:
        return None
    settle = min(60.0, seconds / 5)
    base = next((mb for t, mb in rss if t >= settle), rss[1][1])
    final = rss[-1][1]
    return base, final, 100.0 * (final - base) / base


def _check(ok: bool | None) -> str:
    return "n/a" if ok is None else ("ok" if ok else "MISSED")


def _split(d: dict) -> str:
    """On a CPU / runnable / waiting shares of one stall figure."""
    total = d["ms"] or 1.0
    return "/".join(f"{100 * d[k] / total:.0f}" for k in ("on_cpu_ms", "runnable_ms", "waiting_ms"))


def _print_stall_sites(title: str, s: dict | None, top: int) -> None:
    """The sampler's account of one kind of stall (outside or during exports)."""
    if not s or not s.get("stalls"):
        print(f"{title}: no stall sampled")
        return
    sched = s["scheduled"]
    print(
        f"{title}: {s['stalls']} stalls over {s['late_after_ms']:g} ms, "
        f"{s['stalled_ms']:.0f} ms in all; % of it with the GUI thread on a CPU (own work) / "
        f"runnable without one (CPU starvation) / waiting (GIL, locks, X server): "
        f"{_split(sched)}"
    )
    for site in s["sites"][:top]:
        print(
            f"  {site['ms']:7.0f} ms {site['stalls']:4d}x {_split(site):>9}  "
            f"{' ← '.join(site['stack'])}"
        )
    if s["others"]:
        print("  other threads on a CPU meanwhile:")
        for o in s["others"][:top]:
            print(f"  {o['cpu_ms']:7.0f} ms  {o['thread']}: {o['where']}")
    for st in s["longest"][:3]:
        at = st["sites"][0][0] if st["sites"] and st["sites"][0] else "?"
        print(f"  longest {st['ms']:.0f} ms ({_split(st)}) at {at}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="measured run length")
    p.add_argument("--source", default=str(CLIP))
    p.add_argument("--every", type=int, default=1)
    p.add_argument("--models", nargs="+", default=["meso4-df"])
    p.add_argument("--backend", default=None)
    p.add_argument(
        "--export-every",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="write a report and a snapshot this often (0: never)",
    )
    p.add_argument("--no-warmup", action="store_true", help="skip the launch that caches models")
    p.add_argument("--no-sampler", action="store_true", help="do not sample where stalls go")
    p.add_argument(
        "--tracemalloc",
        type=int,
        default=0,
        metavar="FRAMES",
        help="report the allocation sites that grew (slows the app)",
    )
    p.add_argument("--top", type=int, default=8, help="stall sites and growth sites printed")
    p.add_argument("--json", metavar="FILE", help="also write the raw numbers here")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="mesolive-bench-gui-") as d:
        tmp = Path(d)
        if not args.no_warmup:
            _launch(args, 4.0, tmp, "warmup")
        s = _launch(args, args.seconds, tmp, "run")

    hb = s.get("heartbeat_running") or {}
    hb_export = s.get("heartbeat_exports") or {}
    exports = s.get("exports") or []
    failed = sum(bool(e["error"]) for e in exports)
    mem = _memory_growth(s.get("rss_mb") or [], args.seconds)
    fps, drop, first = s.get("fps_shown"), s.get("dropped_share"), s.get("first_frame_s")
    stall = hb.get("max_stall_ms")
    stall_export = hb_export.get("max_stall_ms")
    print(f"source {args.source}  every {args.every}  models {' '.join(args.models)}")
    print(f"back end: {s.get('backend')}   run: {args.seconds:g} s")
    print(
        f"frames captured {s['frames_read']}, analysed {s['results']}, drawn {s['painted']}, "
        f"capture drops {s['capture_drops']}, replaced before paint {s['superseded']}"
    )
    rows = [
        # the clip itself is 30 fps: 29.7 shown is every frame within timer jitter
        ("fps shown", f"{fps:.1f}" if fps else "–", "≥ 30", None if fps is None else fps >= 29.7),
        (
            "frames dropped",
            f"{100 * drop:.2f} %" if drop is not None else "–",
            "≤ 1 %",
            None if drop is None else drop <= 0.01,
        ),
        (
            "longest GUI stall",
            (
                f"{stall:.1f} ms (gaps > 50 ms: {hb.get('gaps_over_50ms')}, "
                f"p99 gap {hb.get('p99_gap_ms')} ms)"
            )
            if stall
            else "–",
            "≤ 50 ms",
            None if stall is None else stall <= 50,
        ),
        (
            "… during exports",
            (
                f"{stall_export:.1f} ms ({len(exports)} exports, {failed} failed, "
                f"p99 gap {hb_export.get('p99_gap_ms')} ms)"
                if stall_export is not None
                else "–"
            ),
            "≤ 100 ms",
            None if stall_export is None else stall_export <= 100 and not failed,
        ),
        (
            "first frame",
            f"{first:.2f} s" if first else "–",
            "≤ 3 s",
            None if first is None else first <= 3,
        ),
        (
            "memory",
            f"{mem[0]:.0f} → {mem[1]:.0f} MB ({mem[2]:+.1f} %)" if mem else "–",
            "≤ +5 %",
            None if mem is None else mem[2] <= 5,
        ),
        (
            "latency (EMA)",
            f"{s['latency_ema_ms']:.0f} ms" if s.get("latency_ema_ms") else "–",
            "",
            None,
        ),
    ]
    for name, value, target, ok in rows:
        print(f"  {name:<18} {value:<64} {target:<8} {_check(ok) if target else ''}")
    mem_settle = min(60.0, args.seconds / 5)  # as _memory_growth's baseline
    heap = [m for m in s.get("malloc_mb") or [] if m[0] >= mem_settle]
    if len(heap) >= 2:
        (_, used0, kept0, mapped0), (_, used1, kept1, mapped1) = heap[0], heap[-1]
        print(
            f"  C heap from {mem_settle:g} s: in use {used0:.0f} → {used1:.0f} MB, freed but kept "
            f"{kept0:.0f} → {kept1:.0f} MB, mmapped {mapped0:.0f} → {mapped1:.0f} MB"
        )
    sites = s.get("stall_sites")
    if sites:
        _print_stall_sites("stalls outside exports", sites["running"], args.top)
        _print_stall_sites("stalls during exports", sites["exports"], args.top)
    for g in (s.get("memory_growth") or [])[: args.top]:
        print(f"  {g['kib']:+9.0f} KiB {g['count']:+7d} blocks  {' ← '.join(reversed(g['stack']))}")
    if args.json:
        Path(args.json).write_text(json.dumps(s, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
