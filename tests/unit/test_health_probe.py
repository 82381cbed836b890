"""Probe: Kubernetes probe semantics as a pure state machine, on a fake clock (no sleeping)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from healthchecks.probe import Probe, ProbeSpec, Verdict
from healthchecks.result import CheckResult

OK = CheckResult(True, "HTTP 200", 0.01)
BAD = CheckResult(False, "HTTP 500", 0.01)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(
    period: float = 2.0,
    initial_delay: float = 0.0,
    failure_threshold: int = 3,
    success_threshold: int = 1,
    clock: FakeClock | None = None,
) -> Probe:
    spec = ProbeSpec(
        period=period,
        timeout=1.0,
        initial_delay=initial_delay,
        failure_threshold=failure_threshold,
        success_threshold=success_threshold,
    )
    return Probe(spec, clock or FakeClock())


def run(probe: Probe, result: CheckResult, now: float) -> Verdict | None:
    """One probe cycle at ``now``: it must be due."""
    assert probe.due(now)
    probe.start(now)
    return probe.record(result, now + result.duration)


def verdicts(probe: Probe, results: list[CheckResult], start: float = 0.0) -> list[Verdict | None]:
    out = []
    for result in results:
        due = probe.next_due()
        assert due is not None
        out.append(run(probe, result, max(start, due)))
    return out


# --- spec ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"period": 0}, "period must be a positive number of seconds"),
        ({"period": float("inf")}, "period must be a positive number of seconds"),
        ({"timeout": -1}, "timeout must be a positive number of seconds"),
        ({"initial_delay": -0.1}, "initial_delay must be zero or more seconds"),
        ({"failure_threshold": 0}, "failure_threshold must be at least 1"),
        ({"success_threshold": 0}, "success_threshold must be at least 1"),
    ],
)
def test_probe_spec_rejects(kwargs: dict[str, float], why: str) -> None:
    base: dict[str, float] = {"period": 1, "timeout": 1}
    with pytest.raises(ValueError, match=why):
        ProbeSpec(**{**base, **kwargs})  # type: ignore[arg-type]


def test_probe_spec_defaults_follow_kubernetes() -> None:
    spec = ProbeSpec(period=10, timeout=1)
    assert (spec.initial_delay, spec.failure_threshold, spec.success_threshold) == (0, 3, 1)


# --- lifecycle and scheduling -------------------------------------------------------------


def test_probe_not_due_before_the_process_runs() -> None:
    probe = make()
    assert not probe.due(1e9)
    assert probe.next_due() is None
    assert not probe.statistics().running


def test_probe_stopped_to_running_schedules_after_initial_delay() -> None:
    probe = make(initial_delay=5)
    probe.process_running(100.0)
    assert probe.next_due() == 105.0
    assert not probe.due(104.99)
    assert probe.due(105.0)


def test_probe_running_uses_the_clock_when_no_time_is_given() -> None:
    clock = FakeClock(50.0)
    probe = make(initial_delay=1, clock=clock)
    probe.process_running()
    assert probe.next_due() == 51.0
    clock.now = 51.0
    assert probe.due()


def test_probe_running_to_stopped_stops_probing() -> None:
    probe = make()
    probe.process_running(0.0)
    probe.process_stopped()
    assert not probe.due(100.0)
    assert probe.next_due() is None


def test_probe_schedule_is_one_per_period_with_sub_second_periods() -> None:
    probe = make(period=0.25)
    probe.process_running(0.0)
    starts = []
    for _ in range(4):
        due = probe.next_due()
        assert due is not None
        starts.append(due)
        run(probe, OK, due)
    assert starts == [0.0, 0.25, 0.5, 0.75]


def test_probe_in_flight_is_not_due_again() -> None:
    probe = make()
    probe.process_running(0.0)
    probe.start(0.0)
    assert not probe.due(100.0)
    assert probe.next_due() is None
    assert probe.statistics().in_flight
    probe.record(OK, 0.5)
    assert probe.next_due() == 2.0


def test_probe_late_start_reports_lateness_and_does_not_burst() -> None:
    probe = make(period=2.0)
    probe.process_running(0.0)
    lateness = probe.start(7.5)  # the driver stalled for 3¾ periods
    assert lateness == 7.5
    probe.record(OK, 7.6)
    assert probe.next_due() == 9.5  # period after the actual start: no catch-up
    assert not probe.due(9.4)
    stats = probe.statistics()
    assert (stats.last_lateness, stats.skipped) == (7.5, 3)


def test_probe_on_time_start_keeps_the_phase() -> None:
    probe = make(period=2.0)
    probe.process_running(0.0)
    assert probe.start(0.0) == 0.0
    probe.record(OK, 1.0)  # a slow check does not shift the schedule
    assert probe.next_due() == 2.0


def test_probe_start_while_not_running_raises() -> None:
    probe = make()
    with pytest.raises(RuntimeError, match="not RUNNING"):
        probe.start(0.0)


def test_probe_start_while_in_flight_raises() -> None:
    probe = make()
    probe.process_running(0.0)
    probe.start(0.0)
    with pytest.raises(RuntimeError, match="in flight"):
        probe.start(0.0)


# --- verdicts: every transition -----------------------------------------------------------


def test_probe_healthy_before_any_result() -> None:
    probe = make()
    probe.process_running(0.0)
    assert probe.statistics().healthy


def test_probe_healthy_to_unhealthy_after_failure_threshold() -> None:
    probe = make(failure_threshold=3)
    probe.process_running(0.0)
    assert verdicts(probe, [BAD, BAD, BAD]) == [None, None, Verdict.UNHEALTHY]
    stats = probe.statistics()
    assert (stats.healthy, stats.consecutive_failures, stats.failures) == (False, 3, 3)


def test_probe_healthy_stays_healthy_when_a_success_breaks_the_failures() -> None:
    probe = make(failure_threshold=3)
    probe.process_running(0.0)
    assert verdicts(probe, [BAD, BAD, OK, BAD, BAD]) == [None] * 5
    assert probe.statistics().healthy


def test_probe_healthy_to_unhealthy_with_threshold_one() -> None:
    probe = make(failure_threshold=1)
    probe.process_running(0.0)
    assert verdicts(probe, [BAD]) == [Verdict.UNHEALTHY]


def test_probe_unhealthy_is_said_once_per_run() -> None:
    probe = make(failure_threshold=2)
    probe.process_running(0.0)
    assert verdicts(probe, [BAD, BAD, BAD, BAD, BAD]) == [None, Verdict.UNHEALTHY, None, None, None]


def test_probe_unhealthy_to_healthy_after_success_threshold() -> None:
    probe = make(failure_threshold=1, success_threshold=3)
    probe.process_running(0.0)
    got = verdicts(probe, [BAD, OK, OK, OK])
    assert got == [Verdict.UNHEALTHY, None, None, Verdict.HEALTHY]
    assert probe.statistics().healthy


def test_probe_unhealthy_stays_unhealthy_when_a_failure_breaks_the_successes() -> None:
    probe = make(failure_threshold=1, success_threshold=2)
    probe.process_running(0.0)
    got = verdicts(probe, [BAD, OK, BAD, OK])
    assert got == [Verdict.UNHEALTHY, None, None, None]
    assert not probe.statistics().healthy


def test_probe_unhealthy_to_healthy_to_unhealthy_again() -> None:
    probe = make(failure_threshold=2)
    probe.process_running(0.0)
    got = verdicts(probe, [BAD, BAD, OK, BAD, BAD])
    assert got == [None, Verdict.UNHEALTHY, Verdict.HEALTHY, None, Verdict.UNHEALTHY]


def test_probe_restart_resets_counters_and_initial_delay() -> None:
    probe = make(initial_delay=5, failure_threshold=3)
    probe.process_running(0.0)
    verdicts(probe, [BAD, BAD])
    probe.process_stopped()
    probe.process_running(100.0)
    stats = probe.statistics()
    assert (stats.consecutive_failures, stats.consecutive_successes) == (0, 0)
    assert probe.next_due() == 105.0
    assert verdicts(probe, [BAD, BAD]) == [None, None]  # the old failures do not count


def test_probe_unhealthy_then_restarted_and_healthy_says_healthy() -> None:
    """The restart the UNHEALTHY verdict caused worked: HEALTHY closes a half-open breaker."""
    probe = make(failure_threshold=1)
    probe.process_running(0.0)
    assert verdicts(probe, [BAD]) == [Verdict.UNHEALTHY]
    probe.process_stopped()
    probe.process_running(50.0)
    assert not probe.statistics().healthy  # health is sticky across the restart
    assert verdicts(probe, [OK]) == [Verdict.HEALTHY]


def test_probe_unhealthy_then_restarted_and_still_failing_says_unhealthy_again() -> None:
    probe = make(failure_threshold=2)
    probe.process_running(0.0)
    assert verdicts(probe, [BAD, BAD]) == [None, Verdict.UNHEALTHY]
    probe.process_running(50.0)
    assert verdicts(probe, [BAD, BAD]) == [None, Verdict.UNHEALTHY]


def test_probe_healthy_restart_says_nothing() -> None:
    probe = make()
    probe.process_running(0.0)
    verdicts(probe, [OK])
    probe.process_running(10.0)
    assert verdicts(probe, [OK, OK]) == [None, None]


# --- results that do not belong to the current run ----------------------------------------


def test_probe_result_after_stop_is_dropped() -> None:
    probe = make(failure_threshold=1)
    probe.process_running(0.0)
    probe.start(0.0)
    probe.process_stopped()
    assert probe.record(BAD, 0.5) is None
    stats = probe.statistics()
    assert (stats.dropped, stats.probes, stats.healthy) == (1, 0, True)


def test_probe_result_from_the_previous_run_is_dropped() -> None:
    probe = make(failure_threshold=1)
    probe.process_running(0.0)
    probe.start(0.0)
    probe.process_running(0.2)  # restarted while the check was in flight
    assert probe.record(BAD, 0.5) is None
    assert probe.due(0.5)


def test_probe_result_without_start_is_dropped() -> None:
    probe = make(failure_threshold=1)
    probe.process_running(0.0)
    assert probe.record(BAD, 0.0) is None
    assert probe.statistics().dropped == 1


# --- statistics ----------------------------------------------------------------------------


def test_probe_statistics_snapshot() -> None:
    probe = make(failure_threshold=5)
    probe.process_running(0.0)
    verdicts(probe, [OK, BAD, BAD])
    stats = probe.statistics()
    assert stats.consecutive_failures == 2
    assert stats.consecutive_successes == 0
    assert stats.last_result == BAD
    assert stats.last_probe_at == pytest.approx(4.01)
    assert (stats.healthy, stats.probes, stats.failures) == (True, 3, 2)
    assert (stats.running, stats.in_flight, stats.next_due) == (True, False, 6.0)


# --- properties ------------------------------------------------------------------------------


@given(
    results=st.lists(st.booleans(), max_size=60),
    failure_threshold=st.integers(1, 5),
    success_threshold=st.integers(1, 5),
)
def test_probe_verdicts_alternate_and_match_the_thresholds(
    results: list[bool], failure_threshold: int, success_threshold: int
) -> None:
    probe = make(failure_threshold=failure_threshold, success_threshold=success_threshold)
    probe.process_running(0.0)
    healthy = True
    run_ok = run_bad = 0
    for i, ok in enumerate(results):
        verdict = run(probe, OK if ok else BAD, float(2 * i))
        run_ok, run_bad = (run_ok + 1, 0) if ok else (0, run_bad + 1)
        if verdict is Verdict.UNHEALTHY:
            assert healthy and run_bad == failure_threshold
            healthy = False
        elif verdict is Verdict.HEALTHY:
            assert not healthy and run_ok == success_threshold
            healthy = True
        else:
            assert not (healthy and run_bad >= failure_threshold)
            assert healthy or run_ok < success_threshold
        assert probe.statistics().healthy == healthy


@given(starts=st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=30))
def test_probe_never_schedules_in_the_past(starts: list[float]) -> None:
    probe = make(period=1.5)
    probe.process_running(0.0)
    now = 0.0
    for delay in starts:
        due = probe.next_due()
        assert due is not None
        now = max(now, due) + delay
        probe.start(now)
        probe.record(OK, now)
        next_due = probe.next_due()
        assert next_due is not None and next_due == max(due, now) + 1.5 > now
