"""One HTTP client connection on vigild's selector :class:`~manager.loop.Loop`.

Theory of operation
-------------------
Everything runs on the loop's one thread; nothing here blocks. :class:`Connection`
drives a sans-I/O :class:`~manager.httpproto.RequestParser` from a non-blocking
socket owned by a :class:`ConnectionOwner` (an :class:`~manager.httpserver.HTTPServer`):

* It reads whenever its socket is readable, parses one request at a time
  (pipelined requests wait in the buffer), checks the head with the owner's
  ``authorized`` (``401`` and close if not; ``100 Continue`` if the client expects
  it), hands the complete request to the handler with a :class:`Responder`, and
  writes the response through a buffer flushed with ``add_writer``. The handler may
  call :meth:`Responder.send` at once or later (a deferred response), or answer
  with a :class:`Stream` written over time; meanwhile the loop keeps serving
  everything else.
* States: ``READING`` (waiting for a request) → ``WAITING`` (the handler has it)
  → ``READING`` again once the response is written; ``LINGERING`` after a
  response that closes the connection; ``CLOSED``. The legal moves are the table
  :data:`~manager.httpproto.CONNECTION_TRANSITIONS`; :meth:`Connection._to` is the one
  writer of ``state``. An illegal move is a bug: logged, it closes that connection only.
* A connection that must close after an error response is closed "lingering":
  the write side is shut down and whatever the client still sends is read and
  dropped for a moment, so the client reads our response instead of a reset.
* A request that does not arrive completely within
  :attr:`~manager.httpproto.Limits.request_timeout` seconds is answered ``408``;
  an idle keep-alive connection has no timer.
* When the client goes away before the answer, the pending :class:`Responder`
  or :class:`Stream` runs its ``on_close`` callbacks.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Iterator
from typing import Protocol

from manager.httpauth import UNAUTHORIZED_HEADERS
from manager.httpproto import (
    NEED_DATA,
    ConnectionState,
    HTTPError,
    IllegalConnectionTransition,
    Limits,
    Request,
    RequestHead,
    RequestParser,
    Response,
    check_connection_transition,
    error_response,
    render_response,
)
from manager.loop import Loop, Timer

__all__ = ["Connection", "ConnectionOwner", "Handler", "Responder", "Stream"]

log = logging.getLogger("vigild.http")


# --- responding ------------------------------------------------------------------------------


class Responder:
    """How a handler answers one request, now or later.

    :meth:`send` must be called exactly once; later calls, and calls after the
    client has gone away, are ignored. Use :meth:`on_close` to stop waiting for
    something when the client disconnects first.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn: Connection | None = conn
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
        self._conn: Connection | None = None
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


class ConnectionOwner(Protocol):
    """What a :class:`Connection` needs from its server."""

    @property
    def loop(self) -> Loop: ...

    @property
    def limits(self) -> Limits: ...

    @property
    def handler(self) -> Handler: ...

    def authorized(self, head: RequestHead) -> bool:
        """Whether the request with this head may be served."""

    def forget(self, conn: Connection) -> None:
        """``conn`` has closed; drop it."""


# --- connections -----------------------------------------------------------------------------

_READ_SIZE = 65536


class Connection:
    """One accepted client socket, served until it closes; ``server`` is told by ``forget``."""

    def __init__(self, server: ConnectionOwner, sock: socket.socket) -> None:
        self.server = server
        self.loop = server.loop
        self.sock = sock
        self.fd = sock.fileno()
        self.parser = RequestParser(server.limits)
        #: where the connection is; written only by :meth:`_to` after this
        self.state = ConnectionState.READING
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

    # -- state

    def _to(self, new: ConnectionState) -> None:
        """The one writer of ``state``; raises IllegalConnectionTransition if not in the table."""
        check_connection_transition(self.state, new)
        self.state = new

    @contextlib.contextmanager
    def _contained(self) -> Iterator[None]:
        """Around handlers' calls that move the state (loop callbacks are ``_guarded``)."""
        try:
            yield
        except IllegalConnectionTransition:
            log.exception("HTTP connection state error (fd %d); closing it", self.fd)
            self.close()

    # -- reading

    def _resume_reading(self) -> None:
        if not self.reading and not self.eof and self.state is not ConnectionState.CLOSED:
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
            if self.state is ConnectionState.READING:
                self._advance()  # requests already buffered are still answered
            else:
                # LINGERING: done. WAITING: the client went away (or only shut down its
                # side, which an HTTP client waiting for an answer does not do); as
                # supervisord, drop the connection, which cancels the pending answer
                self.close()
            return
        if self.state is ConnectionState.LINGERING or self.close_after_write:
            return  # input after an error response is dropped
        self.parser.feed(data)
        limits = self.server.limits
        if self.state is ConnectionState.WAITING:
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
            while self.state is ConnectionState.READING and not self.close_after_write:
                try:
                    event = self.parser.next_event()
                except HTTPError as exc:
                    self._cancel_timer()
                    self._write_response(error_response(exc.status, exc.detail), (1, 1))
                    return
                if event is NEED_DATA:
                    break
                if isinstance(event, RequestHead):
                    self.head = event
                    if not self.server.authorized(event):
                        self._cancel_timer()
                        self._write_response(
                            error_response(401, headers=UNAUTHORIZED_HEADERS), event.version
                        )
                        return
                    if event.expects_continue and event.content_length > self.parser.buffered:
                        self._send(b"HTTP/1.1 100 Continue\r\n\r\n")
                    continue
                self._cancel_timer()
                self._dispatch(event)
            if self.state is ConnectionState.READING and not self.close_after_write:
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
        self._to(ConnectionState.WAITING)
        responder = Responder(self)
        self.responder = responder
        try:
            self.server.handler(request, responder)
        except Exception:
            log.exception("error handling %s %s", request.method, request.head.target)
            responder.send(error_response(500))

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
        if self.state is ConnectionState.READING and self.parser.in_request:
            self._write_response(error_response(408), (1, 1))
        elif self.state is ConnectionState.LINGERING:
            self.close()

    # -- writing

    def start_stream(self, responder: Responder, stream: Stream, head: Response) -> None:
        """Send the head of a streamed response; the body follows through ``stream``."""
        request = self.head
        if self.state is not ConnectionState.WAITING or responder is not self.responder:
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
        if self.state is ConnectionState.WAITING and self.stream is not None:
            self._send(data)

    def end_stream(self, stream: Stream, trailer: bytes) -> None:
        with self._contained():
            if self.stream is not stream:  # only set while WAITING; _to checks that
                return
            self.stream = None
            self._to(ConnectionState.READING)
            if trailer:
                self._send(trailer)
            else:
                self.close_after_write = True
                self._flush()
            if self.state is ConnectionState.READING and not self.close_after_write:
                self._resume_reading()
                self.loop.call_soon(self._guarded(self._advance))

    def respond(self, responder: Responder, response: Response) -> None:
        """A handler's answer (possibly long after the request)."""
        with self._contained():
            if responder is not self.responder:  # only set while WAITING; _to checks that
                return
            self.responder = None
            head = self.head
            assert head is not None
            self._to(ConnectionState.READING)
            keep = head.keep_alive and not response.close and not self.eof
            self._write_response(
                response, head.version, keep_alive=keep, head_only=head.method == "HEAD"
            )
            if self.state is ConnectionState.READING:
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
        if self.close_after_write and self.state is not ConnectionState.CLOSED:
            self._linger()

    def _linger(self) -> None:
        """Shut our side down, drop whatever still arrives, close at EOF or after a moment."""
        self._cancel_timer()
        self._to(ConnectionState.LINGERING)
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
        if self.state is ConnectionState.CLOSED:
            return
        self._to(ConnectionState.CLOSED)
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
        if self.out and self.state is not ConnectionState.CLOSED:
            with contextlib.suppress(OSError):
                n = self.sock.send(self.out)
                del self.out[:n]
        self.close()
