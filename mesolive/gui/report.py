"""Session report: every track's timeline as JSON and CSV, and a PNG plot.

No Qt here. The window takes a :class:`ReportSnapshot` on the GUI thread
(array copies, milliseconds) and writes it from a worker thread with
:func:`export_session`; the plot is drawn by matplotlib in a child process
(:mod:`mesolive.gui.report_plot` says why), and the annotated snapshot is
drawn by the GUI package and handed in as an extra file.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from itertools import repeat
from pathlib import Path
from typing import IO, Any

import numpy as np

from mesolive.gui.report_child import write_in_child
from mesolive.gui.tracks import TrackStore
from mesolive.outputs import write_atomic
from mesolive.types import Verdict

log = logging.getLogger(__name__)

CSV_FIELDS = [
    "track_id",
    "t",
    "frame",
    "fake_score",
    "running_score",
    "window_score",
    "model_scores",
]

#: Writes one file's whole content to the (binary) file object it is given.
Writer = Callable[[IO[bytes]], None]


@dataclass(frozen=True)
class SessionInfo:
    """What a report says about the session besides the tracks."""

    source: str
    models: tuple[str, ...]
    threshold: float
    backend: str
    started: float  # wall-clock seconds (epoch) when the session's source was started
    every: int = 1
    det_size: int | None = None  # the detector's input side as it ran; None: not ready yet


@dataclass(frozen=True)
class TrackSnapshot:
    """One track at the moment of the export: its last state and read-only columns.

    ``verdict`` is the whole track's call by the paper's share (as ``scan``
    reports it), ``last_verdict`` the live call its label showed last; both
    are the pipeline's, in the words of :class:`~mesolive.types.Verdict`.
    ``alerts`` holds ``(t, frame)`` of each alert the pipeline raised.
    """

    track_id: int
    verdict: Verdict
    last_verdict: Verdict
    fake_share: float
    n_scored: int
    running_score: float
    window_score: float
    first_seen: float
    last_seen: float
    alerts: tuple[tuple[float, int], ...]
    t: np.ndarray
    frame: np.ndarray
    fake: np.ndarray
    running: np.ndarray
    window: np.ndarray
    model_scores: tuple[tuple[str, np.ndarray], ...]  # NaN where a model gave no score


@dataclass(frozen=True)
class ReportSnapshot:
    """Everything a report holds, copied so another thread may write it while the session runs."""

    info: SessionInfo
    duration_s: float
    tracks: tuple[TrackSnapshot, ...]
    summaries: tuple[Any, ...]  # the pipeline's TrackSummary (frozen) after a session ended


def _column(values: array) -> np.ndarray:
    col = np.array(values)  # a copy through the buffer protocol
    col.flags.writeable = False
    return col


def take_snapshot(
    info: SessionInfo, store: TrackStore, summaries: Sequence[Any] = ()
) -> ReportSnapshot:
    """Copy what the report needs out of ``store`` (cheap: one memcpy per column)."""
    tracks = []
    for tid in sorted(store.tracks):
        rec = store.tracks[tid]
        last, pts = rec.last, rec.points
        tracks.append(
            TrackSnapshot(
                track_id=tid,
                verdict=last.track_verdict,
                last_verdict=last.verdict,
                fake_share=float(last.fake_share),
                n_scored=int(last.n_scored),
                running_score=float(last.running_score),
                window_score=float(last.window_score),
                first_seen=rec.first_seen,
                last_seen=rec.last_seen,
                alerts=tuple(rec.alert_marks),
                t=_column(pts.t),
                frame=_column(pts.frame),
                fake=_column(pts.fake),
                running=_column(pts.running),
                window=_column(pts.window),
                model_scores=tuple((m, _column(c)) for m, c in pts.models.items()),
            )
        )
    return ReportSnapshot(info, store.t_last, tuple(tracks), tuple(summaries))


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if hasattr(value, "value") and hasattr(value, "name"):  # enums
        return value.value
    return value


Row = tuple[float, int, float, float, float, dict[str, float]]


def _rows(track: TrackSnapshot) -> Iterator[Row]:
    """``(t, frame, fake, running, window, model scores)`` per point, NaN scores left out.

    A generator: a long session's report never holds a Python object per
    point at once, so the worker does not set off full garbage collections,
    which hold the GIL (and so stall the GUI thread) for their whole run.
    """
    names = [m for m, _ in track.model_scores]
    cols = [c.tolist() for _, c in track.model_scores]
    scores = zip(*cols, strict=True) if cols else repeat((), len(track.t))
    for t, frame, fake, running, window, vals in zip(
        track.t.tolist(),
        track.frame.tolist(),
        track.fake.tolist(),
        track.running.tolist(),
        track.window.tolist(),
        scores,
        strict=True,
    ):
        models = {m: v for m, v in zip(names, vals, strict=True) if v == v}  # v != v: NaN
        yield t, frame, fake, running, window, models


def _track_entry(track: TrackSnapshot, summary: Any | None) -> dict[str, Any]:
    """A track's JSON entry without its points."""
    entry: dict[str, Any] = {
        "track_id": track.track_id,
        "verdict": track.verdict.value,
        "last_verdict": track.last_verdict.value,
        "fake_share": track.fake_share,
        "n_scored": track.n_scored,
        "running_score": track.running_score,
        "window_score": track.window_score,
        "first_seen": round(track.first_seen, 3),
        "last_seen": round(track.last_seen, 3),
        "alerts": [{"t": round(t, 4), "frame": frame} for t, frame in track.alerts],
    }
    if summary is not None:  # the pipeline's own account (after the session ended)
        entry["summary"] = {**_jsonable(summary), **summary.score_fields()}  # null: never scored
        entry["summary"].pop("timeline", None)  # the same scores as "points"
    return entry


def _point(row: Row) -> dict[str, Any]:
    t, frame, fake, running, window, models = row
    return {
        "t": round(t, 4),
        "frame": frame,
        "fake_score": round(fake, 5),
        "running_score": round(running, 5),
        "window_score": round(window, 5),
        "model_scores": {k: round(v, 5) for k, v in models.items()},
    }


def _session(snap: ReportSnapshot) -> dict[str, Any]:
    info = snap.info
    return {
        "source": info.source,
        "models": list(info.models),
        "threshold": info.threshold,
        "backend": info.backend,
        "every": info.every,
        "det_size": info.det_size,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(info.started)),
        "duration_s": round(snap.duration_s, 3),
    }


def write_json(f: IO[bytes], snap: ReportSnapshot) -> None:
    """``{"session": {…}, "tracks": [{…, "points": [{…}, …]}, …]}``, a point a line.

    Streamed a point at a time (see :func:`_rows`), never built whole.
    """
    by_id = {getattr(s, "track_id", None): s for s in snap.summaries}
    f.write(b'{"session": ' + json.dumps(_session(snap)).encode() + b',\n "tracks": [')
    for i, track in enumerate(snap.tracks):
        head = json.dumps(_track_entry(track, by_id.get(track.track_id)))
        f.write((("," if i else "") + "\n  " + head[:-1] + ', "points": [').encode())
        sep = "\n   "
        for row in _rows(track):
            f.write((sep + json.dumps(_point(row))).encode())
            sep = ",\n   "
        f.write(b"]}")
    f.write(b"\n]}\n")


def write_csv(f: IO[bytes], snap: ReportSnapshot) -> None:
    """One row per track per analysed frame."""
    text = io.TextIOWrapper(f, encoding="utf-8", newline="")
    w = csv.writer(text)
    w.writerow(CSV_FIELDS)
    for tr in snap.tracks:
        for t, frame, fake, running, window, models in _rows(tr):
            w.writerow(
                [
                    tr.track_id,
                    f"{t:.4f}",
                    frame,
                    f"{fake:.5f}",
                    f"{running:.5f}",
                    f"{window:.5f}",
                    json.dumps({k: round(v, 5) for k, v in models.items()}),
                ]
            )
    text.flush()
    text.detach()  # the caller closes ``f``


def write_plot(f: IO[bytes], snap: ReportSnapshot) -> None:
    """Running fake score of each track over time, with the threshold, as PNG.

    Each curve is cut to the plot's pixel columns first (see
    :mod:`mesolive.gui.report_plot`).
    """
    from mesolive.gui.report_plot import Curve, envelope, render_png

    curves = [
        Curve(
            f"#{tr.track_id} {tr.verdict.word} ({100 * tr.fake_share:.0f}% fake frames)",
            *envelope(tr.t, tr.running),
        )
        for tr in snap.tracks
        if len(tr.t)
    ]
    f.write(render_png(curves, snap.info.threshold, f"mesolive: {snap.info.source}"))


def new_folder(folder: Path) -> Path:
    """Make ``folder``, or ``folder-2``, ``folder-3``… where it exists; returns the one made.

    A report never lands among the files of an earlier one.

    Raises
    ------
    OSError
        The folder cannot be made (a read-only disk, a path under a file).
    """
    for n in range(1, 1000):
        path = folder if n == 1 else folder.with_name(f"{folder.name}-{n}")
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"{folder}: too many reports of that name")


def write_timeline(folder: Path, snap: ReportSnapshot) -> dict[str, Path]:
    """Write ``timeline.json``, ``timeline.csv`` and ``timeline.png`` into ``folder`` (it exists).

    In this process: the app has it done by a child process
    (:func:`export_session`). Returns each key's path.

    Raises
    ------
    OSError, mesolive.errors.InputError
        Naming the file that could not be written.
    """
    files: dict[str, tuple[str, Writer]] = {
        "json": ("timeline.json", lambda f: write_json(f, snap)),
        "csv": ("timeline.csv", lambda f: write_csv(f, snap)),
        "png": ("timeline.png", lambda f: write_plot(f, snap)),
    }
    return _write_files(folder, files)


def _write_files(folder: Path, files: Mapping[str, tuple[str, Writer]]) -> dict[str, Path]:
    out = {}
    for key, (name, write) in files.items():
        path = folder / name
        write_atomic(path, "report", write, mode="wb")
        out[key] = path
    return out


def export_session(
    folder: Path, snap: ReportSnapshot, extra: Mapping[str, tuple[str, Writer]] | None = None
) -> dict[str, Path]:
    """Write the timeline files and ``extra`` into a new folder; runs in any thread.

    ``folder`` is made (see :func:`new_folder`: an existing one gets a number).
    The timeline files (:func:`write_timeline`) are written by a child
    process (:mod:`mesolive.gui.report_child` says why), then ``extra``
    (more keys to ``(file name, writer)``) here. Every file is written whole
    or not at all, so a full disk leaves complete files and no partial one.
    Returns each key's path.

    Raises
    ------
    OSError, mesolive.errors.InputError
        Naming the folder or the file that could not be written.
    """
    folder = new_folder(folder)
    out = write_in_child(folder, snap)
    out.update(_write_files(folder, extra or {}))
    log.info("session report written to %s", folder)
    return out
