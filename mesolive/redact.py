"""Credentials out of every message, report and log line.

Stream URIs carry passwords (``rtsp://admin:secret@cam/live``) and tokens
(``https://host/feed?token=…``). Everything a user may paste into a bug
report — messages, logs, ``scan`` reports, JSON and CSV — goes through
:func:`redact` first; :class:`RedactingFormatter` does it for every log line.

The user part of a URL ends at its *last* ``@``: passwords with ``@``, ``:``,
``/`` or any other character are covered whether or not they were
percent-encoded. When a text has an ``@`` after the password (an e-mail in a
query string) more is hidden than needed, never less.
"""

from __future__ import annotations

import logging
import re

MASK = "***"

#: ``scheme://`` then anything up to the last ``@`` before white space: the user part.
_USERINFO = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^\s@]*(?:@[^\s@]*)*)@"
)
#: Query or fragment values whose name says they are secret.
_SECRET_PARAM = re.compile(
    r"(?P<key>[?&#;](?:password|passwd|pass|pwd|token|access_token|auth|key|apikey|api_key"
    r"|secret|sig|signature|credential|credentials)=)"
    # the value, but not a colon closing it before white space: "…?token=abc: cannot open"
    r"(?P<value>[^&#\s]*?)(?=:?(?:[&#\s]|$))",
    re.IGNORECASE,
)


def _userinfo(m: re.Match[str]) -> str:
    user, sep, _secret = m.group("userinfo").partition(":")
    # user:secret keeps the user name; a bare token (https://TOKEN@host) is all secret
    return f"{m.group('scheme')}{user}:{MASK}@" if sep else f"{m.group('scheme')}{MASK}@"


def redact(text: str) -> str:
    """``text`` with every URL password, bare token and secret query value replaced by ``***``.

    Works on a URI alone and on free text holding any number of URIs.
    """
    if "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(_userinfo, text)
    return _SECRET_PARAM.sub(lambda m: m.group("key") + MASK, text)


class RedactingFormatter(logging.Formatter):
    """Log lines (message, arguments and traceback alike) passed through :func:`redact`."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
