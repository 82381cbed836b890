"""ChannelPolicy: one alert per condition, reminders, recovery, breakers, filters, restore."""

from __future__ import annotations

from typing import Any

from listeners.alerting.config import ProgramFilter
from listeners.alerting.model import Status, Trigger
from listeners.alerting.policy import ChannelPolicy, Decision, PolicySpec, Verb

T = Trigger
WALL0 = 1_700_000_000.0


def policy(
    on: set[Trigger] | None = None,
    *,
    repeat: float = 60.0,
    stable: float = 10.0,
    programs: str = "",
) -> ChannelPolicy:
    return ChannelPolicy(
        PolicySpec(
            "ops",
            "h",
            frozenset(on or {T.FATAL, T.EXITED_UNEXPECTED, T.BACKOFF, T.RECOVERED}),
            ProgramFilter.parse(programs),
            repeat,
            stable,
        )
    )


def state(p: ChannelPolicy, to: str, now: float, name: str = "web", **kw: Any) -> list[Decision]:
    kw.setdefault("from_state", "RUNNING")
    return p.process_state(name, name, to, now=now, wall=WALL0 + now, **kw)


def verbs(ds: list[Decision]) -> list[Verb]:
    return [d.verb for d in ds]


def crash(p: ChannelPolicy, now: float, name: str = "web") -> list[Decision]:
    out = state(p, "STARTING", now, name, from_state="EXITED", tries=0)
    out += state(p, "RUNNING", now + 0.1, name, from_state="STARTING", pid=100)
    out += state(p, "EXITED", now + 0.3, name, expected=False, pid=100)
    return out


def test_first_fatal_fires_one_alert_with_the_event_facts() -> None:
    p = policy()
    (d,) = state(p, "FATAL", 5.0, from_state="BACKOFF", tries=3)
    assert d.verb is Verb.FIRE and d.alert is not None
    a = d.alert
    assert (a.status, a.trigger, a.condition, a.key) == (
        Status.FIRING,
        T.FATAL,
        T.FATAL,
        "h/web/FATAL",
    )
    assert (a.from_state, a.to_state, a.tries, a.reminder, a.occurrences) == (
        "BACKOFF",
        "FATAL",
        3,
        0,
        1,
    )
    assert a.started_at == a.at == WALL0 + 5
    assert a.summary == "web is FATAL: supervisord gave up starting it after 3 tries"
    assert not a.enriched
    assert p.dirty


def test_crash_loop_is_one_alert_then_deduplicated_occurrences() -> None:
    p = policy()
    decisions = [d for i in range(10) for d in crash(p, i * 1.0)]
    assert verbs(decisions) == [Verb.FIRE] + [Verb.DEDUPLICATE] * 9
    assert "10 occurrences" in decisions[-1].text
    assert p.statistics().deduplicated == 9
    assert p.firing()[0].occurrences == 10
    assert p.firing()[0].restarts == 9


def test_reminders_come_every_repeat_interval_while_firing() -> None:
    p = policy(repeat=60)
    state(p, "FATAL", 0.0)
    assert p.next_deadline() == 60.0
    assert p.tick(59.9, WALL0 + 59.9) == []
    (r1,) = p.tick(60.0, WALL0 + 60)
    assert r1.verb is Verb.REMIND and r1.alert is not None
    assert (r1.alert.reminder, r1.alert.status, r1.alert.key) == (1, Status.FIRING, "h/web/FATAL")
    assert "still firing after 60s" in r1.alert.summary
    assert p.tick(100.0, WALL0 + 100) == []
    (r2,) = p.tick(120.0, WALL0 + 120)
    assert r2.alert is not None and r2.alert.reminder == 2
    assert r1.alert.id != r2.alert.id


def test_no_reminders_with_repeat_interval_zero() -> None:
    p = policy(repeat=0)
    state(p, "FATAL", 0.0)
    assert p.next_deadline() is None
    assert p.tick(1e6, WALL0 + 1e6) == []


def test_recovery_needs_stable_for_seconds_of_running() -> None:
    p = policy(stable=10)
    state(p, "FATAL", 0.0)
    state(p, "STARTING", 20.0, from_state="FATAL")
    state(p, "RUNNING", 21.0, from_state="STARTING", pid=7)
    assert p.next_deadline() == 31.0
    assert p.tick(30.9, WALL0 + 30.9) == []
    (d,) = p.tick(31.0, WALL0 + 31)
    assert d.verb is Verb.RESOLVE and d.alert is not None
    a = d.alert
    assert (a.status, a.trigger, a.condition, a.key) == (
        Status.RESOLVED,
        T.RECOVERED,
        T.FATAL,
        "h/web/FATAL",
    )
    assert a.ended_at == WALL0 + 31
    assert a.summary.startswith("web recovered from FATAL (RUNNING and healthy for 10s")
    assert p.statistics().firing == 0
    assert p.tick(100.0, WALL0 + 100) == []


def test_a_crash_before_stable_for_keeps_it_firing() -> None:
    p = policy(stable=10)
    crash(p, 0.0)
    state(p, "RUNNING", 5.0, from_state="STARTING")
    assert verbs(state(p, "EXITED", 9.0, expected=False)) == [Verb.DEDUPLICATE]
    assert p.tick(20.0, WALL0 + 20) == []


def test_every_firing_condition_of_the_process_resolves_together() -> None:
    p = policy(stable=1, repeat=0)
    state(p, "BACKOFF", 0.0, from_state="STARTING", tries=1)
    state(p, "FATAL", 0.1, from_state="BACKOFF", tries=2)
    state(p, "RUNNING", 5.0, from_state="STARTING")
    resolved = p.tick(6.0, WALL0 + 6)
    assert sorted(d.key for d in resolved) == ["h/web/BACKOFF", "h/web/FATAL"]
    assert verbs(resolved) == [Verb.RESOLVE, Verb.RESOLVE]


def test_recovery_without_recovered_in_on_is_silent() -> None:
    p = policy({T.FATAL}, stable=1)
    state(p, "FATAL", 0.0)
    state(p, "RUNNING", 1.0, from_state="STARTING")
    (d,) = p.tick(2.0, WALL0 + 2)
    assert d.verb is Verb.CLEAR and d.alert is None
    assert "RECOVERED not in on" in d.text


def test_stopping_on_purpose_resolves() -> None:
    p = policy()
    crash(p, 0.0)
    state(p, "STARTING", 1.0, from_state="EXITED")
    state(p, "RUNNING", 1.1, from_state="STARTING")
    state(p, "STOPPING", 1.5)
    assert state(p, "STOPPED", 2.0, from_state="STOPPING") == []
    assert p.next_deadline() == 12.0
    (d,) = p.tick(12.0, WALL0 + 12)
    assert d.verb is Verb.RESOLVE and d.alert is not None
    assert "stopped on purpose" in d.alert.summary


def test_the_stop_of_a_restart_does_not_resolve() -> None:
    p = policy({T.HEALTH_RESTART, T.RECOVERED}, stable=10)
    p.verdict("web", "web", "http", False, "HTTP 500")
    p.health_restart("web", "web", "http", "HTTP 500", now=0.0, wall=WALL0)
    for i, to in enumerate(["STOPPING", "STOPPED", "STARTING", "RUNNING"]):
        assert state(p, to, 5.0 + i * 0.1) == []
    assert p.tick(30.0, WALL0 + 30) == []  # RUNNING, but the check is still unhealthy
    again = p.health_restart("web", "web", "http", "HTTP 500", now=31.0, wall=WALL0 + 31)
    assert verbs(again) == [Verb.DEDUPLICATE]


def test_expected_exits_and_untriggered_states_are_ignored() -> None:
    p = policy({T.FATAL})
    assert state(p, "EXITED", 0.0, expected=True) == []
    assert state(p, "EXITED", 1.0, expected=False) == []  # not in on
    assert state(p, "BACKOFF", 2.0, from_state="STARTING") == []
    assert p.statistics().firing == 0


def test_program_filters() -> None:
    p = policy(programs="web, !web:canary")
    assert verbs(state(p, "FATAL", 0.0, name="web")) == [Verb.FIRE]
    assert state(p, "FATAL", 0.0, name="db") == []
    assert p.process_state("web", "canary", "FATAL", from_state="BACKOFF", now=0, wall=0) == []


def test_unhealthy_check_holds_recovery_until_healthy() -> None:
    p = policy({T.HEALTH_RESTART, T.RECOVERED}, stable=5)
    p.verdict("web", "web", "http", False, "GET /healthz: HTTP 500")
    (d,) = p.health_restart("web", "web", "http", "GET /healthz: HTTP 500", now=0.0, wall=WALL0)
    assert d.verb is Verb.FIRE and d.alert is not None
    assert (d.alert.condition, d.alert.check, d.alert.reason) == (
        T.HEALTH_RESTART,
        "http",
        "GET /healthz: HTTP 500",
    )
    assert d.alert.summary == "web was restarted by health check http: GET /healthz: HTTP 500"
    state(p, "RUNNING", 1.0, from_state="STARTING")
    assert p.tick(10.0, WALL0 + 10) == []
    assert p.next_deadline() == 60.0 + 0.0  # only the reminder
    p.verdict("web", "web", "http", True, "HTTP 200")
    assert verbs(p.tick(10.0, WALL0 + 10)) == [Verb.RESOLVE]


def test_failing_health_reason_is_context_for_a_fatal_alert() -> None:
    p = policy()
    p.verdict("web", "web", "http", False, "connection refused")
    (d,) = state(p, "FATAL", 0.0)
    assert d.alert is not None
    assert (d.alert.check, d.alert.reason) == ("http", "connection refused")


def test_failed_health_restart_says_so() -> None:
    p = policy({T.HEALTH_RESTART})
    (d,) = p.health_restart("web", "web", "http", "hung", now=0, wall=0, error="SPAWN_ERROR")
    assert d.alert is not None and d.alert.reason == "hung; the restart failed: SPAWN_ERROR"


def test_breaker_open_fires_per_check_and_closing_resolves_it() -> None:
    p = policy({T.BREAKER_OPEN, T.BREAKER_CLOSED})
    (d,) = p.breaker("web", "web", "http", "OPEN", "3 restarts in 300s", now=0, wall=WALL0)
    assert d.alert is not None and d.alert.key == "h/web/BREAKER_OPEN/http"
    assert "breaker of check http is OPEN" in d.alert.summary
    assert p.breaker("web", "web", "http", "HALF_OPEN", "cooldown", now=1, wall=WALL0) == []
    again = p.breaker("web", "web", "http", "OPEN", "trial failed", now=2, wall=WALL0)
    assert verbs(again) == [Verb.DEDUPLICATE]
    (c,) = p.breaker("web", "web", "http", "CLOSED", "healthy", now=3, wall=WALL0 + 3)
    assert c.verb is Verb.RESOLVE and c.alert is not None
    assert (c.alert.trigger, c.alert.status) == (T.BREAKER_CLOSED, Status.RESOLVED)
    # a running process does not resolve a breaker: only the breaker does
    q = policy({T.BREAKER_OPEN, T.RECOVERED}, stable=1)
    q.breaker("web", "web", "http", "OPEN", "x", now=0, wall=WALL0)
    state(q, "RUNNING", 0.0, from_state="STARTING")
    assert verbs(q.tick(5.0, WALL0 + 5)) == []
    (r,) = q.breaker("web", "web", "http", "CLOSED", "ok", now=6, wall=WALL0 + 6)
    assert r.alert is not None and r.alert.trigger is T.RECOVERED


def test_breaker_closed_alone_is_a_notice() -> None:
    p = policy({T.BREAKER_CLOSED})
    assert p.breaker("web", "web", "http", "OPEN", "x", now=0, wall=0) == []
    (d,) = p.breaker("web", "web", "http", "CLOSED", "healthy again", now=1, wall=WALL0)
    assert d.alert is not None and d.alert.status is Status.RESOLVED
    assert d.alert.summary == "web: breaker of check http closed again"


def test_group_processes_use_their_namespec() -> None:
    p = policy()
    (d,) = p.process_state("workers", "w_01", "FATAL", from_state="BACKOFF", now=0, wall=0)
    assert d.alert is not None and d.alert.key == "h/workers:w_01/FATAL"


def test_snapshot_and_restore_keep_firing_conditions_and_reminder_schedule() -> None:
    p = policy(repeat=60)
    for i in range(3):
        crash(p, i)
    state(p, "FATAL", 3.0, name="db")
    snap = p.snapshot(now=30.0, wall=WALL0 + 30)
    q = policy(repeat=60)
    # the new process's clock starts elsewhere; 10 s passed between the runs
    assert q.restore(snap, now=1000.0, wall=WALL0 + 40) == 2
    assert sorted(a.key for a in q.firing()) == ["h/db/FATAL", "h/web/EXITED_UNEXPECTED"]
    deadline = q.next_deadline()
    # web fired at 0.3: its reminder was due 30.3 s after the snapshot, 10 s of it passed
    assert deadline is not None and abs(deadline - (1000.0 + 20.3)) < 1e-3
    assert verbs(crash(q, 1001.0)) == [Verb.DEDUPLICATE]
    web = next(a for a in q.firing() if a.name == "web")
    assert web.occurrences == 4
