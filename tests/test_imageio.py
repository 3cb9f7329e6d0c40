"""The one image decoder: hostile headers, odd pixel formats, files that are no files."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mesolive.errors import InputError, SourceError
from mesolive.imageio import expand_paths, read_image, read_still
from mesolive.sources.file import FolderSource, ImageSource

from .conftest import mesolive

FACE = ("samples", "faces", "real", "real00240.jpg")  # 256x256 baseline JPEG, 16 KB
FACE2 = ("samples", "faces", "real", "real00772.jpg")
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")


def face_rgb(shared: Path) -> np.ndarray:
    with Image.open(shared.joinpath(*FACE)) as im:
        return np.asarray(im.convert("RGB"))


def face_gray(shared: Path) -> np.ndarray:
    with Image.open(shared.joinpath(*FACE)) as im:
        return np.asarray(im.convert("L"))


def decoded(path: Path) -> np.ndarray:
    """``read_still`` plus the output contract every caller relies on."""
    bgr = read_still(path)
    assert bgr.dtype == np.uint8 and bgr.ndim == 3 and bgr.shape[2] == 3
    assert bgr.flags.c_contiguous
    return bgr


def gray3(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


# -- crafted headers ------------------------------------------------------------------


def png_claiming(tmp_path: Path, w: int, h: int) -> Path:
    """A small real PNG whose IHDR says ``w``×``h``, with a correct CRC."""
    Image.new("RGB", (32, 32), (90, 120, 150)).save(tmp_path / "small.png")
    data = bytearray((tmp_path / "small.png").read_bytes())
    data[16:24] = struct.pack(">II", w, h)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path = tmp_path / f"claims_{w}x{h}.png"
    path.write_bytes(bytes(data))
    return path


def jpeg_claiming(shared: Path, tmp_path: Path, w: int, h: int) -> Path:
    """The 16 KB sample face with its SOF0 patched to say ``w``×``h``."""
    data = bytearray(shared.joinpath(*FACE).read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", h, w)
    path = tmp_path / f"claims_{w}x{h}.jpg"
    path.write_bytes(bytes(data))
    return path


def bmp_claiming(tmp_path: Path, w: int, h: int) -> Path:
    """A real BMP whose BITMAPINFOHEADER says ``w``×``h`` (negative ``h``: top-down)."""
    Image.new("RGB", (32, 32), (1, 2, 3)).save(tmp_path / "small.bmp")
    data = bytearray((tmp_path / "small.bmp").read_bytes())
    data[18:26] = struct.pack("<ii", w, h)
    path = tmp_path / f"claims_{w}x{h}.bmp"
    path.write_bytes(bytes(data))
    return path


def gif_claiming(tmp_path: Path, w: int, h: int) -> Path:
    """A real GIF whose logical screen is ``w``×``h``."""
    Image.new("P", (32, 32), 1).save(tmp_path / "small.gif")
    data = bytearray((tmp_path / "small.gif").read_bytes())
    data[6:10] = struct.pack("<HH", w, h)
    path = tmp_path / f"claims_{w}x{h}.gif"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("make", "size"),
    [
        ("png", (60000, 60000)),
        ("png", (65535, 65535)),
        ("png", (20000, 20000)),
        ("png", (8000, 8000)),
        ("jpg", (65500, 65500)),
        ("jpg", (30000, 30000)),
        ("bmp", (60000, 60000)),
        ("bmp", (60000, -60000)),
        ("gif", (65535, 65535)),
    ],
)
def test_huge_claims_are_refused_from_the_header(
    shared: Path, tmp_path: Path, make: str, size: tuple[int, int]
) -> None:
    w, h = size
    path = {
        "png": lambda: png_claiming(tmp_path, w, h),
        "jpg": lambda: jpeg_claiming(shared, tmp_path, w, h),
        "bmp": lambda: bmp_claiming(tmp_path, w, h),
        "gif": lambda: gif_claiming(tmp_path, w, h),
    }[make]()
    t0 = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning may escape either
        with pytest.raises(InputError) as err:
            read_still(path)
    assert time.monotonic() - t0 < 2.0
    message = str(err.value)
    assert message == (
        f"{path}: image is {w}x{abs(h)} px, over the limit of 50000000 px "
        "(set MESOLIVE_MAX_PIXELS to raise it)"
    )


def test_the_pixel_limit_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "wide.png"
    Image.new("RGB", (300, 200), (7, 8, 9)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # read_still sets it
    monkeypatch.setenv("MESOLIVE_MAX_PIXELS", "60000")
    assert decoded(path)[0, 0].tolist() == [9, 8, 7]
    monkeypatch.setenv("MESOLIVE_MAX_PIXELS", "59999")
    with pytest.raises(InputError, match=r"wide\.png: image is 300x200 px, over the limit"):
        read_still(path)
    monkeypatch.setenv("MESOLIVE_MAX_PIXELS", "lots")
    with pytest.raises(InputError, match="MESOLIVE_MAX_PIXELS=lots"):
        read_still(path)


# -- files that are not regular files -------------------------------------------------


@needs_fifo
def test_a_named_pipe_is_refused_without_opening_it(shared: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "x.jpg"
    os.mkfifo(fifo)

    def blocked(*_: object) -> None:
        raise TimeoutError("read_still blocked on the FIFO")

    previous = signal.signal(signal.SIGALRM, blocked)
    signal.alarm(5)
    try:
        with pytest.raises(InputError, match=r"x\.jpg: is a named pipe \(FIFO\), not a regular"):
            read_still(fifo)
        with pytest.raises(SourceError, match="named pipe"):
            ImageSource(fifo).open()
        (tmp_path / "a.jpg").write_bytes(shared.joinpath(*FACE).read_bytes())
        files, errors = expand_paths([tmp_path])
        assert files == [tmp_path / "a.jpg"]
        assert [str(e) for e in errors] == [
            f"{fifo}: is a named pipe (FIFO), not a regular file; skipped"
        ]
        folder = FolderSource(tmp_path)
        folder.open()
        assert folder.files == [tmp_path / "a.jpg"] and list(folder.skipped) == [fifo]
        folder.close()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_a_folder_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a folder, not a regular file"):
        read_still(tmp_path)


# -- pixel formats ----------------------------------------------------------------------


def test_ordinary_8bit_files_decode_as_the_authors_loader(shared: Path, tmp_path: Path) -> None:
    rgb = face_rgb(shared)
    assert np.array_equal(decoded(shared.joinpath(*FACE)), rgb[:, :, ::-1])
    Image.fromarray(rgb).save(tmp_path / "face.png")
    assert np.array_equal(read_image(tmp_path / "face.png"), rgb[:, :, ::-1])
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 40, np.uint8)])).save(
        tmp_path / "rgba.png"
    )
    assert np.array_equal(decoded(tmp_path / "rgba.png"), rgb[:, :, ::-1])  # alpha dropped


def test_16bit_gray_and_48bit_colour_keep_their_high_byte(shared: Path, tmp_path: Path) -> None:
    gray = face_gray(shared)
    Image.fromarray(gray).save(tmp_path / "g8.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "g16.png")  # I;16
    Image.fromarray(gray.astype(">u2") * 257).save(tmp_path / "g16b.tif")  # I;16B
    expected = decoded(tmp_path / "g8.png")
    assert np.array_equal(expected, gray3(gray))
    for name in ("g16.png", "g16b.tif"):
        got = decoded(tmp_path / name)
        assert np.abs(got.astype(int) - expected).max() <= 1, name
    bgr = face_rgb(shared)[:, :, ::-1]
    cv2.imwrite(str(tmp_path / "rgb48.png"), bgr.astype(np.uint16) * 257)
    assert np.abs(decoded(tmp_path / "rgb48.png").astype(int) - bgr).max() <= 1


def test_float_and_32bit_images_are_scaled_by_their_own_range(shared: Path, tmp_path: Path) -> None:
    gray = face_gray(shared)
    Image.fromarray(gray.astype(np.float32) / 255, "F").save(tmp_path / "unit.tif")
    assert np.abs(decoded(tmp_path / "unit.tif").astype(int) - gray3(gray)).max() <= 1
    lo, hi = int(gray.min()), int(gray.max())
    stretched = gray3(np.rint((gray.astype(float) - lo) * 255 / (hi - lo)).astype(np.uint8))
    Image.fromarray(gray.astype(np.float32) * 40 - 3000, "F").save(tmp_path / "wide.tif")
    Image.fromarray(gray.astype(np.int32) * 1000, "I").save(tmp_path / "i32.tif")
    for name in ("wide.tif", "i32.tif"):
        assert np.abs(decoded(tmp_path / name).astype(int) - stretched).max() <= 1, name


def test_exif_orientation_is_applied(shared: Path, tmp_path: Path) -> None:
    stored = np.ascontiguousarray(np.rot90(face_rgb(shared)[:, :200], k=1))  # 200 wide, 256 high
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90° clockwise
    Image.fromarray(stored).save(tmp_path / "turned.jpg", exif=exif.tobytes(), quality=95)
    with Image.open(tmp_path / "turned.jpg") as im:
        raw = np.asarray(im.convert("RGB"))  # the pixels as stored, not turned
    upright = np.ascontiguousarray(np.rot90(raw, k=-1)[:, :, ::-1])
    assert upright.shape == (256, 200, 3)
    assert np.array_equal(decoded(tmp_path / "turned.jpg"), upright)
    source = ImageSource(tmp_path / "turned.jpg")
    source.open()
    assert np.array_equal(source.read(0.1)[1].image, upright)
    source.close()


def test_cmyk_palette_la_and_1bit(shared: Path, tmp_path: Path) -> None:
    rgb = face_rgb(shared)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    diff = np.abs(decoded(tmp_path / "cmyk.jpg").astype(int) - rgb[:, :, ::-1])
    assert diff.mean() < 4

    index = (np.indices((32, 32)).sum(axis=0) % 2).astype(np.uint8)
    pal = Image.fromarray(index, "P")
    pal.putpalette([250, 10, 20, 30, 200, 40])
    pal.save(tmp_path / "pal.png", transparency=0)
    got = decoded(tmp_path / "pal.png")  # the transparent index keeps its colour
    assert got[0, 0].tolist() == [20, 10, 250] and got[0, 1].tolist() == [40, 200, 30]

    gray = face_gray(shared)
    Image.fromarray(np.dstack([gray, 255 - gray]), "LA").save(tmp_path / "la.png")
    assert np.array_equal(decoded(tmp_path / "la.png"), gray3(gray))

    Image.fromarray(index.astype(bool)).save(tmp_path / "one.png")
    assert np.array_equal(decoded(tmp_path / "one.png"), gray3(index * 255))


# -- broken files ------------------------------------------------------------------------


def test_truncated_files_are_errors_not_grey_images(shared: Path, tmp_path: Path) -> None:
    data = shared.joinpath(*FACE).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    Image.fromarray(face_rgb(shared)).save(tmp_path / "full.png")
    png = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(png[: len(png) // 2])
    for name in ("cut.jpg", "cut.png"):
        with pytest.raises(InputError, match=rf"{name}: unreadable or truncated image \(.+\)"):
            read_still(tmp_path / name)
    (tmp_path / "text.png").write_text("not a PNG\n")
    (tmp_path / "eps.jpg").write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n")
    for name in ("text.png", "eps.jpg"):  # PIL would hand an EPS file to Ghostscript
        with pytest.raises(InputError, match=rf"{name}: not an image file"):
            read_still(tmp_path / name)
    with pytest.raises(InputError, match="cannot read"):
        read_still(tmp_path / "nul\0.jpg")


# -- the verbs ---------------------------------------------------------------------------


def _error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("mesolive: error: ")]


def test_classify_reports_a_huge_claim_in_one_line_and_scores_the_rest(
    shared: Path, tmp_path: Path
) -> None:
    huge = png_claiming(tmp_path, 60000, 60000)
    good = [shared.joinpath(*FACE), shared.joinpath(*FACE2)]
    proc = mesolive("classify", str(good[0]), str(huge), str(good[1]), "--json")
    assert proc.returncode == 2, proc.stderr
    assert _error_lines(proc.stderr) == [
        f"mesolive: error: {huge}: image is 60000x60000 px, over the limit of 50000000 px "
        "(set MESOLIVE_MAX_PIXELS to raise it)"
    ], proc.stderr
    assert "libpng" not in proc.stderr and "WARN" not in proc.stderr
    assert [Path(r["path"]) for r in json.loads(proc.stdout)] == good


def test_scan_refuses_a_huge_claim_in_one_line_and_scans_the_rest(
    shared: Path, tmp_path: Path
) -> None:
    huge = jpeg_claiming(shared, tmp_path, 30000, 30000)
    good = [shared.joinpath(*FACE), shared.joinpath(*FACE2)]
    proc = mesolive("scan", str(good[0]), str(huge), str(good[1]))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = _error_lines(proc.stderr)
    assert errors == [
        f"mesolive: error: {huge}: image is 30000x30000 px, over the limit of 50000000 px "
        "(set MESOLIVE_MAX_PIXELS to raise it)"
    ], proc.stderr
    assert "Corrupt JPEG" not in proc.stderr and "WARN" not in proc.stderr
    for g in good:
        assert f"{g}: REAL" in proc.stdout, proc.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="peak RSS from the resource module")
def test_scan_of_a_16kb_jpeg_claiming_30000x30000_stays_small(shared: Path, tmp_path: Path) -> None:
    huge = jpeg_claiming(shared, tmp_path, 30000, 30000)
    code = (
        "import resource, subprocess, sys;"
        "p = subprocess.run([sys.executable, '-m', 'mesolive', 'scan', sys.argv[1]],"
        " capture_output=True);"
        "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(huge)], capture_output=True, text=True, check=True
    )
    returncode, peak_kib = map(int, out.stdout.split())
    assert returncode == 2 and peak_kib < 1024 * 1024  # decoding it would take 2.7 GB
