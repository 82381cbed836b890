"""The HTTP server: the sans-I/O parser byte by byte, then real sockets against a real Loop.

The socket tests run the loop in a background thread (``Served``) and talk to it with
blocking client sockets from the test thread; everything the server does still happens
on the loop's one thread.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import http.client
import os
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from manager.httpserver import (
    IN_USE_MESSAGE,
    NEED_DATA,
    BindError,
    Credentials,
    HTTPError,
    HTTPServer,
    Limits,
    Request,
    RequestHead,
    RequestParser,
    Responder,
    Response,
    bind_tcp,
    bind_unix,
)
from manager.loop import Loop

# --- the parser, no sockets ------------------------------------------------------------------

POST = (
    b"POST /RPC2 HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\n"
    b"Content-Length: 5\r\n\r\nhello"
)


def events(parser: RequestParser) -> list[RequestHead | Request]:
    out: list[RequestHead | Request] = []
    while True:
        event = parser.next_event()
        if event is NEED_DATA:
            return out
        out.append(event)


def test_parser_gives_the_head_then_the_whole_request() -> None:
    parser = RequestParser()
    parser.feed(POST)
    head, request = events(parser)
    assert isinstance(head, RequestHead) and isinstance(request, Request)
    assert head.method == "POST" and head.target == "/RPC2" and head.version == (1, 1)
    assert head.headers["content-type"] == "text/xml"
    assert request.body == b"hello"
    assert head.keep_alive


def test_parser_fed_one_byte_at_a_time_needs_data_until_the_last_byte() -> None:
    parser = RequestParser()
    seen: list[RequestHead | Request] = []
    for i in range(len(POST)):
        parser.feed(POST[i : i + 1])
        got = events(parser)
        seen += got
        if i < len(POST) - 1:
            assert not any(isinstance(e, Request) for e in got), i
    assert [type(e) for e in seen] == [RequestHead, Request]
    assert seen[1].body == b"hello"  # type: ignore[union-attr]
    # the head was complete exactly at the blank line
    parser2 = RequestParser()
    head_end = POST.index(b"\r\n\r\n") + 4
    parser2.feed(POST[: head_end - 1])
    assert parser2.next_event() is NEED_DATA
    parser2.feed(POST[head_end - 1 : head_end])
    assert isinstance(parser2.next_event(), RequestHead)


def test_parser_handles_pipelined_requests_lf_endings_and_blank_lines_between() -> None:
    parser = RequestParser()
    parser.feed(POST + b"\r\n\nGET /a?x=1 HTTP/1.0\nConnection: keep-alive\n\n" + POST)
    got = events(parser)
    assert [type(e).__name__ for e in got] == ["RequestHead", "Request"] * 3
    second = got[2]
    assert isinstance(second, RequestHead)
    assert second.path == "/a" and second.version == (1, 0) and second.keep_alive
    assert not parser.in_request


def test_parser_keep_alive_rules() -> None:
    def head(version: str, connection: str | None) -> RequestHead:
        parser = RequestParser()
        extra = f"Connection: {connection}\r\n" if connection else ""
        parser.feed(f"GET / HTTP/{version}\r\n{extra}\r\n".encode())
        event = parser.next_event()
        assert isinstance(event, RequestHead)
        return event

    assert head("1.1", None).keep_alive
    assert not head("1.1", "close").keep_alive
    assert not head("1.0", None).keep_alive
    assert head("1.0", "Keep-Alive").keep_alive


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1 extra\r\n\r\n", 400),
        (b"GET / FTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nA: b\x00c\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\n\r\n", 411),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 2097153\r\n\r\n", 413),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nA: " + b"b" * 9000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"A: bbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n" * 3000, 431),
    ],
)
def test_parser_rejects_malformed_and_oversized_requests(data: bytes, status: int) -> None:
    parser = RequestParser()
    parser.feed(data)
    with pytest.raises(HTTPError) as info:
        events(parser)
    assert info.value.status == status


def test_parser_accepts_a_body_of_exactly_the_limit() -> None:
    parser = RequestParser(Limits(max_body=10))
    parser.feed(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789")
    assert [type(e) for e in events(parser)] == [RequestHead, Request]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400), st.integers(min_value=1, max_value=50))
def test_parser_never_fails_except_with_httperror(data: bytes, chunk: int) -> None:
    parser = RequestParser(Limits(max_line=64, max_head=256, max_body=128))
    with contextlib.suppress(HTTPError):
        for i in range(0, len(data), chunk):
            parser.feed(data[i : i + chunk])
            events(parser)


# --- credentials -----------------------------------------------------------------------------


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_credentials_plain_and_sha() -> None:
    plain = Credentials("user", "thepassword")
    assert plain.check("user", "thepassword")
    assert not plain.check("user", "wrong")
    assert not plain.check("other", "thepassword")
    sha = Credentials("user", "{SHA}82ab876d1387bfafe46cc1c8a2ef074eae50cb1d")
    assert sha.check("user", "thepassword")
    assert not sha.check("user", "{SHA}82ab876d1387bfafe46cc1c8a2ef074eae50cb1d")
    assert sha.authorizes(basic("user", "thepassword"))
    assert not sha.authorizes(None)
    assert not sha.authorizes("Basic !!!notbase64")
    assert not sha.authorizes("Digest abc")
    assert not sha.authorizes("Basic " + base64.b64encode(b"nocolon").decode())
    assert plain.authorizes(basic("user", "thepassword"))


# --- a server on a real loop -----------------------------------------------------------------


def echo(request: Request, responder: Responder) -> None:
    """Answers every request with its method, path and body; /later answers after 0.2 s."""
    text = f"{request.method} {request.path} {request.body.decode(errors='replace')}"
    response = Response(200, text.encode())
    if request.path == "/later":
        loop: Loop = echo.loop  # type: ignore[attr-defined]
        loop.call_later(0.2, lambda: responder.send(response))
        responder.on_close(lambda: CLOSED.append(request.path))
    elif request.path == "/never":
        responder.on_close(lambda: CLOSED.append(request.path))
    elif request.path == "/boom":
        raise RuntimeError("handler bug")
    elif request.path == "/stream":
        loop = echo.loop  # type: ignore[attr-defined]
        stream = responder.stream()
        stream.write(b"first ")

        def finish() -> None:
            stream.write(b"second")
            stream.end()

        loop.call_later(0.1, finish)
    elif request.path == "/forever":
        stream = responder.stream()
        stream.write(b"tick")
        stream.on_close(lambda: CLOSED.append(request.path))
    else:
        responder.send(response)


CLOSED: list[str] = []


@dataclass
class Served:
    """A server whose loop runs in a background thread until :meth:`stop`."""

    loop: Loop
    server: HTTPServer
    thread: threading.Thread | None = None
    stopping: bool = False
    errors: list[BaseException] = field(default_factory=list)

    def start(self) -> Served:
        def run() -> None:
            try:
                while not self.stopping:
                    self.loop.run_once(0.02)
            except BaseException as exc:  # surfaced in stop()
                self.errors.append(exc)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping = True
        if self.thread is not None:
            self.thread.join(5)
        self.server.close()
        self.loop.close()
        if self.errors:
            raise self.errors[0]

    @property
    def port(self) -> int:
        address = self.server.address
        assert isinstance(address, tuple)
        return address[1]

    def connect(self) -> socket.socket:
        address = self.server.address
        if isinstance(address, tuple):
            return socket.create_connection(address, timeout=5)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(address)
        return s

    def http(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    started: list[Served] = []
    CLOSED.clear()

    def factory(credentials: Credentials | None = None, limits: Limits | None = None) -> Served:
        loop = Loop()
        echo.loop = loop  # type: ignore[attr-defined]
        server = HTTPServer(
            loop, bind_tcp("127.0.0.1", 0), echo, credentials=credentials, limits=limits
        )
        served = Served(loop, server).start()
        started.append(served)
        return served

    yield factory
    for served in started:
        served.stop()


def exchange(s: socket.socket, data: bytes) -> bytes:
    """Send ``data``, shut our side, read until the server closes."""
    s.sendall(data)
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_WR)
    return read_all(s)


def read_all(s: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def get_ok(served: Served) -> None:
    conn = served.http()
    try:
        conn.request("GET", "/ok")
        response = conn.getresponse()
        assert response.status == 200
        assert response.read() == b"GET /ok "
    finally:
        conn.close()


def test_keep_alive_serves_several_requests_on_one_connection(serve: Callable[..., Served]) -> None:
    served = serve()
    conn = served.http()
    try:
        for i in range(3):
            conn.request("POST", f"/n{i}", body=f"body{i}".encode())
            response = conn.getresponse()
            assert response.status == 200
            assert response.read() == f"POST /n{i} body{i}".encode()
            assert response.getheader("Connection") is None
        assert len(served.server.connections) == 1
    finally:
        conn.close()


def test_http_1_0_closes_unless_keep_alive(serve: Callable[..., Served]) -> None:
    served = serve()
    with served.connect() as s:
        raw = exchange(s, b"GET /x HTTP/1.0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.0 200 OK\r\n") and b"Connection: close" in raw
    with served.connect() as s:
        s.sendall(b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        time.sleep(0.1)
        s.sendall(b"GET /y HTTP/1.0\r\n\r\n")
        raw = read_all(s)
    assert raw.count(b"HTTP/1.0 200 OK") == 2 and b"Connection: Keep-Alive" in raw
    assert raw.endswith(b"GET /y ")


def test_request_sent_one_byte_at_a_time_over_the_socket(serve: Callable[..., Served]) -> None:
    served = serve()
    with served.connect() as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(POST)):
            s.sendall(POST[i : i + 1])
        s.sendall(b"GET /after HTTP/1.1\r\nConnection: close\r\n\r\n")
        raw = read_all(s)
    assert raw.count(b"200 OK") == 2
    assert b"POST /RPC2 hello" in raw and raw.endswith(b"GET /after ")


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"POST /RPC2 HTTP/1.1\r\nHost: x\r\n\r\n", 411),
        (b"POST /RPC2 HTTP/1.1\r\nContent-Length: 3000000\r\n\r\n", 413),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n", 400),
        (b"GET /" + b"x" * 10000, 414),
    ],
)
def test_limits_and_garbage_get_an_error_and_the_connection_is_closed(
    serve: Callable[..., Served], request_bytes: bytes, status: int
) -> None:
    served = serve()
    with served.connect() as s:
        s.sendall(request_bytes)
        raw = read_all(s)  # the server closes; we did not shut our side
    assert status_of(raw) == status
    assert b"Connection: close" in raw
    get_ok(served)


def test_413_is_answered_before_the_body_is_sent(serve: Callable[..., Served]) -> None:
    served = serve(limits=Limits(max_body=100))
    conn = served.http()
    try:
        conn.putrequest("POST", "/RPC2")
        conn.putheader("Content-Length", "101")
        conn.putheader("Expect", "100-continue")
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 413
        assert response.getheader("Connection") == "close"
    finally:
        conn.close()


def test_expect_100_continue_is_honoured(serve: Callable[..., Served]) -> None:
    served = serve()
    with served.connect() as s:
        s.sendall(b"POST /c HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        interim = s.recv(100)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"data")
        s.shutdown(socket.SHUT_WR)
        raw = read_all(s)
    assert raw.startswith(b"HTTP/1.1 200 OK") and raw.endswith(b"POST /c data")


def test_head_gets_headers_only(serve: Callable[..., Served]) -> None:
    served = serve()
    conn = served.http()
    try:
        conn.request("HEAD", "/h")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Length") == str(len(b"HEAD /h "))
        assert response.read() == b""
    finally:
        conn.close()


def test_streamed_response_is_chunked_and_keeps_the_connection(
    serve: Callable[..., Served],
) -> None:
    served = serve()
    conn = served.http()
    try:
        conn.request("GET", "/stream")
        response = conn.getresponse()
        assert response.getheader("Transfer-Encoding") == "chunked"
        assert response.getheader("Content-Length") is None
        assert response.read() == b"first second"
        conn.request("GET", "/next")
        assert conn.getresponse().read() == b"GET /next "
    finally:
        conn.close()


def test_streamed_response_to_http_1_0_ends_by_closing(serve: Callable[..., Served]) -> None:
    served = serve()
    with served.connect() as s:
        s.sendall(b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        raw = read_all(s)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"Connection: close" in head and b"chunked" not in head
    assert body == b"first second"


def test_client_leaving_a_stream_runs_its_on_close(serve: Callable[..., Served]) -> None:
    served = serve()
    with served.connect() as s:
        s.sendall(b"GET /forever HTTP/1.1\r\n\r\n")
        received = b""
        while not received.endswith(b"4\r\ntick\r\n"):
            chunk = s.recv(4096)
            assert chunk, received
            received += chunk
    deadline = time.monotonic() + 2
    while CLOSED != ["/forever"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert CLOSED == ["/forever"]
    get_ok(served)


def test_a_slow_partial_request_times_out_with_408(serve: Callable[..., Served]) -> None:
    served = serve(limits=Limits(request_timeout=0.2))
    with served.connect() as s:
        s.sendall(b"GET /slow HTTP/1.1\r\nHost:")
        raw = read_all(s)
    assert status_of(raw) == 408


def test_an_idle_keep_alive_connection_is_not_timed_out(serve: Callable[..., Served]) -> None:
    served = serve(limits=Limits(request_timeout=0.1))
    conn = served.http()
    try:
        conn.request("GET", "/a")
        conn.getresponse().read()
        time.sleep(0.3)
        conn.request("GET", "/b")
        assert conn.getresponse().read() == b"GET /b "
    finally:
        conn.close()


def test_deferred_response_does_not_block_other_clients(serve: Callable[..., Served]) -> None:
    served = serve()
    slow = served.http()
    try:
        started = time.monotonic()
        slow.request("GET", "/later")
        get_ok(served)  # answered while /later is still pending
        assert time.monotonic() - started < 0.2
        response = slow.getresponse()
        assert response.read() == b"GET /later "
        assert time.monotonic() - started >= 0.2
        # and the connection is still usable
        slow.request("GET", "/again")
        assert slow.getresponse().read() == b"GET /again "
    finally:
        slow.close()
    assert CLOSED == []


def test_client_disconnecting_while_waiting_runs_on_close(serve: Callable[..., Served]) -> None:
    served = serve()
    s = served.connect()
    s.sendall(b"GET /never HTTP/1.1\r\n\r\n")
    time.sleep(0.1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()  # RST
    deadline = time.monotonic() + 2
    while CLOSED != ["/never"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert CLOSED == ["/never"]
    get_ok(served)


def test_handler_exception_is_a_500_and_the_server_keeps_serving(
    serve: Callable[..., Served], caplog: pytest.LogCaptureFixture
) -> None:
    served = serve()
    with served.connect() as s:
        raw = exchange(s, b"GET /boom HTTP/1.1\r\n\r\n")
    assert status_of(raw) == 500
    assert "handler bug" in caplog.text
    get_ok(served)


def test_disconnect_mid_request_and_mid_body_leaves_the_server_serving(
    serve: Callable[..., Served],
) -> None:
    served = serve()
    for data in (b"GET /x HT", b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc", b""):
        with served.connect() as s:
            s.sendall(data)
    get_ok(served)
    assert served.errors == []


# --- authentication --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/RPC2", "/logtail/x", "/anything?q=1"])
@pytest.mark.parametrize("authorization", [None, basic("user", "wrong"), basic("bad", "123")])
def test_401_on_every_path_without_or_with_wrong_credentials(
    serve: Callable[..., Served], path: str, authorization: str | None
) -> None:
    served = serve(credentials=Credentials("user", "123"))
    conn = served.http()
    try:
        headers = {"Authorization": authorization} if authorization else {}
        conn.request("POST", path, body=b"<x/>", headers=headers)
        response = conn.getresponse()
        assert response.status == 401
        assert response.getheader("WWW-Authenticate") == 'Basic realm="default"'
        assert response.getheader("Connection") == "close"
        response.read()
    finally:
        conn.close()


def test_right_credentials_pass_plain_and_sha(serve: Callable[..., Served]) -> None:
    sha = hashlib.sha1(b"s3cret").hexdigest()
    for creds in (Credentials("user", "s3cret"), Credentials("user", "{SHA}" + sha)):
        served = serve(credentials=creds)
        conn = served.http()
        try:
            conn.request("GET", "/p", headers={"Authorization": basic("user", "s3cret")})
            response = conn.getresponse()
            assert response.status == 200 and response.read() == b"GET /p "
        finally:
            conn.close()


# --- fuzzing the live server -----------------------------------------------------------------


def test_random_bytes_never_stop_the_server(serve: Callable[..., Served]) -> None:
    served = serve(limits=Limits(request_timeout=1.0, linger=0.2))

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.one_of(
            st.binary(max_size=3000),
            st.builds(
                lambda head, tail: head + tail,
                st.sampled_from(
                    [b"GET / HTTP/1.1\r\n", b"POST /RPC2 HTTP/1.1\r\nContent-Length: 5\r\n", b""]
                ),
                st.binary(max_size=200),
            ),
        )
    )
    def check(data: bytes) -> None:
        with served.connect() as s, contextlib.suppress(OSError):
            exchange(s, data)
        get_ok(served)

    check()
    assert served.errors == []


# --- unix sockets ----------------------------------------------------------------------------


@pytest.fixture
def sock_path(tmp_path: Path) -> Iterator[str]:
    # sun_path is short: use a short private directory when tmp_path is long
    path = tmp_path / "s.sock"
    if len(os.fsencode(path)) > 100:
        import tempfile

        short = Path(tempfile.mkdtemp(prefix="vh", dir="/tmp"))
        yield str(short / "s.sock")
        with contextlib.suppress(OSError):
            os.unlink(short / "s.sock")
        short.rmdir()
    else:
        yield str(path)


def test_unix_socket_is_never_more_open_than_its_mode(
    sock_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    modes_before_chmod: list[int] = []
    real_chmod = os.chmod

    def spy(path: str, mode: int) -> None:
        modes_before_chmod.append(stat.S_IMODE(os.stat(path).st_mode))
        real_chmod(path, mode)

    monkeypatch.setattr(os, "chmod", spy)
    sock = bind_unix(sock_path)
    try:
        # bound under umask 0177: no group/other access even before chmod
        assert modes_before_chmod == [0o600]
        assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o700
    finally:
        sock.close()
        os.unlink(sock_path)


def test_unix_socket_chmod_setting_is_applied(sock_path: str) -> None:
    sock = bind_unix(sock_path, chmod=0o770)
    try:
        assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o770
    finally:
        sock.close()
        os.unlink(sock_path)


def test_unix_server_serves_and_removes_its_socket_at_close(sock_path: str) -> None:
    loop = Loop()
    served = Served(loop, HTTPServer(loop, bind_unix(sock_path), echo, unlink=sock_path)).start()
    try:
        with served.connect() as s:
            raw = exchange(s, b"GET /u HTTP/1.1\r\n\r\n")
        assert raw.endswith(b"GET /u ")
    finally:
        served.stop()
    assert not os.path.exists(sock_path)


def test_close_does_not_remove_a_socket_that_is_no_longer_ours(sock_path: str) -> None:
    loop = Loop()
    server = HTTPServer(loop, bind_unix(sock_path), echo, unlink=sock_path)
    os.unlink(sock_path)
    other = bind_unix(sock_path)  # someone else's now
    try:
        server.close()
        assert os.path.exists(sock_path)
    finally:
        other.close()
        os.unlink(sock_path)
        loop.close()


def test_stale_socket_file_is_removed(sock_path: str) -> None:
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(sock_path)
    dead.close()  # the file stays, nobody listens
    assert os.path.exists(sock_path)
    sock = bind_unix(sock_path)
    try:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with probe:
            probe.connect(sock_path)
    finally:
        sock.close()
        os.unlink(sock_path)


def test_socket_in_use_is_a_bind_error_and_is_left_alone(sock_path: str) -> None:
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(sock_path)
    live.listen(1)
    try:
        with pytest.raises(BindError) as info:
            bind_unix(sock_path)
        assert str(info.value) == IN_USE_MESSAGE
        assert IN_USE_MESSAGE.startswith("Another program is already listening on a port")
        assert os.path.exists(sock_path)
    finally:
        live.close()
        os.unlink(sock_path)


def test_a_regular_file_at_the_socket_path_is_not_deleted(sock_path: str) -> None:
    Path(sock_path).write_text("precious")
    try:
        with pytest.raises(BindError, match="not a socket"):
            bind_unix(sock_path)
        assert Path(sock_path).read_text() == "precious"
    finally:
        os.unlink(sock_path)


def test_unix_socket_in_a_missing_directory_is_a_bind_error(tmp_path: Path) -> None:
    with pytest.raises(BindError, match="Cannot open an HTTP server"):
        bind_unix(str(tmp_path / "missing" / "s.sock"))


def test_tcp_port_in_use_is_a_bind_error() -> None:
    first = bind_tcp("127.0.0.1", 0)
    try:
        port = first.getsockname()[1]
        with pytest.raises(BindError) as info:
            bind_tcp("127.0.0.1", port)
        assert str(info.value) == IN_USE_MESSAGE
    finally:
        first.close()


def test_tcp_bind_to_all_interfaces_and_unresolvable_host() -> None:
    sock = bind_tcp("*", 0)
    try:
        assert sock.getsockname()[0] == "0.0.0.0"
    finally:
        sock.close()
    with pytest.raises(BindError):
        bind_tcp("no-such-host.invalid", 0)


def test_server_close_closes_open_connections() -> None:
    CLOSED.clear()
    loop = Loop()
    echo.loop = loop  # type: ignore[attr-defined]
    server = HTTPServer(loop, bind_tcp("127.0.0.1", 0), echo)
    served = Served(loop, server).start()
    client = served.connect()
    try:
        client.sendall(b"GET /never HTTP/1.1\r\n\r\n")
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and not any(
            c.responder is not None for c in list(server.connections)
        ):
            time.sleep(0.01)
    finally:
        served.stop()
    try:
        assert read_all(client) == b""
    except OSError as exc:  # pragma: no cover - platform dependent
        assert exc.errno in (errno.ECONNRESET,)
    finally:
        client.close()
    assert server.connections == set()
    assert CLOSED == ["/never"]
