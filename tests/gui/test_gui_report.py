"""Track histories and the session report from hand-made results (no pipeline)."""

from __future__ import annotations

import csv
import json
import math
import time

import pytest
from PIL import Image

from mesolive.errors import InputError
from mesolive.gui.report import SessionInfo, export_session, new_folder, take_snapshot
from mesolive.gui.tracks import TrackSeries, TrackStore
from tests.gui.conftest import make_face, make_result

pytestmark = pytest.mark.gui


def test_series_keeps_columns_aligned_and_bounded():
    s = TrackSeries(max_points=10)
    face = make_face(1, (0, 0, 10, 10), 0.3)
    for i in range(25):
        s.append(float(i), i, face)
    assert 5 <= len(s) <= 10  # the oldest half goes when full
    assert list(s.t) == sorted(s.t) and s.t[-1] == 24.0
    assert s.since(22.0) == len(s) - 3
    late = make_face(1, (0, 0, 10, 10), 0.3)
    object.__setattr__(late, "model_scores", {"meso4-df": 0.3, "meso4-f2f": 0.7})
    s.append(25.0, 25, late)
    rows = list(s.rows())
    assert len(s.models["meso4-f2f"]) == len(s)
    assert rows[-1].model_scores == {"meso4-df": 0.3, "meso4-f2f": 0.7}
    assert rows[0].model_scores == {"meso4-df": 0.3}  # no NaN for a model not yet run
    assert all(not math.isnan(r.fake_score) for r in rows)


def _store(n: int = 30) -> TrackStore:
    store = TrackStore()
    for i in range(n):
        faces = [make_face(1, (0, 0, 10, 10), 0.2), make_face(2, (20, 0, 30, 10), 0.8)]
        store.update(make_result(faces, index=i, t=100.0 + i / 30))
    return store


INFO = SessionInfo(
    source="test:", models=("meso4-df",), threshold=0.5, backend="x", started=1_700_000_000.0
)


def test_export_writes_json_csv_and_plot(tmp_path):
    snap = take_snapshot(INFO, _store())
    out = export_session(tmp_path / "r", snap)
    assert set(out) == {"json", "csv", "png"} and out["json"].parent == tmp_path / "r"
    report = json.loads(out["json"].read_text())
    assert report["session"]["duration_s"] == pytest.approx(29 / 30, abs=1e-3)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(INFO.started))
    assert report["session"]["started"] == started
    assert [t["track_id"] for t in report["tracks"]] == [1, 2]
    assert report["tracks"][1]["verdict"] == "fake"
    assert len(report["tracks"][0]["points"]) == 30
    assert report["tracks"][0]["points"][0]["t"] == 0.0
    with out["csv"].open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 60 and rows[0]["track_id"] == "1"
    assert json.loads(rows[0]["model_scores"]) == {"meso4-df": 0.2}
    assert Image.open(out["png"]).size == (1200, 450)
    assert not list((tmp_path / "r").glob(".*"))  # no temporary file left


def test_a_snapshot_is_a_copy_the_session_cannot_change(tmp_path):
    store = _store(10)
    snap = take_snapshot(INFO, store)
    store.update(make_result([make_face(1, (0, 0, 10, 10), 0.9)], index=10, t=101.0))
    store.clear()
    assert [len(t.t) for t in snap.tracks] == [10, 10]
    with pytest.raises(ValueError):
        snap.tracks[0].running[0] = 1.0  # read-only: another thread writes from it
    report = json.loads(export_session(tmp_path / "r", snap)["json"].read_text())
    assert [len(t["points"]) for t in report["tracks"]] == [10, 10]


def test_an_export_never_lands_among_the_files_of_an_earlier_one(tmp_path):
    snap = take_snapshot(INFO, _store(5))
    first = export_session(tmp_path / "r", snap)
    second = export_session(tmp_path / "r", snap)
    assert first["json"].parent == tmp_path / "r"
    assert second["json"].parent == tmp_path / "r-2"
    assert new_folder(tmp_path / "r") == tmp_path / "r-3"


def test_a_failed_file_keeps_the_ones_written_and_leaves_no_partial_file(tmp_path):
    def broken(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")

    snap = take_snapshot(INFO, _store(5))
    with pytest.raises(InputError, match="No space left on device"):
        export_session(tmp_path / "r", snap, {"extra": ("extra.bin", broken)})
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "timeline.csv",
        "timeline.json",
        "timeline.png",
    ]
