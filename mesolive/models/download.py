"""Download a file with a progress bar, a size cap, a checksum check and an atomic write.

The file is streamed into a temporary file beside its destination and moved
into place with :func:`os.replace` only once its sha256 matches, so a partial,
truncated or corrupt download never stays where a later run would trust it.
A server that announces or sends more than the file's known size (else
:data:`MAX_DOWNLOAD_BYTES`) is cut off: a wrong or hostile address cannot
fill the disk.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from mesolive.errors import DownloadError
from mesolive.paths import cannot_write, create_beside

log = logging.getLogger(__name__)

CHUNK = 1 << 16
MAX_DOWNLOAD_BYTES = 64 << 20
"""Cap for a file of unknown size: ~4x the largest known download (buffalo_sc.zip, 15 MB)."""


def _request(url: str) -> urllib.request.Request:
    """``url`` as a request. urllib does not use credentials written in a URL
    (``https://user:pass@mirror/…``: it looked the whole ``user:pass@mirror`` up as a
    host name); they go in a Basic ``Authorization`` header, sent to that host only
    (never on to where it redirects)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return urllib.request.Request(url)
    host = parts.netloc.rpartition("@")[2]
    req = urllib.request.Request(urllib.parse.urlunsplit(parts._replace(netloc=host)))
    user = urllib.parse.unquote(parts.username)
    password = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    req.add_unredirected_header("Authorization", f"Basic {token}")
    return req


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _progress_bar(total: int | None, label: str, enabled: bool):
    from mesolive.progress import progress_bar

    return progress_bar(
        total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1024, disable=not enabled
    )


def download(
    url: str,
    dest: Path,
    sha256: str | None,
    *,
    size: int = 0,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Fetch ``url`` into ``dest`` and check it against ``sha256``.

    ``size`` is the file's size in bytes where known (0: unknown); no more
    than that, or :data:`MAX_DOWNLOAD_BYTES`, is read.

    Raises
    ------
    DownloadError
        With a one-line message naming the file and what to do, for an HTTP
        error, no network, a dropped connection, a short body, a body over
        the cap or a checksum mismatch. ``dest`` is untouched in every such case.
    """
    cap = size or MAX_DOWNLOAD_BYTES
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = create_beside(dest)
    except OSError as e:
        raise DownloadError(cannot_write(dest, e)) from e
    hint = f"or put {dest.name} into a folder and pass it with --model-dir"
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                resp = urllib.request.urlopen(_request(url), timeout=timeout)
            except urllib.error.HTTPError as e:
                raise DownloadError(
                    f"{dest.name}: download failed with HTTP {e.code} from {url}; {hint}"
                ) from e
            except (urllib.error.URLError, OSError) as e:
                reason = getattr(e, "reason", e)
                raise DownloadError(
                    f"{dest.name}: cannot reach {url} ({reason}); check the network, {hint}"
                ) from e
            with resp:
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                if total is not None and total > cap:
                    raise DownloadError(
                        f"{dest.name}: {url} announces {total} bytes, more than the {cap} "
                        f"expected; nothing was downloaded; {hint}"
                    )
                h = hashlib.sha256()
                got = 0
                with _progress_bar(total, dest.name, progress) as bar:
                    try:
                        # one byte past the cap tells an oversized body from an exact one
                        while chunk := resp.read(min(CHUNK, cap + 1 - got)):
                            got += len(chunk)
                            if got > cap:
                                raise DownloadError(
                                    f"{dest.name}: {url} sent more than the {cap} bytes "
                                    f"expected; stopped, nothing was kept; {hint}"
                                )
                            out.write(chunk)
                            h.update(chunk)
                            bar.update(len(chunk))
                    except (http.client.IncompleteRead, OSError) as e:
                        raise DownloadError(
                            f"{dest.name}: connection dropped after {got} bytes "
                            f"from {url}; run the command again, {hint}"
                        ) from e
        if total is not None and got != total:
            raise DownloadError(
                f"{dest.name}: download was cut short ({got} of {total} bytes); "
                f"run the command again, {hint}"
            )
        digest = h.hexdigest()
        if sha256 is not None and digest != sha256:  # None: no checksum known upstream
            raise DownloadError(
                f"{dest.name}: checksum mismatch (got sha256 {digest[:12]}…, "
                f"expected {sha256[:12]}…); the download is corrupt or the file "
                f"changed upstream, nothing was kept; {hint}"
            )
        os.replace(tmp, dest)
        log.info("downloaded %s (%d bytes)", dest, got)
        return dest
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
