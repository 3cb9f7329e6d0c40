"""Malformed and odd input files for the fuzz test, made from real faces and a real clip.

Every file is derived, with a seeded generator, from face crops in
``../shared/samples/faces/real`` and a one-second cut of a real talking-head
video, in seven classes:

========== ==================================================================
truncated  good images and videos cut at a random byte
bitflip    good images and videos with a few random bits flipped
random     random bytes, bare or behind a real format's magic number
header     well-formed headers claiming enormous or negative sizes
format     valid files in awkward formats (16-bit, float, CMYK, palette, EXIF
           rotation, alpha): each must score like the plain file it came from
name       a good face under an odd name (unicode, spaces, a trailing space,
           a leading dash, 250 characters) and a name too long for the system
type       not a regular file, or nothing in it: FIFO, folder, symlinks to
           nowhere or to a device, empty files, text with a video extension
========== ==================================================================

Each :class:`Case` says what a correct run does with it: ``error`` (one
error line naming it), ``ok`` (scored; with ``reference``, like that file) or
``either`` (an error line or a score, never a traceback or a hang).
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("truncated", "bitflip", "random", "header", "format", "name", "type")
IMAGE_FORMATS = {".jpg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF"}
VIDEO_EXTS = (".mp4", ".ts", ".mkv", ".webm", ".avi", ".gif")


@dataclass(frozen=True)
class Case:
    """One generated input and what a correct run does with it."""

    path: Path
    kind: str
    expect: str  # "error", "ok" or "either"
    reference: Path | None = None


def make_clip(src: Path, out: Path) -> dict[str, Path]:
    """A 12-frame, 320-px cut of ``src`` in each container of :data:`VIDEO_EXTS`."""
    clips = {}
    for ext in VIDEO_EXTS:
        dest = out / f"clip{ext}"
        codec = {".webm": ["-c:v", "libvpx", "-b:v", "300k"], ".avi": ["-c:v", "mjpeg"]}.get(
            ext, []
        )
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-ss", "2", "-i", str(src),  # video starts late
             "-t", "0.8", "-r", "15", "-an", "-vf", "scale=320:-2", *codec, str(dest)],
            check=True,
            timeout=60,
        )  # fmt: skip
        clips[ext] = dest
    return clips


def _image_bytes(face: Image.Image, ext: str) -> bytes:
    buf = io.BytesIO()
    face.save(buf, IMAGE_FORMATS[ext])
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_claiming(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _jpeg_claiming(jpeg: bytes, w: int, h: int) -> bytes:
    """``jpeg`` with its SOF0/SOF2 frame size replaced."""
    data = bytearray(jpeg)
    i = 2
    while i + 9 < len(data):
        marker, size = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            data[i + 5 : i + 9] = struct.pack(">HH", h, w)
            break
        i += 2 + size
    return bytes(data)


def _bmp_claiming(w: int, h: int) -> bytes:
    header = struct.pack("<2sIHHI", b"BM", 54 + 64, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 64, 2835, 2835, 0, 0)
    return header + info + b"\0" * 64


def _gif_claiming(w: int, h: int) -> bytes:
    return (
        b"GIF89a"
        + struct.pack("<HHBBB", w, h, 0x80, 0, 0)
        + b"\0\0\0\xff\xff\xff"
        + b"\x2c"
        + struct.pack("<HHHHB", 0, 0, w, h, 0)
        + b"\x02\x02\x44\x01\x00\x3b"
    )


def _tiff_claiming(w: int, h: int) -> bytes:
    entries = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, h), (279, 4, 1, 16)]  # fmt: skip
    ifd = (
        struct.pack("<H", len(entries))
        + b"".join(struct.pack("<HHII", *e) for e in entries)
        + struct.pack("<I", 0)
    )
    body = b"\0" * 16
    return b"II*\0" + struct.pack("<I", 8 + len(body)) + body + ifd


def _webp_claiming(w: int, h: int) -> bytes:
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0" + (w - 1).to_bytes(3, "little")
    vp8x += (h - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x


class Generator:
    """Writes the cases of each class into ``out`` (seeded: the same files every run)."""

    def __init__(self, out: Path, faces: list[Path], clips: dict[str, Path], seed: int = 0):
        self.out = out
        self.faces = faces
        self.clips = clips
        self.rng = np.random.default_rng(seed)
        self.n = 0

    def _name(self, kind: str, ext: str) -> Path:
        self.n += 1
        d = self.out / kind
        d.mkdir(exist_ok=True)
        return d / f"{kind}{self.n:05d}{ext}"

    def _write(self, kind: str, ext: str, data: bytes, expect: str) -> Case:
        path = self._name(kind, ext)
        path.write_bytes(data)
        return Case(path, kind, expect)

    def _face(self) -> Image.Image:
        with Image.open(self.faces[int(self.rng.integers(len(self.faces)))]) as im:
            return im.convert("RGB")

    def _good(self) -> tuple[str, bytes]:
        """A good image or video: (extension, bytes); a video one time in four."""
        if self.rng.random() < 0.25:
            ext = VIDEO_EXTS[int(self.rng.integers(len(VIDEO_EXTS)))]
            return ext, self.clips[ext].read_bytes()
        ext = list(IMAGE_FORMATS)[int(self.rng.integers(len(IMAGE_FORMATS)))]
        return ext, _image_bytes(self._face(), ext)

    def truncated(self) -> Case:
        ext, data = self._good()
        cut = int(self.rng.integers(1, len(data)))
        return self._write("truncated", ext, data[:cut], "either")

    def bitflip(self) -> Case:
        ext, data = self._good()
        buf = bytearray(data)
        for _ in range(int(self.rng.integers(1, 9))):
            pos = int(self.rng.integers(len(buf)))
            buf[pos] ^= 1 << int(self.rng.integers(8))
        return self._write("bitflip", ext, bytes(buf), "either")

    def random(self) -> Case:
        magic = [b"", b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"II*\0",
                 b"RIFF\0\0\0\0WEBP", b"\0\0\0\x18ftypmp42", b"\x1aE\xdf\xa3", b"G"]  # fmt: skip
        exts = [".jpg", ".jpg", ".png", ".gif", ".bmp", ".tif", ".webp", ".mp4", ".mkv", ".ts"]
        k = int(self.rng.integers(len(magic)))
        body = self.rng.integers(0, 256, int(self.rng.integers(0, 20000)), dtype=np.uint8)
        return self._write("random", exts[k], magic[k] + body.tobytes(), "error")

    def header(self) -> Case:
        w, h = (int(v) for v in self.rng.choice([16000, 20000, 30000, 60000, 65500, 65535], 2))
        makers: list[tuple[str, Callable[[], bytes]]] = [
            (".png", lambda: _png_claiming(w, h)),
            (".jpg", lambda: _jpeg_claiming(_image_bytes(self._face(), ".jpg"), w, h)),
            (".bmp", lambda: _bmp_claiming(w, h)),
            (".bmp", lambda: _bmp_claiming(w, -h)),
            (".gif", lambda: _gif_claiming(min(w, 65535), min(h, 65535))),
            (".tif", lambda: _tiff_claiming(w, h)),
            (".webp", lambda: _webp_claiming(min(w, 16383), min(h, 16383))),
        ]
        ext, make = makers[int(self.rng.integers(len(makers)))]
        return self._write("header", ext, make(), "error")

    def format(self) -> Case:
        """A valid awkward file and, beside it, the plain 8-bit RGB file it must score like."""
        face = self._face()
        variant = int(self.rng.integers(8))
        path = self._name("format", ".png")
        ref = path.with_name(path.stem + "-ref.png")
        gray = np.asarray(face.convert("L"))
        if variant == 0:  # 16-bit grayscale PNG
            Image.fromarray(gray.astype(np.uint16) * 257).save(path)
            Image.fromarray(gray).convert("RGB").save(ref)
        elif variant == 1:  # 32-bit float TIFF, 0..1
            path = path.with_suffix(".tif")
            Image.fromarray(gray.astype(np.float32) / 255).save(path)
            Image.fromarray(gray).convert("RGB").save(ref)
        elif variant == 2:  # CMYK JPEG
            path = path.with_suffix(".jpg")
            face.convert("CMYK").save(path, quality=95)
            with Image.open(path) as im:
                im.convert("RGB").save(ref)
        elif variant == 3:  # palette PNG with a transparent index
            pal = face.convert("P", palette=Image.Palette.ADAPTIVE)
            pal.info["transparency"] = 0
            pal.save(path, transparency=0)
            pal.convert("RGB").save(ref)
        elif variant == 4:  # EXIF orientation 6: stored rotated, shown upright
            path = path.with_suffix(".jpg")
            exif = Image.Exif()
            exif[0x0112] = 6
            face.transpose(Image.Transpose.ROTATE_90).save(path, quality=95, exif=exif)
            with Image.open(path) as im:
                im.transpose(Image.Transpose.ROTATE_270).convert("RGB").save(ref)
        elif variant == 5:  # RGBA, opaque
            face.convert("RGBA").save(path)
            face.save(ref)
        elif variant == 6:  # gray + alpha
            face.convert("LA").save(path)
            face.convert("L").convert("RGB").save(ref)
        else:  # 16-bit RGB PNG written by OpenCV (PIL cannot write one)
            import cv2

            bgr16 = np.asarray(face)[:, :, ::-1].astype(np.uint16) * 257
            cv2.imwrite(str(path), bgr16)
            face.save(ref)
        return Case(path, "format", "ok", ref)

    def name(self) -> Case:
        names = ["visage été 顔 лицо.jpg", "two  spaces.jpg", "trailing space.jpg ",
                 "-leading-dash.jpg", "percent %s {0} $HOME.jpg", "x" * 246 + ".jpg",
                 "UPPER.JPG"]  # fmt: skip
        k = int(self.rng.integers(len(names) + 1))
        self.n += 1
        d = self.out / "name" / f"{self.n:05d}"  # a folder each: the names stay as they are
        d.mkdir(parents=True)
        if k == len(names):  # longer than the system allows: cannot exist
            return Case(d / ("y" * 300 + ".jpg"), "name", "error")
        path = d / names[k]
        path.write_bytes(_image_bytes(self._face(), ".jpg"))
        # classify scores files without an extension too; scan picks folders' media by extension
        return Case(path, "name", "ok")

    def type(self) -> Case:
        k = int(self.rng.integers(7))
        path = self._name("type", [".jpg", ".mp4"][k % 2])
        if k == 0:
            os.mkfifo(path)
        elif k == 1:
            path.mkdir()
        elif k == 2:
            path.symlink_to(path.with_name("nowhere.jpg"))
        elif k == 3:
            path.symlink_to(path)  # a loop
        elif k == 4:
            path.symlink_to("/dev/zero")
        elif k == 5:
            path.write_bytes(b"")
        else:
            path.write_text("ffconcat version 1.0\nfile /etc/passwd\n")
        return Case(path, "type", "error")

    def make(self, per_class: int) -> list[Case]:
        """``per_class`` cases of every class, interleaved."""
        return [getattr(self, c)() for _ in range(per_class) for c in CLASSES]
