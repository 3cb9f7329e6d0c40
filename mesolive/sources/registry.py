"""Frame sources by URI, and the list of sources this machine offers.

==============================  =============================================
URI                             source
==============================  =============================================
``webcam:N``                    camera N through OpenCV (``webcam:`` = 0)
``screen:N``                    screen N through mss (1 = first, 0 = all)
``screen:N@x,y,w,h``            a region of screen N, relative to its corner
``window:TITLE``                a window's own pixels (X11 Composite; else the screen under it)
``PATH`` or ``file:PATH``       a video file, an image, a folder of images
``rtsp://…``, ``http(s)://…``   a network stream through FFmpeg
``test:``                       drawn moving faces (see ``synthetic.py``)
==============================  =============================================

``webcam:``, ``screen:`` and ``test:`` take options after ``?``, e.g.
``webcam:0?size=1280x720&fps=30`` or ``test:?faces=6&frames=300``; the
keyword arguments of :func:`make_source` override them.
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote

from mesolive.errors import SourceError
from mesolive.sources.base import FrameSource
from mesolive.sources.stream import STREAM_SCHEMES

log = logging.getLogger(__name__)

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(.*)$", re.DOTALL)
_SCREEN = re.compile(r"^(\d*)(?:@(-?\d+),(-?\d+),(-?\d+),(-?\d+))?$")
_EXPECTED = (
    "expected webcam:N, screen:N[@x,y,w,h], window:TITLE, a file or folder path (or file:PATH), "
    "rtsp://…, http(s)://… or test:"
)
_KINDS = ("webcam", "screen", "window", "test")


@dataclass(frozen=True)
class SourceInfo:
    """One entry of :func:`list_sources`: ``uri`` to open, ``label`` to show, ``kind``.

    ``kind`` is one of ``"webcam"``, ``"screen"``, ``"window"``, ``"test"``.
    """

    uri: str
    label: str
    kind: str


# -- options -----------------------------------------------------------------


def _split_query(uri: str, rest: str) -> tuple[str, dict[str, str]]:
    body, sep, query = rest.partition("?")
    if not sep:
        return body, {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError as e:
        raise SourceError(f"{uri}: malformed options {query!r} (expected key=value&…)") from e
    return body, dict(pairs)


def _take_int(uri: str, opts: dict[str, str], key: str, lo: int = 1) -> int | None:
    if key not in opts:
        return None
    text = opts.pop(key)
    try:
        value = int(text)
    except ValueError:
        value = lo - 1
    if value < lo:
        raise SourceError(f"{uri}: {key}={text}: expected a whole number ≥ {lo}")
    return value


def _take_fps(uri: str, opts: dict[str, str]) -> float | None:
    if "fps" not in opts:
        return None
    text = opts.pop("fps")
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1000:
        raise SourceError(f"{uri}: fps={text}: expected a frame rate in (0, 1000]")
    return value


def _take_size(uri: str, opts: dict[str, str]) -> tuple[int | None, int | None]:
    from mesolive.sources.synthetic import parse_size

    width = _take_int(uri, opts, "width")
    height = _take_int(uri, opts, "height")
    if "size" in opts:
        text = opts.pop("size")
        try:
            width, height = parse_size(text)
        except ValueError as e:
            raise SourceError(f"{uri}: size={text}: expected WIDTHxHEIGHT, e.g. 1280x720") from e
        if width <= 0 or height <= 0:
            raise SourceError(f"{uri}: size={text}: width and height must be positive")
    return width, height


def _no_more(uri: str, opts: dict[str, str], allowed: str) -> None:
    if opts:
        raise SourceError(f"{uri}: unknown option {next(iter(opts))!r} (allowed: {allowed})")


def _check_kwargs(width: int | None, height: int | None, fps: float | None) -> None:
    for name, value in (("width", width), ("height", height)):
        if value is not None and value <= 0:
            raise SourceError(f"{name}={value}: must be positive")
    if fps is not None and not 0 < fps <= 1000:
        raise SourceError(f"fps={fps:g}: expected a frame rate in (0, 1000]")


# -- make_source ---------------------------------------------------------------


def _exists(text: str) -> bool:
    try:
        return Path(text).exists()
    except (OSError, ValueError):  # a name too long for the system, a NUL byte
        return False


def make_source(
    uri: str,
    *,
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
    loop: bool = False,
) -> FrameSource:
    """A new, unopened source for ``uri`` (the capture thread calls ``open()``).

    Parameters
    ----------
    uri
        See the module docstring.
    width, height
        Requested frame size (webcams; ``test:``). Others ignore it.
    fps
        Requested rate: camera mode, screen/window grab rate, the pace of
        stills and ``test:``. Video files and streams keep their own.
    loop
        Files, images and folders start again at the end.

    Raises
    ------
    SourceError
        Malformed URI, unknown scheme or bad option (one line). Whether the
        device, file or server exists is only checked by ``open()``.
    """
    text = uri if _exists(uri) else uri.strip()  # a file's name may end in a space
    if not text:
        raise SourceError(f"empty source URI; {_EXPECTED}")
    _check_kwargs(width, height, fps)
    m = _SCHEME.match(text)
    scheme = m.group(1).lower() if m else ""
    rest = m.group(2) if m else ""
    if scheme in STREAM_SCHEMES:
        from mesolive.sources.stream import StreamSource

        return StreamSource(text)
    if scheme == "webcam":
        return _webcam(text, rest, width, height, fps)
    if scheme == "screen":
        return _screen(text, rest, fps)
    if scheme == "window":
        from mesolive.sources.window import WindowSource

        title = rest.strip()
        if not title:
            raise SourceError(f"{text}: give a window title, e.g. window:Zoom")
        return WindowSource(title, fps=fps, uri=text)
    if scheme == "test":
        return _test(text, rest, width, height, fps)
    if scheme == "file":
        path = _file_uri_path(rest)
        if not path:
            raise SourceError(f"{text}: give a path, e.g. file:clip.mp4")
        return _file(path, text, fps, loop)
    if m is None or len(scheme) == 1 or _exists(text):
        # No scheme, a Windows drive letter (C:\…), or a file whose name has a colon.
        return _file(text, text, fps, loop)
    raise SourceError(f"{text}: unknown source scheme '{scheme}:'; {_EXPECTED}")


def _file_uri_path(rest: str) -> str:
    """The path of a ``file:`` URI from what follows the scheme (``file:///abs/path`` URLs too)."""
    return unquote(rest[2:]) if rest.startswith("//") else rest


def local_path(uri: str) -> Path | None:
    """The file or folder a source URI names: a plain path or ``file:PATH``; None for the rest.

    Nothing is opened; the path need not exist. Callers use it to treat
    ``file:clip.mp4`` exactly as ``clip.mp4`` (a folder's files, an output
    that would overwrite an input).
    """
    text = uri if _exists(uri) else uri.strip()
    m = _SCHEME.match(text)
    scheme = m.group(1).lower() if m else ""
    if scheme == "file":
        path = _file_uri_path(m.group(2)) if m else ""
        return Path(path).expanduser() if path else None
    if scheme in STREAM_SCHEMES or scheme in _KINDS:
        return None
    if text and (m is None or len(scheme) == 1 or _exists(text)):  # as make_source decides
        return Path(text).expanduser()
    return None


def _webcam(
    uri: str, rest: str, width: int | None, height: int | None, fps: float | None
) -> FrameSource:
    from mesolive.sources.webcam import WebcamSource

    body, opts = _split_query(uri, rest)
    q_width, q_height = _take_size(uri, opts)
    q_fps = _take_fps(uri, opts)
    _no_more(uri, opts, "size, width, height, fps")
    body = body.strip() or "0"
    device: int | str
    if body.isdigit():
        device = int(body)
    elif body.startswith("/dev/"):
        device = body
    else:
        raise SourceError(f"{uri}: expected a camera number, e.g. webcam:0")
    return WebcamSource(
        device,
        width=width or q_width,
        height=height or q_height,
        fps=fps or q_fps,
        uri=uri,
    )


def _screen(uri: str, rest: str, fps: float | None) -> FrameSource:
    from mesolive.sources.screen import ScreenSource

    body, opts = _split_query(uri, rest)
    q_fps = _take_fps(uri, opts)
    _no_more(uri, opts, "fps")
    m = _SCREEN.match(body.replace(" ", ""))
    if m is None:
        raise SourceError(
            f"{uri}: expected screen:N or screen:N@x,y,w,h, e.g. screen:1@0,0,640,480"
        )
    monitor = int(m.group(1)) if m.group(1) else 1
    region = None
    if m.group(2) is not None:
        x, y, w, h = (int(m.group(i)) for i in range(2, 6))
        if x < 0 or y < 0 or w <= 0 or h <= 0:
            raise SourceError(f"{uri}: region needs x, y ≥ 0 and w, h > 0")
        region = (x, y, w, h)
    return ScreenSource(monitor, region, fps=fps or q_fps, uri=uri)


def _test(
    uri: str, rest: str, width: int | None, height: int | None, fps: float | None
) -> FrameSource:
    from mesolive.sources.synthetic import SyntheticSource

    body, opts = _split_query(uri, rest)
    if body.strip():
        raise SourceError(f"{uri}: options go after '?', e.g. test:?faces=3&fps=30")
    faces = _take_int(uri, opts, "faces", lo=0)
    q_width, q_height = _take_size(uri, opts)
    q_fps = _take_fps(uri, opts)
    frames = _take_int(uri, opts, "frames", lo=0)
    seed = _take_int(uri, opts, "seed", lo=0)
    _no_more(uri, opts, "faces, size, width, height, fps, frames, seed")
    return SyntheticSource(
        faces=3 if faces is None else faces,
        fps=fps or q_fps or 30.0,
        size=(width or q_width or 1280, height or q_height or 720),
        frames=frames,
        seed=seed or 0,
        uri=uri,
    )


def _file(path: str, uri: str, fps: float | None, loop: bool) -> FrameSource:
    from mesolive.imageio import IMAGE_EXTS
    from mesolive.sources.file import FolderSource, ImageSource, VideoFileSource

    p = Path(path).expanduser()
    if p.is_dir():
        return FolderSource(p, loop=loop, fps=fps, uri=uri)
    if p.suffix.lower() in IMAGE_EXTS:
        return ImageSource(p, loop=loop, fps=fps, uri=uri)
    return VideoFileSource(p, loop=loop, uri=uri)


# -- list_sources ----------------------------------------------------------------


def list_sources() -> list[SourceInfo]:
    """Webcams, screens and windows found here, then ``test:``.

    Nothing is opened that could block: cameras come from sysfs on Linux
    (elsewhere ``webcam:0`` is offered unprobed), screens from mss and
    windows from X11. Never raises: what fails is logged and skipped.
    """
    found: list[SourceInfo] = []
    for probe in (_list_webcams, _list_screens, _list_windows):
        try:
            found.extend(probe())
        except Exception as e:  # a listing must never take the caller down
            log.debug("%s failed: %s", probe.__name__, e, exc_info=True)
    found.append(SourceInfo("test:", "Synthetic faces (demo)", "test"))
    return found


def _list_webcams() -> list[SourceInfo]:
    if sys.platform.startswith("linux"):
        from mesolive.sources.webcam import linux_cameras

        return [
            SourceInfo(f"webcam:{c.index}", f"Camera {c.index}: {c.name}", "webcam")
            for c in linux_cameras()
        ]
    return [SourceInfo("webcam:0", "Camera 0 (default camera)", "webcam")]


def _list_screens() -> list[SourceInfo]:
    from mesolive.sources.screen import display_problem, monitor_regions, new_grabber

    problem = display_problem()
    if problem:
        log.debug("no screens listed: %s", problem)
        return []
    grabber = new_grabber()
    try:
        regions = monitor_regions(grabber)
    finally:
        grabber.close()
    out = [
        SourceInfo(
            f"screen:{i}", f"Screen {i} ({r.width}x{r.height} at {r.left},{r.top})", "screen"
        )
        for i, r in enumerate(regions)
        if i > 0
    ]
    if len(regions) > 2:
        all_ = regions[0]
        out.append(SourceInfo("screen:0", f"All screens ({all_.width}x{all_.height})", "screen"))
    return out


def _list_windows() -> list[SourceInfo]:
    from mesolive.sources.window import window_capture_problem

    problem = window_capture_problem()
    if problem:
        log.debug("no windows listed: %s", problem)
        return []
    from mesolive.sources import _x11

    disp = _x11.connect()
    try:
        windows = _x11.list_windows(disp)
    finally:
        disp.close()
    seen: set[str] = set()
    out = []
    for w in windows:
        if not w.viewable or w.title in seen:
            continue
        seen.add(w.title)
        out.append(SourceInfo(f"window:{w.title}", f"Window: {w.title}", "window"))
    return out


__all__ = ["SourceInfo", "list_sources", "local_path", "make_source"]
