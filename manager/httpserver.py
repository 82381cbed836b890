"""vigild's HTTP/1.0 + HTTP/1.1 server on the selector :class:`~manager.loop.Loop`.

Theory of operation
-------------------
Everything runs on the loop's one thread; there is no thread per request and no
blocking call after :func:`~manager.httpbind.bind_unix` /
:func:`~manager.httpbind.bind_tcp` return. The HTTP side is five small modules:

* :mod:`manager.httpproto`: sans-I/O requests and responses (the parser, limits,
  :class:`~manager.httpproto.HTTPError`, rendering).
* :mod:`manager.httpauth`: HTTP Basic :class:`~manager.httpauth.Credentials`.
* :mod:`manager.httpbind`: creating the listening sockets, stale socket files.
* :mod:`manager.httpconn`: one client connection (its I/O state machine) and the
  :class:`~manager.httpconn.Responder` / :class:`~manager.httpconn.Stream` a
  handler answers through.
* this module: :class:`HTTPServer`, which owns one non-blocking listening socket,
  accepts clients into :class:`~manager.httpconn.Connection` objects, decides
  whether a request is authorized, and closes everything (and removes its unix
  socket file, if that file is still its own) on :meth:`HTTPServer.close`.

When credentials are configured, every request — whatever its path — must carry
HTTP Basic credentials that match, compared in constant time, or it is answered
``401`` with ``WWW-Authenticate: Basic realm="default"`` and ``Connection: close``
(supervisord's medusa ``auth_handler``).

The names :mod:`manager.rpcserver` imports from here are re-exported from the
modules that define them.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket

from manager.httpauth import Credentials
from manager.httpbind import BindError, bind_tcp, bind_unix, file_identity
from manager.httpconn import Connection, Handler, Responder, Stream
from manager.httpproto import Limits, Request, RequestHead, Response
from manager.loop import Loop, Timer

# HTTPServer, and the names manager.rpcserver imports from here (defined in the modules above)
__all__ = [
    "BindError",
    "Credentials",
    "HTTPServer",
    "Limits",
    "Request",
    "Responder",
    "Response",
    "Stream",
    "bind_tcp",
    "bind_unix",
]

log = logging.getLogger("vigild.http")


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
        self.connections: set[Connection] = set()
        self._unlink = unlink
        self._identity = file_identity(unlink) if unlink is not None else None
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
                self.connections.add(Connection(self, conn))
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

    def forget(self, conn: Connection) -> None:
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
        path, identity = self._unlink, self._identity
        if path is not None and identity is not None and file_identity(path) == identity:
            with contextlib.suppress(OSError):
                os.unlink(path)
