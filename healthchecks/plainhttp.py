"""A lean HTTP/1.1 client for plain ``http://`` checks: one keep-alive connection, stdlib sockets.

Why: ``requests`` costs ~0.5 ms of CPU per probe (session merging, URL re-quoting,
urllib3's pool and ``http.client`` parsing); 1,000 probes a second from one listener
made it the bottleneck. This client sends one pre-built request and parses the
answer with a few byte operations (tens of microseconds).

Contract (what :class:`~healthchecks.http.HttpCheck` relies on):

* :meth:`PlainConnection.exchange` returns ``(status, body)`` or raises
  :class:`HttpFailure` whose ``detail`` is the check's one-line failure text
  (``connection refused``, ``timeout after 1.0s`` …). It never follows redirects.
* :meth:`PlainConnection.start` / :meth:`PlainConnection.advance` do the same
  exchange without blocking, for a selector (:mod:`healthchecks.reactor`), when
  the host is an IP address. Both drivers run one protocol, written once as a
  generator that yields what it waits for (:meth:`PlainConnection._steps`), so
  they cannot disagree; the tests run every case through both.
* ``deadline`` (on the injected clock) bounds everything: connect, sending,
  headers, every body read. A trickling server fails with a timeout.
* At most ``max_body`` bytes of body are kept (``gzip``/``deflate`` bodies are
  decoded first when ``decode`` is set, as ``requests`` does; the request sends no
  ``Accept-Encoding``, so servers seldom encode). The body is always
  read to its end or to ``max_body``, so a slow body counts against the deadline
  whether or not it is matched.
* One connection is kept open between exchanges when the response allows it
  (HTTP/1.1 without ``Connection: close``, or HTTP/1.0 with ``keep-alive``; a
  delimited body read to its end). Before reuse it is tested with a
  non-blocking peek; a connection the server closed meanwhile is replaced. If a
  reused connection fails before the first byte of the answer (the server
  closed it at that very moment), an idempotent request is sent once more on a
  fresh connection. Any error closes the connection.

Not handled here (``HttpCheck`` keeps ``requests`` for them): TLS, proxies, user
info in the URL, request targets that need quoting, header values outside
Latin-1.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import selectors
import socket
import zlib
from collections.abc import Generator, Sequence

from healthchecks.result import Clock

__all__ = ["MAX_HEADER_BYTES", "HttpFailure", "PlainConnection", "build_request"]

#: Status line plus headers, at most (``http.client`` allows 100 headers of 64 KiB each).
MAX_HEADER_BYTES = 64 * 1024
#: Methods that are safe to send again after a stale keep-alive connection (RFC 9110 §9.2.2).
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_RECV = 65536
#: what the protocol generator waits for (see ``PlainConnection._steps``)
_READ, _WRITE = 0, 1
_Steps = Generator[int, bool, tuple[int, bytes, bool]]
NO_RESPONSE = "request failed: Remote end closed connection without response"
STALE_NOT_RETRIED = "connection closed by the server before the answer"


class HttpFailure(Exception):
    """An exchange failed; ``detail`` is the one-line text for the check's result."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class _Stale(Exception):
    """A reused connection failed before any byte of the answer arrived."""


def build_request(method: str, target: str, host: str, headers: Sequence[tuple[str, str]]) -> bytes:
    """The request head, Latin-1 encoded; ``Content-Length: 0`` for methods with a body.

    Raises:
        UnicodeEncodeError: a header or the target is not Latin-1.
        ValueError: a header name or value holds CR, LF, or a name holds ``:``.
    """
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers:
        if any(c in name for c in "\r\n:") or "\r" in value or "\n" in value or not name:
            raise ValueError(f"invalid header {name!r}")
        lines.append(f"{name}: {value}")
    if method not in ("GET", "HEAD", "OPTIONS", "TRACE", "DELETE", "CONNECT"):
        lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class PlainConnection:
    """One keep-alive HTTP/1.1 connection to ``host:port``; not thread-safe (one probe at a time).

    Args:
        host: name or address to connect to (IPv6 without brackets).
        port: TCP port.
        timeout: the check's timeout, only for the ``timeout after …`` text.
        clock: the clock ``deadline`` is measured on.
    """

    def __init__(self, host: str, port: int, *, timeout: float, clock: Clock) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._clock = clock
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._out = b""
        # the non-blocking exchange in progress (start/advance)
        self._pending: tuple[bytes, str, int, bool] = (b"", "GET", 0, False)
        self._deadline = 0.0
        self._reused = False
        self._connecting = False
        self._got = False
        self._want = _WRITE
        self._steps_: _Steps = self._steps(b"", "GET", 0, False)  # replaced by each start()
        #: connections opened, ever (tests and statistics)
        self.connects = 0
        self._literal: tuple[socket.AddressFamily, tuple[str, int]] | None = None
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            self._literal = (family, (host, port))

    @property
    def open(self) -> bool:
        """A connection is held for the next exchange."""
        return self._sock is not None

    def close(self) -> None:
        """Drop the held connection, if any."""
        sock, self._sock = self._sock, None
        self._buf.clear()
        if sock is not None:
            sock.close()

    # -- one exchange, blocking ------------------------------------------------------------

    def exchange(
        self,
        request: bytes,
        *,
        method: str,
        deadline: float,
        max_body: int,
        decode: bool,
    ) -> tuple[int, bytes]:
        """Send ``request`` and read the answer: ``(status, body)``; blocks until done.

        Raises:
            HttpFailure: connect, send or read failed, timed out, or the answer is malformed.
        """
        try:
            reused = self._sock is not None and self._usable()
            if not reused:
                self.close()
                self._connect(deadline)
            try:
                return self._run(self._steps(request, method, max_body, decode), deadline, reused)
            except _Stale:
                self.close()
                if method not in IDEMPOTENT:
                    raise HttpFailure(STALE_NOT_RETRIED) from None
                self._connect(deadline)
                steps = self._steps(request, method, max_body, decode)
                return self._run(steps, deadline, False)
        except Exception as exc:
            self.close()
            raise self._failure(exc) from None

    def _failure(self, exc: Exception) -> HttpFailure:
        """The one-line failure for an exception of an exchange."""
        if isinstance(exc, HttpFailure):
            return exc
        if isinstance(exc, TimeoutError):
            return HttpFailure(f"timeout after {self.timeout}s")
        if isinstance(exc, ConnectionRefusedError):
            return HttpFailure("connection refused")
        if isinstance(exc, ConnectionResetError | BrokenPipeError):
            return HttpFailure("connection reset")
        if isinstance(exc, socket.gaierror):
            return HttpFailure(f"cannot resolve host {self.host!r}: {exc.strerror or exc}")
        if isinstance(exc, OSError):
            return HttpFailure(f"request failed: {exc.strerror or exc}")
        raise exc

    def _run(self, steps: _Steps, deadline: float, reused: bool) -> tuple[int, bytes]:
        """Drive ``steps`` with blocking socket calls bounded by ``deadline``."""
        sock = self._sock
        assert sock is not None
        got = False
        try:
            want = next(steps)
            while True:
                sock.settimeout(self._left(deadline))
                if want == _WRITE:
                    sock.sendall(self._out)
                    self._out = b""
                    want = steps.send(True)
                else:
                    chunk = sock.recv(_RECV)
                    if chunk:
                        got = True
                        self._buf += chunk
                    want = steps.send(bool(chunk))
        except StopIteration as stop:
            status, body, keep = stop.value
            if not keep:
                self.close()
            return status, body
        except (ConnectionResetError, BrokenPipeError):
            if reused and not got:
                raise _Stale from None
            raise
        except _Stale:
            if reused:
                raise
            raise HttpFailure(NO_RESPONSE) from None

    def _usable(self) -> bool:
        """The held connection is still open and silent (a non-blocking peek)."""
        assert self._sock is not None
        try:
            self._sock.settimeout(0.0)  # with a timeout, recv() would first wait for data
            self._sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return False  # EOF, or bytes nobody asked for: either way, not reusable

    def _connect(self, deadline: float) -> None:
        left = self._left(deadline)
        sock = socket.create_connection((self.host, self.port), timeout=left)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._buf.clear()
        self.connects += 1

    def _left(self, deadline: float) -> float:
        left = deadline - self._clock()
        if left <= 0:
            raise TimeoutError
        return left

    # -- one exchange, non-blocking (driven by a selector: healthchecks.reactor) -------------

    @property
    def literal_address(self) -> tuple[socket.AddressFamily, tuple[str, int]] | None:
        """(family, address) when ``host`` is an IP address (no resolving needed), else None."""
        return self._literal

    @property
    def sock(self) -> socket.socket | None:
        """The connection's socket (for a selector), or None."""
        return self._sock

    def start(
        self, request: bytes, *, method: str, deadline: float, max_body: int, decode: bool
    ) -> None:
        """Begin an exchange without blocking; follow with :meth:`advance` when :attr:`sock`
        is ready for :meth:`interest` (or at once). Needs :attr:`literal_address`.

        Raises:
            HttpFailure: the connection could not even be begun.
        """
        self._pending = (request, method, max_body, decode)
        self._deadline = deadline
        try:
            self._reused = self._sock is not None and self._usable()
            if not self._reused:
                self.close()
                self._connect_nonblocking()
            self._begin_steps()
        except Exception as exc:
            self.close()
            raise self._failure(exc) from None

    def _connect_nonblocking(self) -> None:
        where = self.literal_address
        if where is None:
            raise HttpFailure(f"request failed: {self.host!r} is not an IP address")
        family, address = where
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = sock.connect_ex(address)
        except BaseException:
            sock.close()
            raise
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            raise OSError(err, os.strerror(err))
        self._sock = sock
        self._buf.clear()
        self.connects += 1
        self._connecting = err == errno.EINPROGRESS

    def _begin_steps(self) -> None:
        request, method, max_body, decode = self._pending
        self._steps_ = self._steps(request, method, max_body, decode)
        self._got = False
        self._want = _WRITE if self._connecting else next(self._steps_)

    def interest(self) -> int:
        """What :meth:`advance` waits for: ``selectors.EVENT_READ`` or ``EVENT_WRITE``."""
        return selectors.EVENT_WRITE if self._want == _WRITE else selectors.EVENT_READ

    def advance(self) -> tuple[int, bytes] | None:
        """Make what progress the socket allows; ``(status, body)`` when done, else None.

        :attr:`sock` may change (a stale connection is replaced): re-register it.

        Raises:
            HttpFailure: the exchange failed (the connection is closed).
        """
        try:
            return self._advance()
        except _Stale:
            method = self._pending[1]
            self.close()
            if not self._reused:
                raise HttpFailure(NO_RESPONSE) from None
            if method not in IDEMPOTENT:
                raise HttpFailure(STALE_NOT_RETRIED) from None
            try:
                self._reused = False
                self._connect_nonblocking()
                self._begin_steps()
                return self._advance()
            except Exception as exc:
                self.close()
                raise self._failure(exc) from None
        except Exception as exc:
            self.close()
            raise self._failure(exc) from None

    def _advance(self) -> tuple[int, bytes] | None:
        sock = self._sock
        assert sock is not None
        if self._clock() >= self._deadline:
            raise TimeoutError
        if self._connecting:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, os.strerror(err))
            self._connecting = False
            self._want = next(self._steps_)
        try:
            while True:
                if self._want == _WRITE:
                    sent = sock.send(self._out)
                    self._out = self._out[sent:]
                    if self._out:
                        return None
                    self._want = self._steps_.send(True)
                else:
                    chunk = sock.recv(_RECV)
                    if chunk:
                        self._got = True
                        self._buf += chunk
                    self._want = self._steps_.send(bool(chunk))
        except BlockingIOError:
            return None
        except StopIteration as stop:
            status, body, keep = stop.value
            if not keep:
                self.close()
            return status, body
        except (ConnectionResetError, BrokenPipeError):
            if self._reused and not self._got:
                raise _Stale from None
            raise

    # -- the protocol, as a generator of what it waits for --------------------------------

    def _steps(self, request: bytes, method: str, max_body: int, decode: bool) -> _Steps:
        """Send ``request``, read the answer: returns ``(status, body, keep the connection)``.

        Yields :data:`_WRITE` (resumed when ``self._out`` is sent) or :data:`_READ`
        (resumed with ``True`` when bytes were added to ``self._buf``, ``False`` at EOF).
        """
        self._out = request
        yield _WRITE
        version, status, headers = yield from self._read_head()
        body, complete = yield from self._read_body(method, status, headers, max_body)
        if decode:
            body = _decode(body, headers.get(b"content-encoding", b""), max_body)
        connection = headers.get(b"connection", b"").lower()
        keep = complete and not self._buf
        if version == b"HTTP/1.0":
            keep = keep and b"keep-alive" in connection
        else:
            keep = keep and b"close" not in connection
        return status, body, keep

    def _read_head(self) -> Generator[int, bool, tuple[bytes, int, dict[bytes, bytes]]]:
        """Status line and headers (names lower-cased); informational 1xx answers skipped."""
        while True:
            end = self._buf.find(b"\r\n\r\n")
            while end < 0:
                if len(self._buf) > MAX_HEADER_BYTES:
                    raise HttpFailure("request failed: response headers too long")
                had = len(self._buf)
                if not (yield _READ):
                    if had == 0:
                        raise _Stale
                    raise HttpFailure("request failed: connection closed in the response headers")
                end = self._buf.find(b"\r\n\r\n", max(0, had - 3))
            head = bytes(self._buf[:end])
            del self._buf[: end + 4]
            lines = head.split(b"\r\n")
            parts = lines[0].split(None, 2)
            if (
                len(parts) < 2
                or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0")
                or len(parts[1]) != 3
                or not parts[1].isdigit()
            ):
                raise HttpFailure(f"request failed: bad status line {lines[0][:100]!r}")
            status = int(parts[1])
            headers: dict[bytes, bytes] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(b":")
                if not sep:
                    raise HttpFailure(f"request failed: bad header line {line[:100]!r}")
                key = name.strip().lower()
                value = value.strip()
                if key in headers:
                    if key == b"content-length" and headers[key] != value:
                        raise HttpFailure("request failed: conflicting Content-Length")
                    headers[key] = headers[key] + b", " + value
                else:
                    headers[key] = value
            if 100 <= status < 200 and status != 101:
                continue  # 100 Continue, 103 Early Hints: the real answer follows
            return parts[0], status, headers

    def _read_body(
        self, method: str, status: int, headers: dict[bytes, bytes], max_body: int
    ) -> Generator[int, bool, tuple[bytes, bool]]:
        """The body (at most ``max_body`` bytes) and whether it was read to its end."""
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return b"", status != 101
        coding = headers.get(b"transfer-encoding")
        if coding is not None and coding.lower().rsplit(b",", 1)[-1].strip() == b"chunked":
            return (yield from self._read_chunked(max_body))
        length = headers.get(b"content-length")
        if length is not None and coding is None:
            if not length.isdigit():
                raise HttpFailure(f"request failed: bad Content-Length {length[:40]!r}")
            n = int(length)
            want = min(n, max_body)
            while len(self._buf) < want:
                if not (yield _READ):
                    raise HttpFailure("request failed: connection closed in the response body")
            body = bytes(self._buf[:want])
            del self._buf[:want]
            return body, want == n
        # neither: the body ends when the server closes the connection
        while len(self._buf) < max_body and (yield _READ):
            pass
        body = bytes(self._buf[:max_body])
        self._buf.clear()
        return body, False

    def _read_chunked(self, max_body: int) -> Generator[int, bool, tuple[bytes, bool]]:
        body = bytearray()
        while True:
            end = self._buf.find(b"\r\n")
            while end < 0:
                if len(self._buf) > 4096 or not (yield _READ):
                    raise HttpFailure("request failed: bad chunked body")
                end = self._buf.find(b"\r\n")
            size_text = bytes(self._buf[:end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise HttpFailure(f"request failed: bad chunk size {size_text[:40]!r}") from None
            del self._buf[: end + 2]
            if size == 0:
                # trailers, then an empty line
                while True:
                    end = self._buf.find(b"\r\n")
                    while end < 0:
                        if len(self._buf) > MAX_HEADER_BYTES or not (yield _READ):
                            raise HttpFailure("request failed: bad chunked body")
                        end = self._buf.find(b"\r\n")
                    line = bytes(self._buf[:end])
                    del self._buf[: end + 2]
                    if not line:
                        return bytes(body), True
            take = min(size, max_body - len(body))
            while len(self._buf) < take:
                if not (yield _READ):
                    raise HttpFailure("request failed: connection closed in the response body")
            body += self._buf[:take]
            del self._buf[:take]
            if len(body) >= max_body:
                return bytes(body), False
            while len(self._buf) < 2:
                if not (yield _READ):
                    raise HttpFailure("request failed: connection closed in the response body")
            if self._buf[:2] != b"\r\n":
                raise HttpFailure("request failed: bad chunked body")
            del self._buf[:2]


def _decode(body: bytes, coding: bytes, max_body: int) -> bytes:
    """``body`` decoded per ``Content-Encoding`` (gzip, deflate), at most ``max_body`` bytes;
    other codings are left as they are.

    Raises:
        HttpFailure: a corrupt gzip or deflate body.
    """
    coding = coding.strip().lower()
    if coding in (b"", b"identity"):
        return body
    if coding in (b"gzip", b"x-gzip", b"deflate"):
        # gzip: wbits 16+15; deflate: zlib-wrapped (15) or, as some servers send, raw (-15)
        for wbits in (31,) if coding != b"deflate" else (15, -15):
            try:
                return zlib.decompressobj(wbits).decompress(body, max_body)
            except zlib.error:
                continue
        raise HttpFailure(f"request failed: cannot decode a {coding.decode()} body")
    return body  # as urllib3 does with a coding it does not know (br without brotli, zstd…)
