"""``mesolive evaluate FOLDER``: accuracy, per-class accuracy and ROC AUC.

A labelled set may hold face-crop images, whole videos, or both:

* images are scored one crop at a time by the classifier (crop-level
  metrics, a fake score above 0.5 is a fake call);
* videos go through the live pipeline exactly as ``mesolive scan`` runs
  them (detect, crop, classify, track every face), and a video's call is the
  pipeline's own verdict (:attr:`InputReport.verdict`): there is no second
  rule of "how fake" here.

With both, the images are reported first and the videos as a second
section. Exit status: 2 when an image could not be read or a video failed
(each one is named on stderr and left out of the metrics), else 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mesolive.datasets import Item, from_csv, from_folder
from mesolive.errors import InputError, check_count
from mesolive.imageio import IMAGE_EXTS, VIDEO_EXTS
from mesolive.metrics import Report, evaluate, pair_report, roc_auc, roc_curve
from mesolive.outputs import check_outputs, write_atomic

if TYPE_CHECKING:
    from mesolive.commands.scan import InputReport
    from mesolive.pipeline.pipeline import PipelineConfig
    from mesolive.types import TrackSummary

log = logging.getLogger(__name__)

#: Columns of the video confusion table: what the pipeline called a video.
#: ``unknown`` (too few scored frames) and ``no face`` share the last one.
CALLS = ("real", "uncertain", "fake", "unknown/no face")
LABEL_NAMES = ("real", "fake")


def labelled_items(folder: Path, labels_csv: Path | None) -> list[Item]:
    """Every labelled item of ``folder`` (``real/`` + ``fake/``) or of a labels CSV.

    ``folder`` may itself be the labels CSV (``mesolive evaluate held.csv``), whose
    rows then name files relative to the CSV's folder; with ``--labels`` they are
    relative to ``folder``.

    Raises
    ------
    InputError
        ``folder`` is neither a folder nor a CSV, the CSV does not exist, or
        neither gives a labelled item.
    """
    if folder.is_file() and folder.suffix.lower() == ".csv":
        if labels_csv is not None:
            raise InputError(f"{folder}: a labels CSV already; give it or --labels, not both")
        return from_csv(folder)
    if not folder.exists():
        raise InputError(f"{folder}: no such file or folder")
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder or a labels CSV")
    if labels_csv is not None and not labels_csv.is_file():
        what = "not a regular file" if labels_csv.exists() else "no such labels CSV"
        raise InputError(f"{labels_csv}: {what}")
    return from_csv(labels_csv, folder) if labels_csv is not None else from_folder(folder)


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTS


def labelled_files(folder: Path, labels_csv: Path | None) -> list[tuple[Path, int]]:
    """(image, label) pairs from ``real/`` + ``fake/`` or a labels CSV (file,label)."""
    items = labelled_items(folder, labels_csv)
    return [(it.path, it.label) for it in items if it.path.suffix.lower() in IMAGE_EXTS]


def check_plot_format(path: Path) -> None:
    """One line, before any work, when ``path``'s extension names no format matplotlib writes
    (no extension: PNG), or ``path`` is ``-``, which is standard output to scan's ``--json``
    and ``--csv`` (a plot is a file: it would be written to a file named ``-``)."""
    from matplotlib.backend_bases import FigureCanvasBase

    if str(path) == "-":
        raise InputError("--plot -: a plot goes to a file, not standard output; give FILE.png")

    kind = path.suffix[1:].lower()
    if kind and kind not in FigureCanvasBase.get_supported_filetypes():
        raise InputError(f"--plot {path}: cannot write a .{kind} plot; give a .png, .svg or .pdf")


def write_plot(
    path: Path,
    labels: np.ndarray,
    scores: np.ndarray,
    rep: Report,
    title: str,
    unit: str = "faces",
) -> None:
    """ROC curve and the two classes' score histograms, side by side, as a PNG.

    ``unit`` names what the histograms count (the y axis).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fpr, tpr = roc_curve(labels, scores)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=100)
    ax1.plot(fpr, tpr, color="#c0392b", lw=2, label=f"AUC = {rep.auc:.3f}")
    ax1.plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
    ax1.set(xlabel="false positive rate (real called fake)", ylabel="true positive rate")
    ax1.set_title("ROC")
    ax1.legend(loc="lower right")
    bins = np.linspace(0, 1, 26)
    ax2.hist(scores[labels == 0], bins=bins, alpha=0.6, color="#27ae60", label="real")
    ax2.hist(scores[labels == 1], bins=bins, alpha=0.6, color="#c0392b", label="fake")
    ax2.axvline(rep.threshold, color="black", lw=1, ls=":")
    ax2.set(xlabel="fake score", ylabel=unit)
    ax2.set_title("score histograms")
    ax2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    try:
        write_atomic(
            path, "--plot", lambda f: fig.savefig(f, format=path.suffix[1:].lower() or "png"), "wb"
        )
    finally:
        plt.close(fig)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def _json_number(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else x


# -- images ---------------------------------------------------------------------------


def _evaluate_images(
    args: argparse.Namespace,
    folder: Path,
    pairs: list[tuple[Path, int]],
    plot: Path | None,
    *,
    alone: bool = True,
) -> tuple[dict[str, Any] | None, list[str], int]:
    """Crop-level metrics of the image items: (JSON object, report lines, unreadable count).

    When no image can be read, that is an error if the images are ``alone``;
    beside videos the section is None and the videos still run.
    """
    from mesolive.commands.common import open_classifier, score_files

    label_of = dict(pairs)
    with open_classifier(args) as clf:
        results, errors = score_files(
            clf,
            [p for p, _ in pairs],
            args.batch,
            detector=args.detector,
            model_dir=args.model_dir,
            threads=args.threads,
        )
    if not results:
        if alone:
            raise InputError(f"{folder}: none of the {len(pairs)} images could be read")
        return None, [f"images          none of the {len(pairs)} could be read"], len(errors)
    labels = np.array([label_of[r.path] for r in results])
    scores = np.array([r.fake_score for r in results])
    rep = evaluate(labels, scores, [r.path.stem for r in results])
    if plot is not None:
        write_plot(plot, labels, scores, rep, f"{args.model} on {folder}")
    out = {"model": args.model, "folder": str(folder), **asdict(rep), "errors": len(errors)}
    out = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}
    lines = [
        f"model           {args.model} ({clf.backend})",
        f"images          {rep.n} ({rep.n_real} real, {rep.n_fake} fake)"
        + (f", {len(errors)} unreadable" if errors else ""),
        f"accuracy        {_fmt(rep.accuracy)}  (fake score > {rep.threshold})",
        f"real accuracy   {_fmt(rep.real_accuracy)}",
        f"fake accuracy   {_fmt(rep.fake_accuracy)}",
        f"ROC AUC         {_fmt(rep.auc)}",
    ]
    if rep.video_accuracy is not None:
        lines.append(f"video accuracy  {_fmt(rep.video_accuracy)}  ({rep.n_videos} videos)")
    if plot is not None:
        lines.append(f"plot            {plot}")
    return out, lines, len(errors)


# -- videos ---------------------------------------------------------------------------


def video_score(tracks: list[TrackSummary]) -> float | None:
    """A video's continuous fake score for ROC AUC: its most suspicious face.

    The highest ``mean_score`` among the tracks the pipeline could call (any
    verdict but UNKNOWN, i.e. enough scored frames); when no track is
    callable, the highest among all tracks that were scored at least once.
    None when no face was ever scored.
    """
    from mesolive.types import Verdict

    scored = [t for t in tracks if t.n_scored > 0]
    called = [t for t in scored if t.verdict is not Verdict.UNKNOWN]
    pool = called or scored
    return max(t.mean_score for t in pool) if pool else None


@dataclass(frozen=True)
class VideoResult:
    """One labelled video and what the pipeline made of it."""

    item: Item
    report: InputReport

    @property
    def failed(self) -> bool:
        """The video could not be (fully) read: left out of every metric."""
        return self.report.error is not None

    @property
    def verdict(self) -> str:
        """The pipeline's call (scan's words), or ``error`` for a failed video."""
        return "error" if self.failed else self.report.verdict

    @property
    def call(self) -> str:
        """The confusion-table column of :attr:`verdict` (one of :data:`CALLS`)."""
        return self.verdict if self.verdict in CALLS else CALLS[-1]

    @property
    def right(self) -> bool:
        """The verdict is the label; uncertain, unknown and no face are never right."""
        return self.verdict == LABEL_NAMES[self.item.label]

    @property
    def score(self) -> float | None:
        """The video's fake score for ROC AUC (:func:`video_score`); None: no face, failed."""
        return None if self.failed else video_score(self.report.tracks)


@dataclass(frozen=True)
class VideoReport:
    """Video-level metrics over the videos that ran through (failed ones apart).

    Accuracies are NaN where their class has no video; ``auc`` is NaN unless
    both classes have a scored video. ``pairs`` (where a labels CSV pairs scored
    fakes with their originals): how many pairs, and in how many the fakes'
    mean score is above their originals'; a model that reads the footage
    rather than the forgery scores a pair alike.
    """

    n: int
    n_real: int
    n_fake: int
    accuracy: float
    real_accuracy: float
    fake_accuracy: float
    uncertain: int
    auc: float
    scored: int
    unscored: int
    failed: int
    confusion: dict[str, dict[str, int]]
    kinds: list[dict[str, Any]] | None = field(default=None)
    pairs: dict[str, int] | None = field(default=None)


def summarize_videos(results: list[VideoResult]) -> VideoReport:
    """The metrics of :class:`VideoReport` from every video's result.

    ``kinds`` (right/total per label and kind) is given only when some item's
    kind says more than its label (a labels CSV with a ``kind`` column).
    """
    ok = [r for r in results if not r.failed]
    confusion = {lab: dict.fromkeys(CALLS, 0) for lab in LABEL_NAMES}
    for r in ok:
        confusion[LABEL_NAMES[r.item.label]][r.call] += 1

    def acc(rs: list[VideoResult]) -> float:
        return sum(r.right for r in rs) / len(rs) if rs else float("nan")

    reals = [r for r in ok if r.item.label == 0]
    fakes = [r for r in ok if r.item.label == 1]
    with_score = [r for r in ok if r.score is not None]
    auc = (
        roc_auc(
            np.array([r.item.label for r in with_score]), np.array([r.score for r in with_score])
        )
        if with_score
        else float("nan")
    )
    kinds = None
    if any(r.item.kind and r.item.kind != LABEL_NAMES[r.item.label] for r in ok):
        right: Counter[tuple[str, str]] = Counter()
        total: Counter[tuple[str, str]] = Counter()
        for r in ok:
            key = (LABEL_NAMES[r.item.label], r.item.kind or LABEL_NAMES[r.item.label])
            total[key] += 1
            right[key] += r.right
        kinds = [
            {"label": lab, "kind": kind, "right": right[(lab, kind)], "total": n}
            for (lab, kind), n in sorted(total.items(), key=lambda kv: (kv[0][0] == "fake", kv[0]))
        ]
    return VideoReport(
        n=len(ok),
        n_real=len(reals),
        n_fake=len(fakes),
        accuracy=acc(ok),
        real_accuracy=acc(reals),
        fake_accuracy=acc(fakes),
        uncertain=sum(r.verdict == "uncertain" for r in ok),
        auc=auc,
        scored=len(with_score),
        unscored=len(ok) - len(with_score),
        failed=len(results) - len(ok),
        confusion=confusion,
        kinds=kinds,
        pairs=_pairs(with_score),
    )


def _pairs(scored: list[VideoResult]) -> dict[str, int] | None:
    """:attr:`VideoReport.pairs` over the scored videos; None where no pair has both."""
    rep = pair_report(
        np.array([r.item.label for r in scored]),
        np.array([r.score for r in scored], dtype=np.float64),
        np.array([r.item.group for r in scored]),
    )
    return None if rep is None else {"pairs": rep.groups, "fake_above_original": rep.fake_above}


def _track_dict(t: TrackSummary) -> dict[str, Any]:
    return {
        "track_id": t.track_id,
        "verdict": t.verdict.value,
        "n_scored": t.n_scored,
        "too_small_frames": t.too_small_frames,
        **t.score_fields(),
        "first_frame": t.first_frame,
        "last_frame": t.last_frame,
    }


def _video_dict(r: VideoResult) -> dict[str, Any]:
    return {
        "file": str(r.item.path),
        "label": LABEL_NAMES[r.item.label],
        "kind": r.item.kind or None,
        "verdict": r.verdict,
        "right": r.right,
        "score": None if r.score is None else round(r.score, 6),
        "frames": r.report.frames,
        "analysed": r.report.analysed,
        "error": r.report.error,
        "tracks": [_track_dict(t) for t in r.report.tracks],
    }


def _shown(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


def pipeline_config(args: argparse.Namespace) -> PipelineConfig:
    """The pipeline ``mesolive scan --models MODEL`` would build from these options.

    Raises
    ------
    InputError
        An option is out of range (e.g. ``--every 0``).
    """
    from mesolive.pipeline.pipeline import PipelineConfig

    return PipelineConfig(
        models=(args.model,),
        every=args.every,
        detector=args.detector,
        backend=args.backend,
        model_dir=args.model_dir,
        threads=args.threads,
        precision=args.precision,
        **({"min_face_span": m} if (m := args.min_face_span) is not None else {}),
    )


def run_videos(
    args: argparse.Namespace, config: PipelineConfig, items: list[Item]
) -> tuple[list[VideoResult], str, bool]:
    """Scan every video with one pipeline, as ``mesolive scan`` does: (results, back end,
    whether Ctrl+C or a stop signal ended the run early).

    Each video's call is logged as it ends (``n/N path: label, called …``); a
    video that fails is named in one error line instead, and the others still
    run. An interrupted run keeps the videos that ended before it (the one
    cut short is left out); interrupted before any video ended, it raises
    KeyboardInterrupt.
    """
    from mesolive.commands.scan import scan_input
    from mesolive.pipeline.pipeline import FramePipeline

    progress = sys.stderr.isatty() and not getattr(args, "quiet", False)
    results: list[VideoResult] = []
    backend = ""
    try:
        with FramePipeline(config) as pipeline:
            backend = pipeline.backend
            for it in items:
                report = scan_input(pipeline, str(it.path), progress=progress)
                if report.interrupted:
                    raise KeyboardInterrupt
                _video_done(results, VideoResult(it, report), len(items))
    except KeyboardInterrupt:
        if not results:
            raise
        return results, backend, len(results) < len(items)  # else it came as the pipeline closed
    return results, backend, False


def _video_done(results: list[VideoResult], result: VideoResult, total: int) -> None:
    """Keep a finished video and say what it was called (or, failed, why not)."""
    results.append(result)
    it, report = result.item, result.report
    if report.error is not None:
        msg = report.error if str(it.path) in report.error else f"{it.path}: {report.error}"
        print(f"mesolive: error: {msg}", file=sys.stderr)  # noqa: T201
        return
    log.info(
        "%d/%d %s: %s, called %s (score %s)",
        len(results),
        total,
        it.path,
        LABEL_NAMES[it.label],
        result.verdict,
        _fmt(result.score),
    )


def _video_lines(
    args: argparse.Namespace,
    folder: Path,
    backend: str,
    results: list[VideoResult],
    rep: VideoReport,
    plot: Path | None,
) -> list[str]:
    """The text report of the video section."""
    lines = [
        f"model           {args.model} ({backend}), --every {args.every}",
        f"videos          {rep.n} ({rep.n_real} real, {rep.n_fake} fake)"
        + (f", {rep.failed} failed" if rep.failed else ""),
        f"accuracy        {_fmt(rep.accuracy)}  (the pipeline's verdict; uncertain, unknown "
        "and no face count as wrong)",
        f"real accuracy   {_fmt(rep.real_accuracy)}  (reals called real)",
        f"fake accuracy   {_fmt(rep.fake_accuracy)}  (fakes called fake)",
        f"uncertain       {rep.uncertain}",
        f"ROC AUC         {_fmt(rep.auc)}  (score: the most suspicious face's mean; "
        f"{rep.scored} scored"
        + (f", {rep.unscored} without a judged face)" if rep.unscored else ")"),
    ]
    if rep.pairs:
        lines.append(
            f"pairs           {rep.pairs['fake_above_original']} of {rep.pairs['pairs']}: "
            "the fake scored above its own original (pairs as the labels CSV groups them)"
        )
    widths = [max(len(c), 4) for c in CALLS]
    lines.append(
        "confusion       label \\ called  "
        + "  ".join(f"{c:>{w}}" for c, w in zip(CALLS, widths, strict=True))
    )
    for lab in LABEL_NAMES:
        row = rep.confusion[lab]
        lines.append(
            f"                {lab:<14}  "
            + "  ".join(f"{row[c]:>{w}}" for c, w in zip(CALLS, widths, strict=True))
        )
    if rep.kinds:
        lines.append("per kind        right/total")
        width = max(len(k["kind"]) for k in rep.kinds)
        lines.extend(
            f"                {k['label']:<4}  {k['kind']:<{width}}  {k['right']}/{k['total']}"
            for k in rep.kinds
        )
    lines.append("per video       label  verdict    score  tracks  file")
    for r in results:
        score = "-" if r.score is None else f"{r.score:.3f}"
        lines.append(
            f"                {LABEL_NAMES[r.item.label]:<5}  {r.verdict.upper():<9}  "
            f"{score:>5}  {len(r.report.tracks):>6}  {_shown(r.item.path, folder)}"
        )
    if plot is not None:
        lines.append(f"plot            {plot}")
    return lines


def _evaluate_videos(
    args: argparse.Namespace,
    config: PipelineConfig,
    folder: Path,
    items: list[Item],
    plot: Path | None,
) -> tuple[dict[str, Any], list[str], int, int]:
    """Video-level metrics of the video items: (JSON object, report lines, failed count,
    videos not evaluated because the run was interrupted)."""
    results, backend, interrupted = run_videos(args, config, items)
    left = [it.path for it in items[len(results) :]] if interrupted else []
    rep = summarize_videos(results)
    if plot is not None:
        with_score = [r for r in results if r.score is not None]
        if with_score:
            labels = np.array([r.item.label for r in with_score])
            scores = np.array([r.score for r in with_score], dtype=np.float64)
            plot_rep = evaluate(labels, scores)
            write_plot(plot, labels, scores, plot_rep, f"{args.model} on {folder}", "videos")
        else:
            log.warning("%s: no video has a score, no plot written", plot)
            plot = None
    out: dict[str, Any] = {
        "model": args.model,
        "backend": backend,
        "every": args.every,
        **asdict(rep),
        "per_video": [_video_dict(r) for r in results],
        "interrupted": interrupted,
        "not_evaluated": [str(p) for p in left],
    }
    for key in ("accuracy", "real_accuracy", "fake_accuracy", "auc"):
        out[key] = _json_number(out[key])
    lines = _video_lines(args, folder, backend, results, rep, plot)
    if interrupted:
        lines.insert(
            2,
            f"interrupted     after {len(results)} of {len(items)} videos; "
            f"these numbers are theirs, {len(left)} not evaluated",
        )
    return out, lines, rep.failed, len(left)


# -- the verb ------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    items = labelled_items(folder, Path(args.labels) if args.labels else None)
    images = [(it.path, it.label) for it in items if it.path.suffix.lower() in IMAGE_EXTS]
    videos = [it for it in items if _is_video(it.path)]
    if len(images) + len(videos) < len(items):
        log.warning(
            "%s: %d labelled file(s) are neither images nor videos, skipped",
            folder,
            len(items) - len(images) - len(videos),
        )
    if not images and not videos:
        raise InputError(f"{folder}: no labelled images or videos found")
    check_count("--every", args.every)  # whether or not this data has videos to use it on
    config = pipeline_config(args) if videos else None  # bad options fail before any work
    plot = Path(args.plot) if args.plot else None
    if plot is not None:
        check_plot_format(plot)
    video_plot = plot
    if plot is not None and images and videos:
        video_plot = plot.with_name(f"{plot.stem}-videos{plot.suffix}")
    inputs = [folder, *(it.path for it in items)]
    outputs = {
        "--plot": plot if images else None,
        "--plot (videos)": video_plot if videos else None,
    }
    check_outputs(outputs, inputs, force=args.force)  # before any work
    bad = left = 0
    lines: list[str] = []
    image_out: dict[str, Any] | None = None
    video_out: dict[str, Any] | None = None
    if images:
        image_out, image_lines, n_bad = _evaluate_images(
            args, folder, images, plot, alone=not videos
        )
        bad += n_bad
        lines += image_lines
    if config is not None:
        video_out, video_lines, n_bad, left = _evaluate_videos(
            args, config, folder, videos, video_plot
        )
        bad += n_bad
        lines += ([""] if images else []) + video_lines
    if args.json:
        out: dict[str, Any] | None = image_out  # a set of crops alone: today's flat shape
        if video_out is not None:
            out = {"model": args.model, "folder": str(folder), "videos": video_out}
            if images:
                out["images"] = image_out
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print("\n".join(lines))  # noqa: T201
    if left:
        print(f"mesolive: interrupted; {left} video(s) not evaluated", file=sys.stderr)  # noqa: T201
        return 130  # main() tells Ctrl+C from SIGTERM
    return 2 if bad else 0
