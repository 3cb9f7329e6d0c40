"""Session report: every track's timeline as JSON and CSV, and a PNG plot.

No Qt here: the plot is drawn with matplotlib's Agg canvas (no pyplot, so no
global backend is switched inside a running Qt app). The annotated snapshot
is drawn by the video view and saved by the main window.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from mesolive.gui.tracks import TrackStore

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


@dataclass
class SessionInfo:
    """What a report says about the session besides the tracks."""

    source: str
    models: Sequence[str]
    threshold: float
    backend: str
    started: float = field(default_factory=time.time)  # wall-clock seconds (epoch)
    every: int = 1
    det_size: int | None = None


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


def report_dict(info: SessionInfo, store: TrackStore, summaries: Sequence[Any] = ()) -> dict:
    """The JSON report as a dict: session info, then one entry per track."""
    by_id = {getattr(s, "track_id", None): s for s in summaries}
    tracks = []
    for tid in sorted(store.tracks):
        rec = store.tracks[tid]
        last = rec.last
        entry: dict[str, Any] = {
            "track_id": tid,
            "verdict": last.verdict.value,
            "fake_share": float(last.fake_share),
            "n_scored": int(last.n_scored),
            "running_score": float(last.running_score),
            "window_score": float(last.window_score),
            "first_seen": round(rec.first_seen, 3),
            "last_seen": round(rec.last_seen, 3),
            "alerts": rec.alerts,
            "points": [
                {
                    "t": round(p.t, 4),
                    "frame": p.frame,
                    "fake_score": round(p.fake_score, 5),
                    "running_score": round(p.running_score, 5),
                    "window_score": round(p.window_score, 5),
                    "model_scores": {k: round(v, 5) for k, v in p.model_scores.items()},
                }
                for p in rec.points.rows()
            ],
        }
        if tid in by_id:  # the pipeline's own account (after the session ended)
            summary = _jsonable(by_id[tid])
            summary.pop("timeline", None)  # the same scores as "points" above
            entry["summary"] = summary
        tracks.append(entry)
    return {
        "session": {
            "source": info.source,
            "models": list(info.models),
            "threshold": info.threshold,
            "backend": info.backend,
            "every": info.every,
            "det_size": info.det_size,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(info.started)),
            "duration_s": round(store.t_last, 3),
        },
        "tracks": tracks,
    }


def write_json(path: Path, info: SessionInfo, store: TrackStore, summaries: Sequence[Any] = ()):
    path.write_text(json.dumps(report_dict(info, store, summaries), indent=1) + "\n")


def write_csv(path: Path, store: TrackStore) -> None:
    """One row per track per analysed frame."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_FIELDS)
        for tid in sorted(store.tracks):
            for p in store.tracks[tid].points.rows():
                w.writerow(
                    [
                        tid,
                        f"{p.t:.4f}",
                        p.frame,
                        f"{p.fake_score:.5f}",
                        f"{p.running_score:.5f}",
                        f"{p.window_score:.5f}",
                        json.dumps({k: round(v, 5) for k, v in p.model_scores.items()}),
                    ]
                )


def write_plot(path: Path, store: TrackStore, threshold: float, title: str = "") -> None:
    """Running fake score of each track over time, with the threshold."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for tid in sorted(store.tracks):
        rec = store.tracks[tid]
        pts = rec.points
        if not len(pts):
            continue
        ax.plot(
            pts.t,
            pts.running,
            label=f"#{tid} {rec.verdict.value} ({100 * rec.last.fake_share:.0f}% fake frames)",
            linewidth=1.5,
        )
    ax.axhline(threshold, color="black", linestyle="--", linewidth=1, label="threshold")
    ax.set_ylim(0, 1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("running fake score")
    ax.set_title(title or "mesolive session")
    ax.grid(True, alpha=0.3)
    if store.tracks:
        ax.legend(loc="upper left", fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(str(path))


def export_session(
    folder: Path, info: SessionInfo, store: TrackStore, summaries: Sequence[Any] = ()
) -> dict[str, Path]:
    """Write ``timeline.json``, ``timeline.csv`` and ``timeline.png`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {
        "json": folder / "timeline.json",
        "csv": folder / "timeline.csv",
        "png": folder / "timeline.png",
    }
    write_json(out["json"], info, store, summaries)
    write_csv(out["csv"], store)
    write_plot(out["png"], store, info.threshold, title=f"mesolive: {info.source}")
    log.info("session report written to %s", folder)
    return out
