"""Check primitives against real local servers, real commands and a fake /proc tree."""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import socket
import socketserver
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import urllib3.exceptions

import healthchecks
from healthchecks.execcheck import OUTPUT_TAIL, ExecCheck
from healthchecks.heartbeat import HeartbeatCheck
from healthchecks.http import MAX_BODY, USER_AGENT, HttpCheck, parse_expect_status
from healthchecks.memory import MemoryCheck, descendants, format_bytes, read_ppid, read_rss
from healthchecks.reactor import HttpReactor
from healthchecks.result import Check, CheckResult, run_guarded, short
from healthchecks.tcp import TcpCheck
from tests.support.health import ReactorCheck
from tests.support.net import free_port

LOCAL = "127.0.0.1"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- CheckResult and the guard --------------------------------------------------------


def test_run_guarded_times_the_body_on_the_given_clock() -> None:
    clock = FakeClock()

    def body() -> tuple[bool, str]:
        clock.advance(0.25)
        return True, "fine"

    assert run_guarded(body, clock) == CheckResult(True, "fine", 0.25)


def test_run_guarded_turns_an_exception_into_a_failed_result() -> None:
    def body() -> tuple[bool, str]:
        raise KeyError("boom")

    result = run_guarded(body, FakeClock())
    assert result == CheckResult(False, "internal error: KeyError: 'boom'", 0.0)


def test_short_makes_one_line_and_cuts_long_text() -> None:
    assert short("a\n  b\tc") == "a b c"
    assert short("x" * 20, limit=10) == "x" * 9 + "…"


def test_every_check_satisfies_the_check_protocol(tmp_path: Path) -> None:
    checks: list[object] = [
        HttpCheck("http://127.0.0.1:1/"),
        TcpCheck(LOCAL, 1),
        HeartbeatCheck(1.0),
        ExecCheck("true"),
        MemoryCheck(1, pid_source=lambda: None, proc=tmp_path),
    ]
    for check in checks:
        assert isinstance(check, Check)
        check.close()


# --- HTTP -------------------------------------------------------------------------------


def test_parse_expect_status_sets_and_ranges() -> None:
    codes = parse_expect_status("200, 204,300-399")
    assert [c in codes for c in (200, 204, 205, 300, 399, 400)] == [
        True,
        True,
        False,
        True,
        True,
        False,
    ]
    assert str(codes) == "200,204,300-399"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "no status codes given"),
        ("ok", "not a status code or range: 'ok'"),
        ("200-", "not a status code or range: '200-'"),
        ("99", "not a status code or range within 100-599: '99'"),
        ("300-200", "not a status code or range within 100-599: '300-200'"),
        ("200-600", "not a status code or range within 100-599: '200-600'"),
    ],
)
def test_parse_expect_status_rejects(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=f"^{why}$"):
        parse_expect_status(text)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handler threads
    stop: threading.Event
    seen: list[tuple[str, str, int, dict[str, str]]]


class _Handler(http.server.BaseHTTPRequestHandler):
    """Paths: /ok 200, /fail 500, /hang (until teardown), /slow (trickled body)…"""

    protocol_version = "HTTP/1.1"
    timeout = 5
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        self.server.seen.append(
            (self.command, self.path, self.client_address[1], dict(self.headers.items()))
        )
        path = self.path
        if path == "/ok":
            self._reply(200, b"status: all good\n")
        elif path == "/fail":
            self._reply(500, b"broken")
        elif path == "/204":
            self._reply(204)
        elif path == "/redirect":
            self._reply(302, b"", {"Location": "/fail"})
        elif path == "/hang":
            self.server.stop.wait(5)
            self.close_connection = True
        elif path == "/slow":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(100):
                if self.server.stop.wait(0.02):
                    break
                self.wfile.write(b"x")
                self.wfile.flush()
            self.close_connection = True
        elif path == "/big":
            self._reply(200, b"a" * (MAX_BODY + 10) + b"END")
        elif path == "/binary":
            self._reply(200, b"\xff\xfe\x00 ready \x80")
        elif path == "/method":
            self._reply(200, self.command.encode())
        else:
            self._reply(404, b"no such path")

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except OSError:
            self.close_connection = True  # the client gave up (timeout tests)

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_GET


@dataclass
class HttpServer:
    server: _Server
    scheme: str = "http"

    def url(self, path: str) -> str:
        return f"{self.scheme}://{LOCAL}:{self.server.server_address[1]}{path}"

    @property
    def seen(self) -> list[tuple[str, str, int, dict[str, str]]]:
        return self.server.seen


def _serve(context: ssl.SSLContext | None = None) -> Iterator[HttpServer]:
    server = _Server((LOCAL, 0), _Handler)
    server.stop = threading.Event()
    server.seen = []
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield HttpServer(server, "http" if context is None else "https")
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def web() -> Iterator[HttpServer]:
    """A real HTTP/1.1 server on 127.0.0.1 answering per path."""
    yield from _serve()


@pytest.fixture(params=["lean", "reactor", "requests"])
def http_check(request: pytest.FixtureRequest) -> Iterator[Callable[..., HttpCheck]]:
    """``make(url, **kw)``: HttpChecks that are closed at teardown.

    Every test using it runs three times: plain ``http://`` through the lean client
    (blocking), the same on an :class:`HttpReactor` (non-blocking), and through
    ``requests`` (``lean=False``) — all must give the same results.
    """
    made: list[HttpCheck] = []
    lean = request.param != "requests"
    reactor = HttpReactor()
    reactor.start()

    def make(url: str, **kw: object) -> HttpCheck:
        if request.param == "reactor":
            check: HttpCheck = ReactorCheck(url, **kw)  # type: ignore[arg-type]
            assert isinstance(check, ReactorCheck)
            check.reactor = reactor
        else:
            check = HttpCheck(url, lean=lean, **kw)  # type: ignore[arg-type]
        assert (check.plain is not None) == (lean and url.startswith("http://"))
        made.append(check)
        return check

    yield make
    reactor.stop()
    for check in made:
        check.close()


def test_http_200_passes(web: HttpServer, http_check: Callable[..., HttpCheck]) -> None:
    result = http_check(web.url("/ok")).check()
    assert result.ok
    assert result.detail == f"HTTP 200 from {web.url('/ok')}"
    assert result.duration >= 0


def test_http_500_fails_naming_status_and_url(
    web: HttpServer, http_check: Callable[..., HttpCheck]
) -> None:
    result = http_check(web.url("/fail")).check()
    assert not result.ok
    assert result.detail == f"HTTP 500 from {web.url('/fail')} (expected 200-399)"


def test_http_expect_status_set_is_honoured(
    web: HttpServer, http_check: Callable[..., HttpCheck]
) -> None:
    assert http_check(web.url("/fail"), expect_status="500").check().ok
    assert http_check(web.url("/204"), expect_status="200,204").check().ok
    assert not http_check(web.url("/ok"), expect_status="204").check().ok


def test_http_redirect_is_judged_by_its_own_status_not_followed(
    web: HttpServer, http_check: Callable[..., HttpCheck]
) -> None:
    assert http_check(web.url("/redirect")).check().detail.startswith("HTTP 302 from")
    assert [s[1] for s in web.seen] == ["/redirect"]
    assert not http_check(web.url("/redirect"), expect_status="200-299").check().ok


def test_http_hang_times_out(web: HttpServer, http_check: Callable[..., HttpCheck]) -> None:
    result = http_check(web.url("/hang"), timeout=0.3).check()
    assert not result.ok
    assert result.detail == "timeout after 0.3s"
    assert 0.25 <= result.duration < 2


def test_http_trickled_body_hits_the_total_deadline(
    web: HttpServer, http_check: Callable[..., HttpCheck]
) -> None:
    result = http_check(web.url("/slow"), timeout=0.3).check()
    assert (result.ok, result.detail) == (False, "timeout after 0.3s")
    assert result.duration < 1.5


def test_http_connection_refused(http_check: Callable[..., HttpCheck]) -> None:
    port = free_port()
    result = http_check(f"http://{LOCAL}:{port}/healthz").check()
    assert (result.ok, result.detail) == (False, "connection refused")


def test_http_unresolvable_host_fails_clearly(http_check: Callable[..., HttpCheck]) -> None:
    result = http_check("http://no-such-host.invalid/", timeout=2).check()
    assert not result.ok
    assert result.detail.startswith("cannot resolve host 'no-such-host.invalid': ")


def test_http_body_regex_matches_bytes(
    web: HttpServer, http_check: Callable[..., HttpCheck]
) -> None:
    assert http_check(web.url("/ok"), body_regex=r"all\s+good").check().ok
    assert http_check(web.url("/binary"), body_regex="ready").check().ok
    result = http_check(web.url("/ok"), body_regex="^ready$").check()
    assert not result.ok
    assert result.detail == f"HTTP 200 from {web.url('/ok')}: body does not match '^ready$'"


def test_http_body_is_read_up_to_max_body(
    web: HttpServer, http_check: Callable[..., HttpCheck]
) -> None:
    assert http_check(web.url("/big"), body_regex="a{100}").check().ok
    assert not http_check(web.url("/big"), body_regex="END").check().ok


def test_http_sends_method_and_headers(
    web: HttpServer, http_check: Callable[..., HttpCheck]
) -> None:
    check = http_check(web.url("/method"), method="post", headers={"X-Probe": "1"})
    assert check.check().ok
    method, _, _, headers = web.seen[-1]
    assert method == "POST"
    assert headers["X-Probe"] == "1"
    assert headers["User-Agent"] == USER_AGENT
    http_check(web.url("/method"), method="HEAD", headers={"User-Agent": "mine"}).check()
    assert web.seen[-1][0] == "HEAD"
    assert web.seen[-1][3]["User-Agent"] == "mine"


def test_http_session_is_pooled_across_checks(
    web: HttpServer, http_check: Callable[..., HttpCheck]
) -> None:
    check = http_check(web.url("/ok"))
    assert check.check().ok and check.check().ok
    ports = {s[2] for s in web.seen}
    assert len(ports) == 1  # one keep-alive connection served both requests


def test_http_ignores_proxy_environment(
    web: HttpServer, http_check: Callable[..., HttpCheck], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:1")
    assert http_check(web.url("/ok")).check().ok


def test_http_given_session_is_used_and_not_closed(web: HttpServer) -> None:
    class CountingSession(requests.Session):
        closes = 0

        def close(self) -> None:
            self.closes += 1
            super().close()

    with CountingSession() as session:
        check = HttpCheck(web.url("/ok"), session=session)
        assert check.check().ok
        check.close()
        assert session.closes == 0
    assert session.closes == 1


def test_http_context_manager_closes_its_session(web: HttpServer) -> None:
    with HttpCheck(web.url("/ok"), lean=False) as check:
        assert check.check().ok
        assert check.session is not None
        assert check.session.adapters["http://"].poolmanager.pools  # type: ignore[attr-defined]
    assert not check.session.adapters["http://"].poolmanager.pools  # type: ignore[attr-defined]


def test_http_context_manager_closes_the_lean_connection(web: HttpServer) -> None:
    with HttpCheck(web.url("/ok")) as check:
        assert check.check().ok
        assert check.plain is not None and check.plain.open
    assert not check.plain.open


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"url": "ftp://x/"}, "not an http:// or https:// URL: 'ftp://x/'"),
        ({"url": "http:///path"}, "not an http:// or https:// URL"),
        ({"timeout": 0}, "timeout must be positive"),
        ({"key": "k.pem"}, "a client key needs a client cert"),
        ({"expect_status": "2xx"}, "not a status code or range: '2xx'"),
        ({"body_regex": "("}, "missing \\), unterminated subpattern"),
    ],
)
def test_http_check_rejects_bad_arguments(kwargs: dict[str, str], why: str) -> None:
    url = kwargs.pop("url", "http://127.0.0.1/")
    with pytest.raises(Exception, match=why):
        HttpCheck(url, **kwargs)  # type: ignore[arg-type]


# --- HTTPS (needs the openssl CLI to mint a throwaway certificate) ---------------------


@dataclass
class Pki:
    cert: Path
    key: Path


def _mint(directory: Path, name: str) -> Pki:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2",
            "-subj", f"/CN={LOCAL}", "-addext", f"subjectAltName=IP:{LOCAL}",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return Pki(cert, key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pki, Pki]:
    """(server, client) self-signed certificates for 127.0.0.1."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available")
    directory = tmp_path_factory.mktemp("pki")
    return _mint(directory, "server"), _mint(directory, "client")


@pytest.fixture
def tls_web(pki: tuple[Pki, Pki]) -> Iterator[HttpServer]:
    server_pki, client_pki = pki
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server_pki.cert, server_pki.key)
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_verify_locations(client_pki.cert)
    yield from _serve(context)


def test_https_verified_against_a_ca_file(
    tls_web: HttpServer, pki: tuple[Pki, Pki], http_check: Callable[..., HttpCheck]
) -> None:
    result = http_check(tls_web.url("/ok"), verify=pki[0].cert).check()
    assert (result.ok, result.detail) == (True, f"HTTP 200 from {tls_web.url('/ok')}")


def test_https_unknown_certificate_fails_verification_by_default(
    tls_web: HttpServer, http_check: Callable[..., HttpCheck]
) -> None:
    result = http_check(tls_web.url("/ok")).check()
    assert not result.ok
    assert result.detail.startswith("TLS error: ")
    assert "certificate verify failed" in result.detail


def test_https_verify_false_passes_and_urllib3_warns(
    tls_web: HttpServer, http_check: Callable[..., HttpCheck]
) -> None:
    check = http_check(tls_web.url("/ok"), verify=False)
    with pytest.warns(urllib3.exceptions.InsecureRequestWarning):
        assert check.check().ok


def test_https_client_certificate_is_presented(
    tls_web: HttpServer, pki: tuple[Pki, Pki], http_check: Callable[..., HttpCheck]
) -> None:
    client = pki[1]
    check = http_check(tls_web.url("/ok"), verify=pki[0].cert, cert=client.cert, key=client.key)
    assert check.check().ok
    assert check.cert == (str(client.cert), str(client.key))


# --- TCP --------------------------------------------------------------------------------


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = False
    allow_reuse_address = True
    stop: threading.Event


class _TcpHandler(socketserver.BaseRequestHandler):
    """Behaviour by the first request line the test configured on the server."""

    server: _TcpServer
    behaviour: Callable[[socket.socket, threading.Event], None]

    def handle(self) -> None:
        with contextlib.suppress(OSError):
            self.behaviour(self.request, self.server.stop)


def _echo(conn: socket.socket, stop: threading.Event) -> None:
    conn.settimeout(5)
    while data := conn.recv(1024):
        conn.sendall(data)


def _banner(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"220 mail.example ready\r\n")


def _silent(conn: socket.socket, stop: threading.Event) -> None:
    stop.wait(5)


def _chatter(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"x" * 70_000)


@pytest.fixture
def tcp_server() -> Iterator[Callable[[Callable[[socket.socket, threading.Event], None]], int]]:
    """``start(behaviour) -> port``: real TCP servers on 127.0.0.1, stopped at teardown."""
    running: list[tuple[_TcpServer, threading.Thread]] = []

    def start(behaviour: Callable[[socket.socket, threading.Event], None]) -> int:
        handler = type("H", (_TcpHandler,), {"behaviour": staticmethod(behaviour)})
        server = _TcpServer((LOCAL, 0), handler)
        server.stop = threading.Event()
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        running.append((server, thread))
        port: int = server.server_address[1]
        return port

    yield start
    for server, thread in running:
        server.stop.set()
        server.shutdown()
        server.server_close()
        thread.join()


TcpServerFactory = Callable[[Callable[[socket.socket, threading.Event], None]], int]


def test_tcp_open_port_passes(tcp_server: TcpServerFactory) -> None:
    port = tcp_server(_silent)
    result = TcpCheck(LOCAL, port).check()
    assert (result.ok, result.detail) == (True, f"connected to {LOCAL}:{port}")


def test_tcp_closed_port_is_connection_refused() -> None:
    result = TcpCheck(LOCAL, free_port()).check()
    assert (result.ok, result.detail) == (False, "connection refused")


def test_tcp_send_and_expect_against_an_echo_server(tcp_server: TcpServerFactory) -> None:
    port = tcp_server(_echo)
    result = TcpCheck(LOCAL, port, send=b"PING\r\n", expect=b"PING").check()
    assert (result.ok, result.detail) == (True, f"got b'PING' from {LOCAL}:{port}")


def test_tcp_expect_a_banner_without_sending(tcp_server: TcpServerFactory) -> None:
    port = tcp_server(_banner)
    assert TcpCheck(LOCAL, port, expect=b"220 ").check().ok


def test_tcp_peer_closing_before_the_expected_bytes_fails(tcp_server: TcpServerFactory) -> None:
    port = tcp_server(_banner)
    result = TcpCheck(LOCAL, port, expect=b"+PONG").check()
    assert not result.ok
    assert result.detail == "connection closed before b'+PONG', got b'220 mail.example ready\\r\\n'"


def test_tcp_silent_peer_times_out_waiting_for_expect(tcp_server: TcpServerFactory) -> None:
    port = tcp_server(_silent)
    result = TcpCheck(LOCAL, port, send=b"PING", expect=b"PONG", timeout=0.3).check()
    assert (result.ok, result.detail) == (False, "timeout after 0.3s waiting for b'PONG', got b''")
    assert 0.25 <= result.duration < 2


def test_tcp_expect_gives_up_after_max_read(tcp_server: TcpServerFactory) -> None:
    port = tcp_server(_chatter)
    result = TcpCheck(LOCAL, port, expect=b"never").check()
    assert not result.ok
    assert result.detail == f"b'never' not in the first 65536 bytes from {LOCAL}:{port}"


def test_tcp_unresolvable_host() -> None:
    result = TcpCheck("no-such-host.invalid", 80, timeout=2).check()
    assert not result.ok
    assert result.detail.startswith("cannot resolve host 'no-such-host.invalid': ")


def test_tcp_ipv6_address_in_brackets() -> None:
    assert TcpCheck("::1", 80).address == "[::1]:80"


@pytest.mark.parametrize(
    ("port", "timeout", "why"),
    [(0, 1.0, "port must be within 1-65535, not 0"), (80, 0.0, "timeout must be positive")],
)
def test_tcp_check_rejects_bad_arguments(port: int, timeout: float, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        TcpCheck(LOCAL, port, timeout=timeout)


# --- heartbeat --------------------------------------------------------------------------


def test_heartbeat_grace_period_from_construction() -> None:
    clock = FakeClock()
    check = HeartbeatCheck(10, clock=clock)
    clock.advance(10)
    result = check.check()
    assert result.ok
    assert result.detail == "no heartbeat yet, grace started 10.0s ago (max_age 10s)"
    clock.advance(0.5)
    assert not check.check().ok


def test_heartbeat_beat_refreshes() -> None:
    clock = FakeClock()
    check = HeartbeatCheck(5, clock=clock)
    clock.advance(4)
    check.beat()
    clock.advance(4)
    result = check.check()
    assert (result.ok, result.detail) == (True, "last heartbeat 4.0s ago (max_age 5s)")
    clock.advance(2)
    assert check.check().detail == "last heartbeat 6.0s ago (max_age 5s)"
    assert not check.check().ok


def test_heartbeat_beat_at_an_explicit_time() -> None:
    clock = FakeClock(100)
    check = HeartbeatCheck(5, clock=clock)
    clock.advance(20)
    check.beat(at=117)
    assert check.check().detail == "last heartbeat 3.0s ago (max_age 5s)"


def test_heartbeat_ignores_a_beat_older_than_the_last_reset() -> None:
    clock = FakeClock(100)
    check = HeartbeatCheck(5, clock=clock)
    check.reset()
    check.beat(at=99)  # from the previous run, delivered late
    clock.advance(1)
    assert check.check().detail == "no heartbeat yet, grace started 1.0s ago (max_age 5s)"


def test_heartbeat_reset_restarts_the_grace_period() -> None:
    clock = FakeClock()
    check = HeartbeatCheck(5, clock=clock)
    clock.advance(30)
    assert not check.check().ok
    check.reset()
    clock.advance(5)
    assert check.check().ok
    assert check.check().detail.startswith("no heartbeat yet")


def test_heartbeat_file_mtime_counts_on_the_wall_clock(tmp_path: Path) -> None:
    clock, wall = FakeClock(), FakeClock(1_700_000_000.0)
    beat_file = tmp_path / "beat"
    beat_file.touch()
    os.utime(beat_file, (wall.now, wall.now))
    check = HeartbeatCheck(5, file=beat_file, clock=clock, wall_clock=wall)
    clock.advance(60)  # no beat() at all: the grace is long gone
    wall.advance(3)
    result = check.check()
    assert (result.ok, result.detail) == (True, f"{beat_file} touched 3.0s ago (max_age 5s)")
    wall.advance(3)
    assert not check.check().ok


def test_heartbeat_freshest_proof_wins(tmp_path: Path) -> None:
    clock, wall = FakeClock(), FakeClock(1_700_000_000.0)
    beat_file = tmp_path / "beat"
    beat_file.touch()
    os.utime(beat_file, (wall.now - 100, wall.now - 100))
    check = HeartbeatCheck(5, file=beat_file, clock=clock, wall_clock=wall)
    clock.advance(2)
    # a stale file never undoes the grace period or a recent beat
    assert check.check().detail == "no heartbeat yet, grace started 2.0s ago (max_age 5s)"
    check.beat()
    clock.advance(1)
    assert check.check().detail == "last heartbeat 1.0s ago (max_age 5s)"


def test_heartbeat_missing_file_is_noted(tmp_path: Path) -> None:
    clock = FakeClock()
    check = HeartbeatCheck(5, file=tmp_path / "nope", clock=clock)
    clock.advance(6)
    result = check.check()
    assert not result.ok
    assert result.detail == (
        f"no heartbeat yet, grace started 6.0s ago (max_age 5s); {tmp_path / 'nope'} does not exist"
    )


def test_heartbeat_rejects_non_positive_max_age() -> None:
    with pytest.raises(ValueError, match="max_age must be positive"):
        HeartbeatCheck(0)


# --- exec -------------------------------------------------------------------------------


def test_exec_exit_zero_passes() -> None:
    result = ExecCheck("exit 0").check()
    assert (result.ok, result.detail) == (True, "exit 0")


def test_exec_nonzero_exit_fails_with_output() -> None:
    result = ExecCheck("echo not ready; echo >&2 db down; exit 3").check()
    assert (result.ok, result.detail) == (False, "exit 3: not ready db down")


def test_exec_keeps_only_the_output_tail() -> None:
    result = ExecCheck("head -c 3000 /dev/zero | tr '\\0' a; printf END; exit 1").check()
    assert not result.ok
    assert result.detail == "exit 1: " + "a" * (OUTPUT_TAIL - 3) + "END"


def test_exec_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    check = ExecCheck(f"sleep 30 & echo $! > {pidfile}; echo started; wait", timeout=0.3)
    result = check.check()
    assert not result.ok
    assert result.detail == "timeout after 0.3s: started"
    assert 0.25 <= result.duration < 2
    assert _gone(int(pidfile.read_text()))


def test_exec_background_child_holding_the_output_counts_as_running() -> None:
    result = ExecCheck("sleep 30 & exit 0", timeout=0.3).check()
    assert (result.ok, result.detail) == (False, "timeout after 0.3s")


def test_exec_killed_by_a_signal() -> None:
    result = ExecCheck("kill -TERM $$").check()
    assert (result.ok, result.detail) == (False, "killed by SIGTERM")


def test_exec_argv_runs_without_a_shell() -> None:
    result = ExecCheck(["/bin/echo", "$HOME", "a;b"]).check()
    assert (result.ok, result.detail) == (True, "exit 0: $HOME a;b")


def test_exec_env_is_merged_over_the_inherited_one(tmp_path: Path) -> None:
    check = ExecCheck('test "$VIGIL_X" = yes && test -n "$PATH"', env={"VIGIL_X": "yes"})
    assert check.check().ok


def test_exec_runs_in_cwd(tmp_path: Path) -> None:
    (tmp_path / "marker").touch()
    assert ExecCheck("test -f marker", cwd=tmp_path).check().ok


def test_exec_missing_program_fails_clearly() -> None:
    result = ExecCheck(["/nonexistent/probe"]).check()
    assert (result.ok, result.detail) == (
        False,
        "cannot run '/nonexistent/probe': No such file or directory",
    )


@pytest.mark.parametrize("command", ["", "  ", []])
def test_exec_rejects_an_empty_command(command: str | list[str]) -> None:
    with pytest.raises(ValueError, match="empty command"):
        ExecCheck(command)


def test_exec_rejects_a_non_positive_timeout() -> None:
    with pytest.raises(ValueError, match="timeout must be positive"):
        ExecCheck("true", timeout=0)


def _gone(pid: int, wait: float = 2.0) -> bool:
    """``pid`` has exited (a zombie waiting for init to reap it counts)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        if stat[stat.rindex(")") + 2] in "ZX":
            return True
        time.sleep(0.02)
    return False


# --- memory -----------------------------------------------------------------------------


def fake_proc(root: Path, table: dict[int, tuple[int, int | None]]) -> Path:
    """A /proc tree: ``{pid: (ppid, rss_kb or None for no VmRSS line)}``."""
    proc = root / "proc"
    for pid, (ppid, rss_kb) in table.items():
        d = proc / str(pid)
        d.mkdir(parents=True)
        rss = "" if rss_kb is None else f"VmRSS:\t{rss_kb:8d} kB\n"
        (d / "status").write_text(f"Name:\tp{pid}\nState:\tS (sleeping)\n{rss}VmSwap:\t0 kB\n")
        (d / "stat").write_text(f"{pid} (we) ird (name) S {ppid} {pid} {pid} 0 -1\n")
    (proc / "self").mkdir(parents=True, exist_ok=True)
    (proc / "meminfo").write_text("MemTotal: 1 kB\n")
    return proc


FAMILY: dict[int, tuple[int, int | None]] = {
    1: (0, 4),
    100: (1, 1000),  # the probed process: 1000 kB
    101: (100, 200),  # child
    102: (100, 300),  # child
    103: (101, 50),  # grandchild
    200: (1, 9999),  # unrelated
    300: (100, None),  # zombie child: no VmRSS
}


def test_read_rss_and_ppid_from_proc(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, FAMILY)
    assert read_rss(proc, 100) == 1000 * 1024
    assert read_rss(proc, 300) == 0
    assert read_ppid(proc, 103) == 101
    assert descendants(proc, 100) == [101, 102, 300, 103]


def test_memory_under_the_limit_passes(tmp_path: Path) -> None:
    check = MemoryCheck(2 * 1024**2, pid_source=lambda: 100, proc=fake_proc(tmp_path, FAMILY))
    result = check.check()
    assert (result.ok, result.detail) == (True, "RSS 1000.0 KiB (pid 100) within limit 2.0 MiB")


def test_memory_over_the_limit_fails(tmp_path: Path) -> None:
    check = MemoryCheck(512 * 1024, pid_source=lambda: 100, proc=fake_proc(tmp_path, FAMILY))
    result = check.check()
    assert not result.ok
    assert result.detail == (
        "RSS 1000.0 KiB (pid 100) over limit 512.0 KiB for 1 consecutive samples"
    )


def test_memory_include_children_sums_all_descendants(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, FAMILY)
    check = MemoryCheck(1550 * 1024, pid_source=lambda: 100, include_children=True, proc=proc)
    result = check.check()  # 1000 + 200 + 300 + 50 = 1550 kB, the limit exactly
    assert (result.ok, result.detail) == (
        True,
        "RSS 1.5 MiB (pid 100 + 4 descendants) within limit 1.5 MiB",
    )
    check.limit_bytes -= 1
    assert not check.check().ok


def test_memory_fails_after_consecutive_samples_and_a_good_one_resets(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, FAMILY)
    check = MemoryCheck(512 * 1024, pid_source=lambda: 100, consecutive=3, proc=proc)
    first, second = check.check(), check.check()
    assert (first.ok, second.ok) == (True, True)
    assert second.detail.endswith("over limit 512.0 KiB (2 of 3 samples)")
    assert not check.check().ok
    check.limit_bytes = 10 * 1024**2
    assert check.check().ok and check.over_count == 0
    check.limit_bytes = 512 * 1024
    assert check.check().ok  # 1 of 3 again


def test_memory_reset_forgets_over_limit_samples(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, FAMILY)
    check = MemoryCheck(512 * 1024, pid_source=lambda: 100, consecutive=2, proc=proc)
    check.check()
    check.reset()
    assert check.check().ok


def test_memory_without_a_pid_fails(tmp_path: Path) -> None:
    check = MemoryCheck(1, pid_source=lambda: None, proc=fake_proc(tmp_path, FAMILY))
    result = check.check()
    assert (result.ok, result.detail) == (False, "no pid: the process is not running")


def test_memory_vanished_process_fails_without_counting(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, FAMILY)
    check = MemoryCheck(512 * 1024, pid_source=lambda: 4242, consecutive=2, proc=proc)
    result = check.check()
    assert (result.ok, result.detail) == (False, "pid 4242 does not exist")
    assert check.over_count == 0


def test_memory_malformed_status_fails_clearly(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, FAMILY)
    (proc / "100" / "status").write_text("VmRSS:\tlots kB\n")
    result = MemoryCheck(1, pid_source=lambda: 100, proc=proc).check()
    assert not result.ok
    assert result.detail.startswith("cannot read the RSS of pid 100: ")


def test_memory_descendant_vanishing_mid_scan_is_skipped(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, FAMILY)
    (proc / "102" / "status").unlink()  # exited between the stat scan and the read
    (proc / "103" / "stat").write_text("garbage")
    check = MemoryCheck(10 * 1024**2, pid_source=lambda: 100, include_children=True, proc=proc)
    assert check.check().detail == "RSS 1.2 MiB (pid 100 + 2 descendants) within limit 10.0 MiB"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_memory_reads_the_real_proc_for_this_process() -> None:
    result = MemoryCheck(1024**4, pid_source=os.getpid).check()
    assert result.ok
    assert result.detail.startswith("RSS ")


def test_format_bytes() -> None:
    assert [format_bytes(n) for n in (512, 1536, 3 * 1024**2, 5 * 1024**4)] == [
        "512 B",
        "1.5 KiB",
        "3.0 MiB",
        "5120.0 GiB",
    ]


def test_memory_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="limit_bytes must be positive"):
        MemoryCheck(0, pid_source=lambda: 1)
    with pytest.raises(ValueError, match="consecutive must be at least 1"):
        MemoryCheck(1, pid_source=lambda: 1, consecutive=0)


# --- the package surface ------------------------------------------------------------------


def test_package_reexports_its_public_names() -> None:
    import importlib

    for name in dir(healthchecks):
        if name.startswith("_"):
            continue
        value = getattr(healthchecks, name)
        if not hasattr(value, "__module__") or not value.__module__.startswith("healthchecks."):
            continue
        module = importlib.import_module(value.__module__)
        assert getattr(module, name) is value
        assert name in module.__all__, f"{name} missing from {module.__name__}.__all__"
