"""Delivery: retries with backoff and Retry-After, permanent refusals, rate limit, batching.

The courier is driven step by step with a fake clock and a recording sleep; the HTTP
sender is checked against a real local server (Slack-style 429 + Retry-After).
"""

from __future__ import annotations

import http.server
import json
import logging
import socket
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from listeners.alerting.config import (
    AlertConfig,
    ChannelType,
    CommandSettings,
    Format,
    HttpSettings,
    RateLimit,
)
from listeners.alerting.courier import ENRICH_WAIT, Courier, TokenBucket
from listeners.alerting.model import Alert, Status, Trigger, new_id
from listeners.alerting.spool import Spool
from listeners.alerting.transports import (
    CommandSender,
    DeliveryError,
    HttpSender,
    parse_retry_after,
)

LOG = logging.getLogger("test.alerts")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def wall(self) -> float:
        return 1_700_000_000.0 + self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


class FakeSender:
    """Fails with the queued errors first, then accepts; records every message."""

    def __init__(self, *errors: DeliveryError) -> None:
        self.errors = list(errors)
        self.messages: list[list[str]] = []
        self.attempts = 0

    def send(self, alerts: Sequence[Alert]) -> str:
        self.attempts += 1
        if self.errors:
            raise self.errors.pop(0)
        self.messages.append([a.name for a in alerts])
        return "OK"


def cfg(**kw: Any) -> AlertConfig:
    kw.setdefault("rate_limit", RateLimit())
    return AlertConfig(
        name="ops",
        type=ChannelType.COMMAND,
        transport=CommandSettings("true"),
        host="h",
        **kw,
    )


def alert(name: str, clock: Clock, *, enriched: bool = True) -> Alert:
    return Alert(
        id=new_id(),
        key=f"h/{name}/FATAL",
        status=Status.FIRING,
        trigger=Trigger.FATAL,
        condition=Trigger.FATAL,
        host="h",
        group=name,
        name=name,
        summary=f"{name} is FATAL",
        started_at=clock.wall(),
        at=clock.wall(),
        enriched=enriched,
    )


def courier(
    tmp_path: Path, sender: Any, clock: Clock, stopping: threading.Event | None = None, **kw: Any
) -> Courier:
    spool = Spool(tmp_path / "spool", fsync=False)
    spool.open()
    return Courier(
        cfg(**kw),
        spool,
        sender,
        LOG,
        stopping or threading.Event(),
        clock=clock,
        wall=clock.wall,
        sleep=clock.sleep,
    )


def test_one_alert_is_sent_and_unspooled(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock, sender = Clock(), FakeSender()
    c = courier(tmp_path, sender, clock)
    assert c.step() is None
    c.spool.add(alert("web", clock))
    caplog.set_level(logging.INFO)
    assert c.step() == 0.0
    assert sender.messages == [["web"]]
    assert len(c.spool) == 0 and c.step() is None
    assert "alert ops: sent alert" in caplog.text and "(firing FATAL web): OK" in caplog.text


def test_alerts_wait_for_context_then_go_without_it(tmp_path: Path) -> None:
    clock, sender = Clock(), FakeSender()
    c = courier(tmp_path, sender, clock)
    c.spool.add(alert("web", clock, enriched=False))
    c.spool.add(alert("db", clock))
    assert c.step() == pytest.approx(ENRICH_WAIT)
    clock.t += 1.0
    assert c.step() == pytest.approx(ENRICH_WAIT - 1.0)
    assert sender.messages == []  # order is kept: db waits behind web
    clock.t += ENRICH_WAIT
    c.step()
    c.step()
    assert sender.messages == [["web"], ["db"]]


def test_failures_are_retried_with_exponential_backoff_and_jitter(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    sender = FakeSender(*(DeliveryError("connection refused") for _ in range(5)))
    c = courier(tmp_path, sender, clock, retry_initial=0.5, retry_max=3)
    c.spool.add(alert("web", clock))
    caplog.set_level(logging.WARNING)
    c.step()
    assert sender.messages == [["web"]] and sender.attempts == 6
    base = [0.5, 1.0, 2.0, 3.0, 3.0]
    assert all(b <= s <= b + 0.5 for b, s in zip(base, clock.sleeps, strict=True)), clock.sleeps
    assert (
        "delivery of alert" in caplog.text
        and "failed (attempt 1): connection refused" in caplog.text
    )
    assert c.statistics().failures == 5


def test_retry_after_is_honoured_exactly(tmp_path: Path) -> None:
    clock = Clock()
    sender = FakeSender(DeliveryError("HTTP 429", retry_after=7.0))
    c = courier(tmp_path, sender, clock)
    c.spool.add(alert("web", clock))
    c.step()
    assert clock.sleeps == [7.0] and sender.messages == [["web"]]


def test_permanent_refusal_drops_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    sender = FakeSender(DeliveryError("HTTP 400 Bad Request: invalid_payload", permanent=True))
    c = courier(tmp_path, sender, clock)
    c.spool.add(alert("web", clock))
    c.spool.add(alert("db", clock))
    c.step()
    c.step()
    assert sender.messages == [["db"]] and clock.sleeps == []
    assert "dropped alert" in caplog.text and "refused it for good: HTTP 400" in caplog.text
    assert c.spool.statistics().dropped == 1


def test_stopping_keeps_undelivered_alerts_spooled(tmp_path: Path) -> None:
    clock, stopping = Clock(), threading.Event()
    sender = FakeSender(DeliveryError("down"), DeliveryError("down"))

    def sleep_then_stop(seconds: float) -> None:
        clock.sleep(seconds)
        stopping.set()

    c = courier(tmp_path, sender, clock, stopping)
    c._sleep = sleep_then_stop
    c.spool.add(alert("web", clock))
    assert c.deliver(c.spool.pending()) is False
    assert len(c.spool) == 1 and sender.attempts == 2


def test_rate_limit_holds_alerts_then_sends_them_as_one_digest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock, sender = Clock(), FakeSender()
    c = courier(tmp_path, sender, clock, rate_limit=RateLimit(2, 60))
    for name in "abcde":
        c.spool.add(alert(name, clock))
    assert c.step() == 0.0
    assert c.step() == 0.0
    delay = c.step()
    assert delay == pytest.approx(30.0)
    assert sender.messages == [["a"], ["b"]]
    assert "rate-limited (2/60): holding 3 alert(s), next message in 30.0s" in caplog.text
    clock.t += 30
    c.step()
    assert sender.messages == [["a"], ["b"], ["c", "d", "e"]]
    assert c.statistics().rate_limited == 1
    # the bucket refills: the next alert goes alone again
    clock.t += 60
    c.spool.add(alert("f", clock))
    c.step()
    assert sender.messages[-1] == ["f"]


def test_batch_window_sends_one_digest_per_window(tmp_path: Path) -> None:
    clock, sender = Clock(), FakeSender()
    c = courier(tmp_path, sender, clock, batch_window=60, max_batch=2)
    c.spool.add(alert("a", clock))
    clock.t += 10
    c.spool.add(alert("b", clock))
    c.spool.add(alert("c", clock))
    assert c.step() == pytest.approx(50.0)
    clock.t += 50
    c.step()
    assert sender.messages == [["a", "b"]]
    assert c.step() == pytest.approx(10.0)  # c is 50 s old
    clock.t += 10
    c.step()
    assert sender.messages == [["a", "b"], ["c"]]


def test_token_bucket() -> None:
    b = TokenBucket(RateLimit(1, 2), now=0.0)
    assert b.wait_time(0.0) == 0.0
    b.take(0.0)
    assert b.wait_time(0.5) == pytest.approx(1.5)
    assert b.wait_time(2.0) == 0.0
    off = TokenBucket(RateLimit(), now=0.0)
    off.take(0.0)
    assert off.wait_time(0.0) == 0.0


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412480.0) == 30.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert parse_retry_after("99999") == 3600.0


# --- the HTTP sender against a real server ----------------------------------------------


class Server:
    def __init__(self, answers: list[tuple[int, dict[str, str]]]) -> None:
        self.answers = answers
        self.bodies: list[Any] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                server.bodies.append((dict(self.headers), json.loads(body)))
                status, headers = server.answers.pop(0) if server.answers else (200, {})
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server([])
    try:
        yield s
    finally:
        s.close()


def http_cfg(url: str, fmt: Format, **kw: Any) -> AlertConfig:
    return AlertConfig(
        name="ops",
        type=ChannelType.WEBHOOK,
        transport=HttpSettings(url, fmt, headers=(("Authorization", "Bearer t0ken-xyz"),)),
        host="h",
        rate_limit=RateLimit(),
        timeout=2,
        **kw,
    )


def test_slack_429_is_retried_after_retry_after(tmp_path: Path, server: Server) -> None:
    server.answers = [(429, {"Retry-After": "1"})]
    url = f"http://127.0.0.1:{server.port}/services/T0/B0/secretTOKEN"
    c_cfg = http_cfg(url, Format.SLACK)
    clock = Clock()
    spool = Spool(tmp_path, fsync=False)
    spool.open()
    c = Courier(
        c_cfg,
        spool,
        HttpSender(c_cfg, c_cfg.transport),  # type: ignore[arg-type]
        LOG,
        threading.Event(),
        clock=clock,
        wall=clock.wall,
        sleep=clock.sleep,
    )
    spool.add(alert("web", clock))
    c.step()
    assert clock.sleeps == [1.0]
    assert len(server.bodies) == 2 and len(spool) == 0
    headers, body = server.bodies[1]
    assert headers["Authorization"] == "Bearer t0ken-xyz"
    assert set(body) == {"text", "blocks"} and body["blocks"][0]["type"] == "header"


@pytest.mark.parametrize(
    ("status", "permanent"), [(400, True), (410, True), (404, False), (500, False), (503, False)]
)
def test_http_status_classification(server: Server, status: int, permanent: bool) -> None:
    server.answers = [(status, {})]
    c = http_cfg(f"http://127.0.0.1:{server.port}/hook", Format.JSON)
    with pytest.raises(DeliveryError) as err:
        HttpSender(c, c.transport).send([alert("web", Clock())])  # type: ignore[arg-type]
    assert err.value.permanent is permanent and f"HTTP {status}" in str(err.value)


def test_http_json_body_and_connection_errors_without_secrets(server: Server) -> None:
    c = http_cfg(f"http://127.0.0.1:{server.port}/hook?token=s3cr3t", Format.JSON)
    sender = HttpSender(c, c.transport)  # type: ignore[arg-type]
    assert sender.send([alert("web", Clock())]) == "HTTP 200"
    headers, body = server.bodies[0]
    assert headers["Content-Type"].startswith("application/json")
    assert body["schema"] == "vigil.alerts/v1" and body["alerts"][0]["program"] == "web"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    c2 = http_cfg(
        f"http://127.0.0.1:{dead}/services/T0/B0/s3cr3tPATHtoken?token=s3cr3t", Format.JSON
    )
    with pytest.raises(DeliveryError) as err:
        HttpSender(c2, c2.transport).send([alert("web", Clock())])  # type: ignore[arg-type]
    assert not err.value.permanent
    assert "s3cr3t" not in str(err.value) and "ConnectionError" in str(err.value)


def test_command_sender_gets_json_on_stdin_and_env(tmp_path: Path) -> None:
    out = tmp_path / "out"
    c = AlertConfig(
        name="ops",
        type=ChannelType.COMMAND,
        transport=CommandSettings(f'cat > {out}; echo "$VIGIL_ALERT_PROGRAM" >> {out}.env'),
        host="h",
        timeout=5,
    )
    sender = CommandSender(c, c.transport, environ={"PATH": "/usr/bin:/bin"})  # type: ignore[arg-type]
    assert sender.send([alert("web", Clock())]) == "exit 0"
    assert json.loads(out.read_text())["alerts"][0]["name"] == "web"
    assert (tmp_path / "out.env").read_text() == "web\n"
    bad = AlertConfig(
        name="ops", type=ChannelType.COMMAND, transport=CommandSettings("echo nope >&2; exit 3")
    )
    with pytest.raises(DeliveryError, match="command exited 3: nope"):
        CommandSender(bad, bad.transport).send([alert("web", Clock())])  # type: ignore[arg-type]
