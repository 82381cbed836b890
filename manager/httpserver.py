"""A small HTTP/1.0 + HTTP/1.1 server on vigild's selector :class:`~manager.loop.Loop`.

Theory of operation
-------------------
Everything runs on the loop's one thread; there is no thread per request and no
blocking call after :func:`bind_unix` / :func:`bind_tcp` return.

* :class:`RequestParser` is sans-I/O (house rule 1, h11's shape): ``feed(bytes)``
  buffers, ``next_event()`` returns :data:`NEED_DATA`, a :class:`RequestHead` as
  soon as the head is complete (so authentication and ``Expect: 100-continue``
  are decided before the body is read) and then the whole :class:`Request`.
  Malformed input and exceeded limits raise :class:`HTTPError` carrying the
  status to answer; the connection is then closed.
* :class:`HTTPServer` owns one non-blocking listening socket and its
  connections. A connection reads whenever its socket is readable, parses one
  request at a time (pipelined requests wait in the buffer), hands the request
  to the handler with a :class:`Responder`, and writes the response through a
  buffer flushed with ``add_writer``. The handler may call
  :meth:`Responder.send` at once or later (a deferred response); meanwhile the
  loop keeps serving everything else.
* When credentials are configured, every request — whatever its path — must
  carry HTTP Basic credentials that match, compared in constant time, or it is
  answered ``401`` with ``WWW-Authenticate: Basic realm="default"`` and
  ``Connection: close`` (supervisord's medusa ``auth_handler``).
* A connection that must close after an error response is closed "lingering":
  the write side is shut down and whatever the client still sends is read and
  dropped for a moment, so the client reads our response instead of a reset.

Status codes for exceeded limits: a request line over :attr:`Limits.max_line`
is ``414``, a header line over ``max_line`` or a head over ``max_head`` is
``431``, a declared body over ``max_body`` is ``413``, a ``POST`` without
``Content-Length`` (or with ``Transfer-Encoding``, which we do not accept) is
``411``, anything else malformed is ``400``. A request that does not arrive
completely within :attr:`Limits.request_timeout` seconds is ``408``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import enum
import errno
import hashlib
import hmac
import http
import logging
import os
import re
import socket
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from manager.loop import Loop, Timer

__all__ = [
    "IN_USE_MESSAGE",
    "NEED_DATA",
    "BindError",
    "Credentials",
    "HTTPError",
    "HTTPServer",
    "Handler",
    "Limits",
    "Request",
    "RequestHead",
    "RequestParser",
    "Responder",
    "Response",
    "Stream",
    "bind_tcp",
    "bind_unix",
]

log = logging.getLogger("vigild.http")

#: supervisord's exact message when a socket or port is taken (its ``openhttpservers``).
IN_USE_MESSAGE = (
    "Another program is already listening on a port that one of our HTTP servers is "
    "configured to use.  Shut this program down first before starting supervisord."
)


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


class BindError(Exception):
    """A listening socket could not be created; the message is for the operator."""


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


# --- authentication --------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """``username`` / ``password`` of one server section.

    ``password`` may be ``{SHA}`` followed by the hex SHA-1 of the password;
    clients always send the password itself (reference §4.9).
    """

    username: str
    password: str = field(repr=False)

    def check(self, username: str, password: str) -> bool:
        """Whether the pair matches, in time independent of where they differ."""
        stored = self.password
        if stored.startswith("{SHA}"):
            given = hashlib.sha1(password.encode("utf-8")).hexdigest().encode("ascii")
            expected = stored[5:].strip().lower().encode("utf-8")
        else:
            given = password.encode("utf-8")
            expected = stored.encode("utf-8")
        # both comparisons always run, so the time does not tell which one failed
        user_ok = hmac.compare_digest(username.encode("utf-8"), self.username.encode("utf-8"))
        password_ok = hmac.compare_digest(given, expected)
        return user_ok & password_ok

    def authorizes(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value carries these credentials."""
        if authorization is None:
            return False
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        username, sep, password = decoded.partition(":")
        return bool(sep) and self.check(username, password)


# --- responding ------------------------------------------------------------------------------


class Responder:
    """How a handler answers one request, now or later.

    :meth:`send` must be called exactly once; later calls, and calls after the
    client has gone away, are ignored. Use :meth:`on_close` to stop waiting for
    something when the client disconnects first.
    """

    def __init__(self, conn: _Connection) -> None:
        self._conn: _Connection | None = conn
        self._close_callbacks: list[Callable[[], None]] = []
        self.sent = False

    @property
    def closed(self) -> bool:
        """True once the response was sent or the connection is gone."""
        return self.sent or self._conn is None

    def send(self, response: Response) -> None:
        conn = self._conn
        if self.sent or conn is None:
            return
        self.sent = True
        self._conn = None
        self._close_callbacks.clear()
        conn.respond(self, response)

    def stream(
        self,
        status: int = 200,
        content_type: str = "text/plain; charset=utf-8",
        headers: tuple[tuple[str, str], ...] = (),
    ) -> Stream:
        """Answer with a body written over time (``/logtail``) instead of :meth:`send`.

        The head goes out at once; the body is chunked on HTTP/1.1 (the connection
        can be reused after :meth:`Stream.end`) and delimited by closing the
        connection on HTTP/1.0. A stream obtained after the response was sent, or
        after the client left, is already closed.
        """
        stream = Stream()
        conn = self._conn
        if self.sent or conn is None:
            stream.closed = True
            return stream
        self.sent = True
        self._conn = None
        self._close_callbacks.clear()
        conn.start_stream(self, stream, Response(status, b"", content_type, headers))
        return stream

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` if the connection closes before a response was sent."""
        if self.closed:
            return
        self._close_callbacks.append(callback)

    def _connection_lost(self) -> None:
        self._conn = None
        _run_callbacks(self._close_callbacks)
        self._close_callbacks = []


def _run_callbacks(callbacks: list[Callable[[], None]]) -> None:
    for cb in list(callbacks):
        try:
            cb()
        except Exception:
            log.exception("error in a connection-close callback")


class Stream:
    """The body of a streamed response (see :meth:`Responder.stream`)."""

    def __init__(self) -> None:
        self._conn: _Connection | None = None
        self._chunked = False
        self._close_callbacks: list[Callable[[], None]] = []
        #: True after :meth:`end`, or once the client has gone away
        self.closed = False

    @property
    def buffered(self) -> int:
        """Bytes written but not yet taken by the client (to pace a producer)."""
        return len(self._conn.out) if self._conn is not None else 0

    def write(self, data: bytes) -> None:
        conn = self._conn
        if self.closed or conn is None or not data:
            return
        conn.send_body(b"%x\r\n%s\r\n" % (len(data), data) if self._chunked else data)

    def end(self) -> None:
        """Finish the body; the connection serves the next request (or closes on HTTP/1.0)."""
        conn = self._conn
        if self.closed or conn is None:
            return
        self.closed = True
        self._conn = None
        self._close_callbacks.clear()
        conn.end_stream(self, b"0\r\n\r\n" if self._chunked else b"")

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` if the client goes away before :meth:`end`."""
        if not self.closed:
            self._close_callbacks.append(callback)

    def _connection_lost(self) -> None:
        self._conn = None
        if not self.closed:
            self.closed = True
            _run_callbacks(self._close_callbacks)
        self._close_callbacks = []


#: ``handler(request, responder)``; it calls ``responder.send`` now or later.
Handler = Callable[[Request, Responder], None]


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


def _error_response(
    status: int, detail: str = "", headers: tuple[tuple[str, str], ...] = ()
) -> Response:
    phrase = http.HTTPStatus(status).phrase
    text = f"{status} {phrase}" + (f": {detail}" if detail else "") + "\n"
    return Response(status, text.encode("utf-8"), headers=headers, close=True)


# --- connections -----------------------------------------------------------------------------

_READ_SIZE = 65536
_UNAUTHORIZED_HEADERS = (("WWW-Authenticate", 'Basic realm="default"'),)


class _State(enum.Enum):
    READING = "READING"  # waiting for (the rest of) a request
    WAITING = "WAITING"  # the handler has the request; no response yet
    LINGERING = "LINGERING"  # response written, write side shut, dropping input
    CLOSED = "CLOSED"


class _Connection:
    """One accepted client socket."""

    def __init__(self, server: HTTPServer, sock: socket.socket) -> None:
        self.server = server
        self.loop = server.loop
        self.sock = sock
        self.fd = sock.fileno()
        self.parser = RequestParser(server.limits)
        self.state = _State.READING
        self.out = bytearray()
        self.close_after_write = False
        self.eof = False
        self.reading = False
        self.head: RequestHead | None = None
        self.responder: Responder | None = None
        #: the streamed response being written, if any (the state is WAITING meanwhile)
        self.stream: Stream | None = None
        self.timer: Timer | None = None
        self._advancing = False
        self._resume_reading()

    # -- reading

    def _resume_reading(self) -> None:
        if not self.reading and not self.eof and self.state is not _State.CLOSED:
            self.reading = True
            self.loop.add_reader(self.fd, self._guarded(self._on_readable))

    def _pause_reading(self) -> None:
        if self.reading:
            self.reading = False
            self.loop.remove_reader(self.fd)

    def _guarded(self, callback: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                callback()
            except Exception:
                log.exception("HTTP connection error; closing it")
                self.close()

        return run

    def _on_readable(self) -> None:
        try:
            data = self.sock.recv(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        if not data:
            self.eof = True
            self._pause_reading()
            if self.state is _State.READING:
                self._advance()  # requests already buffered are still answered
            else:
                # LINGERING: done. WAITING: the client went away (or only shut down its
                # side, which an HTTP client waiting for an answer does not do); as
                # supervisord, drop the connection, which cancels the pending answer
                self.close()
            return
        if self.state is _State.LINGERING or self.close_after_write:
            return  # input after an error response is dropped
        self.parser.feed(data)
        limits = self.server.limits
        if self.state is _State.WAITING:
            # keep reading to notice a reset, but do not buffer without bound
            if self.parser.buffered > limits.max_head + limits.max_body:
                self._pause_reading()
            return
        self._advance()

    def _advance(self) -> None:
        """Parse and dispatch buffered requests, one at a time, while we can."""
        if self._advancing:
            return
        self._advancing = True
        try:
            while self.state is _State.READING and not self.close_after_write:
                try:
                    event = self.parser.next_event()
                except HTTPError as exc:
                    self._cancel_timer()
                    self._write_response(_error_response(exc.status, exc.detail), (1, 1))
                    return
                if event is NEED_DATA:
                    break
                if isinstance(event, RequestHead):
                    self.head = event
                    if not self.server.authorized(event):
                        self._cancel_timer()
                        self._write_response(
                            _error_response(401, headers=_UNAUTHORIZED_HEADERS), event.version
                        )
                        return
                    if event.expects_continue and event.content_length > self.parser.buffered:
                        self._send(b"HTTP/1.1 100 Continue\r\n\r\n")
                    continue
                self._cancel_timer()
                self._dispatch(event)
            if self.state is _State.READING and not self.close_after_write:
                if self.eof:
                    self._finish()
                elif self.parser.in_request:
                    self._start_timer()
        finally:
            self._advancing = False

    def _finish(self) -> None:
        """Close once everything written so far has gone out."""
        if self.out:
            self.close_after_write = True
        else:
            self.close()

    def _dispatch(self, request: Request) -> None:
        self.state = _State.WAITING
        responder = Responder(self)
        self.responder = responder
        try:
            self.server.handler(request, responder)
        except Exception:
            log.exception("error handling %s %s", request.method, request.head.target)
            responder.send(_error_response(500))

    # -- timers

    def _start_timer(self) -> None:
        if self.timer is None:
            self.timer = self.loop.call_later(
                self.server.limits.request_timeout, self._guarded(self._timed_out)
            )

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _timed_out(self) -> None:
        self.timer = None
        if self.state is _State.READING and self.parser.in_request:
            self._write_response(_error_response(408), (1, 1))
        elif self.state is _State.LINGERING:
            self.close()

    # -- writing

    def start_stream(self, responder: Responder, stream: Stream, head: Response) -> None:
        """Send the head of a streamed response; the body follows through ``stream``."""
        request = self.head
        if self.state is not _State.WAITING or responder is not self.responder:
            stream.closed = True
            return
        assert request is not None
        self.responder = None
        self.stream = stream
        stream._conn = self
        stream._chunked = request.version >= (1, 1)
        keep = stream._chunked and request.keep_alive and not self.eof
        if not keep:
            stream._chunked = False
        self._send(
            render_response(
                head,
                version=request.version,
                keep_alive=keep,
                head_only=True,
                chunked=stream._chunked,
            )
        )
        if request.method == "HEAD":
            stream._chunked = False  # no body at all, not even the last chunk; then close
            stream.end()

    def send_body(self, data: bytes) -> None:
        if self.state is _State.WAITING and self.stream is not None:
            self._send(data)

    def end_stream(self, stream: Stream, trailer: bytes) -> None:
        if self.stream is not stream or self.state is not _State.WAITING:
            return
        self.stream = None
        self.state = _State.READING
        if trailer:
            self._send(trailer)
        else:
            self.close_after_write = True
            self._flush()
        if self.state is _State.READING and not self.close_after_write:
            self._resume_reading()
            self.loop.call_soon(self._guarded(self._advance))

    def respond(self, responder: Responder, response: Response) -> None:
        """A handler's answer (possibly long after the request)."""
        if self.state is not _State.WAITING or responder is not self.responder:
            return
        self.responder = None
        head = self.head
        assert head is not None
        self.state = _State.READING
        keep = head.keep_alive and not response.close and not self.eof
        self._write_response(
            response, head.version, keep_alive=keep, head_only=head.method == "HEAD"
        )
        if self.state is _State.READING:
            self._resume_reading()
            if not self._advancing:
                self.loop.call_soon(self._guarded(self._advance))

    def _write_response(
        self,
        response: Response,
        version: tuple[int, int],
        *,
        keep_alive: bool = False,
        head_only: bool = False,
    ) -> None:
        if not keep_alive:
            self.close_after_write = True
        data = render_response(
            response, version=version, keep_alive=keep_alive, head_only=head_only
        )
        self._send(data)

    def _send(self, data: bytes) -> None:
        self.out += data
        self._flush()

    def _flush(self) -> None:
        while self.out:
            try:
                n = self.sock.send(self.out)
            except (BlockingIOError, InterruptedError):
                self.loop.add_writer(self.fd, self._guarded(self._flush))
                return
            except OSError:
                self.close()
                return
            del self.out[:n]
        self.loop.remove_writer(self.fd)
        if self.close_after_write and self.state is not _State.CLOSED:
            self._linger()

    def _linger(self) -> None:
        """Shut our side down, drop whatever still arrives, close at EOF or after a moment."""
        self._cancel_timer()
        self.state = _State.LINGERING
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close()
            return
        if self.eof:
            self.close()
            return
        self._resume_reading()
        self.timer = self.loop.call_later(self.server.limits.linger, self._guarded(self.close))

    def close(self) -> None:
        """Close now; a pending deferred response is told the client is gone."""
        if self.state is _State.CLOSED:
            return
        self.state = _State.CLOSED
        self._cancel_timer()
        self._pause_reading()
        self.loop.remove_writer(self.fd)
        self.sock.close()
        self.server.forget(self)
        responder, self.responder = self.responder, None
        if responder is not None:
            responder._connection_lost()
        stream, self.stream = self.stream, None
        if stream is not None:
            stream._connection_lost()

    def shutdown(self) -> None:
        """Server closing: one last attempt to write what is pending, then close."""
        if self.out and self.state is not _State.CLOSED:
            with contextlib.suppress(OSError):
                n = self.sock.send(self.out)
                del self.out[:n]
        self.close()


# --- the server ------------------------------------------------------------------------------


class HTTPServer:
    """Serve ``handler`` on one listening socket, on ``loop``.

    Args:
        loop: vigild's loop.
        sock: a bound, listening socket (see :func:`bind_unix`, :func:`bind_tcp`);
            the server owns it from now on.
        handler: called with each authorized, complete request.
        credentials: require HTTP Basic authentication when given.
        limits: request size limits and timeouts.
        unlink: a unix socket file to remove on :meth:`close` (if it is still ours).
    """

    def __init__(
        self,
        loop: Loop,
        sock: socket.socket,
        handler: Handler,
        *,
        credentials: Credentials | None = None,
        limits: Limits | None = None,
        unlink: str | None = None,
    ) -> None:
        self.loop = loop
        self.sock = sock
        self.handler = handler
        self.credentials = credentials
        self.limits = limits or Limits()
        self.connections: set[_Connection] = set()
        self._unlink = unlink
        self._identity = _identity(unlink) if unlink is not None else None
        self._fd = sock.fileno()
        self._accept_timer: Timer | None = None
        self.closed = False
        sock.setblocking(False)
        loop.add_reader(self._fd, self._on_acceptable)

    @property
    def address(self) -> str | tuple[str, int]:
        """The socket path, or ``(host, port)`` (the real port when bound to port 0)."""
        name = self.sock.getsockname()
        if isinstance(name, tuple):
            return (str(name[0]), int(name[1]))
        return str(name)

    def authorized(self, head: RequestHead) -> bool:
        creds = self.credentials
        return creds is None or creds.authorizes(head.headers.get("authorization"))

    def _on_acceptable(self) -> None:
        for _ in range(64):
            try:
                conn, _addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                # out of descriptors or memory: stop accepting for a moment instead of
                # spinning on a listening socket that stays readable
                log.error("accept() failed: %s", exc)
                self._pause_accepting()
                return
            try:
                conn.setblocking(False)
                if conn.family in (socket.AF_INET, socket.AF_INET6):
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.connections.add(_Connection(self, conn))
            except Exception:
                log.exception("could not set up an HTTP connection")
                conn.close()

    def _pause_accepting(self) -> None:
        self.loop.remove_reader(self._fd)

        def resume() -> None:
            self._accept_timer = None
            if not self.closed:
                self.loop.add_reader(self._fd, self._on_acceptable)

        self._accept_timer = self.loop.call_later(0.5, resume)

    def forget(self, conn: _Connection) -> None:
        self.connections.discard(conn)

    def close(self) -> None:
        """Stop listening, close every connection, remove our unix socket file."""
        if self.closed:
            return
        self.closed = True
        if self._accept_timer is not None:
            self._accept_timer.cancel()
        self.loop.remove_reader(self._fd)
        self.sock.close()
        for conn in list(self.connections):
            conn.shutdown()
        path = self._unlink
        if path is not None and self._identity is not None and _identity(path) == self._identity:
            with contextlib.suppress(OSError):
                os.unlink(path)


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


# --- listening sockets -----------------------------------------------------------------------

_BACKLOG = 1024


def bind_unix(
    path: str, *, chmod: int = 0o700, chown: tuple[int, int] | None = None
) -> socket.socket:
    """A listening unix socket at ``path`` whose mode is right before anyone can connect.

    The socket is bound under umask ``0177`` (so the file starts as ``0600``), then
    chmod-ed to ``chmod`` and chown-ed to ``chown`` (uid, gid; -1 = unchanged), and only
    then does it listen — until ``listen()`` every connection attempt is refused.
    An existing socket file is removed if nothing answers on it; if something does,
    :data:`IN_USE_MESSAGE`.

    Raises:
        BindError: the path is in use, is not a socket, or cannot be bound or prepared.
    """
    _remove_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound = False
    try:
        # umask is process-wide: vigild is single-threaded, and this runs at startup
        old = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        bound = True
        os.chmod(path, chmod)
        if chown is not None:
            try:
                os.chown(path, chown[0], chown[1])
            except PermissionError:
                raise BindError(
                    f"Not permitted to chown {path} to uid/gid {chown!r}; adjust the "
                    '"chown" value in the config file to one the current user can use'
                ) from None
        sock.listen(_BACKLOG)
        sock.setblocking(False)
    except BindError:
        sock.close()
        _unlink_quietly(path)
        raise
    except OSError as exc:
        sock.close()
        if bound:
            _unlink_quietly(path)
        elif exc.errno == errno.EADDRINUSE:
            raise BindError(IN_USE_MESSAGE) from None
        raise BindError(f"Cannot open an HTTP server on {path}: {exc}") from None
    return sock


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _remove_stale(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise BindError(f"Cannot open an HTTP server on {path}: {exc}") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise BindError(f"Cannot open an HTTP server on {path}: it exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        pass  # stale: nobody listens
    except OSError as exc:
        # a full backlog (timeout / EAGAIN) means somebody is listening
        if isinstance(exc, TimeoutError) or exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
            raise BindError(IN_USE_MESSAGE) from None
    else:
        raise BindError(IN_USE_MESSAGE)
    finally:
        probe.close()
    log.warning("Unlinking stale socket %s", path)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise BindError(f"Cannot remove the stale socket {path}: {exc}") from None


def bind_tcp(host: str, port: int) -> socket.socket:
    """A listening TCP socket; ``host`` ``""`` or ``"*"`` means every IPv4 interface.

    Raises:
        BindError: the port is taken (:data:`IN_USE_MESSAGE`), or the address is unusable.
    """
    if host in ("", "*"):
        family, address = socket.AF_INET, ("", port)
    else:
        family, address = _resolve(host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(_BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise BindError(IN_USE_MESSAGE) from None
        raise BindError(f"Cannot open an HTTP server on {host}:{port}: {exc}") from None
    return sock


def _resolve(host: str, port: int) -> tuple[socket.AddressFamily, tuple[str, int]]:
    """IPv4 first, as supervisord (which only speaks AF_INET); IPv6 if that is all there is."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
        except socket.gaierror:
            continue
        if infos:
            sockaddr = infos[0][4]
            return family, (str(sockaddr[0]), int(sockaddr[1]))
    raise BindError(f"Cannot open an HTTP server on {host}:{port}: cannot resolve {host!r}")
