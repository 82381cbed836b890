"""Keeping secrets out of logs: webhook URLs' tokens, passwords, header values.

:func:`mask_url` keeps what identifies a receiver (scheme, host, port and short
lower-case path words such as ``api`` or ``alerts``) and replaces the rest with
``***``: a Slack URL ``https://hooks.slack.com/services/T0/B0/XyZ`` is logged as
``https://hooks.slack.com/services/***/***/***``. :class:`Redactor` replaces
every known secret (and the URL pieces that carry it) in any text, such as an
exception message from ``requests`` that quotes the URL.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

__all__ = ["MASK", "RedactingFilter", "Redactor", "mask_url"]

MASK = "***"
#: a path segment shown as is: short, lower-case, not token-like
_PLAIN_SEGMENT = re.compile(r"[a-z][a-z0-9._-]{0,15}")


def _plain(segment: str) -> bool:
    return bool(_PLAIN_SEGMENT.fullmatch(segment)) and sum(c.isdigit() for c in segment) <= 2


def mask_url(url: str) -> str:
    """``url`` with its password, token-like path segments and query values masked."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return MASK
    if not parts.scheme or not parts.hostname:
        return MASK
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if port is not None:
        netloc += f":{port}"
    if parts.username is not None:
        netloc = f"{MASK}@{netloc}"
    path = "/".join(s if not s or _plain(s) else MASK for s in parts.path.split("/"))
    out = f"{parts.scheme}://{netloc}{path}"
    if parts.query:
        out += "?" + "&".join(
            f"{q.partition('=')[0]}={MASK}" if "=" in q else MASK for q in parts.query.split("&")
        )
    return out


class Redactor:
    """Replaces secrets in text. Longer secrets are replaced first."""

    def __init__(self, secrets: Iterable[str] = (), urls: Iterable[str] = ()) -> None:
        pairs: dict[str, str] = {}
        for url in urls:
            masked = mask_url(url)
            pairs[url] = masked
            parts = urlsplit(url)
            # the pieces that error messages quote on their own (requests: "url: /path?q")
            if parts.path and parts.path not in ("/", ""):
                tail = parts.path + (f"?{parts.query}" if parts.query else "")
                pairs[tail] = urlsplit(masked).path or MASK
                pairs[parts.path] = urlsplit(masked).path or MASK
            if parts.query:
                pairs[parts.query] = MASK
            if parts.password:
                pairs[parts.password] = MASK
        for secret in secrets:
            if secret:
                pairs[secret] = MASK
        #: (secret, replacement), longest first; single characters are never "secrets"
        self._pairs = sorted(
            ((k, v) for k, v in pairs.items() if len(k) > 1 and k != v),
            key=lambda kv: -len(kv[0]),
        )

    def __call__(self, text: str) -> str:
        for secret, replacement in self._pairs:
            if secret in text:
                text = text.replace(secret, replacement)
        return text


class RedactingFilter(logging.Filter):
    """Masks secrets in the records of a third-party logger.

    urllib3's debug lines quote every request path (``"POST /services/T0/B0/XyZ
    HTTP/1.1" 200``), which is where Slack keeps its token.
    """

    def __init__(self, redactors: Sequence[Redactor]) -> None:
        super().__init__()
        self.redactors = list(redactors)

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        for redact in self.redactors:
            text = redact(text)
        record.msg, record.args = text, None
        return True
