"""Why a network stream would not open: a short stdlib probe after FFmpeg gave up.

OpenCV says only that ``VideoCapture`` did not open. A user who typed a
wrong path, a wrong port or a wrong host name needs to know which: the server
answered ``404 Not Found``, nothing listens on the port, the name does not
resolve, or the server answered with something other than video. This asks
the server once more, as FFmpeg did (``GET`` with the URL's user and password,
TLS certificates not checked), and puts the answer in a few words.

No message holds the URL's user part or query: only the host, the port and
what the server said.
"""

from __future__ import annotations

import base64
import http
import http.client
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

log = logging.getLogger(__name__)

#: Schemes whose server is asked over HTTP.
HTTP_SCHEMES = frozenset({"http", "https"})
#: Schemes over TCP, with their default ports: a refused connection or a name that
#: does not resolve can be told by connecting, whatever the protocol spoken after.
TCP_PORTS = {"rtsp": 554, "rtsps": 322, "rtmp": 1935}
MAX_REDIRECTS = 5  # FFmpeg follows redirects; the probe follows as many


def why_unopened(url: str, timeout: float, *, waited: float = 0.0) -> str | None:
    """What stopped ``url`` from opening, a few words without the URL; None: cannot tell.

    The open had ``timeout`` seconds and gave up after ``waited``: the probe
    takes at most what is left (about half a second more where a host-name
    lookup, which cannot be interrupted, is left behind in a daemon thread).
    """
    scheme = url.partition(":")[0].lower()
    probe: Callable[[str, float, float], str | None]
    if scheme in HTTP_SCHEMES:
        probe = _probe_http
    elif probes_tcp(url):
        probe = _probe_tcp
    else:  # udp, srt, a tcp:// that listens itself: no server to ask
        return None
    answer: list[str | None] = []
    left = max(0.0, timeout - waited)

    def run() -> None:
        try:
            answer.append(probe(url, left, timeout))
        except Exception:  # a bug here must not hide the open's own error
            log.debug("probing the stream failed", exc_info=True)
            answer.append(None)

    thread = threading.Thread(target=run, name="mesolive-stream-probe", daemon=True)
    thread.start()
    thread.join(left + 0.5)  # the sockets' own timeouts end first, not a lookup
    return answer[0] if answer else _no_answer(timeout)


def probeable(url: str) -> bool:
    """Whether :func:`why_unopened` can say anything about ``url``."""
    return url.partition(":")[0].lower() in HTTP_SCHEMES or probes_tcp(url)


def probes_tcp(url: str) -> bool:
    """``url`` names a TCP server (not a ``tcp://…?listen`` that waits for one)."""
    scheme = url.partition(":")[0].lower()
    if scheme in TCP_PORTS:
        return True
    try:
        return scheme == "tcp" and "listen" not in urlsplit(url).query
    except ValueError:  # not a URL (a bracket left open): FFmpeg's own error stands
        return False


def _no_answer(timeout: float) -> str:
    return f"no answer within {timeout:g} s"


def _where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _address(url: str, default_port: int) -> tuple[str, int] | None:
    try:
        parts = urlsplit(url)
        port = parts.port or default_port
    except ValueError:  # a port that is not a number: FFmpeg's own error stands
        return None
    return (parts.hostname, port) if parts.hostname else None


def _connect_error(e: OSError, host: str, port: int, timeout: float) -> str:
    """An error from connecting to (or reading from) ``host:port``, in a few words."""
    if isinstance(e, socket.gaierror):
        return f"the host name {host!r} does not resolve ({e.strerror})"
    if isinstance(e, ConnectionRefusedError):
        return f"connection refused, nothing listens on {_where(host, port)}"
    if isinstance(e, TimeoutError):
        return _no_answer(timeout)
    if isinstance(e, ssl.SSLError):
        return f"the TLS handshake with {_where(host, port)} failed ({e.reason or e})"
    return f"cannot connect to {_where(host, port)} ({e.strerror or type(e).__name__})"


def _probe_tcp(url: str, left: float, timeout: float) -> str | None:
    """Only a refused connection or a name that does not resolve; None when it connects."""
    scheme = url.partition(":")[0].lower()
    address = _address(url, TCP_PORTS.get(scheme, 0))
    if address is None or not address[1]:
        return None
    host, port = address
    try:
        with socket.create_connection((host, port), timeout=max(left, 0.01)):
            return None  # it listens: why FFmpeg failed is its protocol's business
    except (socket.gaierror, ConnectionRefusedError) as e:
        return _connect_error(e, host, port, timeout)
    except OSError:
        return None  # a timeout, no route: the generic line says as much


def _probe_http(url: str, left: float, timeout: float) -> str | None:
    """What the server says to a GET; ``timeout`` is the open's, for the words."""
    deadline = time.monotonic() + left
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        https = parts.scheme.lower() == "https"
        address = _address(url, 443 if https else 80)
        if parts.scheme.lower() not in HTTP_SCHEMES or address is None:
            return None
        host, port = address
        left = deadline - time.monotonic()
        if left <= 0:
            return _no_answer(timeout)
        conn: http.client.HTTPConnection
        if https:  # FFmpeg does not check certificates by default: neither does this
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            conn = http.client.HTTPSConnection(host, port, timeout=left, context=context)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=left)
        headers = {"User-Agent": "mesolive", "Accept": "*/*"}
        if parts.username is not None:  # as FFmpeg sends them; never shown
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        target = urlunsplit(("", "", parts.path or "/", parts.query, ""))
        try:
            conn.request("GET", target, headers=headers)
            response = conn.getresponse()
        except http.client.RemoteDisconnected:
            return f"{_where(host, port)} closed the connection without an answer"
        except OSError as e:
            return _connect_error(e, host, port, timeout)
        except http.client.HTTPException:
            return f"{_where(host, port)} answered, but not in HTTP"
        finally:
            conn.close()
        status = response.status
        location = response.getheader("Location")
        if status in (301, 302, 303, 307, 308) and location:
            url = urljoin(url, location)
            continue
        phrase = f"{status} {_reason(status, response.reason)}".strip()
        said = f'the server answered "{phrase}"'
        if status == 401:
            return said + (
                "; the user name or password was refused"
                if parts.username is not None
                else "; it wants a user name and password (http://USER:PASSWORD@host/…)"
            )
        if status >= 300:
            return said
        kind = _printable(response.getheader("Content-Type") or "")
        kind = f"Content-Type {kind}" if kind else "no Content-Type"
        return f"{said} but not with a video stream FFmpeg can read ({kind})"
    return f"redirected more than {MAX_REDIRECTS} times"


def _printable(text: str, limit: int = 60) -> str:
    """``text`` as one short line of printable ASCII (it comes from the server)."""
    clean = "".join(c if " " <= c <= "~" else " " for c in text).strip()
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def _reason(status: int, reason: str) -> str:
    """The server's reason phrase, or the standard one when it sent none."""
    said = _printable(reason)
    if said:
        return said
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""
