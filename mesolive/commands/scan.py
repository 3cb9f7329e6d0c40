"""``mesolive scan INPUT…``: detect, track and score every face of videos, images, streams.

Each input is read through :func:`mesolive.sources.registry.make_source`.
Files are read in this thread, frame after frame, so every frame is
processed; with ``--realtime``, and always for live sources (cameras,
screens, streams), a capture thread plays the source at its own rate and a
frame the pipeline is too slow for is dropped (latest frame wins; a dropped
stream is retried). A folder stands for the videos and images inside it,
each scanned on its own.
With ``--cluster`` each input is one task on a Ray cluster instead
(:mod:`mesolive.commands.cluster`); its report is built and printed the same way.

Exit status: 1 when any track is fake, else 2 when any input failed, else 0
(every track real, uncertain or too short to call, or no face at all).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from mesolive import signals
from mesolive.errors import InputError, MesoliveError, OutputError, check_count, describe
from mesolive.outputs import AtomicFile, check_outputs, write_atomic
from mesolive.redact import redact

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from mesolive.pipeline.pipeline import FramePipeline, PipelineConfig
    from mesolive.pipeline.watchdog import StepWatchdog
    from mesolive.types import Frame, FrameResult, Outage, TrackSummary

log = logging.getLogger(__name__)

SPARK = "▁▂▃▄▅▆▇█"
SPARK_BINS = 24
READ_TIMEOUT = 1.0  # seconds per synchronous read (files return at once)
INFERENCE_STALL = 10.0  # seconds before a frame's analysis is reported as stalled
STDOUT = "-"  # --json - / --csv -: standard output instead of a file (the report: stderr)


@dataclass
class InputReport:
    """What one input gave: its tracks, or the error that stopped it."""

    uri: str
    frames: int = 0
    analysed: int = 0
    dropped: int = 0
    seconds: float = 0.0
    tracks: list[TrackSummary] = field(default_factory=list)
    error: str | None = None
    interrupted: bool = False
    outages: tuple[Outage, ...] = ()  # a live source's drops, each reconnected or not

    @property
    def verdict(self) -> str:
        """``fake`` if any track is fake, else ``uncertain``, ``real``, ``unknown``, ``no face``."""
        calls = {t.verdict.value for t in self.tracks}
        for v in ("fake", "uncertain", "real", "unknown"):
            if v in calls:
                return v
        return "no face"


# -- inputs ------------------------------------------------------------------------


def expand_inputs(inputs: list[str]) -> list[str]:
    """Inputs as URIs; a folder (``DIR`` or ``file:DIR``) becomes its videos and images
    (recursively, sorted).

    An input that cannot even be looked at (a name too long, a folder above
    it unreadable) is kept as given: scanning it reports why, for it alone.
    """
    from mesolive.imageio import IMAGE_EXTS, VIDEO_EXTS
    from mesolive.sources.registry import local_path

    out: list[str] = []
    for text in inputs:
        p = local_path(text)
        try:
            is_dir = p is not None and p.is_dir()
        except OSError:
            is_dir = False
        if p is not None and is_dir:
            # not only regular files: a FIFO or a dangling link is named in its own error
            media = sorted(
                f
                for f in p.rglob("*")
                if f.suffix.lower() in (VIDEO_EXTS | IMAGE_EXTS) and not f.is_dir()
            )
            out.extend(str(f) for f in media)
            if not media:
                out.append(text)  # reported as "folder holds no images or videos" by the source
        else:
            out.append(text)
    return out


# -- one input ---------------------------------------------------------------------


class _Sink:
    """Writes one CSV row per face per analysed frame, as frames come.

    A face too small to judge has an empty ``fake_score`` and ``too_small`` 1.

    Rows go to a temporary file that :meth:`commit` renames onto the CSV's
    path; closing without a commit leaves any older file there untouched.
    ``-`` (:data:`STDOUT`) writes them to standard output as they come.
    """

    def __init__(self, path: str | None, models: tuple[str, ...]) -> None:
        self.models = models
        self._out: AtomicFile | None = None
        self._writer: Any = None
        self._where = path
        if path == STDOUT:
            self._writer = csv.writer(sys.stdout)
        elif path:
            self._out = AtomicFile(path, "--csv", "w", newline="", encoding="utf-8")
            self._where = str(self._out.path)
            self._writer = csv.writer(self._out.file)
        if self._writer is not None:
            self._row(
                [
                    "input",
                    "frame",
                    "pts",
                    "track_id",
                    "x1",
                    "y1",
                    "x2",
                    "y2",
                    "fake_score",
                    *(f"score_{m}" for m in models),
                    "running_score",
                    "window_score",
                    "fake_share",
                    "n_scored",
                    "verdict",
                    "too_small",
                ]
            )

    def _row(self, row: list[Any]) -> None:
        try:
            self._writer.writerow(row)
        except OSError as e:
            if isinstance(e, BrokenPipeError) and self._where == STDOUT:
                raise  # its reader left (| head): the run ends quietly, as classify's does
            raise OutputError(f"--csv {self._where}: cannot write ({e.strerror or e})") from e

    def write(self, uri: str, result: FrameResult) -> None:
        if self._writer is not None:
            self.write_rows(self.rows(uri, result))

    def write_rows(self, rows: list[list[Any]]) -> None:
        """Rows made by :meth:`rows`, here or on a cluster's worker."""
        if self._writer is not None:
            for row in rows:
                self._row(row)

    def rows(self, uri: str, result: FrameResult) -> list[list[Any]]:
        """The CSV rows of one frame: one per face when it was analysed, else none."""
        if not result.analysed:
            return []
        pts = "" if result.frame.pts is None else f"{result.frame.pts:.4f}"
        return [
            [
                uri,
                result.frame.index,
                pts,
                f.track_id,
                *(f"{v:.1f}" for v in f.xyxy),
                "" if f.fake_score is None else f"{f.fake_score:.5f}",
                *(f"{f.model_scores[m]:.5f}" if m in f.model_scores else "" for m in self.models),
                f"{f.running_score:.5f}",
                f"{f.window_score:.5f}",
                f"{f.fake_share:.4f}",
                f.n_scored,
                f.verdict.value,
                int(f.too_small),
            ]
            for f in result.faces
        ]

    def commit(self) -> None:
        if self._out is not None:
            self._out.commit()
        elif self._writer is not None:
            sys.stdout.flush()

    def __enter__(self) -> _Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._out is not None:
            self._out.__exit__(None, None, None)


def _total_frames(source: Any, max_frames: int | None) -> int | None:
    total = getattr(source, "frame_count", None)
    if total is None and getattr(source, "files", None):
        total = len(source.files)
    if total is None and type(source).__name__ == "ImageSource" and not source.is_live:
        total = 1
    if max_frames is not None:
        total = min(total, max_frames) if total else max_frames
    return total


def scan_input(
    pipeline: FramePipeline,
    uri: str,
    *,
    realtime: bool = False,
    max_frames: int | None = None,
    sink: _Sink | None = None,
    progress: bool = True,
) -> InputReport:
    """Run ``pipeline`` over one input; never raises for a bad input (``error`` says why).

    Whatever goes wrong with this input, a bad file or a library's failure on
    it, is this input's one-line error; only a report that cannot be written
    (:class:`OutputError`) stops the run. ``report.uri`` is ``uri`` with its
    credentials redacted. The pipeline is reset first, so track IDs start at
    1 for each input.
    """
    from mesolive.pipeline.watchdog import StepWatchdog
    from mesolive.sources.registry import make_source

    report = InputReport(redact(uri))
    pipeline.reset()
    t0 = time.monotonic()
    try:
        source = make_source(uri)
        with StepWatchdog(f"analysis of {report.uri}", INFERENCE_STALL) as watchdog:
            run = _run_threaded if realtime or source.is_live else _run_sync
            run(pipeline, source, report, max_frames, sink, progress, watchdog)
    except KeyboardInterrupt:
        report.interrupted = True
        if report.frames == 0:  # not "no face found in 0 frames": nothing was looked at
            report.error = f"{report.uri}: interrupted before it gave a frame"
    except (OutputError, BrokenPipeError):  # the run's output failed, not this input
        raise
    except MesoliveError as e:
        report.error = redact(str(e))
    except OSError as e:
        report.error = f"{report.uri}: cannot read ({e.strerror or e})"
    except Exception as e:  # one input's failure is that input's error line, not the run's
        log.debug("scanning %s failed", report.uri, exc_info=True)
        report.error = redact(f"{report.uri}: {describe(e)}")
    finally:
        report.seconds = time.monotonic() - t0
        report.tracks = pipeline.summaries()
    return report


def _bar(source: Any, uri: str, max_frames: int | None, progress: bool):
    from mesolive.progress import progress_bar

    name = Path(uri).name if len(uri) > 40 else uri
    return progress_bar(
        total=_total_frames(source, max_frames),
        desc=name,
        unit="frame",
        disable=not progress,
    )


def _run_sync(
    pipeline: FramePipeline,
    source: Any,
    report: InputReport,
    max_frames: int | None,
    sink: _Sink | None,
    progress: bool,
    watchdog: StepWatchdog,
) -> None:
    """Every frame of a file: decoded ahead, the next detected while this one is classified."""
    from mesolive.pipeline.readahead import ReadAhead

    reader = ReadAhead(source)
    reader.open()
    try:
        with _bar(source, report.uri, max_frames, progress) as bar:
            results = pipeline.stream(_frames(reader, report, max_frames))
            try:
                while True:
                    with watchdog.step(f"frame {report.frames}"):
                        result = next(results, None)
                    if result is None:
                        break
                    _count(result, report, sink)
                    bar.update(1)
            finally:
                results.close()
    finally:
        reader.close()


def _frames(reader: Any, report: InputReport, max_frames: int | None) -> Iterator[Frame]:
    """The frames of ``reader`` up to ``max_frames``; a read error ends them in ``report.error``.

    Runs in the pipeline's detection thread (:meth:`FramePipeline.stream`); the
    report's error is read only after the stream has ended.
    """
    from mesolive.types import ReadStatus

    n = 0
    while max_frames is None or n < max_frames:
        status, frame, message = reader.read(READ_TIMEOUT)
        if status is ReadStatus.TIMEOUT:
            continue
        if status is ReadStatus.END:
            return
        if status is ReadStatus.ERROR or frame is None:
            report.error = redact(message) or f"{report.uri}: read failed"
            return
        n += 1
        yield frame


def _run_threaded(
    pipeline: FramePipeline,
    source: Any,
    report: InputReport,
    max_frames: int | None,
    sink: _Sink | None,
    progress: bool,
    watchdog: StepWatchdog,
) -> None:
    from mesolive.pipeline.capture import CaptureThread
    from mesolive.pipeline.mailbox import LatestSlot
    from mesolive.types import ReadStatus

    slot: LatestSlot = LatestSlot()
    # scan prints the error that ends an input itself: the thread logs only retries
    capture = CaptureThread(source, slot, pace=True, max_frames=max_frames, log_final_error=False)
    capture.start()
    try:
        with _bar(source, report.uri, max_frames, progress) as bar:
            while max_frames is None or report.frames < max_frames:
                frame = slot.take(0.1)
                if frame is None:
                    if slot.closed:
                        break
                    continue
                _process(pipeline, frame, report, sink, watchdog)
                report.dropped = capture.drops
                bar.update(1)
    finally:  # also on Ctrl+C, the usual end of a live scan: its outages were lost
        capture.stop(timeout=2.0)
        slot.close()
        report.dropped = capture.drops
        report.outages = capture.outages
    if capture.last_status is ReadStatus.ERROR:
        report.error = redact(capture.last_message)


def _process(
    pipeline: FramePipeline,
    frame: Any,
    report: InputReport,
    sink: _Sink | None,
    watchdog: StepWatchdog,
) -> None:
    with watchdog.step(f"frame {frame.index}"):
        result = pipeline.process(frame)
    _count(result, report, sink)


def _count(result: FrameResult, report: InputReport, sink: _Sink | None) -> None:
    signals.check()  # a stop signal whose KeyboardInterrupt was lost
    report.frames += 1
    report.analysed += result.analysed
    if sink is not None:
        sink.write(report.uri, result)


# -- output --------------------------------------------------------------------------


def sparkline(timeline: tuple[tuple[int, float | None, float], ...], bins: int = SPARK_BINS) -> str:
    """The fake score over a track's life as block characters (▁ = 0, █ = 1)."""
    if not timeline:
        return ""
    scores = [s for _f, _p, s in timeline]
    n = min(bins, len(scores))
    out = []
    for b in range(n):
        chunk = scores[b * len(scores) // n : (b + 1) * len(scores) // n] or scores[-1:]
        v = sum(chunk) / len(chunk)
        out.append(SPARK[min(len(SPARK) - 1, int(v * len(SPARK)))])
    return "".join(out)


def print_report(report: InputReport, out: TextIO) -> None:
    """One input's result: a headline, then a line per track."""
    head = f"{report.uri}: "
    if report.error and not report.frames:
        # errors name their input for stderr; the headline already does
        print(f"{head}ERROR: {report.error.removeprefix(head)}", file=out)
        return
    stats = f"{report.frames} frames ({report.analysed} analysed"
    stats += f", {report.dropped} dropped)" if report.dropped else ")"
    if not report.tracks:
        print(f"{head}no face found in {stats}", file=out)
    else:
        print(
            f"{head}{report.verdict.upper()} · {len(report.tracks)} face track(s) in {stats}",
            file=out,
        )
        print(
            f"  {'track':>5}  {'detected':>13}  {'seen':>5}  {'scored':>6}  {'mean':>5}  "
            f"{'fake%':>5}  {'verdict':<9}  fake score over time",
            file=out,
        )
        for t in report.tracks:
            print(_track_line(t), file=out)
    for o in report.outages:
        lost = "" if o.frames_lost is None else f", ~{o.frames_lost} frames lost"
        late = f", {o.frames_late} came late in a burst" if o.frames_late else ""
        came = "" if o.recovered else ", never came back"
        print(
            f"  source lost at {o.start:.1f} s for {o.duration:.1f} s{lost}{late}{came}: "
            f"{o.reason}",
            file=out,
        )
    if report.error:
        print(f"  ERROR after {report.frames} frames: {report.error}", file=out)
    if report.interrupted:
        print("  (interrupted)", file=out)


def _track_line(t: TrackSummary) -> str:
    """A track's row under :func:`print_report`'s header.

    A track never scored because its face was too small to judge says so in
    place of its scores; one too small only at times gets a note after them.
    """
    head = (
        f"  {'#' + str(t.track_id):>5}  {f'{t.first_frame}-{t.last_frame}':>13}  "
        f"{t.frames_seen:5d}  {t.n_scored:6d}  "
    )
    n = t.too_small_frames
    small = f"{n} frame{'s' if n != 1 else ''}"
    if n and not t.n_scored:
        return head + f"{'–':>5}  {'–':>5}  {t.verdict.value} (face too small to judge in {small})"
    line = (
        head + f"{t.mean_score:5.2f}  {100 * t.fake_share:4.0f}%  {t.verdict.value:<9}  "
        f"{sparkline(t.timeline)}"
    )
    return line + f"  (too small to judge in {small})" if n else line


def _summary_dict(t: TrackSummary) -> dict[str, Any]:
    return {
        "track_id": t.track_id,
        "verdict": t.verdict.value,
        "first_frame": t.first_frame,
        "last_frame": t.last_frame,
        "frames_seen": t.frames_seen,
        "n_scored": t.n_scored,
        "too_small_frames": t.too_small_frames,
        **t.score_fields(),
        "last_verdict": t.last_verdict.value,
        "alerts": [{"frame": f, "t": None if p is None else round(p, 4)} for f, p in t.alerts],
        "model_means": {k: round(v, 6) for k, v in t.model_means.items()},
        "timeline": [
            {"frame": f, "t": None if p is None else round(p, 4), "fake_score": round(s, 6)}
            for f, p, s in t.timeline
        ],
    }


def write_json(
    path: str,
    config: PipelineConfig,
    backend: str,
    reports: list[InputReport],
    not_scanned: list[str] | None = None,
    *,
    interrupted: bool = False,
) -> None:
    """The run's JSON; ``interrupted``: the run was (Ctrl+C, SIGTERM), ``not_scanned``: the
    inputs it then never reached."""
    from dataclasses import asdict

    data = {
        "config": {**asdict(config), "models": list(config.models)},
        "backend": backend,
        "interrupted": interrupted,
        "not_scanned": list(not_scanned or ()),
        "inputs": [
            {
                "input": r.uri,
                "verdict": "error" if r.error and not r.frames else r.verdict,
                "error": r.error,
                "interrupted": r.interrupted,
                "frames": r.frames,
                "analysed": r.analysed,
                "dropped": r.dropped,
                "seconds": round(r.seconds, 3),
                "outages": [asdict(o) for o in r.outages],
                "tracks": [_summary_dict(t) for t in r.tracks],
            }
            for r in reports
        ],
    }
    text = json.dumps(data, indent=1) + "\n"
    if path == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_atomic(path, "--json", lambda f: f.write(text), encoding="utf-8")


def summary_line(reports: list[InputReport]) -> str:
    """One line for a run over several inputs: how many got each verdict or failed."""
    calls = Counter("failed" if r.error else r.verdict for r in reports)
    order = ("fake", "uncertain", "real", "unknown", "no face", "failed")
    parts = [f"{calls[k]} {k}" for k in order if calls[k]]
    return f"{len(reports)} inputs: {', '.join(parts)}"


def exit_code(reports: list[InputReport]) -> int:
    """1 if any track is fake; else 2 if any input failed; else 0."""
    if any(r.verdict == "fake" for r in reports):
        return 1
    if any(r.error for r in reports):
        return 2
    return 0


# -- the verb ------------------------------------------------------------------------


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    from mesolive.models.registry import default_model
    from mesolive.pipeline.pipeline import PipelineConfig

    return PipelineConfig(
        models=tuple(args.models or (default_model(),)),
        detector=args.detector,
        det_size=args.det_size,
        backend=args.backend,
        model_dir=args.model_dir,
        threads=args.threads,
        precision=args.precision,
        **{
            k: v
            for k in ("every", "threshold", "alert_seconds", "reid_seconds", "min_face_span")
            if (v := getattr(args, k)) is not None
        },
    )


def _scan_here(
    config: PipelineConfig,
    inputs: list[str],
    args: argparse.Namespace,
    sink: _Sink,
    progress: bool,
    done: Callable[[InputReport], None],
) -> str:
    """Scan ``inputs`` one after the other in this process; returns the back end's name."""
    from mesolive.pipeline.pipeline import FramePipeline

    with FramePipeline(config) as pipeline:
        for uri in inputs:
            report = scan_input(
                pipeline,
                uri,
                realtime=args.realtime,
                max_frames=args.max_frames,
                sink=sink,
                progress=progress,
            )
            done(report)
            if report.interrupted:
                break
        return pipeline.backend


def run(args: argparse.Namespace) -> int:
    from mesolive.sources.registry import local_path

    check_count("--max-frames", args.max_frames)
    config = config_from_args(args)
    inputs = expand_inputs(args.inputs)
    outputs = {"--json": args.json, "--csv": args.csv}
    piped = [opt for opt, path in outputs.items() if path == STDOUT]
    if len(piped) > 1:
        raise InputError("--json - and --csv -: only one of them can go to standard output")
    check_outputs(
        {opt: path for opt, path in outputs.items() if path != STDOUT},
        [p for uri in (*args.inputs, *inputs) if (p := local_path(uri)) is not None],
        force=args.force,
    )
    progress = sys.stderr.isatty() and not getattr(args, "quiet", False)
    reports: list[InputReport] = []
    # the report's stream (even while a cluster's notices go to stderr), unless the
    # JSON or the CSV goes to stdout: then stdout holds that alone
    out = sys.stderr if piped else sys.stdout

    def done(report: InputReport) -> None:
        """The one place a finished input is kept and printed, in input order."""
        reports.append(report)
        print_report(report, out)
        out.flush()

    backend, stopped = "", False
    with _Sink(args.csv, config.models) as sink:
        try:
            if args.cluster:
                from mesolive.commands.cluster import scan_on_cluster

                backend = scan_on_cluster(args.cluster, config, inputs, args, sink, progress, done)
            else:
                backend = _scan_here(config, inputs, args, sink, progress, done)
        except KeyboardInterrupt:  # between inputs, or while the models loaded
            stopped = True
        sink.commit()  # also after Ctrl+C: the rows so far are the partial report
    stopped = stopped or any(r.interrupted for r in reports)
    not_scanned = [redact(uri) for uri in inputs[len(reports) :]] if stopped else []
    if args.json:
        write_json(args.json, config, backend, reports, not_scanned, interrupted=stopped)
    if stopped:
        left = f"; {len(not_scanned)} input(s) not scanned" if not_scanned else ""
        print(f"mesolive: interrupted{left}", file=sys.stderr)  # noqa: T201
        return 130
    if len(reports) > 1:
        print(summary_line(reports), file=out)
    for r in reports:
        if r.error:
            name = redact(r.uri)  # most sources' errors begin with it; a screen's does not
            said = r.error if r.error.startswith(name) else f"{name}: {r.error}"
            print(f"mesolive: error: {said}", file=sys.stderr)  # noqa: T201
    return exit_code(reports)
