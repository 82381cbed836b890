"""Breaker: every transition of the restart circuit breaker, on a fake clock (no sleeping)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from healthchecks.breaker import (
    TRANSITIONS,
    Breaker,
    BreakerEvent,
    BreakerSpec,
    BreakerState,
    BreakerTransition,
    FatalBackoff,
    IllegalBreakerTransition,
)

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.seen: list[BreakerTransition] = []

    def __call__(self, transition: BreakerTransition) -> None:
        self.seen.append(transition)

    @property
    def moves(self) -> list[tuple[BreakerState, BreakerState]]:
        return [(t.old, t.new) for t in self.seen]


def make(
    max_restarts: int = 3, window: float = 300.0, cooldown: float = 600.0
) -> tuple[Breaker, Recorder]:
    recorder = Recorder()
    breaker = Breaker(max_restarts, window, cooldown, FakeClock(), on_transition=recorder)
    return breaker, recorder


def restart(breaker: Breaker, now: float) -> bool:
    """Ask, and restart if allowed."""
    if breaker.allow_restart(now):
        breaker.record_restart(now)
        return True
    return False


def tripped(now: float = 30.0) -> tuple[Breaker, Recorder]:
    """A breaker that opened at ``now`` after 3 restarts at 0, 10, 20."""
    breaker, recorder = make()
    for t in (0.0, 10.0, 20.0):
        assert restart(breaker, t)
    assert not breaker.allow_restart(now)
    assert breaker.state is OPEN
    return breaker, recorder


def half_open(trial: bool) -> tuple[Breaker, Recorder]:
    """Tripped at 30, half-open at 630; with the trial restart made at 630 if ``trial``."""
    breaker, recorder = tripped()
    assert breaker.allow_restart(630.0)
    assert breaker.state is HALF_OPEN
    if trial:
        breaker.record_restart(630.0)
    return breaker, recorder


# --- the table ------------------------------------------------------------------------------


def test_breaker_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(BreakerState)
    assert TRANSITIONS[CLOSED] == {
        BreakerEvent.RESTARTS_EXHAUSTED: OPEN,
        BreakerEvent.TRIPPED: OPEN,
    }


def test_breaker_illegal_event_raises() -> None:
    breaker, _ = make()
    with pytest.raises(IllegalBreakerTransition, match="no transition from CLOSED on HEALTHY"):
        breaker._fire(BreakerEvent.HEALTHY, 0.0, "bug")


# --- CLOSED ---------------------------------------------------------------------------------


def test_breaker_closed_allows_restarts_up_to_max_restarts() -> None:
    breaker, recorder = make(max_restarts=3)
    assert [restart(breaker, t) for t in (0.0, 1.0, 2.0)] == [True, True, True]
    assert breaker.state is CLOSED
    assert recorder.seen == []


def test_breaker_closed_asking_does_not_count_as_restarting() -> None:
    breaker, _ = make(max_restarts=1)
    assert breaker.allow_restart(0.0) and breaker.allow_restart(1.0)


def test_breaker_closed_to_open_when_restarts_are_exhausted() -> None:
    breaker, recorder = make(max_restarts=3, window=300.0)
    for t in (0.0, 100.0, 200.0):
        restart(breaker, t)
    assert not breaker.allow_restart(250.0)
    assert breaker.state is OPEN
    (transition,) = recorder.seen
    assert transition == BreakerTransition(
        CLOSED,
        OPEN,
        250.0,
        "3 restarts within 300s (max_restarts 3): not restarting again",
        BreakerEvent.RESTARTS_EXHAUSTED,
    )
    assert breaker.statistics(250.0).last_transition == transition


def test_breaker_closed_old_restarts_slide_out_of_the_window() -> None:
    breaker, _ = make(max_restarts=3, window=300.0)
    for t in (0.0, 100.0, 200.0):
        restart(breaker, t)
    assert breaker.allow_restart(300.0)  # the one at 0 is exactly a window old: out
    assert breaker.statistics(300.0).restarts_in_window == 2
    assert breaker.state is CLOSED


def test_breaker_closed_stays_closed_on_healthy_and_unhealthy() -> None:
    breaker, recorder = make()
    assert breaker.record_healthy(0.0) is None
    assert breaker.record_unhealthy(0.0) is None
    assert breaker.state is CLOSED and recorder.seen == []


# --- OPEN -----------------------------------------------------------------------------------


def test_breaker_open_refuses_during_cooldown() -> None:
    breaker, _ = tripped(now=30.0)
    assert not breaker.allow_restart(629.9)
    assert breaker.state is OPEN
    assert breaker.statistics(629.9).refused == 2  # the tripping ask and this one


def test_breaker_open_next_change_is_the_end_of_the_cooldown() -> None:
    breaker, _ = tripped(now=30.0)
    assert breaker.next_change() == 630.0
    assert breaker.statistics(100.0).next_change == 630.0


def test_breaker_open_to_half_open_after_cooldown_allows_one_trial() -> None:
    breaker, recorder = tripped(now=30.0)
    assert breaker.allow_restart(630.0)
    assert breaker.state is HALF_OPEN
    assert recorder.seen[-1].event is BreakerEvent.COOLDOWN_ELAPSED
    assert recorder.seen[-1].reason == "cooldown of 600s elapsed: one trial restart allowed"
    assert breaker.next_change() is None


def test_breaker_open_to_half_open_by_advance_without_asking() -> None:
    breaker, recorder = tripped(now=30.0)
    assert breaker.advance(629.0) is None
    transition = breaker.advance(630.0)
    assert transition is not None and (transition.old, transition.new) == (OPEN, HALF_OPEN)
    assert breaker.advance(631.0) is None  # once
    assert recorder.moves == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]


def test_breaker_open_to_closed_when_healthy_without_a_restart() -> None:
    breaker, _recorder = tripped()
    transition = breaker.record_healthy(100.0)
    assert transition is not None
    assert (transition.old, transition.new, transition.at) == (OPEN, CLOSED, 100.0)
    assert transition.reason == "healthy again without a restart by the breaker"
    assert breaker.statistics(100.0).restarts_in_window == 0  # history forgotten
    assert restart(breaker, 101.0)


def test_breaker_open_stays_open_on_unhealthy() -> None:
    breaker, _recorder = tripped()
    assert breaker.record_unhealthy(100.0) is None
    assert breaker.state is OPEN
    assert breaker.next_change() == 630.0  # the cooldown does not restart


# --- HALF_OPEN ------------------------------------------------------------------------------


def test_breaker_half_open_allows_exactly_one_trial_restart() -> None:
    breaker, _ = half_open(trial=True)
    assert not breaker.allow_restart(631.0)
    assert breaker.statistics(631.0).trial_used


def test_breaker_half_open_to_closed_after_healthy_trial() -> None:
    breaker, _recorder = half_open(trial=True)
    transition = breaker.record_healthy(640.0)
    assert transition == BreakerTransition(
        HALF_OPEN, CLOSED, 640.0, "healthy after the trial restart", BreakerEvent.HEALTHY
    )
    assert breaker.state is CLOSED
    assert [restart(breaker, t) for t in (650.0, 651.0, 652.0, 653.0)] == [True] * 3 + [False]


def test_breaker_half_open_to_open_after_unhealthy_trial_restarts_the_cooldown() -> None:
    breaker, _recorder = half_open(trial=True)
    transition = breaker.record_unhealthy(700.0)
    assert transition is not None
    assert (transition.old, transition.new) == (HALF_OPEN, OPEN)
    assert transition.reason == "unhealthy after the trial restart"
    assert breaker.next_change() == 1300.0
    assert not breaker.allow_restart(1299.0)
    assert breaker.allow_restart(1300.0) and breaker.state is HALF_OPEN
    assert breaker.statistics(1300.0).trips == 2


def test_breaker_half_open_unhealthy_before_the_trial_keeps_the_trial() -> None:
    breaker, _ = half_open(trial=False)
    assert breaker.record_unhealthy(640.0) is None
    assert breaker.state is HALF_OPEN
    assert breaker.allow_restart(641.0)


def test_breaker_half_open_to_closed_when_healthy_before_the_trial() -> None:
    breaker, _ = half_open(trial=False)
    transition = breaker.record_healthy(640.0)
    assert transition is not None and transition.new is CLOSED
    assert transition.reason == "healthy again without a restart by the breaker"


# --- manual overrides -----------------------------------------------------------------------


def test_breaker_closed_to_open_by_trip() -> None:
    breaker, _recorder = make()
    transition = breaker.trip(5.0)
    assert transition is not None
    assert (transition.new, transition.event, transition.reason) == (
        OPEN,
        BreakerEvent.TRIPPED,
        "opened by hand",
    )
    assert breaker.trip(6.0) is None
    assert breaker.next_change() == 605.0


def test_breaker_half_open_to_open_by_trip() -> None:
    breaker, _ = half_open(trial=False)
    transition = breaker.trip(640.0, reason="maintenance")
    assert transition is not None and (transition.old, transition.reason) == (
        HALF_OPEN,
        "maintenance",
    )


@pytest.mark.parametrize("trial", [None, False, True])
def test_breaker_open_or_half_open_to_closed_by_reset(trial: bool | None) -> None:
    breaker, _ = tripped() if trial is None else half_open(trial)
    transition = breaker.reset(700.0)
    assert transition is not None and transition.new is CLOSED
    assert transition.event is BreakerEvent.RESET
    assert breaker.reset(701.0) is None
    assert restart(breaker, 702.0)


# --- statistics and defaults ----------------------------------------------------------------


def test_breaker_statistics_snapshot() -> None:
    breaker, _ = tripped(now=30.0)
    stats = breaker.statistics(40.0)
    assert stats.state is OPEN
    assert (stats.restarts_in_window, stats.restarts, stats.refused, stats.trips) == (3, 3, 1, 1)
    assert (stats.opened_at, stats.next_change, stats.trial_used) == (30.0, 630.0, False)


def test_breaker_uses_its_clock_when_no_time_is_given() -> None:
    clock = FakeClock(0.0)
    breaker = Breaker(1, 10.0, 20.0, clock)
    assert breaker.allow_restart()
    breaker.record_restart()
    assert not breaker.allow_restart()
    clock.now = 20.0
    assert breaker.allow_restart() and breaker.state is HALF_OPEN


def test_breaker_from_spec() -> None:
    breaker = Breaker.from_spec(BreakerSpec(max_restarts=1, restart_window=5, cooldown=7))
    assert breaker.spec == BreakerSpec(1, 5, 7)
    assert BreakerSpec() == BreakerSpec(3, 300.0, 600.0)


@pytest.mark.parametrize(
    ("args", "why"),
    [
        ((0, 1.0, 1.0), "max_restarts must be at least 1"),
        ((1, 0.0, 1.0), "restart_window must be a positive number of seconds"),
        ((1, 1.0, -1.0), "cooldown must be a positive number of seconds"),
        ((1, 1.0, float("nan")), "cooldown must be a positive number of seconds"),
    ],
)
def test_breaker_rejects_bad_settings(args: tuple[int, float, float], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        Breaker(*args)


# --- FATAL backoff (tenacity) ---------------------------------------------------------------


def test_fatal_backoff_doubles_from_ten_seconds_to_the_cap() -> None:
    backoff = FatalBackoff(initial=10, maximum=300, jitter=0)
    assert [backoff(n) for n in range(1, 9)] == [10, 20, 40, 80, 160, 300, 300, 300]
    assert backoff(10_000) == 300


def test_fatal_backoff_adds_jitter_within_bounds() -> None:
    backoff = FatalBackoff(initial=10, maximum=300, jitter=2)
    samples = [backoff(1) for _ in range(50)]
    assert all(10 <= s <= 12 for s in samples)
    assert len(set(samples)) > 1


def test_fatal_backoff_cap_below_initial_is_the_cap() -> None:
    assert FatalBackoff(initial=10, maximum=4, jitter=0)(1) == 4


def test_breaker_fatal_backoff_delegates() -> None:
    breaker = Breaker(backoff=FatalBackoff(initial=1, maximum=8, jitter=0))
    assert [breaker.fatal_backoff(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 8]
    assert Breaker().fatal_backoff(1) >= 10


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"initial": 0}, "initial and maximum must be positive"),
        ({"maximum": -1}, "initial and maximum must be positive"),
        ({"jitter": -1}, "jitter must not be negative"),
    ],
)
def test_fatal_backoff_rejects(kwargs: dict[str, float], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        FatalBackoff(**kwargs)


def test_fatal_backoff_attempts_start_at_one() -> None:
    with pytest.raises(ValueError, match="attempt numbers start at 1"):
        FatalBackoff()(0)


# --- properties -----------------------------------------------------------------------------

_ops = st.lists(
    st.tuples(
        st.sampled_from(["ask", "restart", "healthy", "unhealthy", "advance"]),
        st.floats(0, 200),
    ),
    max_size=80,
)


@given(ops=_ops)
def test_breaker_transitions_follow_the_table_and_never_overspend(
    ops: list[tuple[str, float]],
) -> None:
    breaker, recorder = make(max_restarts=2, window=100.0, cooldown=50.0)
    now = 0.0
    allowed_in_closed: list[float] = []
    for op, step in ops:
        now += step
        state = breaker.state
        if op == "ask":
            if breaker.allow_restart(now) and breaker.state is CLOSED:
                allowed_in_closed.append(now)
                breaker.record_restart(now)
        elif op == "restart":
            breaker.record_restart(now)
        elif op == "healthy":
            breaker.record_healthy(now)
        elif op == "unhealthy":
            breaker.record_unhealthy(now)
        else:
            breaker.advance(now)
        if breaker.state is CLOSED and state is not CLOSED:
            allowed_in_closed.clear()
        # no more than max_restarts granted within any window while closed
        recent = [t for t in allowed_in_closed if t > now - 100.0]
        assert len(recent) <= 2
    previous = CLOSED
    for t in recorder.seen:
        assert t.old is previous
        assert TRANSITIONS[t.old][t.event] is t.new
        previous = t.new
    assert previous is breaker.state
