"""End-to-end speed of the live pipeline: time per stage, frames per second, p95 latency.

For each clip and configuration every frame is processed twice after a
warm-up: ``inline`` (read, decode and process in turn in one thread) and
``overlap`` (as ``mesolive scan`` reads a file: decoded ahead in one thread,
detected ahead in another while this one classifies,
:meth:`~mesolive.pipeline.pipeline.FramePipeline.stream`). The script prints
mean milliseconds per frame for each stage (capture = read + decode where it
runs in the processing thread, detect, crop, classify, track), end-to-end
frames per second (frames / wall time, decode included) as a multiple of
real time (30 fps), and the median and 95th percentile of the per-frame
latency (from the frame's read, ``overlap``: from its entering the pipeline,
to its result). Run on a quiet machine:

    MESOLIVE_MODEL_DIR=../shared/models python bench/pipeline.py

``--live`` adds a run through the capture thread at the clip's own frame
rate (what the GUI does): latency from capture to result, and frames
dropped. ``--soak SECONDS`` loops the first clip for that long and reports
resident memory growth (the 10-minute target: under 5 %).

Targets (2-core CPU, ONNX Runtime): the 6-face 720p clip at ≥ 45 fps with
detection on every frame at 320×320, ≥ 90 fps with ``every=3``; p95 ≤ 40 ms.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mesolive.models.registry import default_model
from mesolive.pipeline.pipeline import FramePipeline, PipelineConfig
from mesolive.pipeline.readahead import ReadAhead
from mesolive.sources.registry import make_source
from mesolive.types import Frame, FrameResult, ReadStatus

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MESOLIVE_SHARED", ROOT.parent / "shared"))
CLIPS = [
    SHARED / "videos" / "synthetic" / "group_pan_720p30.mp4",
    SHARED / "videos" / "real" / "hamilton_clip.mp4",
]
STAGES = ("capture", "detect", "crop", "classify", "track")


@dataclass
class Run:
    clip: str
    label: str
    frames: int = 0
    faces: int = 0
    wall: float = 0.0
    stage: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    latency: list[float] = field(default_factory=list)
    dropped: int = 0

    def add(self, result: FrameResult, capture: float, latency: float) -> None:
        """One processed frame: its stage times, the ``capture`` time and its latency."""
        self.frames += 1
        self.faces += len(result.faces)
        tm = result.timings
        for name, v in zip(
            STAGES, (capture, tm.detect, tm.crop, tm.classify, tm.track), strict=True
        ):
            self.stage[name].append(v)
        self.latency.append(latency)

    @property
    def fps(self) -> float:
        return self.frames / self.wall if self.wall else 0.0

    def ms(self, stage: str) -> float:
        v = self.stage[stage]
        return 1000.0 * float(np.mean(v)) if v else 0.0

    def pct(self, q: float) -> float:
        return 1000.0 * float(np.percentile(self.latency, q)) if self.latency else 0.0


def rss_mib() -> float:
    """Resident set size of this process in MiB (Linux /proc; else peak RSS)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_sync(
    pipeline: FramePipeline, clip: Path, label: str, frames: int, warmup: int, overlap: bool
) -> Run:
    """Every frame, after a warm-up pass: read and processed in turn in this thread, or as
    ``mesolive scan`` reads a file (``overlap``: decoded ahead in one thread, detected ahead
    in another, :meth:`FramePipeline.stream`)."""
    timed = _overlapped_pass if overlap else _inline_pass
    timed(pipeline, clip, Run(clip.name, "warm-up"), warmup)
    return timed(
        pipeline, clip, Run(clip.name, label + (" overlap" if overlap else " inline")), frames
    )


def _inline_pass(pipeline: FramePipeline, clip: Path, run: Run, frames: int) -> Run:
    src = make_source(str(clip))
    src.open()
    pipeline.reset()
    try:
        t_start = time.perf_counter()
        while run.frames < frames:
            t0 = time.perf_counter()
            status, frame, _ = src.read(1.0)
            t1 = time.perf_counter()
            if status is not ReadStatus.OK:
                break
            result = pipeline.process(frame)
            run.add(result, t1 - t0, time.perf_counter() - t0)
        run.wall = time.perf_counter() - t_start
    finally:
        src.close()
    return run


def _overlapped_pass(pipeline: FramePipeline, clip: Path, run: Run, frames: int) -> Run:
    handed: dict[int, float] = {}  # frame index -> when it entered the pipeline

    def read(reader: ReadAhead) -> Iterator[Frame]:
        for _ in range(frames):
            status, frame, _ = reader.read(1.0)
            if status is not ReadStatus.OK:
                return
            handed[frame.index] = time.perf_counter()
            yield frame

    pipeline.reset()
    with ReadAhead(make_source(str(clip))) as reader:
        t_start = time.perf_counter()
        for result in pipeline.stream(read(reader)):
            run.add(result, 0.0, time.perf_counter() - handed.pop(result.frame.index))
        run.wall = time.perf_counter() - t_start
    return run


def run_live(pipeline: FramePipeline, clip: Path, label: str, frames: int) -> Run:
    """The capture thread plays the clip at its frame rate; latest frame wins (as the GUI)."""
    from mesolive.pipeline.capture import CaptureThread
    from mesolive.pipeline.mailbox import LatestSlot

    run = Run(clip.name, label + " live")
    pipeline.reset()
    slot: LatestSlot = LatestSlot()
    cap = CaptureThread(make_source(str(clip)), slot, pace=True, max_frames=frames)
    t_start = time.perf_counter()
    cap.start()
    try:
        while True:
            frame = slot.take(0.2)
            if frame is None:
                if slot.closed:
                    break
                continue
            result = pipeline.process(frame)
            run.add(result, 0.0, result.latency)
    finally:
        cap.stop(2.0)
    run.wall = time.perf_counter() - t_start
    run.dropped = cap.drops
    return run


def soak(pipeline: FramePipeline, clip: Path, seconds: float) -> None:
    """Loop ``clip`` for ``seconds``; print RSS every minute and the growth after warm-up.

    The baseline is taken after the first minute (or fifth of the run): ONNX
    Runtime's arenas and the allocator's pools fill during the first few hundred
    frames, which is growth that stops, not a leak (seen here: +8 % by 60 s,
    then +0.3 % from 60 s to 600 s).
    """
    src = make_source(str(clip), loop=True)
    src.open()
    t0 = time.monotonic()
    base = None
    next_report = 60.0
    n = 0
    try:
        while (elapsed := time.monotonic() - t0) < seconds:
            status, frame, msg = src.read(1.0)
            if status is not ReadStatus.OK:
                print(f"soak: read stopped: {status.value} {msg}")
                break
            pipeline.process(frame)
            n += 1
            if base is None and elapsed > min(60.0, seconds / 5):  # after warm-up
                base = rss_mib()
                print(f"soak: RSS {base:.1f} MiB after {elapsed:.0f} s")
            if elapsed >= next_report:
                now = rss_mib()
                growth = 100.0 * (now - base) / base if base else 0.0
                print(f"soak: {elapsed:5.0f} s  {n} frames  RSS {now:.1f} MiB  ({growth:+.2f} %)")
                next_report += 60.0
    finally:
        src.close()
    if base:
        now = rss_mib()
        growth = 100.0 * (now - base) / base
        print(f"soak: RSS growth over {seconds:.0f} s: {growth:+.2f} % (target < 5 %)")


def print_table(runs: list[Run]) -> None:
    head = (
        f"{'clip':<24} {'config':<26} {'frames':>6} {'faces/f':>7} "
        + " ".join(f"{s:>8}" for s in STAGES)
        + f" {'fps':>7} {'p50 ms':>7} {'p95 ms':>7} {'drops':>5}"
    )
    print(head)
    print("-" * len(head))
    for r in runs:
        stages = " ".join(f"{r.ms(s):8.2f}" for s in STAGES)
        faces = r.faces / r.frames if r.frames else 0.0
        print(
            f"{r.clip[:24]:<24} {r.label:<26} {r.frames:6d} {faces:7.2f} {stages} "
            f"{r.fps:7.1f} {r.pct(50):7.1f} {r.pct(95):7.1f} {r.dropped:5d}"
        )
    print(
        "stage columns: mean ms per frame (capture = read + decode in the processing thread; "
        "0 where skipped or done in another thread)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="*", type=Path, default=CLIPS)
    ap.add_argument("--frames", type=int, default=300, help="frames per clip and config")
    ap.add_argument("--warmup", type=int, default=15)
    ap.add_argument(
        "--configs",
        nargs="+",
        default=["1:320", "3:320"],
        metavar="EVERY:DET",
        help="configurations as every:det_size (default: 1:320 3:320)",
    )
    ap.add_argument(
        "--models",
        nargs="+",
        default=None,
        help="models timed one after the other (default: the default model, then meso4-df)",
    )
    ap.add_argument(
        "--precisions",
        nargs="+",
        default=["auto"],
        help="CPU precisions timed one after the other, e.g. fp32 bf16 (default: auto)",
    )
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--live", action="store_true", help="also run through the capture thread")
    ap.add_argument("--soak", type=float, default=0.0, metavar="SECONDS", help="memory soak")
    args = ap.parse_args()

    missing = [c for c in args.clips if not c.is_file()]
    if missing:
        print(f"bench: no such clip: {missing[0]} (set MESOLIVE_SHARED)", file=sys.stderr)
        return 2
    models = args.models or list(dict.fromkeys([default_model(), "meso4-df"]))
    print(f"machine: {os.cpu_count()} cores; ORT threads: {args.threads or 'default'}")
    runs: list[Run] = []
    for spec in args.configs:
        every, det = (int(x) for x in spec.split(":"))
        for model, precision in itertools.product(models, args.precisions):
            config = PipelineConfig(
                models=(model,),
                det_size=det,
                every=every,
                threads=args.threads,
                backend=args.backend,
                precision=precision,
            )
            with FramePipeline(config) as pipeline:
                label = f"{model} e{every} d{det}"
                label += f" {precision}" if len(args.precisions) > 1 else ""
                if spec == args.configs[0]:
                    print(f"{label}: {pipeline.backend}; detector: {pipeline.detector_name}")
                for clip in args.clips:
                    for overlap in (False, True):
                        runs.append(
                            run_sync(pipeline, clip, label, args.frames, args.warmup, overlap)
                        )
                    if args.live:
                        runs.append(run_live(pipeline, clip, label, args.frames))
                if args.soak and spec == args.configs[0] and model == models[0]:
                    soak(pipeline, args.clips[0], args.soak)
    print_table(runs)
    for r in runs:
        print(f"{r.clip[:24]:<24} {r.label:<26} x{r.fps / 30:.2f} real time (fps / 30)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
