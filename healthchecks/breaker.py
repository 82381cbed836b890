"""A circuit breaker around remediation (restarts) of one probed process — pure.

Theory of operation
-------------------
The breaker does not restart anything; the driver asks :meth:`Breaker.allow_restart`
before each restart it wants to make, reports restarts it made
(:meth:`Breaker.record_restart`) and the probe's verdicts
(:meth:`Breaker.record_healthy` / :meth:`Breaker.record_unhealthy`).

* **CLOSED** — restarts are allowed while fewer than ``max_restarts`` were made in
  the last ``restart_window`` seconds. Asking for one more trips the breaker
  **OPEN** and the answer is no.
* **OPEN** — no restarts. After ``cooldown`` seconds the breaker is **HALF_OPEN**
  (lazily, on :meth:`Breaker.allow_restart` or :meth:`Breaker.advance`;
  :meth:`Breaker.next_change` says when, so the driver can set a timer instead
  of polling).
* **HALF_OPEN** — exactly one trial restart is allowed. A HEALTHY verdict closes
  the breaker (the probe's ``success_threshold`` has been met); an UNHEALTHY
  verdict after the trial restart re-opens it and the cooldown starts again.
  An UNHEALTHY verdict *before* the trial leaves it HALF_OPEN: the trial is
  still to come.
* A HEALTHY verdict while OPEN closes it too: the program recovered on its own
  (or by hand), and a breaker that guards restarts of a healthy program would
  only keep a stale alert firing.
* Closing forgets the restart history; :meth:`Breaker.trip` and
  :meth:`Breaker.reset` are the operator's manual overrides.

Rule 1: every legal move is a row of :data:`TRANSITIONS`. Rule 2: ``_fire`` is
the only writer of ``state``; it returns a :class:`BreakerTransition`, keeps it
as ``last_transition`` and hands it to ``on_transition`` (for alerts and
metrics).

FATAL recovery (re-starting a program that reached FATAL) is paced by
:class:`FatalBackoff`, built from tenacity's wait strategies: 10 s, 20 s, 40 s …
capped (Kubernetes' restart backoff), plus jitter. Such restarts should still go
through :meth:`Breaker.allow_restart`.
"""

from __future__ import annotations

import enum
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import tenacity

from healthchecks.result import Clock

__all__ = [
    "TRANSITIONS",
    "Breaker",
    "BreakerEvent",
    "BreakerSpec",
    "BreakerState",
    "BreakerStatistics",
    "BreakerTransition",
    "FatalBackoff",
    "IllegalBreakerTransition",
]


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerEvent(enum.Enum):
    """Why the breaker moves."""

    #: a restart was asked for with ``max_restarts`` already made in the window
    RESTARTS_EXHAUSTED = "restarts_exhausted"
    #: ``cooldown`` seconds passed since the breaker opened
    COOLDOWN_ELAPSED = "cooldown_elapsed"
    #: the process was unhealthy again after the trial restart
    TRIAL_FAILED = "trial_failed"
    #: the probe said HEALTHY
    HEALTHY = "healthy"
    #: an operator opened the breaker
    TRIPPED = "tripped"
    #: an operator closed the breaker
    RESET = "reset"


S, E = BreakerState, BreakerEvent

#: state -> event -> next state: the only legal moves.
TRANSITIONS: Mapping[BreakerState, Mapping[BreakerEvent, BreakerState]] = {
    S.CLOSED: {E.RESTARTS_EXHAUSTED: S.OPEN, E.TRIPPED: S.OPEN},
    S.OPEN: {E.COOLDOWN_ELAPSED: S.HALF_OPEN, E.HEALTHY: S.CLOSED, E.RESET: S.CLOSED},
    S.HALF_OPEN: {
        E.HEALTHY: S.CLOSED,
        E.TRIAL_FAILED: S.OPEN,
        E.TRIPPED: S.OPEN,
        E.RESET: S.CLOSED,
    },
}


class IllegalBreakerTransition(RuntimeError):
    """An event the current state has no row for: a bug in the breaker."""


@dataclass(frozen=True)
class BreakerTransition:
    """One move of the breaker, for alerts and metrics."""

    old: BreakerState
    new: BreakerState
    #: when, on the breaker's clock
    at: float
    #: one line for humans
    reason: str
    event: BreakerEvent


@dataclass(frozen=True)
class BreakerSpec:
    """The breaker's settings (``max_restarts``, ``restart_window``, ``breaker_cooldown``).

    Raises:
        ValueError: ``max_restarts`` below 1, or a non-positive window or cooldown.
    """

    max_restarts: int = 3
    restart_window: float = 300.0
    cooldown: float = 600.0

    def __post_init__(self) -> None:
        if self.max_restarts < 1:
            raise ValueError("max_restarts must be at least 1")
        if not (self.restart_window > 0 and math.isfinite(self.restart_window)):
            raise ValueError("restart_window must be a positive number of seconds")
        if not (self.cooldown > 0 and math.isfinite(self.cooldown)):
            raise ValueError("cooldown must be a positive number of seconds")


@dataclass(frozen=True)
class BreakerStatistics:
    """A snapshot of one breaker."""

    state: BreakerState
    #: restarts made within the last ``restart_window`` seconds
    restarts_in_window: int
    #: restarts recorded, ever
    restarts: int
    #: restarts refused, ever
    refused: int
    #: times the breaker opened, ever
    trips: int
    #: when the breaker last opened (``None`` unless OPEN or HALF_OPEN)
    opened_at: float | None
    #: when OPEN ends (``None`` unless OPEN)
    next_change: float | None
    #: HALF_OPEN's one trial restart has been made
    trial_used: bool
    last_transition: BreakerTransition | None


@dataclass(frozen=True)
class FatalBackoff:
    """Delay before the ``attempt``-th restart of a FATAL program.

    ``wait_exponential(multiplier=initial, min=initial, max=maximum) +
    wait_random(0, jitter)``: with the defaults 10, 20, 40, 80, 160, 300, 300 …
    seconds plus up to 1 s of jitter.

    Raises:
        ValueError: non-positive ``initial``/``maximum`` or negative ``jitter``.
    """

    initial: float = 10.0
    maximum: float = 300.0
    jitter: float = 1.0
    _strategy: tenacity.wait.wait_base = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum <= 0:
            raise ValueError("initial and maximum must be positive")
        if self.jitter < 0:
            raise ValueError("jitter must not be negative")
        first = min(self.initial, self.maximum)
        strategy = tenacity.wait_exponential(
            multiplier=first, min=first, max=self.maximum
        ) + tenacity.wait_random(0, self.jitter)
        object.__setattr__(self, "_strategy", strategy)

    def __call__(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt`` (1 for the first).

        Raises:
            ValueError: ``attempt`` below 1.
        """
        if attempt < 1:
            raise ValueError("attempt numbers start at 1")
        state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
        state.attempt_number = attempt
        return float(self._strategy(state))


class Breaker:
    """Circuit breaker for the restarts of one process; see the module docstring.

    Every method taking ``now`` uses ``clock()`` when it is ``None``.

    Args:
        max_restarts: restarts allowed within ``restart_window`` seconds.
        restart_window: the sliding window, in seconds.
        cooldown: seconds OPEN before the half-open trial.
        clock: a monotonic clock.
        backoff: pacing of FATAL recovery (:meth:`fatal_backoff`).
        on_transition: called with every transition, after it took effect.

    Raises:
        ValueError: as :class:`BreakerSpec`.
    """

    def __init__(
        self,
        max_restarts: int = 3,
        restart_window: float = 300.0,
        cooldown: float = 600.0,
        clock: Clock = time.monotonic,
        *,
        backoff: FatalBackoff | None = None,
        on_transition: Callable[[BreakerTransition], None] | None = None,
    ) -> None:
        self.spec = BreakerSpec(max_restarts, restart_window, cooldown)
        self.backoff = backoff if backoff is not None else FatalBackoff()
        self._clock = clock
        self._on_transition = on_transition
        self._state = BreakerState.CLOSED
        self._history: deque[float] = deque()
        self._opened_at: float | None = None
        self._trial_used = False
        self._restarts = 0
        self._refused = 0
        self._trips = 0
        self._last: BreakerTransition | None = None

    @classmethod
    def from_spec(
        cls,
        spec: BreakerSpec,
        clock: Clock = time.monotonic,
        *,
        backoff: FatalBackoff | None = None,
        on_transition: Callable[[BreakerTransition], None] | None = None,
    ) -> Breaker:
        """A breaker with ``spec``'s settings."""
        return cls(
            spec.max_restarts,
            spec.restart_window,
            spec.cooldown,
            clock,
            backoff=backoff,
            on_transition=on_transition,
        )

    @property
    def state(self) -> BreakerState:
        """The current state (HALF_OPEN only shows once :meth:`advance` noticed the cooldown)."""
        return self._state

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now

    # -- the one writer of state

    def _fire(self, event: BreakerEvent, now: float, reason: str) -> BreakerTransition:
        old = self._state
        new = TRANSITIONS[old].get(event)
        if new is None:
            raise IllegalBreakerTransition(f"no transition from {old.name} on {event.name}")
        self._state = new
        self._trial_used = False
        if new is BreakerState.OPEN:
            self._opened_at = now
            self._trips += 1
        elif new is BreakerState.CLOSED:
            self._opened_at = None
            self._history.clear()
        transition = BreakerTransition(old, new, now, reason, event)
        self._last = transition
        if self._on_transition is not None:
            self._on_transition(transition)
        return transition

    # -- time

    def _prune(self, now: float) -> int:
        """Forget restarts older than the window; the number left."""
        horizon = now - self.spec.restart_window
        while self._history and self._history[0] <= horizon:
            self._history.popleft()
        return len(self._history)

    def next_change(self) -> float | None:
        """When OPEN turns HALF_OPEN (``None`` unless OPEN)."""
        if self._state is not BreakerState.OPEN or self._opened_at is None:
            return None
        return self._opened_at + self.spec.cooldown

    def advance(self, now: float | None = None) -> BreakerTransition | None:
        """OPEN → HALF_OPEN if the cooldown has passed; the transition, if any."""
        now = self._now(now)
        change = self.next_change()
        if change is None or now < change:
            return None
        return self._fire(
            E.COOLDOWN_ELAPSED,
            now,
            f"cooldown of {self.spec.cooldown:g}s elapsed: one trial restart allowed",
        )

    # -- questions and reports from the driver

    def allow_restart(self, now: float | None = None) -> bool:
        """May the driver restart the process now? May trip OPEN or notice HALF_OPEN."""
        now = self._now(now)
        self.advance(now)
        if self._state is BreakerState.CLOSED:
            made = self._prune(now)
            if made < self.spec.max_restarts:
                return True
            self._fire(
                E.RESTARTS_EXHAUSTED,
                now,
                f"{made} restarts within {self.spec.restart_window:g}s "
                f"(max_restarts {self.spec.max_restarts}): not restarting again",
            )
        elif self._state is BreakerState.HALF_OPEN and not self._trial_used:
            return True
        self._refused += 1
        return False

    def record_restart(self, now: float | None = None) -> None:
        """The driver restarted the process (in HALF_OPEN: that was the trial)."""
        now = self._now(now)
        self._prune(now)
        self._history.append(now)
        self._restarts += 1
        if self._state is BreakerState.HALF_OPEN:
            self._trial_used = True

    def record_healthy(self, now: float | None = None) -> BreakerTransition | None:
        """The probe said HEALTHY: OPEN/HALF_OPEN → CLOSED; CLOSED stays."""
        if self._state is BreakerState.CLOSED:
            return None
        why = (
            "healthy after the trial restart"
            if self._trial_used
            else "healthy again without a restart by the breaker"
        )
        return self._fire(E.HEALTHY, self._now(now), why)

    def record_unhealthy(self, now: float | None = None) -> BreakerTransition | None:
        """The probe said UNHEALTHY: HALF_OPEN after its trial → OPEN (cooldown restarts)."""
        if self._state is BreakerState.HALF_OPEN and self._trial_used:
            return self._fire(E.TRIAL_FAILED, self._now(now), "unhealthy after the trial restart")
        return None

    # -- operator overrides

    def trip(
        self, now: float | None = None, reason: str = "opened by hand"
    ) -> BreakerTransition | None:
        """Open the breaker now (``None`` if already OPEN)."""
        if self._state is BreakerState.OPEN:
            return None
        return self._fire(E.TRIPPED, self._now(now), reason)

    def reset(
        self, now: float | None = None, reason: str = "closed by hand"
    ) -> BreakerTransition | None:
        """Close the breaker now and forget the restart history (``None`` if already CLOSED)."""
        if self._state is BreakerState.CLOSED:
            return None
        return self._fire(E.RESET, self._now(now), reason)

    # -- FATAL recovery and introspection

    def fatal_backoff(self, attempt: int) -> float:
        """Seconds to wait before FATAL-recovery attempt ``attempt`` (1 for the first)."""
        return self.backoff(attempt)

    def statistics(self, now: float | None = None) -> BreakerStatistics:
        """A snapshot; ``restarts_in_window`` is counted at ``now``. Does not advance state."""
        now = self._now(now)
        horizon = now - self.spec.restart_window
        return BreakerStatistics(
            state=self._state,
            restarts_in_window=sum(1 for t in self._history if t > horizon),
            restarts=self._restarts,
            refused=self._refused,
            trips=self._trips,
            opened_at=self._opened_at,
            next_change=self.next_change(),
            trial_used=self._trial_used,
            last_transition=self._last,
        )
