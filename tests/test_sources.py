"""Frame sources by URI: parsing, files, images, folders, ``test:``, bad input."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mesolive.errors import SourceError
from mesolive.sources.base import FrameSource
from mesolive.sources.file import FolderSource, ImageSource, VideoFileSource
from mesolive.sources.registry import SourceInfo, list_sources, make_source
from mesolive.sources.screen import ScreenSource
from mesolive.sources.stream import StreamSource
from mesolive.sources.synthetic import SyntheticSource
from mesolive.sources.webcam import WebcamSource, linux_cameras
from mesolive.sources.window import WindowSource
from mesolive.types import Frame, ReadStatus

HAMILTON = ("videos", "real", "hamilton_clip.mp4")  # 275 frames, 29.97 fps, 640x360


def read_all(source: FrameSource, limit: int = 10_000) -> tuple[list[Frame], ReadStatus, str]:
    frames: list[Frame] = []
    while len(frames) < limit:
        status, frame, message = source.read(0.5)
        if status is ReadStatus.OK:
            assert frame is not None
            frames.append(frame)
        elif status is not ReadStatus.TIMEOUT:
            return frames, status, message
    return frames, ReadStatus.OK, ""


def assert_owned_bgr(frame: Frame) -> None:
    img = frame.image
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.flags["C_CONTIGUOUS"] and img.flags["OWNDATA"]


# -- URI parsing ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "cls", "attrs"),
    [
        ("webcam:0", WebcamSource, {"device": 0}),
        ("webcam:", WebcamSource, {"device": 0}),
        ("WEBCAM:2?size=1280x720&fps=30", WebcamSource, {"device": 2, "width": 1280, "fps": 30}),
        ("webcam:/dev/video4", WebcamSource, {"device": "/dev/video4"}),
        ("screen:1", ScreenSource, {"monitor": 1, "region": None, "fps": 30.0}),
        ("screen:", ScreenSource, {"monitor": 1}),
        ("screen:0?fps=5", ScreenSource, {"monitor": 0, "fps": 5.0}),
        ("screen:2@10,20,300,200", ScreenSource, {"monitor": 2, "region": (10, 20, 300, 200)}),
        ("window:Zoom Meeting", WindowSource, {"title": "Zoom Meeting"}),
        ("window:a?b=c", WindowSource, {"title": "a?b=c"}),
        ("rtsp://user:pw@10.0.0.2/live", StreamSource, {"uri": "rtsp://user:pw@10.0.0.2/live"}),
        ("http://127.0.0.1:8080/s.ts?x=1", StreamSource, {"uri": "http://127.0.0.1:8080/s.ts?x=1"}),
        ("https://example.org/a.m3u8", StreamSource, {}),
        ("test:", SyntheticSource, {"n_faces": 3, "fps": 30.0, "size": (1280, 720)}),
        (
            "test:?faces=6&fps=15&size=640x480&frames=10&seed=2",
            SyntheticSource,
            {"n_faces": 6, "fps": 15.0, "size": (640, 480), "frames": 10, "seed": 2},
        ),
        ("clip.mp4", VideoFileSource, {"path": Path("clip.mp4")}),
        ("file:clip.mkv", VideoFileSource, {"path": Path("clip.mkv")}),
        ("file:///tmp/a%20b.mp4", VideoFileSource, {"path": Path("/tmp/a b.mp4")}),
        ("photo.JPG", ImageSource, {"path": Path("photo.JPG")}),
        ("C:\\videos\\clip.mp4", VideoFileSource, {}),
    ],
)
def test_make_source_parses(uri: str, cls: type, attrs: dict[str, object]) -> None:
    source = make_source(uri)
    assert isinstance(source, cls)
    for key, value in attrs.items():
        assert getattr(source, key) == value, key


def test_make_source_keywords_override_uri_options() -> None:
    cam = make_source("webcam:1?size=320x240&fps=10", width=1920, height=1080, fps=60)
    assert isinstance(cam, WebcamSource)
    assert (cam.width, cam.height, cam.requested_fps) == (1920, 1080, 60)
    test = make_source("test:?size=320x240", width=640, height=360, fps=12)
    assert isinstance(test, SyntheticSource)
    assert test.size == (640, 360) and test.fps == 12


def test_make_source_folder_and_loop(shared: Path) -> None:
    src = make_source(str(shared / "samples" / "faces"), loop=True, fps=4)
    assert isinstance(src, FolderSource) and src.loop and src.fps == 4
    assert not src.is_live


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("", "empty source URI"),
        ("   ", "empty source URI"),
        ("foo:bar", "unknown source scheme 'foo:'"),
        ("webcam:abc", "expected a camera number"),
        ("webcam:-1", "expected a camera number"),
        ("webcam:0?size=big", "size=big"),
        ("webcam:0?fps=0", "fps=0"),
        ("webcam:0?zoom=2", "unknown option 'zoom'"),
        ("screen:x", "expected screen:N"),
        ("screen:1@1,2,3", "expected screen:N"),
        ("screen:1@0,0,0,10", "w, h > 0"),
        ("window:", "give a window title"),
        ("window:   ", "give a window title"),
        ("file:", "give a path"),
        ("test:?faces=-1", "faces=-1"),
        ("test:?faces=99", "faces=99"),
        ("test:?size=10x10", "size=10x10"),
        ("test:?frames=x", "frames=x"),
        ("test:?color=red", "unknown option 'color'"),
        ("test:3", "options go after '?'"),
    ],
)
def test_make_source_rejects_malformed_uris(uri: str, fragment: str) -> None:
    with pytest.raises(SourceError) as info:
        make_source(uri)
    message = str(info.value)
    assert fragment in message and "\n" not in message


def test_make_source_rejects_bad_keywords() -> None:
    with pytest.raises(SourceError, match="fps=-3"):
        make_source("test:", fps=-3)
    with pytest.raises(SourceError, match="width=0"):
        make_source("webcam:0", width=0)


def test_make_source_does_not_touch_the_device_or_file() -> None:
    # Existence is checked by open(), in the capture thread.
    assert isinstance(make_source("webcam:7"), WebcamSource)
    assert isinstance(make_source("/no/such/clip.mp4"), VideoFileSource)


# -- video files ------------------------------------------------------------------


def test_video_file_frames_pts_and_end(shared: Path) -> None:
    with make_source(str(shared.joinpath(*HAMILTON))) as src:
        assert src.fps == pytest.approx(29.97, abs=0.01)
        assert not src.is_live
        frames, status, message = read_all(src)
    assert status is ReadStatus.END and "end of file" in message
    assert len(frames) == 275
    assert [f.index for f in frames] == list(range(275))
    assert frames[0].pts == 0.0
    assert frames[30].pts == pytest.approx(30 / 29.97, abs=1e-3)
    assert frames[-1].pts == pytest.approx(274 / 29.97, abs=1e-3)
    assert (frames[0].width, frames[0].height) == (640, 360)
    assert_owned_bgr(frames[0])
    assert not np.shares_memory(frames[0].image, frames[1].image)
    assert frames[0].source == str(shared.joinpath(*HAMILTON))


def test_video_file_loop_restarts(shared: Path) -> None:
    src = make_source(str(shared / "videos" / "fake" / "inthewild_obama.mp4"), loop=True)
    with src:
        frames, status, _ = read_all(src, limit=49 + 5)
    assert status is ReadStatus.OK and len(frames) == 54
    assert frames[49].pts == 0.0 and frames[49].index == 49  # pts restarts, index counts on
    np.testing.assert_array_equal(frames[49].image, frames[0].image)


@pytest.mark.skipif(sys.platform != "linux", reason="file names of any bytes: Linux")
def test_a_video_whose_name_is_not_utf8_plays(shared: Path, tmp_path: Path) -> None:
    # OpenCV's binding crashed the process (SIGSEGV) on such a name: a whole scan was lost.
    bad = tmp_path / os.fsdecode(b"clip \xff.mp4")
    shutil.copy(shared.joinpath(*HAMILTON), bad)
    with make_source(str(bad)) as src:
        frames, status, _ = read_all(src)
    assert status is ReadStatus.END and len(frames) == 275
    proc = subprocess.run(
        [sys.executable, "-m", "mesolive", "scan", str(tmp_path), "--max-frames", "2"],
        capture_output=True,
        text=True,
        errors="surrogateescape",  # the name is printed with its own bytes, as ls does
        timeout=600,
    )
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr  # 1: fake
    assert "2 face track(s) in 2 frames" in proc.stdout


def test_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    for name in ("gone.mp4", "gone.jpg", "gone"):
        src = make_source(str(tmp_path / name))
        with pytest.raises(SourceError, match="no such file or folder"):
            src.open()
        src.close()


def test_truncated_video_cannot_open(shared: Path, tmp_path: Path) -> None:
    # The shared clips keep their index (moov) at the end: half a file has none.
    data = shared.joinpath(*HAMILTON).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "noise.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, np.uint8).tobytes())
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    for path in (cut, garbage, empty):
        t0 = time.monotonic()
        with pytest.raises(SourceError, match="cannot open as a video") as info:
            make_source(str(path)).open()
        assert str(path) in str(info.value)
        assert time.monotonic() - t0 < 10  # no hang (generous bound, not a timing test)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg binary (apt ffmpeg)")
def test_truncated_video_with_index_first_reports_error(shared: Path, tmp_path: Path) -> None:
    # With the index at the front, half a file opens and plays half its frames:
    # the shortfall against the announced count is reported, not a quiet END.
    fast = tmp_path / "fast.mp4"
    remux = ["-an", "-c", "copy", "-movflags", "+faststart", str(fast)]
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(shared.joinpath(*HAMILTON)), *remux],
        check=True,
        timeout=60,
    )
    data = fast.read_bytes()
    cut = tmp_path / "cut_fast.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with make_source(str(cut)) as src:
        frames, status, message = read_all(src)
    assert status is ReadStatus.ERROR
    assert 50 < len(frames) < 275
    assert f"stopped after {len(frames)} of 275 frames" in message
    assert "truncated or corrupt" in message


# -- images and folders -------------------------------------------------------------


def test_image_once_then_end_or_loop(shared: Path) -> None:
    path = shared / "samples" / "faces" / "real" / "real00240.jpg"
    with make_source(str(path)) as src:
        frames, status, _ = read_all(src)
    assert status is ReadStatus.END and len(frames) == 1
    assert_owned_bgr(frames[0])
    with make_source(str(path), loop=True, fps=5) as src:
        frames, status, _ = read_all(src, limit=3)
    assert len(frames) == 3 and [f.pts for f in frames] == [0.0, 0.2, 0.4]
    assert not np.shares_memory(frames[0].image, frames[1].image)


def test_folder_skips_bad_images_and_ends(shared: Path, tmp_path: Path) -> None:
    good = sorted((shared / "samples" / "faces").rglob("*.jpg"))
    for i, p in enumerate(good[:2]):
        shutil.copy(p, tmp_path / f"{i}_ok.jpg")
    (tmp_path / "1_notes.png").write_text("not a PNG")
    (tmp_path / "readme.txt").write_text("ignored: not an image name")
    src = make_source(str(tmp_path))
    with src:
        frames, status, _ = read_all(src)
    assert status is ReadStatus.END
    assert len(frames) == 2
    assert isinstance(src, FolderSource)
    assert list(src.skipped) == [tmp_path / "1_notes.png"]
    assert "not an image" in src.skipped[tmp_path / "1_notes.png"]


def test_folder_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match=r"empty: folder holds no images or videos$"):
        make_source(str(tmp_path / "empty")).open()
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.mp4").write_bytes(b"")
    with pytest.raises(SourceError, match="clips: folder holds videos but no images; open a vi"):
        make_source(str(tmp_path / "clips")).open()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"\xff\xd8 not really")
    with make_source(str(bad)) as src:
        frames, status, message = read_all(src)
    assert frames == [] and status is ReadStatus.ERROR and "none of the images" in message
    with pytest.raises(SourceError, match="not an image"):
        make_source(str(bad / "a.jpg")).open()


# -- webcam ------------------------------------------------------------------------


def test_webcam_that_does_not_exist_fails_fast() -> None:
    src = make_source("webcam:7")
    t0 = time.monotonic()
    with pytest.raises(SourceError) as info:
        src.open()
    assert time.monotonic() - t0 < 5
    assert "webcam:7" in str(info.value)
    assert "no such camera" in str(info.value) or "cannot open" in str(info.value)
    src.close()


def test_linux_cameras_reads_sysfs(tmp_path: Path) -> None:
    for n, index, name in ((0, "0", "HD Webcam"), (1, "1", "HD Webcam"), (4, "0", "Capture")):
        node = tmp_path / f"video{n}"
        node.mkdir()
        (node / "index").write_text(index + "\n")
        (node / "name").write_text(name + "\n")
    found = linux_cameras(tmp_path)
    assert [(c.index, c.name) for c in found] == [(0, "HD Webcam"), (4, "Capture")]
    assert linux_cameras(tmp_path / "none") == []


# -- test: ---------------------------------------------------------------------------


def test_synthetic_is_deterministic_and_ends() -> None:
    a = make_source("test:?faces=4&size=640x360&frames=5&seed=3")
    b = make_source("test:?faces=4&size=640x360&frames=5&seed=3")
    with a, b:
        fa, status, message = read_all(a)
        fb, _, _ = read_all(b)
    assert status is ReadStatus.END and "end after 5 frames" in message
    assert len(fa) == 5 and fa[2].pts == pytest.approx(2 / 30)
    for x, y in zip(fa, fb, strict=True):
        assert_owned_bgr(x)
        assert x.image.shape == (360, 640, 3)
        np.testing.assert_array_equal(x.image, y.image)
    assert not np.array_equal(fa[0].image, fa[4].image)  # the faces move


def test_synthetic_truth_matches_what_is_drawn() -> None:
    src = SyntheticSource(faces=3, size=(1280, 720))
    src.open()
    try:
        img = src.render(17)
        truth = src.truth(17)
    finally:
        src.close()
    assert len(truth) == 3 and truth.kps.shape == (3, 5, 2)
    background = np.median(img[:8, :8].reshape(-1, 3), axis=0)
    for box, kps in zip(truth.xyxy, truth.kps, strict=True):
        x1, y1, x2, y2 = box
        cx, cy = int((x1 + x2) / 2), int((y1 + y2) / 2)
        # The face centre is skin, not background, and the boxes are face sized.
        assert np.abs(img[cy, cx].astype(int) - background).sum() > 60
        assert 100 < y2 - y1 < 720 and 0 <= x1 < x2 <= 1280
        # Pupils are dark, eyes level, mouth below the nose.
        for eye in kps[:2]:
            assert img[int(eye[1]), int(eye[0])].max() < 40
        assert kps[0, 1] == kps[1, 1] and kps[0, 0] < kps[1, 0]
        assert kps[2, 1] < kps[3, 1]
    assert SyntheticSource(faces=0).truth(0).xyxy.shape == (0, 4)


# -- list_sources ----------------------------------------------------------------------


def test_list_sources_without_a_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    found = list_sources()
    assert found[-1] == SourceInfo("test:", "Synthetic faces (demo)", "test")
    assert all(s.kind in {"webcam", "screen", "window", "test"} for s in found)
    assert not any(s.kind in {"screen", "window"} for s in found)


def test_list_sources_with_a_dead_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPLAY", ":987")  # nothing listens there
    t0 = time.monotonic()
    found = list_sources()
    assert time.monotonic() - t0 < 10
    assert found[-1].uri == "test:"


def test_screen_and_window_without_a_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    for uri in ("screen:1", "window:Anything"):
        src = make_source(uri)
        with pytest.raises(SourceError, match="X11 or XWayland"):
            src.open()
        src.close()


def _scrfd_best_scores(image: np.ndarray, truth_xyxy: np.ndarray, model: Path) -> np.ndarray:
    """Best SCRFD score of an anchor whose box overlaps each true face (IoU > 0.4).

    Only the score and box heads are decoded (no NMS, no keypoints): enough to
    tell whether the detector sees a face where one was drawn.
    """
    import cv2
    import onnxruntime as ort

    side = 320
    h, w = image.shape[:2]
    scale = side / max(h, w)
    canvas = np.zeros((side, side, 3), np.uint8)
    canvas[: round(h * scale), : round(w * scale)] = cv2.resize(
        image, (round(w * scale), round(h * scale))
    )
    blob = cv2.dnn.blobFromImage(canvas, 1 / 128, (side, side), (127.5,) * 3, swapRB=True)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    outs = session.run(None, {session.get_inputs()[0].name: blob})
    best = np.zeros(len(truth_xyxy))
    for i, stride in enumerate((8, 16, 32)):
        scores, dist = outs[i].reshape(-1), outs[i + 3].reshape(-1, 4) * stride
        n = side // stride
        centres = np.stack(np.mgrid[:n, :n][::-1], -1).reshape(-1, 2).repeat(2, axis=0) * stride
        boxes = np.concatenate([centres - dist[:, :2], centres + dist[:, 2:]], 1) / scale
        for j, t in enumerate(truth_xyxy):
            ix = np.clip(np.minimum(boxes[:, 2], t[2]) - np.maximum(boxes[:, 0], t[0]), 0, None)
            iy = np.clip(np.minimum(boxes[:, 3], t[3]) - np.maximum(boxes[:, 1], t[1]), 0, None)
            inter = ix * iy
            area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            iou = inter / (area + (t[2] - t[0]) * (t[3] - t[1]) - inter)
            hit = scores[iou > 0.4]
            best[j] = max(best[j], hit.max(initial=0.0))
    return best


@pytest.mark.parametrize("faces", [3, 6])
def test_scrfd_finds_the_drawn_faces(shared: Path, faces: int) -> None:
    src = SyntheticSource(faces=faces, size=(1280, 720), seed=1)
    src.open()
    try:
        for index in (0, 45, 90):
            best = _scrfd_best_scores(
                src.render(index),
                src.truth(index).xyxy,
                shared / "models" / "scrfd_500m_bnkps_dynamic.onnx",
            )
            assert (best >= 0.5).all(), (index, best)
    finally:
        src.close()
