"""The real app as a user starts it: ``python -m mesolive [--source CLIP]``, a subprocess.

Under Xvfb, in a real X window, the app's screenshot hook grabs the X screen
after 45 frames were drawn and writes a sidecar JSON (where the frame lies in
the screenshot, the faces drawn). The screenshot is kept in
``artifacts/gui_xvfb.png``. The test then runs the pipeline itself on the same
frame of the clip and checks that a box of the expected colour is drawn, on
the screen, around each face it finds.

And a first start with no camera (offscreen) opens on the source picker.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mesolive.gui.overlay import AMBER, GREEN, GREY, RED

pytestmark = [pytest.mark.gui, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACT = ROOT / "artifacts" / "gui_xvfb.png"
BAND_RGB = {
    name: np.array([c.red(), c.green(), c.blue()])
    for name, c in (("green", GREEN), ("amber", AMBER), ("red", RED), ("grey", GREY))
}


def run_group(cmd: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
    """Run ``cmd`` in its own process group; on timeout end the whole group.

    ``xvfb-run`` starts Xvfb and the app as children: killing xvfb-run alone
    would leave both running.
    """
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        pytest.fail(f"the app did not quit within {timeout} s:\n{out}")
    return proc.returncode, out


def _read_frame(path: Path, index: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    try:
        for _ in range(index + 1):
            ok, image = cap.read()
            assert ok, f"cannot read frame {index} of {path}"
        return image
    finally:
        cap.release()


def _iou(a, b) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _edge_share(shot: np.ndarray, box, rgb: np.ndarray, tol: int = 45) -> float:
    """Share of pixels on the box's left and right edges (±2 px) close to ``rgb``."""
    x1, y1, x2, y2 = (round(v) for v in box)
    ys = slice(y1 + (y2 - y1) // 4, y2 - (y2 - y1) // 4)
    best = 0.0
    for x in (x1, x2):
        strip = shot[ys, max(0, x - 2) : x + 3].astype(int)  # (rows, 5, 3)
        close = np.abs(strip - rgb).max(axis=2) <= tol
        best = max(best, float(close.any(axis=1).mean()))
    return best


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="needs Xvfb (apt-get install xvfb)")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Xvfb is Linux-only")
def test_real_app_draws_coloured_boxes_where_the_faces_are(clip, tmp_path):
    ARTIFACT.parent.mkdir(exist_ok=True)
    for p in (ARTIFACT, Path(str(ARTIFACT) + ".json")):
        p.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env.update(
        MESOLIVE_GUI_SCREENSHOT=str(ARTIFACT),
        MESOLIVE_GUI_SCREENSHOT_AFTER="45",
        MESOLIVE_GUI_QUIT_AFTER="60",  # a time limit: the screenshot quits the app first
        MESOLIVE_GUI_SETTINGS=str(tmp_path / "settings.ini"),
    )
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24"]
    cmd += [sys.executable, "-m", "mesolive", "--source", str(clip), "--every", "3"]
    rc, out = run_group(cmd, env, timeout=120)
    assert rc == 0, out
    assert ARTIFACT.is_file(), out
    side = json.loads(Path(str(ARTIFACT) + ".json").read_text())
    assert side["grab"] == "screen" and side["platform"] == "xcb"
    shot = np.asarray(Image.open(ARTIFACT).convert("RGB"))
    assert shot.shape[:2] == (1000, 1600)

    # the pipeline's own boxes for that frame, computed here
    from mesolive.pipeline.pipeline import FramePipeline, PipelineConfig

    frame_index = side["frame_index"]
    image = _read_frame(clip, frame_index)
    from mesolive.types import Frame

    pipe = FramePipeline(PipelineConfig(models=("meso4-df",)))
    try:
        expected = pipe.process(Frame(frame_index, image, 0.0, str(clip))).faces
    finally:
        pipe.close()
    assert len(expected) >= 4, "the clip shows 6 faces"

    x0, y0, w, h = side["image_rect"]
    fw, fh = side["frame_size"]
    sx, sy = w / fw, h / fh
    drawn = side["faces"]
    matched = 0
    for face in expected:
        ex = [float(v) for v in face.xyxy]
        best = max(drawn, key=lambda d: _iou(d["xyxy"], ex), default=None)
        assert best is not None and _iou(best["xyxy"], ex) > 0.5, f"no box drawn near {ex}"
        x1, y1, x2, y2 = best["xyxy"]
        on_screen = [x0 + x1 * sx, y0 + y1 * sy, x0 + x2 * sx, y0 + y2 * sy]
        if on_screen[0] < x0 + 2 or on_screen[2] > x0 + w - 2:
            continue  # leaving the frame: its edge is clipped
        share = _edge_share(shot, on_screen, BAND_RGB[best["band"]])
        assert share > 0.6, f"track {best['track_id']}: {best['band']} edge {share:.2f}"
        matched += 1
    assert matched >= 3
    bands = {d["band"] for d in drawn}
    assert bands <= {"green", "amber", "red", "grey"}


@pytest.mark.skipif(
    any(Path("/sys/class/video4linux").glob("video*")), reason="this machine has a camera"
)
def test_first_start_without_a_camera_opens_the_source_picker(tmp_path):
    shot = tmp_path / "start.png"
    env = dict(os.environ)
    env.update(
        QT_QPA_PLATFORM="offscreen",
        MESOLIVE_GUI_SCREENSHOT=str(shot),
        MESOLIVE_GUI_SCREENSHOT_AFTER="0",  # 1.5 s after start, whatever is shown
        MESOLIVE_GUI_QUIT_AFTER="30",
        MESOLIVE_GUI_SETTINGS=str(tmp_path / "settings.ini"),
    )
    rc, out = run_group([sys.executable, "-m", "mesolive"], env, timeout=60)
    assert rc == 0, out
    side = json.loads(Path(str(shot) + ".json").read_text())
    assert "Choose a source" in side["windows"]
    assert side["banner"] == ""  # no error on a first start
