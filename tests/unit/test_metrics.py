"""The metrics plugin: the collector fed events and bus messages directly, its config, its
endpoint on loopback, and the glue with a fake supervisor. No processes are started."""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
import requests
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from healthchecks.breaker import BreakerEvent, BreakerState, BreakerTransition
from healthchecks.result import CheckResult
from listeners.metrics import (
    BREAKER_VALUES,
    DURATION_BUCKETS,
    RESTART_CAUSES,
    START_GRACE,
    MetricsCollector,
    MetricsConfig,
    MetricsServer,
    load_metrics_config,
)
from listeners.plugin import PluginContext
from listeners.plugins.health import BreakerChange, CheckOutcome, Remediation, VerdictChange
from listeners.plugins.metrics import MetricsPlugin, setup
from listeners.runtime import RuntimeStatistics
from manager.events import EventType, ProcessStateChange
from manager.ini import ConfigError, read_ini
from manager.protocol import Header, Notification
from manager.rpcclient import SupervisorClient, Unreachable

ROOT = Path(__file__).resolve().parents[2]
WALL = 1_700_000_000.0


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Env:
    """A collector on fake clocks, registered in its own fresh registry."""

    registry: CollectorRegistry
    collector: MetricsCollector
    clock: FakeClock
    wall: FakeClock

    def value(self, metric: str, /, **labels: str) -> float | None:
        return self.registry.get_sample_value(metric, labels)

    def proc(self, metric: str, process: str, /, **labels: str) -> float | None:
        return self.value(metric, group=process, name=process, **labels)

    def send(self, name: str, to: str, frm: str, *, expected: bool | None = None) -> None:
        event = ProcessStateChange(
            EventType[f"PROCESS_STATE_{to}"], name, name, frm, expected=expected, pid=42
        )
        self.collector.process_state(event)

    def walk(self, name: str, *states: str) -> None:
        """Send the transitions along ``states`` (the first is where the process is)."""
        for frm, to in itertools.pairwise(states):
            expected = False if to == "EXITED" else None
            self.send(name, to, frm, expected=expected)

    def restarts(self, name: str) -> dict[str, float | None]:
        m = "supervisor_process_restarts_total"
        return {c: self.proc(m, name, cause=c) for c in RESTART_CAUSES}


def only(cause: str | None, n: float = 1) -> dict[str, float | None]:
    return {c: (n if c == cause else 0.0) for c in RESTART_CAUSES}


def make_env(**kw: Any) -> Env:
    clock, wall = FakeClock(1000.0), FakeClock(WALL)
    collector = MetricsCollector(clock=clock, wallclock=wall, **kw)
    registry = CollectorRegistry()
    registry.register(collector)
    return Env(registry, collector, clock, wall)


@pytest.fixture
def env() -> Env:
    return make_env()


def outcome(ok: bool, duration: float, check: str = "web", name: str = "web") -> CheckOutcome:
    return CheckOutcome(check, name, name, CheckResult(ok, "detail", duration), 0.0)


def remediation(action: str, *, ok: bool = True, name: str = "web") -> Remediation:
    return Remediation("web", name, name, action, "unhealthy", ok, "" if ok else "refused")


def breaker(new: BreakerState, old: BreakerState = BreakerState.CLOSED) -> BreakerChange:
    t = BreakerTransition(old, new, 0.0, "test", BreakerEvent.TRIPPED)
    return BreakerChange("web", "web", "web", t)


def info(name: str, state: int, statename: str, start: int, exitstatus: int = 0) -> dict[str, Any]:
    return {
        "group": name,
        "name": name,
        "state": state,
        "statename": statename,
        "start": start,
        "exitstatus": exitstatus,
        "pid": 7 if state == 20 else 0,
    }


# --- process states and counters ------------------------------------------------------------


def test_states_follow_events_with_supervisord_codes(env: Env) -> None:
    env.walk("web", "STOPPED", "STARTING")
    assert env.proc("supervisor_process_state", "web") == 10
    assert env.proc("supervisor_process_up", "web") == 0
    assert env.proc("supervisor_process_start_time_seconds", "web") == WALL
    env.walk("web", "STARTING", "RUNNING")
    assert env.proc("supervisor_process_state", "web") == 20
    assert env.proc("supervisor_process_up", "web") == 1
    for to, code in (("STOPPING", 40), ("STOPPED", 0)):
        env.send("web", to, "x")
        assert env.proc("supervisor_process_state", "web") == code
    env.send("web", "UNKNOWN", "RUNNING")
    assert env.proc("supervisor_process_state", "web") == 1000


def test_first_start_is_not_a_restart(env: Env) -> None:
    env.walk("web", "STOPPED", "STARTING", "RUNNING")
    env.clock.advance(10)
    assert env.restarts("web") == only(None)
    assert env.proc("supervisor_process_fatal_total", "web") == 0
    assert env.proc("supervisor_process_exits_total", "web", expected="false") == 0
    assert env.proc("supervisor_process_exits_total", "web", expected="true") == 0


def test_unexpected_exit_and_autorestart_count_a_crash(env: Env) -> None:
    env.walk("web", "STOPPED", "STARTING", "RUNNING")
    env.wall.advance(60)
    env.walk("web", "RUNNING", "EXITED", "STARTING")
    assert env.restarts("web") == only("crash")
    assert env.proc("supervisor_process_exits_total", "web", expected="false") == 1
    assert env.proc("supervisor_process_start_time_seconds", "web") == WALL + 60


def test_expected_exit_and_restart_count_an_exit(env: Env) -> None:
    env.walk("job", "STOPPED", "STARTING", "RUNNING")
    env.send("job", "EXITED", "RUNNING", expected=True)
    env.send("job", "STARTING", "EXITED")
    assert env.restarts("job") == only("exit")
    assert env.proc("supervisor_process_exits_total", "job", expected="true") == 1


def test_start_retries_count_backoff_then_fatal(env: Env) -> None:
    env.walk("feed", "STOPPED", "STARTING", "BACKOFF", "STARTING", "BACKOFF", "FATAL")
    assert env.proc("supervisor_process_state", "feed") == 200
    assert env.proc("supervisor_process_fatal_total", "feed") == 1
    assert env.restarts("feed") == only("backoff")


def test_restart_by_request_counts_manual_after_the_grace(env: Env) -> None:
    env.walk("web", "STOPPED", "STARTING", "RUNNING", "STOPPING", "STOPPED", "STARTING")
    assert env.restarts("web") == only(None)  # the health plugin may still claim it
    env.clock.advance(START_GRACE)
    assert env.restarts("web") == only("manual")


def test_start_from_fatal_by_request_counts_manual(env: Env) -> None:
    env.walk("feed", "STOPPED", "STARTING", "BACKOFF", "FATAL", "STARTING")
    env.clock.advance(START_GRACE)
    assert env.restarts("feed") == {**only("manual"), "backoff": 0.0}


@pytest.mark.parametrize("action_first", [False, True])
def test_health_restart_claims_its_start_whichever_arrives_first(
    env: Env, action_first: bool
) -> None:
    env.walk("web", "STOPPED", "STARTING", "RUNNING", "STOPPING", "STOPPED")
    if action_first:
        env.collector.remediation(remediation("restart"))
    env.walk("web", "STOPPED", "STARTING")
    env.clock.advance(0.1)
    if not action_first:
        env.collector.remediation(remediation("restart"))
    env.clock.advance(START_GRACE * 4)
    assert env.restarts("web") == only("health")
    labels = {"check": "web", "group": "web", "name": "web"}
    assert env.value("vigil_remediations_total", **labels, action="restart", result="ok") == 1


def test_health_action_after_the_grace_does_not_claim_a_settled_start(env: Env) -> None:
    env.walk("web", "STOPPED", "STARTING", "RUNNING", "STOPPING", "STOPPED", "STARTING")
    env.clock.advance(START_GRACE * 2)  # nobody scraped meanwhile: still pending in the model
    env.collector.remediation(remediation("restart"))
    assert env.restarts("web") == only("manual")


def test_health_fatal_recovery_counts_fatal_recovery(env: Env) -> None:
    env.walk("feed", "STOPPED", "STARTING", "BACKOFF", "FATAL")
    env.collector.remediation(remediation("start", name="feed"))
    env.walk("feed", "FATAL", "STARTING")
    assert env.restarts("feed")["fatal_recovery"] == 1
    assert env.restarts("feed")["manual"] == 0


def test_failed_or_stale_health_action_does_not_claim_a_start(env: Env) -> None:
    env.walk("web", "STOPPED", "STARTING", "RUNNING", "STOPPING", "STOPPED")
    env.collector.remediation(remediation("restart", ok=False))
    env.collector.remediation(remediation("stop"))  # not a start either
    env.walk("web", "STOPPED", "STARTING")
    env.clock.advance(START_GRACE)
    assert env.restarts("web") == only("manual")
    env.walk("web", "STARTING", "RUNNING", "STOPPING", "STOPPED")
    env.collector.remediation(remediation("restart"))
    env.clock.advance(60)  # the action's STARTING never came: the hint expired
    env.walk("web", "STOPPED", "STARTING")
    env.clock.advance(START_GRACE)
    assert env.restarts("web") == only("manual", 2)
    labels = {"check": "web", "group": "web", "name": "web"}
    assert env.value("vigil_remediations_total", **labels, action="restart", result="error") == 1
    assert env.value("vigil_remediations_total", **labels, action="stop", result="ok") == 1


def test_a_pending_start_is_settled_by_the_next_start(env: Env) -> None:
    env.walk("web", "STOPPED", "STARTING", "RUNNING", "STOPPING", "STOPPED", "STARTING")
    env.walk("web", "STARTING", "BACKOFF", "STARTING")  # within the grace
    assert env.restarts("web") == {**only("manual"), "backoff": 1.0}


# --- reconciling ----------------------------------------------------------------------------


def test_reconcile_sets_gauges_and_leaves_counters(env: Env) -> None:
    env.walk("web", "STOPPED", "STARTING", "RUNNING", "EXITED", "STARTING", "RUNNING")
    token = env.collector.reconcile_token()
    env.collector.reconciled(token, [info("web", 100, "EXITED", 1234, 3)], complete=True)
    assert env.proc("supervisor_process_state", "web") == 100
    assert env.proc("supervisor_process_start_time_seconds", "web") == 1234
    assert env.proc("supervisor_process_exit_status", "web") == 3
    assert env.restarts("web") == only("crash")
    assert env.proc("supervisor_process_exits_total", "web", expected="false") == 1
    assert env.value("supervisor_up") == 1
    assert env.value("vigil_metrics_reconciles_total", result="ok") == 1


def test_reconcile_does_not_undo_an_event_newer_than_its_call(env: Env) -> None:
    env.walk("web", "STOPPED", "STARTING", "RUNNING")
    token = env.collector.reconcile_token()
    env.walk("web", "RUNNING", "EXITED")  # arrives while the call is in flight
    env.collector.reconciled(token, [info("web", 20, "RUNNING", 1234, 0)], complete=True)
    assert env.proc("supervisor_process_state", "web") == 100
    assert env.proc("supervisor_process_exit_status", "web") == 0  # events carry none
    token = env.collector.reconcile_token()
    env.collector.reconciled(token, [info("web", 20, "RUNNING", 1300, 0)], complete=True)
    assert env.proc("supervisor_process_state", "web") == 20


def test_exact_start_time_replaces_the_events_unless_it_is_a_previous_runs(env: Env) -> None:
    env.walk("web", "STOPPED", "STARTING")
    assert env.proc("supervisor_process_start_time_seconds", "web") == WALL
    token = env.collector.reconcile_token()
    env.walk("web", "STARTING", "RUNNING")  # newer than the call: state stays the event's
    env.collector.reconciled(token, [info("web", 10, "STARTING", int(WALL) - 1)], complete=False)
    assert env.proc("supervisor_process_start_time_seconds", "web") == WALL - 1
    assert env.proc("supervisor_process_state", "web") == 20
    env.wall.advance(100)
    env.walk("web", "RUNNING", "EXITED", "STARTING")
    token = env.collector.reconcile_token()
    env.walk("web", "STARTING", "RUNNING")
    env.collector.reconciled(token, [info("web", 100, "EXITED", int(WALL) - 1)], complete=False)
    assert env.proc("supervisor_process_start_time_seconds", "web") == WALL + 100


def test_complete_reconcile_forgets_processes_gone_from_the_supervisor(env: Env) -> None:
    env.walk("old", "STOPPED", "STARTING", "RUNNING")
    token = env.collector.reconcile_token()
    env.walk("new", "STOPPED", "STARTING")  # added while the call was in flight
    env.collector.reconciled(token, [info("web", 20, "RUNNING", 1)], complete=True)
    assert env.proc("supervisor_process_state", "old") is None
    assert env.proc("supervisor_process_fatal_total", "old") is None
    assert env.proc("supervisor_process_state", "new") == 10
    assert env.proc("supervisor_process_state", "web") == 20
    env.collector.reconciled(env.collector.reconcile_token(), [], complete=False)
    assert env.proc("supervisor_process_state", "web") == 20  # a partial one forgets nothing


def test_after_a_listener_restart_a_stopped_process_restarts_as_manual(env: Env) -> None:
    token = env.collector.reconcile_token()
    infos = [info("ran", 0, "STOPPED", 1234), info("never", 0, "STOPPED", 0)]
    env.collector.reconciled(token, infos, complete=True)
    env.walk("ran", "STOPPED", "STARTING")
    env.walk("never", "STOPPED", "STARTING")
    env.clock.advance(START_GRACE)
    assert env.restarts("ran") == only("manual")
    assert env.restarts("never") == only(None)


def test_restart_after_an_exit_seen_only_by_reconcile_guesses_from_the_status(
    env: Env,
) -> None:
    infos = [info("a", 100, "EXITED", 5, exitstatus=0), info("b", 100, "EXITED", 5, 2)]
    env.collector.reconciled(env.collector.reconcile_token(), infos, complete=True)
    env.send("a", "STARTING", "EXITED")
    env.send("b", "STARTING", "EXITED")
    assert env.restarts("a") == only("exit")
    assert env.restarts("b") == only("crash")


def test_supervisor_up_info_and_unreachable(env: Env) -> None:
    assert env.value("supervisor_up") is None  # not asked yet
    env.collector.reconciled(env.collector.reconcile_token(), [], complete=True)
    env.collector.supervisor_info("4.3.0", "vigiltest")
    assert env.value("supervisor_up") == 1
    assert env.value("supervisor_info", version="4.3.0", identification="vigiltest") == 1
    env.collector.supervisor_unreachable()
    assert env.value("supervisor_up") == 0
    assert env.value("vigil_metrics_reconciles_total", result="error") == 1


# --- checks ---------------------------------------------------------------------------------


def test_check_results_give_up_failures_and_a_duration_histogram(env: Env) -> None:
    for ok, duration in ((True, 0.003), (False, 0.2), (True, 0.02), (False, 30.0)):
        env.collector.check_result(outcome(ok, duration))
    labels = {"check": "web", "group": "web", "name": "web"}
    assert env.value("vigil_check_up", **labels) == 0
    assert env.value("vigil_check_failures_total", **labels) == 2
    assert env.value("vigil_check_duration_seconds_count", **labels) == 4
    assert env.value("vigil_check_duration_seconds_sum", **labels) == pytest.approx(30.223)
    bucket = "vigil_check_duration_seconds_bucket"
    assert env.value(bucket, **labels, le="0.005") == 1
    assert env.value(bucket, **labels, le="0.025") == 2
    assert env.value(bucket, **labels, le="0.25") == 3
    assert env.value(bucket, **labels, le="10.0") == 3
    assert env.value(bucket, **labels, le="+Inf") == 4
    assert len(DURATION_BUCKETS) == 11
    env.collector.check_result(outcome(True, 0.001))
    assert env.value("vigil_check_up", **labels) == 1


def test_breaker_state_values_are_closed_0_half_open_1_open_2(env: Env) -> None:
    labels = {"check": "web", "group": "web", "name": "web"}
    env.collector.check_result(outcome(True, 0.01))
    assert env.value("vigil_breaker_state", **labels) == 0  # known check, never tripped
    env.collector.breaker_change(breaker(BreakerState.OPEN))
    assert env.value("vigil_breaker_state", **labels) == 2
    env.collector.breaker_change(breaker(BreakerState.HALF_OPEN, BreakerState.OPEN))
    assert env.value("vigil_breaker_state", **labels) == 1
    assert dict(BREAKER_VALUES) == {
        BreakerState.CLOSED: 0,
        BreakerState.HALF_OPEN: 1,
        BreakerState.OPEN: 2,
    }


def test_verdicts_set_check_healthy(env: Env) -> None:
    labels = {"check": "web", "group": "web", "name": "web"}
    env.collector.check_result(outcome(False, 0.01))
    assert env.value("vigil_check_healthy", **labels) == 1  # presumed healthy, as the probe
    env.collector.verdict(VerdictChange("web", "web", "web", False, "HTTP 500"))
    assert env.value("vigil_check_healthy", **labels) == 0
    env.collector.verdict(VerdictChange("web", "web", "web", True, "ok"))
    assert env.value("vigil_check_healthy", **labels) == 1


# --- listener statistics, node_exporter aliases ---------------------------------------------


def stats(**kw: Any) -> RuntimeStatistics:
    base: dict[str, Any] = {
        "received": {"PROCESS_STATE_RUNNING": 3, "TICK_5": 2},
        "acknowledged": 5,
        "handler_errors": 1,
        "queue_depth": {"metrics": 0, "health": 4},
        "dropped": {"metrics": 0, "health": 7},
        "poolserial_gaps": 2,
    }
    return RuntimeStatistics(**{**base, **kw})


def test_listener_statistics_are_read_at_scrape_time() -> None:
    current = [stats()]
    env = make_env(statistics=lambda: current[0])
    assert env.value("vigil_listener_events_total", eventname="PROCESS_STATE_RUNNING") == 3
    assert env.value("vigil_listener_events_acknowledged_total") == 5
    assert env.value("vigil_listener_handler_errors_total") == 1
    assert env.value("vigil_listener_queue_depth", plugin="health") == 4
    assert env.value("vigil_listener_dropped_events_total", plugin="health") == 7
    assert env.value("vigil_listener_poolserial_gaps_total") == 2
    current[0] = stats(poolserial_gaps=9)
    assert env.value("vigil_listener_poolserial_gaps_total") == 9


def test_no_listener_families_before_the_runtime_runs() -> None:
    env = make_env(statistics=lambda: None)
    assert env.value("vigil_listener_handler_errors_total") is None


def test_node_exporter_aliases_only_when_asked() -> None:
    env = make_env()
    env.walk("web", "STOPPED", "STARTING")
    assert env.proc("node_supervisord_up", "web") is None
    env = make_env(node_exporter_compat=True)
    env.walk("web", "STOPPED", "STARTING")
    # node_exporter's "up": STARTING, RUNNING or STOPPING; start time only while up
    assert env.proc("node_supervisord_up", "web") == 1
    assert env.proc("node_supervisord_state", "web") == 10
    assert env.proc("node_supervisord_start_time_seconds", "web") == WALL
    assert env.proc("node_supervisord_exit_status", "web") is None  # not known yet
    env.walk("web", "STARTING", "RUNNING", "EXITED")
    env.collector.reconciled(env.collector.reconcile_token(), [], complete=False)
    assert env.proc("node_supervisord_up", "web") == 0
    assert env.proc("node_supervisord_start_time_seconds", "web") is None
    assert env.proc("supervisor_process_start_time_seconds", "web") == WALL


# --- the exposition ----------------------------------------------------------------------


def rich_env() -> Env:
    env = make_env(statistics=stats, node_exporter_compat=True)
    env.walk("web", "STOPPED", "STARTING", "RUNNING", "EXITED", "STARTING", "RUNNING")
    env.walk("feed", "STOPPED", "STARTING", "BACKOFF", "FATAL")
    env.collector.reconciled(
        env.collector.reconcile_token(),
        [info("web", 20, "RUNNING", 1_700_000_123, 0), info("feed", 200, "FATAL", 17, 3)],
        complete=True,
    )
    env.collector.supervisor_info("4.3.0", 'id "with" \\ quotes\nand a newline')
    for ok, d in ((True, 0.001), (False, 1.5), (True, 0.0421)):
        env.collector.check_result(outcome(ok, d))
    env.collector.check_result(outcome(True, 0.1, check='we"ird\\check'))
    env.collector.breaker_change(breaker(BreakerState.OPEN))
    env.collector.remediation(remediation("signal:HUP"))
    return env


def samples(text: str) -> set[tuple[str, frozenset[tuple[str, str]], float]]:
    return {
        (s.name, frozenset(s.labels.items()), s.value)
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_exposition_says_what_generate_latest_says() -> None:
    env = rich_env()
    fast = env.collector.exposition().decode()
    reference = generate_latest(env.registry).decode()
    assert samples(fast) == samples(reference)
    assert len(samples(fast)) > 60
    types = re.findall(r"^# TYPE (\S+) (\S+)$", fast, re.M)
    assert types == re.findall(r"^# TYPE (\S+) (\S+)$", reference, re.M)


def test_exposition_cache_follows_every_kind_of_change() -> None:
    """The endpoint re-renders a process or check only when its values change: after each
    step, what it serves must equal what prometheus-client renders from fresh samples."""
    env = make_env(statistics=stats, node_exporter_compat=True)
    c = env.collector
    steps: list[Callable[[], None]] = [
        lambda: env.walk("web", "STOPPED", "STARTING"),
        lambda: env.walk("web", "STARTING", "RUNNING"),
        lambda: env.walk("web", "RUNNING", "EXITED"),
        lambda: env.send("web", "STARTING", "EXITED"),
        lambda: env.walk("web", "STARTING", "BACKOFF", "STARTING", "BACKOFF", "FATAL"),
        lambda: c.reconciled(
            c.reconcile_token(), [info("web", 200, "FATAL", 99, 4)], complete=False
        ),
        lambda: c.reconciled(c.reconcile_token(), [info("web", 20, "RUNNING", 120)], complete=True),
        lambda: c.reconciled(
            c.reconcile_token(), [info("web", 20, "RUNNING", 120, 9)], complete=False
        ),
        lambda: c.reconciled(
            c.reconcile_token(), [info("web", 20, "RUNNING", 130, 9)], complete=False
        ),
        lambda: env.walk("web", "RUNNING", "STOPPING", "STOPPED", "STARTING"),
        lambda: env.clock.advance(START_GRACE),  # the pending start becomes manual
        lambda: c.check_result(outcome(True, 0.01)),
        lambda: c.check_result(outcome(False, 0.01)),
        lambda: c.check_result(outcome(True, 0.0)),
        lambda: c.check_result(outcome(True, 0.0)),  # only the count and a bucket change
        lambda: c.verdict(VerdictChange("web", "web", "web", False, "down")),
        lambda: c.breaker_change(breaker(BreakerState.OPEN)),
        lambda: c.remediation(remediation("restart")),
        lambda: c.remediation(remediation("restart", ok=False)),
        lambda: env.walk("web", "STARTING", "RUNNING", "STOPPING", "STOPPED", "STARTING"),
        lambda: c.supervisor_info("4.3.0", "x"),
        lambda: c.supervisor_unreachable(),
        lambda: c.reconciled(c.reconcile_token(), [], complete=True),
    ]
    for i, step in enumerate(steps):
        step()
        fast = c.exposition().decode()
        assert samples(fast) == samples(generate_latest(env.registry).decode()), i


def test_no_label_holds_a_pid_or_a_time() -> None:
    text = rich_env().collector.exposition().decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            assert not {"pid", "start", "time", "now", "state"} & set(s.labels), s
            for value in s.labels.values():
                assert not re.fullmatch(r"\d{4,}(\.\d+)?", value), s


def test_dashboard_and_alert_rules_use_only_exported_names() -> None:
    exported = {
        name for name, _labels, _value in samples(rich_env().collector.exposition().decode())
    }
    exported |= {"up"}  # Prometheus' own
    for path in ("conf/grafana-dashboard.json", "conf/alerts.rules.yml", "conf/alerts.test.yml"):
        text = (ROOT / path).read_text()
        used = set(re.findall(r"\b((?:supervisor|vigil|node_supervisord)_[a-z_]+)", text))
        assert used, path
        assert used <= exported, (path, sorted(used - exported))


# --- configuration --------------------------------------------------------------------------


def config(tmp_path: Path, body: str) -> MetricsConfig:
    path = tmp_path / "supervisord.conf"
    path.write_text("[supervisord]\n" + body)
    return load_metrics_config(read_ini(path, environ={"ENV_PW": "x", "PW": "s3cret"}))


def test_config_defaults_without_a_file_or_a_section(tmp_path: Path) -> None:
    default = MetricsConfig()
    assert load_metrics_config(None) == default
    assert config(tmp_path, "") == default
    assert (default.host, default.port, default.reconcile) == ("127.0.0.1", 9876, 15.0)
    assert not default.node_exporter_compat and default.username is None


def test_config_every_key(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("x")
    (tmp_path / "key.pem").write_text("x")
    c = config(
        tmp_path,
        """
[metrics]
listen = [::1]:9100
username = prom
password = %(ENV_PW)s
tls_cert = cert.pem
tls_key = %(here)s/key.pem
reconcile = 2.5
node_exporter_compat = yes
""",
    )
    assert (c.host, c.port, c.username, c.password) == ("::1", 9100, "prom", "s3cret")
    assert c.tls_cert == tmp_path / "cert.pem" and c.tls_key == tmp_path / "key.pem"
    assert (c.reconcile, c.node_exporter_compat, c.scheme) == (2.5, True, "https")
    assert "s3cret" not in repr(c)


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [(":9876", "0.0.0.0", 9876), ("0.0.0.0:1", "0.0.0.0", 1), ("localhost:0", "localhost", 0)],
)
def test_config_listen_forms(tmp_path: Path, listen: str, host: str, port: int) -> None:
    c = config(tmp_path, f"[metrics]\nlisten = {listen}\n")
    assert (c.host, c.port) == (host, port)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("lisen = :1", "[metrics] lisen = ':1': unknown key (did you mean 'listen'?)"),
        ("listen = 9876", "[metrics] listen = '9876': not HOST:PORT"),
        ("listen = ::1:9876", "[metrics] listen = '::1:9876': an IPv6 address needs brackets"),
        ("listen = h:http", "[metrics] listen = 'h:http': port 'http' is not a number"),
        ("listen = h:70000", "[metrics] listen = 'h:70000': port must be 0-65535"),
        ("username = u", "[metrics] password: required when username is set"),
        ("password = p", "[metrics] username: required when password is set"),
        ("username =\npassword = p", "[metrics] username = '': must not be empty"),
        ("tls_cert = nope.pem\ntls_key = nope.pem", "[metrics] tls_cert = 'nope.pem': no such"),
        ("reconcile = 0", "[metrics] reconcile = '0': must be positive"),
        ("reconcile = soon", "[metrics] reconcile = 'soon': not a number"),
        ("node_exporter_compat = maybe", "node_exporter_compat = 'maybe': not a valid boolean"),
    ],
)
def test_config_errors_name_section_key_and_value(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config(tmp_path, f"[metrics]\n{body}\n")
    assert message in str(info.value)
    assert str(tmp_path / "supervisord.conf") in str(info.value)


# --- the endpoint ---------------------------------------------------------------------------


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    servers: list[MetricsServer] = []

    def start(**kw: Any) -> str:
        env = make_env()
        env.walk("web", "STOPPED", "STARTING")
        server = MetricsServer(MetricsConfig(port=0, **kw), env.collector, CollectorRegistry())
        server.start()
        servers.append(server)
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server in servers:
        server.stop()


def get(url: str, **kw: Any) -> requests.Response:
    with requests.request(kw.pop("method", "GET"), url, timeout=5, **kw) as response:
        response.content  # noqa: B018 - read it before the connection closes
        return response


def test_endpoint_serves_text_format_on_metrics(serve: Callable[..., str]) -> None:
    base = serve()
    r = get(base + "/metrics", headers={"Accept-Encoding": "identity"})
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert 'supervisor_process_state{group="web",name="web"} 10\n' in r.text
    zipped = get(base + "/metrics", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip" and zipped.text == r.text
    head = get(base + "/metrics", method="HEAD")
    assert head.status_code == 200 and head.content == b""
    assert get(base + "/").status_code == 200
    assert get(base + "/nope").status_code == 404
    assert get(base + "/metrics", method="POST").status_code == 405


def test_endpoint_basic_auth(serve: Callable[..., str]) -> None:
    url = serve(username="prom", password="pa:ss") + "/metrics"
    missing = get(url)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Basic realm="vigil"'
    assert get(url, auth=("prom", "wrong")).status_code == 401
    assert get(url, auth=("other", "pa:ss")).status_code == 401
    assert get(url, headers={"Authorization": "Basic !!!"}).status_code == 401
    assert get(url + "x", auth=("prom", "pa:ss")).status_code == 404
    ok = get(url, auth=("prom", "pa:ss"))
    assert ok.status_code == 200 and "supervisor_process_state" in ok.text


def test_server_registers_the_collector_only_once_serving_and_unregisters_at_stop() -> None:
    env = make_env()
    registry = CollectorRegistry()
    server = MetricsServer(MetricsConfig(port=0), env.collector, registry)
    assert list(registry.collect()) == []
    server.start()
    try:
        env.walk("web", "STOPPED", "STARTING")
        assert (
            registry.get_sample_value("supervisor_process_state", {"group": "web", "name": "web"})
            == 10
        )
    finally:
        server.stop()
    assert list(registry.collect()) == []
    server.stop()  # idempotent


# --- the plugin with a fake supervisor ------------------------------------------------------


@dataclass
class FakeAPI:
    """``supervisor.*`` of a fake XML-RPC server."""

    infos: list[dict[str, Any]]
    down: bool = False
    calls: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    def _call(self, name: str) -> None:
        self.calls.append(name)
        self.times.append(time.monotonic())
        if self.down:
            raise Unreachable("unix:///fake.sock", "connection refused")

    def getAllProcessInfo(self) -> list[dict[str, Any]]:
        self._call("getAllProcessInfo")
        return self.infos

    def getProcessInfo(self, namespec: str) -> dict[str, Any]:
        self._call(f"getProcessInfo {namespec}")
        group, _, name = namespec.partition(":")
        return next(i for i in self.infos if (i["group"], i["name"]) == (group, name))

    def getSupervisorVersion(self) -> str:
        self._call("getSupervisorVersion")
        return "4.3.0"

    def getIdentification(self) -> str:
        self._call("getIdentification")
        return "fake"


@dataclass
class FakeClient:
    supervisor: FakeAPI


def notification(event: ProcessStateChange) -> Notification:
    header = Header("fake", 1, "vigil", 1, event.type.value, 0)
    return Notification(header, event, "")


@pytest.fixture
def plugin(tmp_path: Path) -> Iterator[tuple[PluginContext, MetricsPlugin, FakeAPI]]:
    """``setup`` on a config with ``listen = 127.0.0.1:0``, talking to a fake supervisor."""
    conf = tmp_path / "supervisord.conf"
    conf.write_text("[metrics]\nlisten = 127.0.0.1:0\nreconcile = 30\n")
    api = FakeAPI([info("web", 20, "RUNNING", 1234)])
    client = cast(SupervisorClient, FakeClient(api))
    ctx = PluginContext(
        name="metrics",
        config=read_ini(conf, environ={}),
        log=logging.getLogger("vigil.metrics"),
        stopping=threading.Event(),
        environ={},
        _client_factory=lambda: client,
    )
    setup(ctx)
    instance = getattr(ctx.subscriptions[0].handler, "__self__", None)
    assert isinstance(instance, MetricsPlugin)
    try:
        yield ctx, instance, api
    finally:
        ctx.stopping.set()
        for callback in reversed(ctx._on_stop):
            callback()
    assert not instance.reconciler._thread.is_alive()


def wait_sample(
    registry: CollectorRegistry, name: str, labels: dict[str, str], want: float
) -> float | None:
    deadline = time.monotonic() + 5
    while (got := registry.get_sample_value(name, labels)) != want:
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    return got


def test_plugin_reconciles_at_start_and_refreshes_exit_status_after_an_exit(
    plugin: tuple[PluginContext, MetricsPlugin, FakeAPI],
) -> None:
    ctx, p, api = plugin
    web = {"group": "web", "name": "web"}
    assert wait_sample(p.registry, "supervisor_process_state", web, 20) == 20
    labels = {"version": "4.3.0", "identification": "fake"}
    assert p.registry.get_sample_value("supervisor_info", labels) == 1
    assert p.registry.get_sample_value("supervisor_up") == 1
    api.infos = [info("web", 100, "EXITED", 1234, exitstatus=3)]
    event = ProcessStateChange(EventType.PROCESS_STATE_EXITED, "web", "web", "RUNNING", pid=7)
    ctx.subscriptions[0].handler(notification(event))
    assert wait_sample(p.registry, "supervisor_process_exit_status", web, 3) == 3
    assert p.registry.get_sample_value("supervisor_process_state", web) == 100
    assert "getProcessInfo web:web" in api.calls
    assert api.calls.count("getAllProcessInfo") == 1
    body = get(f"http://127.0.0.1:{p.server.port}/metrics").text
    assert 'supervisor_process_exit_status{group="web",name="web"} 3\n' in body


def test_plugin_refreshes_an_event_storm_with_one_full_call_a_second(
    plugin: tuple[PluginContext, MetricsPlugin, FakeAPI],
) -> None:
    ctx, p, api = plugin
    assert wait_sample(p.registry, "supervisor_up", {}, 1) == 1
    events = []
    for i in range(20):
        api.infos.append(info(f"p{i}", 100, "EXITED", 1234, exitstatus=1))
        event = ProcessStateChange(EventType.PROCESS_STATE_EXITED, f"p{i}", f"p{i}", "RUNNING")
        events.append(notification(event))
    for n in events:  # well within REFRESH_DELAY: one batch
        ctx.subscriptions[0].handler(n)
    status = {"group": "p19", "name": "p19"}
    assert wait_sample(p.registry, "supervisor_process_exit_status", status, 1) == 1
    full = [t for c, t in zip(api.calls, api.times, strict=True) if c == "getAllProcessInfo"]
    assert len(full) == 2, api.calls
    assert full[1] - full[0] >= 0.95


def test_plugin_reports_an_unreachable_supervisor() -> None:
    api = FakeAPI([], down=True)
    client = cast(SupervisorClient, FakeClient(api))
    ctx = PluginContext(
        name="metrics",
        config=None,
        log=logging.getLogger("vigil.metrics"),
        stopping=threading.Event(),
        environ={},
        _client_factory=lambda: client,
    )
    p = MetricsPlugin(ctx, MetricsConfig(port=0))  # not started: reconcile by hand
    registry = CollectorRegistry()
    registry.register(p.collector)
    p.reconciler.reconcile()
    assert registry.get_sample_value("supervisor_up") == 0
    assert registry.get_sample_value("vigil_metrics_reconciles_total", {"result": "error"}) == 1
    api.down = False
    p.reconciler.reconcile()
    assert registry.get_sample_value("supervisor_up") == 1


# --- the package surface --------------------------------------------------------------------


def test_metrics_package_reexports_its_public_names() -> None:
    import importlib

    import listeners.metrics as pkg

    exported = [n for n in dir(pkg) if not n.startswith("_")]
    assert {"MetricsCollector", "MetricsConfig", "MetricsServer", "Reconciler"} <= set(exported)
    for name in exported:
        value = getattr(pkg, name)
        module_name = getattr(value, "__module__", "")
        if not module_name.startswith("listeners.metrics."):
            continue
        module = importlib.import_module(module_name)
        assert getattr(module, name) is value
        assert name in module.__all__, f"{name} missing from {module_name}.__all__"


def test_plugin_module_still_exports_the_names_it_had() -> None:
    """``listeners.plugins.metrics`` kept its public names when its parts moved out."""
    import listeners.metrics as pkg
    import listeners.plugins.metrics as plugin

    for name in plugin.__all__:
        value = getattr(plugin, name)
        if name not in ("MetricsPlugin", "setup"):
            assert value is getattr(pkg, name)
