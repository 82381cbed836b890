"""The HTTP server and its connections: real sockets against a real Loop.

The tests run the loop in a background thread (``Served``) and talk to it with
blocking client sockets from the test thread; everything the server does still happens
on the loop's one thread. The parser alone is tested in test_httpproto.py, credentials
in test_httpauth.py, socket binding in test_httpbind.py, the connection state machine path
by path in test_httpconn.py; every connection here must move only along its table.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from manager.httpauth import Credentials
from manager.httpbind import bind_tcp, bind_unix
from manager.httpconn import Responder
from manager.httpproto import IllegalConnectionTransition, Limits, Request, Response
from manager.httpserver import HTTPServer
from manager.loop import Loop
from tests.support.net import basic_authorization as basic
from tests.support.net import unix_socket_path

#: a request whose answer is ``POST /RPC2 hello``
POST = (
    b"POST /RPC2 HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\n"
    b"Content-Length: 5\r\n\r\nhello"
)

# --- a server on a real loop -----------------------------------------------------------------


@pytest.fixture(autouse=True)
def only_legal_transitions(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail a test in which a connection tried a move not in CONNECTION_TRANSITIONS.

    Such a move is logged and closes the connection (it never reaches the test), so
    the log is where it shows; this fixture is torn down after the server has stopped.
    """
    yield
    illegal = [
        r.getMessage()
        for r in caplog.records
        if r.exc_info and isinstance(r.exc_info[1], IllegalConnectionTransition)
    ]
    assert illegal == []


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


@pytest.fixture
def sock_path(tmp_path: Path) -> Iterator[str]:
    with unix_socket_path(tmp_path) as path:
        yield path


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
