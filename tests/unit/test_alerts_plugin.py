"""The alerts plugin in-process: spooled before the ack, redelivery, restart, bus, context."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest

from healthchecks.breaker import BreakerEvent, BreakerState, BreakerTransition
from listeners.alerting.context import exit_status_from_log, fetch_context, tail_lines
from listeners.alerting.model import Alert, Status, Trigger, new_id
from listeners.bus import Bus
from listeners.plugin import PluginContext
from listeners.plugins.alerts import AlertsPlugin, setup
from listeners.plugins.health import BreakerChange, Remediation, VerdictChange
from manager.events import EventType, ProcessStateChange
from manager.ini import ConfigError, read_ini
from manager.protocol import Header, Notification
from manager.rpcclient import RPCError, RPCFault

E = EventType


class FakeRpc:
    """``supervisor.*`` with canned answers; records calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.info: dict[str, Any] = {
            "statename": "FATAL",
            "start": 100,
            "stop": 101,
            "now": 200,
            "exitstatus": 0,
            "spawnerr": "Exited too quickly (process log may have details)",
        }
        self.stderr = "line 1\nline 2\nboom: no config\n"
        self.fail: set[str] = set()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            self.calls.append((name, args))
            if name in self.fail:
                raise RPCError(f"{name} failed")
            if name == "getProcessInfo":
                return self.info
            if name == "tailProcessStderrLog":
                return [self.stderr, len(self.stderr), False]
            if name == "tailProcessStdoutLog":
                raise RPCFault(name, 20, "NO_FILE: stdout")
            if name == "readLog":
                return "2024 WARN exited: web (exit status 3; not expected)\n"
            if name == "getAllProcessInfo":
                return []
            raise AssertionError(name)

        return call


class Recorder:
    def __init__(self) -> None:
        self.messages: list[list[Alert]] = []
        self.event = threading.Event()

    def send(self, alerts: Sequence[Alert]) -> str:
        self.messages.append(list(alerts))
        self.event.set()
        return "OK"


def context(tmp_path: Path, body: str) -> PluginContext:
    conf = tmp_path / "supervisord.conf"
    conf.write_text(dedent(body).lstrip())
    return PluginContext(
        name="alerts",
        config=read_ini(conf, environ={}),
        log=logging.getLogger("vigil.alerts"),
        stopping=threading.Event(),
        environ={},
        _client_factory=lambda: pytest.fail("no real supervisor in unit tests"),
        bus=Bus(),
    )


CONF = """
[alert:ops]
type = command
command = true
on = FATAL, EXITED_UNEXPECTED, HEALTH_RESTART, BREAKER_OPEN, BREAKER_CLOSED, RECOVERED
stable_for = 1
rate_limit = 0
host = h
"""


def note(to: EventType, serial: int, name: str = "web", **kw: Any) -> Notification:
    kw.setdefault("from_state", "BACKOFF")
    ev = ProcessStateChange(to, name, name, **kw)
    payload = ev.payload()
    return Notification(
        Header("supervisor", serial, "alerts", serial, to.value, len(payload)), ev, payload
    )


@pytest.fixture
def made() -> Iterator[list[AlertsPlugin]]:
    plugins: list[AlertsPlugin] = []
    yield plugins
    for p in plugins:
        p.ctx.stopping.set()
        p.stop()


def plugin(
    tmp_path: Path, made: list[AlertsPlugin], *, rpc: FakeRpc | None = None
) -> tuple[AlertsPlugin, Recorder]:
    from listeners.alerting.config import load_alerts

    ctx = context(tmp_path, CONF)
    assert ctx.config is not None
    rec = Recorder()
    rpc = rpc or FakeRpc()
    p = AlertsPlugin(
        ctx, load_alerts(ctx.config), senders={"ops": rec}, rpc=lambda: rpc, fsync=False
    )
    p.open()
    made.append(p)
    return p, rec


def spooled(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "vigil-alerts" / "ops").glob("*-*.json"))


def test_the_inline_handler_spools_before_it_returns(
    tmp_path: Path, made: list[AlertsPlugin]
) -> None:
    p, _ = plugin(tmp_path, made)
    p.on_process_state(note(E.PROCESS_STATE_FATAL, 1, tries=3))
    (path,) = spooled(tmp_path)
    assert "web is FATAL" in path.read_text()
    assert (tmp_path / "vigil-alerts" / "ops" / "state.json").exists()


def test_a_redelivered_event_is_not_counted_twice(
    tmp_path: Path, made: list[AlertsPlugin], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    p, _ = plugin(tmp_path, made)
    n = note(E.PROCESS_STATE_EXITED, 5, from_state="RUNNING", expected=False, pid=9)
    p.on_process_state(n)
    # the listener died before its acknowledgement: supervisord sends the same event again
    q, _ = plugin(tmp_path, made)
    q.on_process_state(n)
    assert "redelivered after a restart: already handled" in caplog.text
    (firing,) = q.channels[0].policy.firing()
    assert firing.occurrences == 1 and len(spooled(tmp_path)) == 1


def test_a_restart_keeps_firing_conditions_and_undelivered_alerts(
    tmp_path: Path, made: list[AlertsPlugin], caplog: pytest.LogCaptureFixture
) -> None:
    p, _ = plugin(tmp_path, made)
    p.on_process_state(note(E.PROCESS_STATE_FATAL, 1))
    caplog.set_level(logging.INFO)
    q, rec = plugin(tmp_path, made)
    assert "1 undelivered alert(s) from a previous run" in caplog.text
    assert "1 condition(s) still firing from a previous run" in caplog.text
    q.on_process_state(note(E.PROCESS_STATE_FATAL, 2))
    assert len(spooled(tmp_path)) == 1  # deduplicated, not a second alert
    q.start()
    assert rec.event.wait(5)
    ((a,),) = rec.messages
    assert a.summary.startswith("web is FATAL") and a.enriched and a.exit_status == 3


def test_delivery_end_to_end_with_context(tmp_path: Path, made: list[AlertsPlugin]) -> None:
    rpc = FakeRpc()
    p, rec = plugin(tmp_path, made, rpc=rpc)
    p.start()
    t0 = time.monotonic()
    p.on_process_state(note(E.PROCESS_STATE_FATAL, 1, tries=1))
    assert rec.event.wait(5)
    assert time.monotonic() - t0 < 1.0
    ((a,),) = rec.messages
    assert (a.exit_status, a.uptime, a.stderr_tail, a.stdout_tail) == (
        3,
        1.0,
        "line 1\nline 2\nboom: no config\n",
        None,
    )
    assert a.spawn_error and a.context_error is None
    assert ("getProcessInfo", ("web:web",)) in rpc.calls
    deadline = time.monotonic() + 5
    while spooled(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert spooled(tmp_path) == []


def test_recovery_is_sent_after_stable_running(tmp_path: Path, made: list[AlertsPlugin]) -> None:
    p, rec = plugin(tmp_path, made)
    p.start()
    p.on_process_state(note(E.PROCESS_STATE_FATAL, 1))
    p.on_process_state(note(E.PROCESS_STATE_STARTING, 2, from_state="FATAL", tries=0))
    p.on_process_state(note(E.PROCESS_STATE_RUNNING, 3, from_state="STARTING", pid=5))
    deadline = time.monotonic() + 5
    while len(rec.messages) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    statuses = [a.status for m in rec.messages for a in m]
    assert statuses == [Status.FIRING, Status.RESOLVED]


def test_health_facts_from_the_bus(tmp_path: Path, made: list[AlertsPlugin]) -> None:
    p, _ = plugin(tmp_path, made)
    bus = p.ctx.bus
    for topic, cb in (
        ("health.action", p.on_health_action),
        ("health.breaker", p.on_breaker),
        ("health.verdict", p.on_verdict),
    ):
        bus.subscribe(topic, cb)
    bus.publish("health.verdict", VerdictChange("http", "web", "web", False, "HTTP 500"))
    bus.publish("health.action", Remediation("http", "web", "web", "restart", "HTTP 500", True))
    bus.publish("health.action", Remediation("http", "web", "web", "signal:HUP", "x", True))
    t = BreakerTransition(
        BreakerState.CLOSED, BreakerState.OPEN, 0.0, "3 restarts", BreakerEvent.RESTARTS_EXHAUSTED
    )
    bus.publish("health.breaker", BreakerChange("http", "web", "web", t))
    firing = {a.condition: a for a in p.channels[0].policy.firing()}
    assert set(firing) == {Trigger.HEALTH_RESTART, Trigger.BREAKER_OPEN}
    assert firing[Trigger.HEALTH_RESTART].reason == "HTTP 500"
    assert firing[Trigger.BREAKER_OPEN].reason == "3 restarts"
    closed = BreakerTransition(
        BreakerState.HALF_OPEN, BreakerState.CLOSED, 1.0, "healthy", BreakerEvent.HEALTHY
    )
    bus.publish("health.breaker", BreakerChange("http", "web", "web", closed))
    assert {a.condition for a in p.channels[0].policy.firing()} == {Trigger.HEALTH_RESTART}
    assert len(spooled(tmp_path)) == 3


def test_setup_subscribes_inline_and_refuses_an_unusable_spool(tmp_path: Path) -> None:
    ctx = context(tmp_path, CONF + "spool_dir = /proc/vigil-cannot-be-here\n")
    with pytest.raises(ConfigError, match=r"\[alert:ops\] spool_dir = .*cannot use the spool"):
        setup(ctx)
    ctx = context(tmp_path, CONF)
    setup(ctx)
    try:
        (sub,) = ctx.subscriptions
        assert sub.inline and sub.types == (E.PROCESS_STATE,)
    finally:
        ctx.stopping.set()
        for cb in ctx._on_stop:
            cb()


# --- context ------------------------------------------------------------------------------


def alert(**kw: Any) -> Alert:
    a = Alert(
        id=new_id(),
        key="h/web/FATAL",
        status=Status.FIRING,
        trigger=Trigger.FATAL,
        condition=Trigger.FATAL,
        host="h",
        group="web",
        name="web",
        summary="s",
        started_at=0.0,
        at=0.0,
        to_state="FATAL",
    )
    return a.replace(**kw)


def test_fetch_context_for_running_and_exited_processes() -> None:
    rpc = FakeRpc()
    rpc.info = {"statename": "RUNNING", "start": 100, "stop": 0, "now": 130, "exitstatus": 0}
    a = fetch_context(rpc, alert(to_state="RUNNING"), tail_bytes=100, lines=2)
    assert (a.uptime, a.exit_status, a.stderr_tail) == (30.0, None, "line 2\nboom: no config\n")
    rpc.info = {"statename": "EXITED", "start": 100, "stop": 105, "now": 130, "exitstatus": 2}
    a = fetch_context(rpc, alert(to_state="EXITED"))
    assert (a.uptime, a.exit_status) == (5.0, 2)


def test_fetch_context_failures_are_named_not_raised() -> None:
    rpc = FakeRpc()
    rpc.fail = {"getProcessInfo", "tailProcessStderrLog"}
    a = fetch_context(rpc, alert())
    assert a.enriched and a.uptime is None and a.stderr_tail is None
    assert a.context_error == (
        "getProcessInfo: getProcessInfo failed; tailProcessStderrLog: tailProcessStderrLog failed"
    )
    b = fetch_context(rpc, alert(), tail_bytes=0)
    assert ("tailProcessStderrLog", ("web:web", 0, 0)) not in rpc.calls
    assert b.context_error == "getProcessInfo: getProcessInfo failed"


def test_exit_status_from_the_main_log() -> None:
    rpc = FakeRpc()
    assert exit_status_from_log(rpc, "web") == 3
    assert exit_status_from_log(rpc, "we") is None
    rpc.fail = {"readLog"}
    assert exit_status_from_log(rpc, "web") is None


def test_tail_lines() -> None:
    assert tail_lines("a\nb\nc\n", 2) == "b\nc\n"
    assert tail_lines("a\nb", 5) == "a\nb"
    assert tail_lines("a\n", 0) == ""


def test_alerting_package_reexports_its_public_names() -> None:
    import importlib

    import listeners.alerting as pkg

    exported = [n for n in dir(pkg) if not n.startswith("_")]
    assert {"Alert", "AlertConfig", "ChannelPolicy", "Spool", "Courier"} <= set(exported)
    for name in exported:
        value = getattr(pkg, name)
        module_name = getattr(value, "__module__", "")
        if not module_name.startswith("listeners.alerting."):
            continue
        module = importlib.import_module(module_name)
        assert getattr(module, name) is value
        assert name in module.__all__, f"{name} missing from {module_name}.__all__"
