"""The metrics model: what the supervisor's events, its XML-RPC answers and the health plugin's
bus messages say about each process and check.

Theory of operation
-------------------
:class:`MetricsModel` keeps one :class:`~listeners.metrics.records.ProcessRecord` per process
and one :class:`~listeners.metrics.records.CheckRecord` per check, guarded by one lock. It does
no I/O and runs no thread: its callers feed it, and
:class:`~listeners.metrics.collector.MetricsCollector` (its subclass) reads it at scrape time.
It is fed from three sides:

* PROCESS_STATE events (:meth:`~MetricsModel.process_state`): state codes, start times and
  every counter — restarts by cause, exits, FATAL transitions;
* XML-RPC snapshots (:meth:`~MetricsModel.reconciled`, taken by
  :mod:`listeners.metrics.reconciler`). A snapshot overwrites the gauges of a process unless an
  event for it arrived while the call was in flight (:meth:`~MetricsModel.reconcile_token`
  tells: the event is newer), so a missed event is wrong for at most one period; counters
  are never touched by it;
* the health plugin's bus topics (``health.result``/``.verdict``/``.breaker``/``.action``).

Restart causes (``supervisor_process_restarts_total{cause}``), decided per STARTING event
from its ``from_state``:

=================  ===========================================================================
``crash``          from EXITED after an unexpected exit (supervisord's autorestart)
``exit``           from EXITED after an expected exit (``autorestart = true``)
``backoff``        from BACKOFF: a retry of a start that died before ``startsecs``
``health``         the health plugin restarted it (its ``health.action``, either order)
``fatal_recovery`` the health plugin's FATAL recovery started it
``manual``         from STOPPED (after a stop by request) or FATAL, by anyone else
=================  ===========================================================================

A process's first start (STOPPED→STARTING never preceded by a stop) is not a restart.
Events do not say who issued a start, so a start from STOPPED/FATAL waits ``START_GRACE``
seconds for the health plugin to claim it before it counts as ``manual``; a start from EXITED
by hand counts as ``crash``/``exit``. Counters live in the listener process: when the listener
restarts they start again from 0 (Prometheus' ``rate``/``increase`` handle the reset), while
gauges are right again after the first reconcile.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from listeners.metrics.records import DURATION_BUCKETS, CheckRecord, ProcessRecord
from listeners.plugins.health import BreakerChange, CheckOutcome, Remediation, VerdictChange
from manager.events import ProcessStateChange
from manager.states import ProcessState

__all__ = ["HINT_TTL", "START_GRACE", "START_SLACK", "MetricsModel"]

#: Seconds a start from STOPPED/FATAL waits for the health plugin to claim it.
START_GRACE = 0.5
#: Seconds a health action waits for the STARTING event it caused.
HINT_TTL = 5.0
#: A start time from a snapshot older than the event's by more than this is a previous run's
#: (the supervisor truncates to seconds; the event arrives a little after the spawn).
START_SLACK = 5.0

S = ProcessState


def _state(name: str) -> ProcessState:
    try:
        return ProcessState[name]
    except KeyError:
        return ProcessState.UNKNOWN


class MetricsModel:
    """The processes and checks, fed by events, snapshots and bus messages; thread-safe.

    Args:
        clock: monotonic clock (start attribution deadlines).
        wallclock: epoch clock (start times learned from events).
        start_grace: see :data:`START_GRACE`.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], float] = time.time,
        start_grace: float = START_GRACE,
    ) -> None:
        self._clock = clock
        self._wallclock = wallclock
        self._grace = start_grace
        #: guards every attribute below and the records (the subclass reads under it too)
        self._lock = threading.Lock()
        self._processes: dict[tuple[str, str], ProcessRecord] = {}
        self._checks: dict[tuple[str, str, str], CheckRecord] = {}
        #: counts events; a record's ``seq`` says which one touched it last
        self._seq = 0
        #: whether the supervisor answered the last call (None: not asked yet)
        self._up: bool | None = None
        #: (version, identification), fetched once
        self._info: tuple[str, str] | None = None
        self._reconciles = {"ok": 0, "error": 0}

    # -- records (caller holds the lock) ------------------------------------------------------

    def _process(self, group: str, name: str) -> ProcessRecord:
        p = self._processes.get((group, name))
        if p is None:
            p = ProcessRecord(group, name)
            self._processes[(group, name)] = p
        return p

    def _check(self, check: str, group: str, name: str) -> CheckRecord:
        c = self._checks.get((check, group, name))
        if c is None:
            c = CheckRecord((check, group, name))
            self._checks[c.values] = c
        return c

    def _settle(self, p: ProcessRecord, now: float, *, force: bool = False) -> None:
        if p.pending is not None and (force or now >= p.pending[1]):
            p.restarts[p.pending[0]] += 1
            p.pending = None

    def _take_hint(self, p: ProcessRecord, now: float) -> str | None:
        hint, p.hint = p.hint, None
        return hint[0] if hint is not None and now < hint[1] else None

    def _count_start(self, p: ProcessRecord, from_state: str, now: float) -> None:
        cause: str | None
        if from_state == "BACKOFF":
            cause = "backoff"
        elif from_state == "EXITED":
            expected = p.last_exit_expected
            if expected is None:  # the exit was before this listener: guess from the status
                expected = p.exit_status == 0
            cause = self._take_hint(p, now) or ("exit" if expected else "crash")
        elif from_state == "FATAL" or (from_state == "STOPPED" and p.restartable):
            cause = self._take_hint(p, now)
            if cause is None:
                p.pending = ("manual", now + self._grace)
        else:  # a first start
            cause = None
        if cause is not None:
            p.restarts[cause] += 1
        p.restartable = False

    # -- feeding ------------------------------------------------------------------------------

    def process_state(self, ev: ProcessStateChange) -> None:
        """Apply one PROCESS_STATE event: state, start time and the counters."""
        now = self._clock()
        to = _state(ev.to_state)
        with self._lock:
            self._seq += 1
            p = self._process(ev.groupname, ev.processname)
            p.seq = self._seq
            self._settle(p, now, force=to is S.STARTING)
            if to is S.STARTING:
                self._count_start(p, ev.from_state, now)
                p.start = self._wallclock()
            elif to is S.EXITED:
                p.last_exit_expected = bool(ev.expected)
                p.exits[bool(ev.expected)] += 1
            elif to is S.FATAL:
                p.fatal += 1
            elif to is S.STOPPED:
                p.restartable = True
            p.state = to

    def reconcile_token(self) -> int:
        """Take before an XML-RPC snapshot; give to :meth:`reconciled` with its result."""
        with self._lock:
            return self._seq

    def reconciled(self, token: int, infos: Iterable[Mapping[str, Any]], *, complete: bool) -> None:
        """Apply ``getAllProcessInfo`` (``complete``: also forget processes not in it) or
        some ``getProcessInfo`` results, taken after :meth:`reconcile_token` gave ``token``.

        A process an event touched since then keeps its event state (it is newer). Its exit
        status is taken anyway (events carry none), and so is its start time unless it is
        older than the one its STARTING event gave (the supervisor's own is exact; the
        event's is when the listener heard of it).
        """
        seen: set[tuple[str, str]] = set()
        with self._lock:
            self._up = True
            for info in infos:
                key = (str(info["group"]), str(info["name"]))
                seen.add(key)
                p = self._process(*key)
                p.exit_status = int(info["exitstatus"])
                start = float(info["start"])
                if p.seq > token:
                    if start >= p.start - START_SLACK:
                        p.start = start
                    continue
                try:
                    p.state = ProcessState(int(info["state"]))
                except ValueError:
                    p.state = S.UNKNOWN
                p.start = start
                p.restartable = p.state is S.STOPPED and start > 0
            if complete:
                self._reconciles["ok"] += 1
                for key in [k for k, p in self._processes.items() if k not in seen]:
                    if self._processes[key].seq <= token:
                        del self._processes[key]

    def supervisor_unreachable(self) -> None:
        with self._lock:
            self._up = False
            self._reconciles["error"] += 1

    def supervisor_info(self, version: str, identification: str) -> None:
        with self._lock:
            self._info = (version, identification)

    @property
    def has_supervisor_info(self) -> bool:
        with self._lock:
            return self._info is not None

    def check_result(self, o: CheckOutcome) -> None:
        r = o.result
        index = next((i for i, b in enumerate(DURATION_BUCKETS) if r.duration <= b), -1)
        with self._lock:
            c = self._check(o.check, o.group, o.name)
            c.up = r.ok
            c.failures += not r.ok
            c.buckets[index] += 1
            c.total += r.duration
            c.count += 1

    def verdict(self, v: VerdictChange) -> None:
        with self._lock:
            self._check(v.check, v.group, v.name).healthy = v.healthy

    def breaker_change(self, b: BreakerChange) -> None:
        with self._lock:
            self._check(b.check, b.group, b.name).breaker = b.transition.new

    def remediation(self, r: Remediation) -> None:
        """Count the health plugin's action; a successful (re)start claims its STARTING event.

        The health plugin issues ``start`` only for FATAL recovery, ``restart`` otherwise.
        """
        kind = r.action.partition(":")[0]
        now = self._clock()
        with self._lock:
            c = self._check(r.check, r.group, r.name)
            outcome = (kind, "ok" if r.ok else "error")
            c.remediations[outcome] = c.remediations.get(outcome, 0) + 1
            if not r.ok or kind not in ("restart", "start"):
                return
            cause = "fatal_recovery" if kind == "start" else "health"
            p = self._process(r.group, r.name)
            self._settle(p, now)  # a start past its grace is someone else's
            if p.pending is not None:
                p.restarts[cause] += 1
                p.pending = None
            else:
                p.hint = (cause, now + HINT_TTL)
