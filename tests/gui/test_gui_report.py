"""Track histories and the session report from hand-made results (no pipeline)."""

from __future__ import annotations

import csv
import json
import math

import pytest
from PIL import Image

from mesolive.gui.report import SessionInfo, export_session
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


def test_export_writes_json_csv_and_plot(tmp_path):
    store = TrackStore(threshold=0.5)
    for i in range(30):
        faces = [make_face(1, (0, 0, 10, 10), 0.2), make_face(2, (20, 0, 30, 10), 0.8)]
        store.update(make_result(faces, index=i, t=100.0 + i / 30))
    info = SessionInfo(source="test:", models=["meso4-df"], threshold=0.5, backend="x")
    out = export_session(tmp_path / "r", info, store)
    report = json.loads(out["json"].read_text())
    assert report["session"]["duration_s"] == pytest.approx(29 / 30, abs=1e-3)
    assert [t["track_id"] for t in report["tracks"]] == [1, 2]
    assert report["tracks"][1]["verdict"] == "fake"
    assert len(report["tracks"][0]["points"]) == 30
    assert report["tracks"][0]["points"][0]["t"] == 0.0
    with out["csv"].open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 60 and rows[0]["track_id"] == "1"
    assert json.loads(rows[0]["model_scores"]) == {"meso4-df": 0.2}
    assert Image.open(out["png"]).size == (1000, 450)
