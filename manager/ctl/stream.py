"""Following a log over HTTP: ``GET /logtail/<name>/<channel>`` or ``GET /mainlogtail``.

Theory of operation
-------------------
supervisord (and vigild) answer ``GET /logtail/<namespec>/<stdout|stderr>`` and
``GET /mainlogtail`` with the last 1024 bytes of that log and then, for as long as the
client stays, whatever is appended to it; a log that is replaced (cleared, rotated) is
followed again from its start. A :class:`LogStream` makes one such request over the
server's unix socket or TCP port, with the same HTTP Basic credentials as the XML-RPC
calls, and hands the body to ``write`` as text as it arrives (chunked, sized or ending
with the connection: :class:`http.client.HTTPResponse` reads all three). Text is decoded
as UTF-8 across reads, so a character split between two reads is not mangled; bytes
that are not UTF-8 become U+FFFD. (supervisorctl decodes each read on its own and
prints ``Undecodable: b'...'`` for one that fails.)

:meth:`LogStream.run` blocks until the stream ends. ``tail -f`` and ``maintail -f`` call
it in the main thread, where Ctrl-C interrupts it; ``fg`` runs two in threads of their
own and ends them with :meth:`LogStream.close` (from any thread), which shuts the socket
down and so wakes the blocked read. Only :meth:`~LogStream.run` closes the socket, so a
file descriptor is never closed under a thread still reading it.

How a stream ends is what supervisorctl's asyncore client (``supervisor.http_client``)
makes of it; what that client writes to stderr, ``error`` receives after the same
``<url><path> `` prefix:

* the server ends the body, or hangs up (it is going away; the connection is reset):
  nothing, the stream is over;
* an answer other than 200: ``Cannot read, status code <n>`` (404: no such process or
  no such log file; 401: the credentials were refused);
* anything else that goes wrong, writing included (a closed stdout):
  ``Cannot connect, error: <class 'X'> (<message>)``, supervisorctl's rendering of the
  exception;
* a connection that cannot be made: the same ``Cannot connect`` line, except that
  supervisorctl *raises* the failures its non-blocking ``connect`` meets at once (every
  unix socket failure; a TCP host name that does not resolve): ``run(raise_immediate=True)``
  raises those (see :func:`fails_at_once`).

One deliberate difference: the credentials are sent whenever a username or a password
is set, as the XML-RPC client sends them; supervisorctl's client sends none when the
password is empty, so a server whose password is empty answers its stream with 401.
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import errno
import http.client
import socket
import threading
import urllib.parse
from collections.abc import Callable

from manager.rpcclient import ServerURL

__all__ = ["LogStream", "describe", "fails_at_once"]

#: bytes asked for per read; a read returns as soon as any data is there
READ_SIZE = 65536
#: socket errors meaning "the peer is gone", which end a stream quietly (asyncore's list)
DISCONNECTED = frozenset(
    {
        errno.ECONNRESET,
        errno.ENOTCONN,
        errno.ESHUTDOWN,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.EBADF,
    }
)


class LogStream:
    """One ``GET <path>`` to the server at ``target``, its body copied to ``write``.

    Args:
        target: where the server listens (see :func:`manager.rpcclient.parse_server_url`).
        path: the request path, e.g. ``/logtail/web/stdout`` (quoted when sent).
        url: the server URL as the user gave it; messages start with ``<url><path>``.
        username, password: HTTP Basic credentials, sent when either is set (as the
            XML-RPC client does).
        write: receives the body as text, piece by piece as it arrives; what it raises
            (``OSError``, ``ValueError``) ends the stream with a ``Cannot connect`` line.
        error: receives a one-line message (without newline) when the stream fails.
        timeout: seconds allowed for connecting; the stream itself may idle forever.
    """

    def __init__(
        self,
        target: ServerURL,
        path: str,
        *,
        url: str,
        username: str | None,
        password: str | None,
        write: Callable[[str], None],
        error: Callable[[str], None],
        timeout: float,
    ) -> None:
        self.target = target
        self.path = path
        self.url = url + path
        self._credentials = (username, password)
        self._write = write
        self._error = error
        self._timeout = timeout
        self._lock = threading.Lock()
        self._closed = False
        self._sock: socket.socket | None = None

    def close(self) -> None:
        """End the stream (now, or as soon as it connects); safe from any thread."""
        with self._lock:
            self._closed = True
            if self._sock is not None:
                with contextlib.suppress(OSError):  # not connected: run() is ending anyway
                    self._sock.shutdown(socket.SHUT_RDWR)

    def run(self, *, raise_immediate: bool = False) -> None:
        """Connect, request, and copy the body until the server or :meth:`close` ends it.

        Args:
            raise_immediate: raise the connect failures supervisorctl raises (see
                :func:`fails_at_once`) instead of reporting them through ``error``.

        Raises:
            OSError: only with ``raise_immediate``: the connection could not be made.
        """
        try:
            sock = self._connect()
        except OSError as exc:
            if raise_immediate and fails_at_once(self.target, exc):
                raise
            self._fail(f"Cannot connect, error: {describe(exc)}")
            return
        try:
            with self._lock:
                if self._closed:
                    return
                self._sock = sock
            self._copy(sock)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            self._fail(f"Cannot connect, error: {describe(exc)}")
        finally:
            with self._lock:
                self._sock = None
            sock.close()

    def _copy(self, sock: socket.socket) -> None:
        """Send the request and copy the body to ``write`` until the server ends it.

        Raises:
            OSError, http.client.HTTPException: from the socket (a hang-up excepted).
            Exception: whatever ``write`` raises.
        """
        try:
            sock.sendall(self._request())
            response = http.client.HTTPResponse(sock, method="GET")
            response.begin()
        except (OSError, http.client.HTTPException) as exc:
            if _hung_up(exc):
                return
            raise
        if response.status != 200:
            self._fail(f"Cannot read, status code {response.status}")
            return
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        while True:
            try:
                data = response.read1(READ_SIZE)
            except (OSError, http.client.HTTPException) as exc:
                if not _hung_up(exc):
                    raise
                data = b""
            text = decoder.decode(data, final=not data)
            if text:
                self._write(text)
            if not data:
                return

    def _fail(self, message: str) -> None:
        with self._lock:
            if self._closed:  # an error caused by close() is no error
                return
        self._error(f"{self.url} {message}")

    def _connect(self) -> socket.socket:
        target = self.target
        if target.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(self._timeout)
                sock.connect(target.host)
            except BaseException:
                sock.close()
                raise
        else:
            assert target.port is not None
            sock = socket.create_connection((target.host, target.port), self._timeout)
        sock.settimeout(None)  # a log may stay quiet for hours
        return sock

    def _request(self) -> bytes:
        target = self.target
        host = "localhost" if target.scheme == "unix" else f"{target.host}:{target.port}"
        lines = [
            f"GET {urllib.parse.quote(self.path)} HTTP/1.1",
            f"Host: {host}",
            "Accept: */*",
            "User-Agent: vigilctl",
        ]
        username, password = self._credentials
        if username is not None or password is not None:
            token = f"{username or ''}:{password or ''}".encode()
            lines.append("Authorization: Basic " + base64.b64encode(token).decode())
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def fails_at_once(target: ServerURL, exc: OSError) -> bool:
    """Whether supervisorctl's client raises this connect failure rather than reporting it.

    Its ``connect`` is asyncore's non-blocking one: a failure it meets at once is raised
    (supervisorctl prints an ``error:`` line and exits 1), one that comes after the
    connection was under way is reported (``Cannot connect, error: ...`` on stderr, exit
    0). A unix socket connects or fails at once; a TCP connection is under way until it
    is refused or times out, while a host name that does not resolve or an unreachable
    network fails at once.
    """
    if target.scheme == "unix":
        return True
    return not isinstance(exc, (ConnectionRefusedError, TimeoutError))


def describe(exc: BaseException) -> str:
    """An exception as supervisorctl's client renders it: ``<class 'X'> (message)``."""
    return f"{type(exc)} ({exc})"


def _hung_up(exc: BaseException) -> bool:
    """Whether ``exc`` only means the server closed the connection (it is going away)."""
    if isinstance(exc, (http.client.IncompleteRead, http.client.RemoteDisconnected)):
        return True
    return isinstance(exc, OSError) and exc.errno in DISCONNECTED
