"""Kubernetes probe semantics for one probed process, as a pure state machine.

Theory of operation
-------------------
The driver tells the probe when the process enters and leaves RUNNING, asks it
when a check is due, and hands it each result; the probe answers with a
:class:`Verdict` exactly when health changes. It never runs a check, reads a
clock it was not given, or sleeps. The driver's loop is::

    if probe.due(now):
        probe.start(now)                 # claims the probe; returns its lateness
        result = check.check()
        verdict = probe.record(result, clock())
        if verdict is Verdict.UNHEALTHY: ...act...

Rules (Kubernetes' where they overlap, ``pod-lifecycle.md``):

* Probing happens only while RUNNING. :meth:`Probe.process_running` resets the
  consecutive counters and schedules the first probe ``initial_delay`` seconds
  after *that process's* RUNNING; :meth:`Probe.process_stopped` stops probing.
* Then one probe per ``period`` (any positive float, sub-second included). A
  probe started late is not caught up: the next one is due ``period`` after the
  later of its due time and its actual start, so a stalled driver never causes a
  burst. :meth:`Probe.start` returns the lateness; statistics keep the last one
  and count the whole periods skipped.
* Health starts HEALTHY (an unprobed process is presumed healthy, as Kubernetes
  presumes liveness Success) and is sticky across restarts. ``failure_threshold``
  consecutive failures give :attr:`Verdict.UNHEALTHY` — once per run of the
  process: a restarted process that fails again gets a fresh UNHEALTHY, a
  process left running unhealthy does not repeat it. Once unhealthy,
  ``success_threshold`` consecutive successes give :attr:`Verdict.HEALTHY`.
  So HEALTHY always means "recovered", and the breaker's half-open trial
  (``Breaker.record_healthy``) is decided by it.
* A result is only counted if its probe was started by :meth:`Probe.start` in
  the current run: a check still in flight when the process stopped or
  restarted is dropped (counted in ``dropped``), never blamed on the new run.
"""

from __future__ import annotations

import enum
import math
import time
from dataclasses import dataclass

from healthchecks.result import CheckResult, Clock

__all__ = ["Probe", "ProbeSpec", "ProbeStatistics", "Verdict"]


class Verdict(enum.Enum):
    """A change of health, emitted on a threshold crossing."""

    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True)
class ProbeSpec:
    """When and how often to probe, and how many results make a verdict.

    Raises:
        ValueError: ``period``/``timeout`` not positive, ``initial_delay``
            negative, or a threshold below 1.
    """

    #: seconds between probes
    period: float
    #: seconds one check may take (the check enforces it; carried for the driver)
    timeout: float
    #: seconds after RUNNING before the first probe
    initial_delay: float = 0.0
    #: consecutive failures that make a healthy process unhealthy
    failure_threshold: int = 3
    #: consecutive successes that make an unhealthy process healthy
    success_threshold: int = 1

    def __post_init__(self) -> None:
        if not (self.period > 0 and math.isfinite(self.period)):
            raise ValueError("period must be a positive number of seconds")
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise ValueError("timeout must be a positive number of seconds")
        if not (self.initial_delay >= 0 and math.isfinite(self.initial_delay)):
            raise ValueError("initial_delay must be zero or more seconds")
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if self.success_threshold < 1:
            raise ValueError("success_threshold must be at least 1")


@dataclass(frozen=True)
class ProbeStatistics:
    """A snapshot of one probe."""

    #: failures in a row (reset by a success or a new run)
    consecutive_failures: int
    #: successes in a row (reset by a failure or a new run)
    consecutive_successes: int
    #: the last counted result
    last_result: CheckResult | None
    #: when the last counted result arrived
    last_probe_at: float | None
    #: current health (sticky across restarts; ``True`` before any verdict)
    healthy: bool
    #: results counted, ever
    probes: int
    #: failed results counted, ever
    failures: int
    #: the process is RUNNING (probing is on)
    running: bool
    #: a started probe has not been recorded yet
    in_flight: bool
    #: when the next probe is due (``None`` while not running or in flight)
    next_due: float | None
    #: seconds the last probe started after its due time
    last_lateness: float
    #: whole periods skipped because probes started late, ever
    skipped: int
    #: results dropped because their run had ended, ever
    dropped: int


class Probe:
    """Probe semantics for one process; see the module docstring for the rules.

    Every method taking ``now`` uses ``clock()`` when it is ``None``.
    """

    def __init__(self, spec: ProbeSpec, clock: Clock = time.monotonic) -> None:
        self.spec = spec
        self._clock = clock
        self._running = False
        self._in_flight = False
        #: due time of the next probe, or of the one in flight
        self._due: float | None = None
        self._healthy = True
        #: UNHEALTHY was already said in this run (or since the last HEALTHY)
        self._said_unhealthy = False
        self._failures_in_row = 0
        self._successes_in_row = 0
        self._last_result: CheckResult | None = None
        self._last_probe_at: float | None = None
        self._probes = 0
        self._failures = 0
        self._last_lateness = 0.0
        self._skipped = 0
        self._dropped = 0

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now

    # -- lifecycle of the probed process

    def process_running(self, at: float | None = None) -> None:
        """The process entered RUNNING at ``at``: reset the counters, first probe after the delay.

        A probe in flight belongs to the previous run; its result will be dropped.
        """
        at = self._now(at)
        self._running = True
        self._in_flight = False
        self._due = at + self.spec.initial_delay
        self._failures_in_row = 0
        self._successes_in_row = 0
        self._said_unhealthy = False

    def process_stopped(self) -> None:
        """The process left RUNNING: no probing until the next :meth:`process_running`."""
        self._running = False
        self._in_flight = False
        self._due = None

    # -- scheduling

    def due(self, now: float | None = None) -> bool:
        """A probe should start now (running, none in flight, due time reached)."""
        return (
            self._running
            and not self._in_flight
            and self._due is not None
            and self._now(now) >= self._due
        )

    def next_due(self) -> float | None:
        """When the next probe is due; ``None`` while not running or while one is in flight."""
        return None if self._in_flight or not self._running else self._due

    def start(self, now: float | None = None) -> float:
        """Claim the probe that is due: returns how late it starts (seconds, ≥ 0).

        The next probe is scheduled ``period`` after the later of the due time
        and ``now``; whole periods missed are counted as ``skipped``.

        Raises:
            RuntimeError: the process is not RUNNING, or a probe is already in flight.
        """
        now = self._now(now)
        if not self._running or self._due is None:
            raise RuntimeError("probe started while the process is not RUNNING")
        if self._in_flight:
            raise RuntimeError("probe started while another is in flight")
        lateness = max(0.0, now - self._due)
        self._last_lateness = lateness
        self._skipped += int(lateness // self.spec.period)
        self._due = max(self._due, now) + self.spec.period
        self._in_flight = True
        return lateness

    # -- results

    def record(self, result: CheckResult, now: float | None = None) -> Verdict | None:
        """Count the result of the probe in flight; the verdict if health changed.

        A result with no probe in flight (the process stopped or restarted
        meanwhile, or :meth:`start` was not called) is dropped: ``None``.
        ``now`` (when the result arrived) becomes ``last_probe_at``.
        """
        now = self._now(now)
        if not self._in_flight:
            self._dropped += 1
            return None
        self._in_flight = False
        self._probes += 1
        self._last_result = result
        self._last_probe_at = now
        if result.ok:
            self._successes_in_row += 1
            self._failures_in_row = 0
            if not self._healthy and self._successes_in_row >= self.spec.success_threshold:
                self._healthy = True
                self._said_unhealthy = False
                return Verdict.HEALTHY
            return None
        self._failures += 1
        self._failures_in_row += 1
        self._successes_in_row = 0
        if self._failures_in_row >= self.spec.failure_threshold and not self._said_unhealthy:
            self._healthy = False
            self._said_unhealthy = True
            return Verdict.UNHEALTHY
        return None

    def statistics(self) -> ProbeStatistics:
        """A snapshot of counters and schedule."""
        return ProbeStatistics(
            consecutive_failures=self._failures_in_row,
            consecutive_successes=self._successes_in_row,
            last_result=self._last_result,
            last_probe_at=self._last_probe_at,
            healthy=self._healthy,
            probes=self._probes,
            failures=self._failures,
            running=self._running,
            in_flight=self._in_flight,
            next_due=self.next_due(),
            last_lateness=self._last_lateness,
            skipped=self._skipped,
            dropped=self._dropped,
        )
