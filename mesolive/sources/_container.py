"""Whether a video file stops inside its own container's structure (it was cut).

Decoders stop quietly at a cut: FFmpeg plays what is there and OpenCV reports
the end of the file. Where the frame count or duration in the header is
missing or was itself estimated from the cut file (MPEG-TS, GIF), the one
honest sign left is the container's own framing: a box, element or chunk
whose declared size runs past the end of the file, a partial transport
packet, a missing GIF trailer. Only the framing is read, never the media
data (a few header reads; a GIF's block chain), and only formats whose
framing always says where the file ends are judged.
"""

from __future__ import annotations

import logging
import mmap
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

_MAX_BOXES = 100_000  # top-level boxes or chunks walked before giving up (pathological files)
_TS_SYNC = 0x47
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_MKV_SEGMENT = b"\x18\x53\x80\x67"
_ISO_TOP = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pdin", b"styp"})


def ends_early(path: Path) -> bool | None:
    """True when the file ends inside a structure its container declares.

    False when the framing is whole, None for a format not judged here or a
    file whose framing cannot be read (never a guess: a caller treats None
    as "cannot tell").
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(400)
            if head[4:8] in _ISO_TOP:
                return _chunks_run_past(f, size, big_endian=True)
            if head[:4] == b"RIFF":
                return _chunks_run_past(f, size, big_endian=False)
            if head[:4] == _EBML_MAGIC:
                return _matroska_runs_past(f, size)
            if head[:6] in (b"GIF87a", b"GIF89a"):
                return _gif_lacks_trailer(f, size)
            for packet, first in ((188, 0), (192, 4)):  # MPEG-TS, then Blu-ray M2TS
                if len(head) > first + 2 * packet and all(
                    head[first + k * packet] == _TS_SYNC for k in range(3)
                ):
                    return size % packet != 0
    except (OSError, ValueError, IndexError) as e:
        log.debug("%s: container framing not readable: %s", path, e)
    return None


def _chunks_run_past(f: BinaryIO, size: int, *, big_endian: bool) -> bool | None:
    """ISO BMFF boxes (size, type; big-endian) or RIFF chunks (id, size; little-endian)."""
    pos = 0
    for _ in range(_MAX_BOXES):
        if pos == size:
            return False
        f.seek(pos)
        header = f.read(16)
        if len(header) < 8:
            return None  # a few stray bytes: too little to call it a cut
        if big_endian:
            length = int.from_bytes(header[:4], "big")
            if length == 0:  # "runs to the end of the file"
                return False
            if length == 1:
                if len(header) < 16:
                    return True
                length = int.from_bytes(header[8:16], "big")
            if length < 8:
                return None
        else:
            length = 8 + int.from_bytes(header[4:8], "little")
            length += length & 1  # RIFF pads odd chunks
        pos += length
        if pos > size:
            return True
    return None


def _vint(f: BinaryIO, *, keep_marker: bool) -> tuple[int, int]:
    """An EBML variable-length integer: (value, its all-ones "unknown" value)."""
    first = f.read(1)
    if not first:
        raise ValueError("end of file inside an EBML header")
    b = first[0]
    width = 1
    while width <= 8 and not b & (0x80 >> (width - 1)):
        width += 1
    if width > 8:
        raise ValueError("invalid EBML length")
    rest = f.read(width - 1)
    if len(rest) < width - 1:
        raise ValueError("end of file inside an EBML header")
    value = b if keep_marker else b & ((0x80 >> (width - 1)) - 1)
    for c in rest:
        value = (value << 8) | c
    return value, (1 << (7 * width)) - 1


def _matroska_runs_past(f: BinaryIO, size: int) -> bool | None:
    """The Segment's declared size against the file (Matroska and WebM).

    A muxer that could not seek back (a live recording) leaves the size
    "unknown": then nothing can be said.
    """
    f.seek(4)
    header_size, _ = _vint(f, keep_marker=False)
    f.seek(f.tell() + header_size)
    segment_id = f.read(4)
    if segment_id != _MKV_SEGMENT:
        return None
    segment_size, unknown = _vint(f, keep_marker=False)
    if segment_size == unknown:
        return None
    return f.tell() + segment_size > size


def _gif_lacks_trailer(f: BinaryIO, size: int) -> bool | None:
    """Walk a GIF's blocks: True when the file ends before the trailer (0x3B)."""
    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        flags = data[10]
        pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # global colour table
        while pos < size:
            block = data[pos]
            if block == 0x3B:
                return False
            if block == 0x21:  # extension: label, then sub-blocks
                pos += 2
            elif block == 0x2C:  # image: descriptor, local colour table, LZW code size
                if pos + 10 > size:
                    return True
                local = data[pos + 9]
                pos += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0) + 1
            else:
                return None  # not GIF framing: corrupt, not cut
            while pos < size and data[pos]:  # sub-blocks up to the zero terminator
                pos += 1 + data[pos]
            pos += 1
        return True
