"""Following a log over HTTP: ``GET /logtail/<name>/<channel>``, as supervisorctl's ``fg``.

Theory of operation
-------------------
supervisord (and vigild) answer ``GET /logtail/<namespec>/<stdout|stderr>`` with the
last 1024 bytes of that log and then, for as long as the client stays, whatever is
appended to it. A :class:`LogStream` makes one such request over the server's unix
socket or TCP port, with the same HTTP Basic credentials as the XML-RPC calls, and
hands the body to ``write`` as text as it arrives (chunked, sized or ending with the
connection: :class:`http.client.HTTPResponse` reads all three). Text is decoded as
UTF-8 across reads, so a character split between two reads is not mangled; bytes that
are not UTF-8 become U+FFFD. (supervisorctl decodes each read on its own and prints
``Undecodable: b'...'`` for one that fails.)

:meth:`LogStream.run` blocks, so it runs in a thread of its own; :meth:`LogStream.close`
(from any thread) ends it by shutting the socket down, which wakes the blocked read.
Only :meth:`~LogStream.run` closes the socket, so a file descriptor is never closed
under a thread still reading it.

What supervisorctl's HTTP client writes to stderr when a stream fails, vigilctl's
writes through ``error`` after the same ``<url> `` prefix: ``Cannot read, status code
404`` (no such process or no such log file), ``Cannot read, status code 401`` (bad
credentials), ``Cannot connect, error: <why>``. A stream the server ends is no error.
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import http.client
import socket
import threading
import urllib.parse
from collections.abc import Callable

from manager.rpcclient import ServerURL

__all__ = ["LogStream"]

#: bytes asked for per read; a read returns as soon as any data is there
READ_SIZE = 65536


class LogStream:
    """One ``GET <path>`` to the server at ``target``, its body copied to ``write``.

    Args:
        target: where the server listens (see :func:`manager.rpcclient.parse_server_url`).
        path: the request path, e.g. ``/logtail/web/stdout`` (quoted when sent).
        url: the server URL as the user gave it; messages start with ``<url><path>``.
        username, password: HTTP Basic credentials, sent when either is set (as the
            XML-RPC client does).
        write: receives the body as text, piece by piece as it arrives.
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

    def run(self) -> None:
        """Connect, request, and copy the body until the server or :meth:`close` ends it."""
        try:
            sock = self._connect()
        except OSError as exc:
            self._fail(f"Cannot connect, error: {_reason(exc)}")
            return
        try:
            with self._lock:
                if self._closed:
                    return
                self._sock = sock
            sock.sendall(self._request())
            response = http.client.HTTPResponse(sock, method="GET")
            response.begin()
            if response.status != 200:
                self._fail(f"Cannot read, status code {response.status}")
                return
            decoder = codecs.getincrementaldecoder("utf-8")("replace")
            while data := response.read1(READ_SIZE):
                text = decoder.decode(data)
                if text:
                    self._write(text)
        except http.client.IncompleteRead:
            pass  # the server hung up mid-chunk (it is going away): the stream is over
        except (OSError, http.client.HTTPException) as exc:
            self._fail(f"Cannot read, error: {_reason(exc)}")
        finally:
            with self._lock:
                self._sock = None
            sock.close()

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


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
