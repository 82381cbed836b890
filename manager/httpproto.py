"""HTTP/1.0 + HTTP/1.1 requests and responses, sans-I/O: bytes in, events out, bytes out.

Theory of operation
-------------------
Nothing here reads, writes, logs or sleeps (house rule 1, h11's shape); the socket
side is :mod:`manager.httpconn`.

* :class:`RequestParser`: ``feed(bytes)`` buffers, ``next_event()`` returns
  :data:`NEED_DATA`, a :class:`RequestHead` as soon as the head is complete (so
  authentication and ``Expect: 100-continue`` are decided before the body is read)
  and then the whole :class:`Request`. Pipelined requests follow with whatever bytes
  are left over. Malformed input and exceeded limits raise :class:`HTTPError`
  carrying the status to answer; the parser is not used after that.
* :func:`render_response` turns a :class:`Response` into the bytes of a status line,
  headers and body; :func:`error_response` is the ``Response`` for an
  :class:`HTTPError` (or any error status), which always closes the connection.
* :data:`CONNECTION_TRANSITIONS`: the one table of a connection's legal
  :class:`ConnectionState` moves. ``Connection._to`` in :mod:`manager.httpconn`, the
  only writer of ``Connection.state``, consults it through
  :func:`check_connection_transition`; a move not in it is a bug in vigild and
  raises :class:`IllegalConnectionTransition` (that connection is closed, the loop
  goes on).

Status codes for exceeded limits: a request line over :attr:`Limits.max_line`
is ``414``, a header line over ``max_line`` or a head over ``max_head`` is
``431``, a declared body over ``max_body`` is ``413``, a ``POST`` without
``Content-Length`` (or with ``Transfer-Encoding``, which we do not accept) is
``411``, anything else malformed is ``400``. (A request that does not arrive
completely within :attr:`Limits.request_timeout` seconds is ``408``; the
connection, which owns the clock, enforces that.)
"""

from __future__ import annotations

import enum
import http
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "CONNECTION_TRANSITIONS",
    "NEED_DATA",
    "ConnectionState",
    "HTTPError",
    "IllegalConnectionTransition",
    "Limits",
    "Request",
    "RequestHead",
    "RequestParser",
    "Response",
    "check_connection_transition",
    "error_response",
    "render_response",
]

# --- limits and errors -----------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """How much a client may send; the defaults suit XML-RPC."""

    #: longest request line or header line, in bytes (line ending included)
    max_line: int = 8 * 1024
    #: longest request head (request line and all header lines)
    max_head: int = 64 * 1024
    #: largest ``Content-Length`` accepted
    max_body: int = 2 * 1024 * 1024
    #: seconds a started request may take to arrive completely
    request_timeout: float = 60.0
    #: seconds to keep reading (and dropping) from a client after an error response
    linger: float = 2.0


class HTTPError(Exception):
    """The request cannot be served; answer ``status`` and close the connection."""

    def __init__(self, status: int, detail: str = "") -> None:
        super().__init__(detail or http.HTTPStatus(status).phrase)
        self.status = status
        self.detail = detail


# --- requests and responses ------------------------------------------------------------------


class _NeedData(enum.Enum):
    NEED_DATA = "NEED_DATA"


#: :meth:`RequestParser.next_event` needs more bytes.
NEED_DATA = _NeedData.NEED_DATA


@dataclass(frozen=True)
class RequestHead:
    """A request line and its headers; the body may not have arrived yet."""

    method: str
    #: the request target as sent (``/RPC2``, ``/logtail/x?y``)
    target: str
    #: ``(1, 0)`` or ``(1, 1)``
    version: tuple[int, int]
    #: header names lower-cased; repeated headers joined with ``", "``
    headers: Mapping[str, str]
    content_length: int

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.split("?", 1)[0]

    @property
    def keep_alive(self) -> bool:
        """Whether the client wants the connection kept open after this request."""
        tokens = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        if self.version >= (1, 1):
            return "close" not in tokens
        return "keep-alive" in tokens

    @property
    def expects_continue(self) -> bool:
        return (
            self.version >= (1, 1)
            and self.headers.get("expect", "").strip().lower() == "100-continue"
        )


@dataclass(frozen=True)
class Request:
    """A complete request."""

    head: RequestHead
    body: bytes

    @property
    def method(self) -> str:
        return self.head.method

    @property
    def path(self) -> str:
        return self.head.path

    @property
    def headers(self) -> Mapping[str, str]:
        return self.head.headers


@dataclass(frozen=True)
class Response:
    """What a handler answers. ``Content-Length`` and ``Connection`` are added for it."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()
    #: close the connection after this response whatever the client asked
    close: bool = False


# --- the parser ------------------------------------------------------------------------------

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(rb"HTTP/([0-9])\.([0-9])")
_TARGET = re.compile(rb"[\x21-\x7e]+")
_FIELD_VALUE = re.compile(rb"[^\x00-\x08\x0a-\x1f\x7f]*")


class _Phase(enum.Enum):
    HEAD = "HEAD"
    BODY = "BODY"
    DONE = "DONE"


class RequestParser:
    """Bytes in, :class:`RequestHead` / :class:`Request` out; no I/O (h11's shape).

    After a :class:`Request` has been returned, :meth:`next_event` starts on the
    next pipelined request with whatever bytes are left over. Line endings may be
    CRLF or a bare LF; empty lines before a request line are skipped (RFC 9112 §2.2).

    Raises (from :meth:`next_event`):
        HTTPError: malformed input or an exceeded limit; the parser must not be used
            after that.
    """

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._buf = bytearray()
        self._phase = _Phase.HEAD
        self._head_bytes = 0
        self._lines: list[bytes] = []
        self._head: RequestHead | None = None

    def feed(self, data: bytes) -> None:
        """Buffer ``data``; nothing is parsed until :meth:`next_event`."""
        self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes received and not yet consumed."""
        return len(self._buf)

    @property
    def in_request(self) -> bool:
        """True while a request has begun (some of it received) but is not complete."""
        if self._phase is _Phase.BODY or self._lines:
            return True
        return bool(self._buf.lstrip(b"\r\n"))

    def next_event(self) -> RequestHead | Request | _NeedData:
        """The next event: a :class:`RequestHead`, then its :class:`Request`, or :data:`NEED_DATA`.

        Raises:
            HTTPError: malformed input or an exceeded limit.
        """
        if self._phase is _Phase.DONE:
            self._phase = _Phase.HEAD
            self._head = None
        if self._phase is _Phase.HEAD:
            head = self._read_head()
            if head is None:
                return NEED_DATA
            self._head = head
            self._phase = _Phase.BODY
            return head
        assert self._head is not None
        n = self._head.content_length
        if len(self._buf) < n:
            return NEED_DATA
        body = bytes(self._buf[:n])
        del self._buf[:n]
        self._phase = _Phase.DONE
        return Request(self._head, body)

    # -- head

    def _read_head(self) -> RequestHead | None:
        limits = self.limits
        while True:
            if not self._lines:
                # skip the empty lines a client may send between requests
                while self._buf[:2] == b"\r\n" or self._buf[:1] == b"\n":
                    del self._buf[: 2 if self._buf[:1] == b"\r" else 1]
            end = self._buf.find(b"\n", 0, limits.max_line)
            if end < 0:
                if len(self._buf) >= limits.max_line:
                    raise HTTPError(414 if not self._lines else 431, "line too long")
                if self._head_bytes + len(self._buf) > limits.max_head:
                    raise HTTPError(431, "request head too large")
                return None
            raw = bytes(self._buf[: end + 1])
            del self._buf[: end + 1]
            self._head_bytes += len(raw)
            if self._head_bytes > limits.max_head:
                raise HTTPError(431, "request head too large")
            line = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
            if line:
                self._lines.append(line)
                continue
            lines, self._lines = self._lines, []
            self._head_bytes = 0
            return _parse_head(lines, limits)


def _parse_head(lines: list[bytes], limits: Limits) -> RequestHead:
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        raise HTTPError(400, "malformed request line")
    method, target, version = parts
    if not _TOKEN.fullmatch(method) or not _TARGET.fullmatch(target):
        raise HTTPError(400, "malformed request line")
    m = _VERSION.fullmatch(version)
    if m is None:
        raise HTTPError(400, "malformed HTTP version")
    major, minor = int(m.group(1)), int(m.group(2))
    if major != 1:
        raise HTTPError(505)
    headers: dict[str, str] = {}
    lengths: set[bytes] = set()
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            raise HTTPError(400, "obsolete header line folding")
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.fullmatch(name):
            raise HTTPError(400, "malformed header line")
        value = value.strip(b" \t")
        if not _FIELD_VALUE.fullmatch(value):
            raise HTTPError(400, "control character in a header value")
        key = name.decode("ascii").lower()
        text = value.decode("latin-1")
        if key == "content-length":
            lengths.update(v.strip(b" \t") for v in value.split(b","))
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    if "transfer-encoding" in headers:
        if lengths:
            raise HTTPError(400, "both Transfer-Encoding and Content-Length")
        raise HTTPError(411, "Transfer-Encoding is not accepted; send Content-Length")
    content_length = 0
    if lengths:
        if len(lengths) != 1:
            raise HTTPError(400, "conflicting Content-Length values")
        (raw,) = lengths
        if not raw.isdigit() or len(raw) > 18:
            raise HTTPError(400, "malformed Content-Length")
        content_length = int(raw)
        if content_length > limits.max_body:
            raise HTTPError(413)
    elif method == b"POST":
        raise HTTPError(411)
    return RequestHead(
        method=method.decode("ascii"),
        target=target.decode("ascii"),
        version=(major, minor),
        headers=headers,
        content_length=content_length,
    )


# --- rendering ------------------------------------------------------------------------------


def render_response(
    response: Response,
    *,
    version: tuple[int, int],
    keep_alive: bool,
    head_only: bool,
    chunked: bool = False,
) -> bytes:
    """The bytes of a response: status line, headers, body.

    With ``chunked`` only the head is rendered, announcing a chunked body.
    """
    try:
        phrase = http.HTTPStatus(response.status).phrase
    except ValueError:
        phrase = "Unknown"
    lines = [
        f"HTTP/{version[0]}.{version[1]} {response.status} {phrase}",
        "Server: vigild",
        f"Content-Type: {response.content_type}",
        "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(response.body)}",
    ]
    lines.extend(f"{k}: {v}" for k, v in response.headers)
    if not keep_alive:
        lines.append("Connection: close")
    elif version < (1, 1):
        lines.append("Connection: Keep-Alive")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only or chunked else head + response.body


def error_response(
    status: int, detail: str = "", headers: tuple[tuple[str, str], ...] = ()
) -> Response:
    """A plain-text ``status`` answer (with ``detail`` if given) that closes the connection."""
    phrase = http.HTTPStatus(status).phrase
    text = f"{status} {phrase}" + (f": {detail}" if detail else "") + "\n"
    return Response(status, text.encode("utf-8"), headers=headers, close=True)


# --- connection states -----------------------------------------------------------------------


class ConnectionState(enum.Enum):
    """Where an HTTP connection is; the legal moves are :data:`CONNECTION_TRANSITIONS`."""

    READING = "READING"  # waiting for (the rest of) a request; the initial state
    WAITING = "WAITING"  # the handler has the request: no response yet, or a stream being written
    LINGERING = "LINGERING"  # response written, write side shut, dropping input
    CLOSED = "CLOSED"


_C = ConnectionState

#: from-state -> the states it may move to, and why. Every state but CLOSED may
#: move to CLOSED, so closing a connection whose state machine broke is always legal.
CONNECTION_TRANSITIONS: dict[ConnectionState, dict[ConnectionState, str]] = {
    _C.READING: {
        _C.WAITING: "a whole, authorized request went to the handler",
        _C.LINGERING: "the last response is out (an error, 401, 408, Connection: close, HTTP/1.0)",
        _C.CLOSED: "end of input with nothing left to answer, a socket error, or shutdown",
    },
    _C.WAITING: {
        _C.READING: "the handler's response was written or its stream ended",
        _C.CLOSED: "the client left before the answer, a socket error, or shutdown",
    },
    _C.LINGERING: {_C.CLOSED: "end of input from the client, the linger delay, or an error"},
    _C.CLOSED: {},
}


class IllegalConnectionTransition(RuntimeError):
    """A move not in :data:`CONNECTION_TRANSITIONS` was attempted: a bug in vigild."""


def check_connection_transition(old: ConnectionState, new: ConnectionState) -> None:
    """Raise :class:`IllegalConnectionTransition` unless ``old -> new`` is in the table."""
    if new not in CONNECTION_TRANSITIONS[old]:
        raise IllegalConnectionTransition(f"illegal transition {old.name} -> {new.name}")
