"""The lean HTTP/1.1 client of plain ``http://`` checks, against real sockets on 127.0.0.1.

A scripted server answers each request with exact bytes (and stalls, or closes), so the
framing cases a library server would hide — chunked bodies, keep-alive closes, stale
connections, trickled heads — are driven one by one. The semantic tests shared with
``requests`` (status sets, redirects, regex, limits) run against both clients in
``test_health_checks.py``.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import requests

from healthchecks.http import USER_AGENT, HttpCheck
from healthchecks.plainhttp import HttpFailure, PlainConnection, build_request
from healthchecks.reactor import HttpReactor
from healthchecks.result import CheckResult
from tests.support.health import ReactorCheck

LOCAL = "127.0.0.1"

#: One step of a scripted answer: bytes to send, seconds to stall, or CLOSE.
Step = bytes | float | str
CLOSE = "close"
Script = Callable[[bytes, int], list[Step]]


@dataclass
class RawServer:
    """Accepts connections; each request head is answered by ``script(head, n)`` (n counts heads).

    After the steps the connection is kept for the next request unless a step is
    ``CLOSE``. ``heads`` holds ``(connection number, request head)`` in order.
    """

    script: Script
    sock: socket.socket = field(init=False)
    stop: threading.Event = field(default_factory=threading.Event)
    heads: list[tuple[int, bytes]] = field(default_factory=list)
    connections: int = 0
    threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind((LOCAL, 0))
        self.sock.listen(128)
        self.sock.settimeout(0.05)
        self.lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def url(self, path: str = "/health") -> str:
        return f"http://{LOCAL}:{self.port}{path}"

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            t = threading.Thread(target=self._connection, args=(conn, self.connections))
            self.threads.append(t)
            t.start()

    def _connection(self, conn: socket.socket, number: int) -> None:
        conn.settimeout(0.05)
        buf = b""
        with conn:
            while not self.stop.is_set():
                while b"\r\n\r\n" not in buf:
                    try:
                        chunk = conn.recv(65536)
                    except TimeoutError:
                        if self.stop.is_set():
                            return
                        continue
                    except OSError:
                        return
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                with self.lock:
                    self.heads.append((number, head))
                    n = len(self.heads)
                for step in self.script(head, n):
                    if step == CLOSE:
                        return
                    if isinstance(step, float):
                        if self.stop.wait(step):
                            return
                    elif isinstance(step, bytes):
                        try:
                            conn.sendall(step)
                        except OSError:
                            return


@pytest.fixture
def raw_server() -> Iterator[Callable[[Script], RawServer]]:
    """``start(script)``: a scripted server, stopped (threads joined) at teardown."""
    started: list[tuple[RawServer, threading.Thread]] = []

    def start(script: Script) -> RawServer:
        server = RawServer(script)
        thread = threading.Thread(target=server.serve)
        thread.start()
        started.append((server, thread))
        return server

    yield start
    for server, thread in started:
        server.stop.set()
        thread.join(5)
        for t in server.threads:
            t.join(5)
        server.sock.close()


@pytest.fixture(params=["blocking", "reactor"])
def check(request: pytest.FixtureRequest) -> Iterator[Callable[..., HttpCheck]]:
    """``make(url, **kw)``: lean HttpChecks, closed at teardown.

    Every test using it runs twice: blocking ``check()``, and non-blocking on an
    :class:`HttpReactor` — the two must give the same results.
    """
    made: list[HttpCheck] = []
    reactor = HttpReactor()
    reactor.start()

    def make(url: str, **kw: object) -> HttpCheck:
        if request.param == "reactor":
            c: HttpCheck = ReactorCheck(url, **kw)  # type: ignore[arg-type]
            assert isinstance(c, ReactorCheck) and c.nonblocking
            c.reactor = reactor
        else:
            c = HttpCheck(url, **kw)  # type: ignore[arg-type]
        assert c.plain is not None, "the lean client must serve this URL"
        made.append(c)
        return c

    yield make
    reactor.stop()
    for c in made:
        c.close()


def reply(status: int, body: bytes = b"", *headers: str, version: str = "HTTP/1.1") -> bytes:
    lines = [f"{version} {status} X", *headers]
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def always(*steps: Step) -> Script:
    return lambda head, n: list(steps)


# --- status, keep-alive ----------------------------------------------------------------


def test_200_passes_and_the_connection_is_kept_for_the_next_probe(
    raw_server: Callable[[Script], RawServer], check: Callable[..., HttpCheck]
) -> None:
    server = raw_server(always(reply(200, b"ok")))
    c = check(server.url())
    for _ in range(3):
        result = c.check()
        assert (result.ok, result.detail) == (True, f"HTTP 200 from {server.url()}")
    assert server.connections == 1 and c.plain is not None and c.plain.connects == 1
    assert [n for n, _ in server.heads] == [1, 1, 1]


def test_500_fails_naming_status_and_url(
    raw_server: Callable[[Script], RawServer], check: Callable[..., HttpCheck]
) -> None:
    server = raw_server(always(reply(500, b"broken")))
    result = check(server.url()).check()
    assert (result.ok, result.detail) == (
        False,
        f"HTTP 500 from {server.url()} (expected 200-399)",
    )


def test_request_head_is_what_requests_would_send(
    raw_server: Callable[[Script], RawServer], check: Callable[..., HttpCheck]
) -> None:
    server = raw_server(always(reply(200)))
    assert check(server.url("/h?x=1&y=%20"), headers={"X-Probe": "a b"}).check().ok
    assert check(server.url("/p"), method="post", headers={"user-agent": "mine"}).check().ok
    get, post = (h.decode().split("\r\n") for _, h in server.heads)
    assert get[0] == "GET /h?x=1&y=%20 HTTP/1.1"
    assert f"Host: {LOCAL}:{server.port}" in get
    assert f"User-Agent: {USER_AGENT}" in get and "Accept: */*" in get
    assert "Connection: keep-alive" in get and "X-Probe: a b" in get
    assert not any(h.startswith("Content-Length") for h in get)
    assert post[0] == "POST /p HTTP/1.1"
    assert "user-agent: mine" in post and not any(h.startswith("User-Agent") for h in post)
    assert "Content-Length: 0" in post


def test_host_header_omits_port_80_and_brackets_ipv6() -> None:
    assert b"\r\nHost: example.test\r\n" in HttpCheck("http://example.test:80/")._request
    assert b"\r\nHost: [::1]:8080\r\n" in HttpCheck("http://[::1]:8080/")._request
    given = HttpCheck("http://127.0.0.1:9/", headers={"HOST": "web.internal"})._request
    assert given.count(b"Host:") == 1 and b"\r\nHost: web.internal\r\n" in given


# --- failures ----------------------------------------------------------------------------


def test_hang_times_out_within_the_timeout_and_drops_the_connection(
    raw_server: Callable[[Script], RawServer], check: Callable[..., HttpCheck]
) -> None:
    server = raw_server(always(5.0))
    c = check(server.url(), timeout=0.3)
    result = c.check()
    assert (result.ok, result.detail) == (False, "timeout after 0.3s")
    assert 0.25 <= result.duration < 2.0  # well before the server would answer (5 s)
    assert c.plain is not None and not c.plain.open


def test_trickled_head_hits_the_total_deadline(
    raw_server: Callable[[Script], RawServer], check: Callable[..., HttpCheck]
) -> None:
    # requests bounds each read of the head only; the lean client bounds the whole head
    trickle: list[Step] = [b"HTTP/1.1 200 OK\r\n"]
    for _ in range(50):
        trickle += [0.02, b"X-Pad: 1\r\n"]
    server = raw_server(always(*trickle))
    result = check(server.url(), timeout=0.3).check()
    assert (result.ok, result.detail) == (False, "timeout after 0.3s")
    assert result.duration < 1.0


def test_slow_body_hits_the_total_deadline_even_without_body_regex(
    raw_server: Callable[[Script], RawServer], check: Callable[..., HttpCheck]
) -> None:
    slow: list[Step] = [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"]
    for _ in range(100):
        slow += [0.02, b"x"]
    server = raw_server(always(*slow))
    result = check(server.url(), timeout=0.3).check()
    assert (result.ok, result.detail) == (False, "timeout after 0.3s")
    assert 0.25 <= result.duration < 2.0  # well before the server would answer (5 s)


def test_a_body_slower_than_one_read_but_within_the_timeout_passes(
    raw_server: Callable[[Script], RawServer], check: Callable[..., HttpCheck]
) -> None:
    server = raw_server(
        always(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nre", 0.1, b"ad", 0.1, b"y!")
    )
    assert check(server.url(), timeout=2, body_regex="ready!").check().ok


def test_connection_refused() -> None:
    with socket.socket() as s:
        s.bind((LOCAL, 0))
        port = s.getsockname()[1]
    c = HttpCheck(f"http://{LOCAL}:{port}/")
    assert (c.check().ok, c.check().detail) == (False, "connection refused")


def test_closed_without_an_answer_on_a_fresh_connection(
    raw_server: Callable[[Script], RawServer], check: Callable[..., HttpCheck]
) -> None:
    server = raw_server(always(CLOSE))
    result = check(server.url()).check()
    assert (result.ok, result.detail) == (
        False,
        "request failed: Remote end closed connection without response",
    )
    assert server.connections == 1  # a fresh connection is not retried


def test_bad_status_line_fails_clearly(
    raw_server: Callable[[Script], RawServer], check: Callable[..., HttpCheck]
) -> None:
    server = raw_server(always(b"SSH-2.0-OpenSSH\r\n\r\n", CLOSE))
    result = check(server.url()).check()
    assert (result.ok, result.detail) == (
        False,
        "request failed: bad status line b'SSH-2.0-OpenSSH'",
    )


def test_body_cut_short_by_the_server_fails(
    raw_server: Callable[[Script], RawServer], check: Callable[..., HttpCheck]
) -> None:
    server = raw_server(always(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", CLOSE))
    result = check(server.url()).check()
    assert (result.ok, result.detail) == (
        False,
        "request failed: connection closed in the response body",
    )


# --- the server closing keep-alive connections ------------------------------------------


def test_connection_close_is_honoured(
    raw_server: Callable[[Script], RawServer], check: Callable[..., HttpCheck]
) -> None:
    server = raw_server(always(reply(200, b"ok", "Connection: close"), CLOSE))
    c = check(server.url())
    assert c.check().ok and c.check().ok
    assert server.connections == 2 and c.plain is not None and not c.plain.open


def test_idle_connection_closed_by_the_server_is_replaced_before_use(
    raw_server: Callable[[Script], RawServer], check: Callable[..., HttpCheck]
) -> None:
    # the server says nothing about closing, then closes the idle connection (keep-alive timeout)
    server = raw_server(always(reply(200, b"ok"), 0.05, CLOSE))
    c = check(server.url())
    assert c.check().ok
    time.sleep(0.3)
    assert c.check().ok
    assert server.connections == 2 and [n for n, _ in server.heads] == [1, 2]


def test_stale_connection_closed_at_the_moment_of_reuse_is_retried_once_for_get(
    raw_server: Callable[[Script], RawServer], check: Callable[..., HttpCheck]
) -> None:
    # the second request on connection 1 is dropped unanswered (the server's idle timer fired)
    server = raw_server(lambda head, n: [CLOSE] if n == 2 else [reply(200, b"ok")])
    c = check(server.url())
    assert c.check().ok
    result = c.check()
    assert (result.ok, result.detail) == (True, f"HTTP 200 from {server.url()}")
    assert [n for n, _ in server.heads] == [1, 1, 2]


def test_stale_connection_is_not_retried_for_post(
    raw_server: Callable[[Script], RawServer], check: Callable[..., HttpCheck]
) -> None:
    server = raw_server(lambda head, n: [CLOSE] if n == 2 else [reply(200, b"ok")])
    c = check(server.url(), method="POST")
    assert c.check().ok
    result = c.check()
    assert (result.ok, result.detail) == (
        False,
        "connection closed by the server before the answer",
    )
    assert c.check().ok  # and the next probe opens a fresh connection
    assert [n for n, _ in server.heads] == [1, 1, 2]


def test_http_1_0_closes_unless_keep_alive_is_said(
    raw_server: Callable[[Script], RawServer], check: Callable[..., HttpCheck]
) -> None:
    plain = raw_server(always(reply(200, b"ok", version="HTTP/1.0"), CLOSE))
    kept = raw_server(always(reply(200, b"ok", "Connection: Keep-Alive", version="HTTP/1.0")))
    for server, connections in ((plain, 2), (kept, 1)):
        c = check(server.url())
        assert c.check().ok and c.check().ok
        assert server.connections == connections


# --- body framing -------------------------------------------------------------------------


def test_chunked_body_is_joined_for_the_regex_and_the_connection_kept(
    raw_server: Callable[[Script], RawServer], check: Callable[..., HttpCheck]
) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;ext=1\r\nstat\r\n"
        b"A\r\nus: all go\r\n"
        b"3\r\nod\n\r\n"
        b"0\r\nX-Trailer: 1\r\n\r\n"
    )
    server = raw_server(always(chunked[:30], 0.05, chunked[30:]))
    c = check(server.url(), body_regex=r"status: all good\n")
    assert c.check().ok and c.check().ok
    assert server.connections == 1
    assert not check(server.url(), body_regex="bad").check().ok


def test_malformed_chunk_size_fails(
    raw_server: Callable[[Script], RawServer], check: Callable[..., HttpCheck]
) -> None:
    server = raw_server(
        always(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n")
    )
    result = check(server.url()).check()
    assert (result.ok, result.detail) == (False, "request failed: bad chunk size b'zz'")


def test_content_length_body_and_body_until_close(
    raw_server: Callable[[Script], RawServer], check: Callable[..., HttpCheck]
) -> None:
    sized = raw_server(always(reply(200, b"x" * 100_000 + b"READY")))
    c = check(sized.url(), body_regex="READY$")
    assert c.check().ok and c.check().ok and sized.connections == 1
    unsized = raw_server(always(b"HTTP/1.1 200 OK\r\n\r\npart one, ", 0.05, b"READY", CLOSE))
    c = check(unsized.url(), body_regex="one, READY")
    assert c.check().ok and c.check().ok and unsized.connections == 2


def test_no_body_for_head_204_and_304_and_the_connection_kept(
    raw_server: Callable[[Script], RawServer], check: Callable[..., HttpCheck]
) -> None:
    def script(head: bytes, n: int) -> list[Step]:
        if head.startswith(b"HEAD"):
            return [b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"]
        return [b"HTTP/1.1 204 No Content\r\n\r\n"]

    server = raw_server(script)
    head = check(server.url(), method="HEAD", timeout=0.5)
    empty = check(server.url(), timeout=0.5)
    for c in (head, head, empty, empty):
        assert c.check().ok
    assert server.connections == 2


def test_informational_answers_are_skipped(
    raw_server: Callable[[Script], RawServer], check: Callable[..., HttpCheck]
) -> None:
    server = raw_server(
        always(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
            reply(503, b"warming up", "Retry-After: 1"),
        )
    )
    result = check(server.url()).check()
    assert result.detail == f"HTTP 503 from {server.url()} (expected 200-399)"


def test_gzip_body_is_decoded_for_the_regex(
    raw_server: Callable[[Script], RawServer], check: Callable[..., HttpCheck]
) -> None:
    body = gzip.compress(b"status: ready")
    server = raw_server(always(reply(200, body, "Content-Encoding: gzip")))
    assert check(server.url(), body_regex="status: ready").check().ok
    assert check(server.url()).check().ok
    corrupt = raw_server(always(reply(200, b"not gzip at all", "Content-Encoding: gzip")))
    result = check(corrupt.url(), body_regex="x").check()
    assert (result.ok, result.detail) == (False, "request failed: cannot decode a gzip body")
    unknown = raw_server(always(reply(200, b"raw ready", "Content-Encoding: br")))
    assert check(unknown.url(), body_regex="raw ready").check().ok  # left as it is, as urllib3


def test_plain_connection_raises_and_holds_nothing_after_a_failure() -> None:
    conn = PlainConnection(LOCAL, 9, timeout=1.0, clock=time.monotonic)
    with pytest.raises(HttpFailure, match="connection refused"):
        conn.exchange(b"", method="GET", deadline=time.monotonic() + 1, max_body=10, decode=False)
    assert not conn.open


def test_head_larger_than_the_limit_fails(
    raw_server: Callable[[Script], RawServer], check: Callable[..., HttpCheck]
) -> None:
    server = raw_server(always(b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 70_000))
    result = check(server.url(), timeout=2).check()
    assert (result.ok, result.detail) == (False, "request failed: response headers too long")


# --- which client serves which URL -------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kw"),
    [
        ("https://127.0.0.1/", {}),
        ("http://user:secret@127.0.0.1/", {}),
        ("http://127.0.0.1/a path", {}),
        ("http://127.0.0.1/é", {}),
        ("http://127.0.0.1/", {"lean": False}),
        ("http://127.0.0.1/", {"headers": {"X-Name": "Łukasz"}}),
        ("http://127.0.0.1/", {"headers": {"X-Bad": "a\r\nInjected: 1"}}),
    ],
)
def test_requests_keeps_what_the_lean_client_does_not_take(url: str, kw: dict[str, object]) -> None:
    c = HttpCheck(url, **kw)  # type: ignore[arg-type]
    try:
        assert c.plain is None and isinstance(c.session, requests.Session)
    finally:
        c.close()


def test_a_given_session_means_requests() -> None:
    with requests.Session() as session:
        c = HttpCheck("http://127.0.0.1/", session=session)
        assert c.plain is None and c.session is session


def test_build_request_refuses_header_injection() -> None:
    with pytest.raises(ValueError, match="invalid header"):
        build_request("GET", "/", "h", [("X", "a\nB: c")])
    with pytest.raises(ValueError, match="invalid header"):
        build_request("GET", "/", "h", [("X:Y", "a")])


# --- the reactor: many checks in flight on one thread ------------------------------------


def test_reactor_serves_a_fast_check_while_fifty_hang(
    raw_server: Callable[[Script], RawServer],
) -> None:
    hanging = raw_server(always(5.0))
    fast = raw_server(always(reply(200, b"ok")))
    reactor = HttpReactor()
    reactor.start()
    results: dict[str, list[tuple[CheckResult, float]]] = {"hang": [], "fast": []}
    finished = threading.Event()
    checks = [HttpCheck(hanging.url(f"/{i}"), timeout=3.0) for i in range(50)]
    quick = HttpCheck(fast.url(), timeout=1.0)
    try:

        def on(kind: str) -> Callable[[CheckResult, float], None]:
            def done(result: CheckResult, started: float) -> None:
                results[kind].append((result, time.monotonic()))
                if len(results["hang"]) == 50:
                    finished.set()

            return done

        for c in checks:
            reactor.submit(c, on("hang"))
        wait_until_true(lambda: len(hanging.heads) == 50, 5)
        reactor.submit(quick, on("fast"))
        wait_until_true(lambda: bool(results["fast"]), 5)
        ((fast_result, _),) = results["fast"]
        assert fast_result.ok
        assert results["hang"] == []  # it was not queued behind the 50 in flight
        assert finished.wait(10)
        assert all(r.detail == "timeout after 3.0s" for r, _ in results["hang"])
        assert all(2.95 <= r.duration < 5.0 for r, _ in results["hang"])
        assert reactor.completed == 51
    finally:
        reactor.stop()
        for c in [*checks, quick]:
            c.close()


def test_reactor_stop_drops_what_is_in_flight_and_a_failing_handler_is_contained(
    raw_server: Callable[[Script], RawServer], caplog: pytest.LogCaptureFixture
) -> None:
    hanging = raw_server(always(5.0))
    fast = raw_server(always(reply(200, b"ok")))
    reactor = HttpReactor()
    reactor.start()
    calls: list[str] = []
    hang, quick = HttpCheck(hanging.url(), timeout=3.0), HttpCheck(fast.url())

    def broken(result: CheckResult, started: float) -> None:
        calls.append("broken")
        raise RuntimeError("handler bug")

    try:
        reactor.submit(quick, broken)
        wait_until_true(lambda: calls == ["broken"], 5)
        assert "a check's completion handler failed" in caplog.text
        reactor.submit(quick, lambda r, s: calls.append(r.detail))  # the reactor still runs
        wait_until_true(lambda: len(calls) == 2, 5)
        reactor.submit(hang, lambda r, s: calls.append("hang"))
        wait_until_true(lambda: len(hanging.heads) == 1, 5)
    finally:
        reactor.stop()
    time.sleep(0.2)
    assert calls == ["broken", f"HTTP 200 from {fast.url()}"]
    reactor.submit(quick, lambda r, s: calls.append("after stop"))  # ignored
    time.sleep(0.1)
    assert len(calls) == 2
    hang.close()
    quick.close()


def test_reactor_fails_a_check_that_breaks_and_keeps_serving_the_others(
    raw_server: Callable[[Script], RawServer],
) -> None:
    class Broken(HttpCheck):
        def start_async(self) -> float:
            raise RuntimeError("boom")

    fast = raw_server(always(reply(200, b"ok")))
    reactor = HttpReactor()
    reactor.start()
    got: list[str] = []
    broken, quick = Broken(fast.url()), HttpCheck(fast.url())
    try:
        reactor.submit(broken, lambda r, s: got.append(r.detail))
        reactor.submit(quick, lambda r, s: got.append(r.detail))
        wait_until_true(lambda: len(got) == 2, 5)
    finally:
        reactor.stop()
        broken.close()
        quick.close()
    assert got == ["internal error: RuntimeError: boom", f"HTTP 200 from {fast.url()}"]


def wait_until_true(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_ipv6_literal_host_blocking_and_on_the_reactor() -> None:
    try:
        server = socket.socket(socket.AF_INET6)
        server.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    server.listen(4)
    port = server.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(reply(200, b"v6", "Connection: close"))

    thread = threading.Thread(target=serve)
    thread.start()
    reactor = HttpReactor()
    reactor.start()
    try:
        blocking = HttpCheck(f"http://[::1]:{port}/")
        assert blocking.check().detail == f"HTTP 200 from http://[::1]:{port}/"
        on_reactor = ReactorCheck(f"http://[::1]:{port}/", body_regex="v6")
        on_reactor.reactor = reactor
        assert on_reactor.nonblocking and on_reactor.check().ok
        blocking.close()
        on_reactor.close()
    finally:
        reactor.stop()
        stop.set()
        thread.join(5)
        server.close()
