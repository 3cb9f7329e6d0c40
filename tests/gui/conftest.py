"""GUI tests: Qt offscreen, settings in a temp file, helpers for hand-made results."""

from __future__ import annotations

import argparse
import os

import pytest

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # never a real window in these tests
pytest.importorskip("PySide6.QtWidgets", reason="GUI tests need PySide6 (pip install -e .[gui])")
pytest.importorskip("pytestqt", reason="GUI tests need pytest-qt")

import numpy as np

from mesolive.types import FaceResult, Frame, FrameResult, StageTimings, Verdict

CLIP = "videos/synthetic/group_pan_720p30.mp4"


@pytest.fixture(autouse=True)
def _gui_settings(tmp_path, monkeypatch):
    """Every test keeps its QSettings in its own INI file, never the user's."""
    monkeypatch.setenv("MESOLIVE_GUI_SETTINGS", str(tmp_path / "mesolive.ini"))


def parse(*argv: str) -> argparse.Namespace:
    """The app's command line, parsed by the real parser."""
    from mesolive.cli import parse_args

    return parse_args(list(argv))


@pytest.fixture
def qsettings(tmp_path):
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "ui.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def window(qtbot, qsettings):
    """The main window, shown offscreen; shut down (threads joined) after the test."""
    from mesolive.gui.main_window import MainWindow

    win = MainWindow(parse(), qsettings)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    yield win
    assert win.shutdown(), "threads did not stop in time"


@pytest.fixture
def clip(shared):
    path = shared / CLIP
    if not path.is_file():
        pytest.skip(f"missing {path}")
    return path


def make_face(
    track_id: int,
    xyxy: tuple[float, float, float, float],
    running: float,
    *,
    n_scored: int = 5,
    verdict: Verdict | None = None,
    alerts: int = 0,
) -> FaceResult:
    """A hand-made FaceResult (the real type, filled by hand); its track verdict is the live one."""
    if verdict is None:
        verdict = Verdict.FAKE if running >= 0.5 else Verdict.REAL
    return FaceResult(
        track_id=track_id,
        xyxy=np.asarray(xyxy, np.float32),
        kps=np.zeros((5, 2), np.float32),
        fake_score=running,
        model_scores={"meso4-df": running},
        running_score=running,
        window_score=running,
        fake_share=1.0 if running > 0.5 else 0.0,
        n_scored=n_scored,
        verdict=verdict,
        track_verdict=verdict,
        alerts=alerts,
    )


def make_result(
    faces, *, index: int = 0, t: float = 0.0, size=(1280, 720), value=90, threshold=0.5
):
    """A FrameResult over a flat grey frame, judged with ``threshold``."""
    w, h = size
    image = np.full((h, w, 3), value, np.uint8)
    frame = Frame(index, image, t, "test:")
    return FrameResult(
        frame, tuple(faces), StageTimings(), 0.01, True, "onnxruntime-cpu", threshold=threshold
    )
