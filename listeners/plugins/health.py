"""The ``health`` plugin: probes every ``[healthcheck:x]`` and remediates over XML-RPC.

Theory of operation
-------------------
Four kinds of threads, none of them the protocol loop:

* the plugin's event worker (queued handlers) learns process states from
  PROCESS_STATE events and heartbeats from PROCESS_COMMUNICATION events;
* one scheduler thread runs probes on their own clock (any period, never tied to
  TICK events): it sleeps until the earliest due probe, breaker change or
  reconcile, and hands due checks to a bounded pool of check workers (up to
  :data:`CHECK_WORKERS` threads, started only when all are busy: a check blocks a
  worker for its whole duration, so 16 workers capped 1,000 probes a second at a
  16 ms mean probe, and a few hanging services filled the pool). Wake times
  live in a heap (one live entry per target, stale entries skipped on pop), so a
  wake-up costs O(log n) for the targets that are due, not a scan of all of them;
  every change of a target's timing goes through :meth:`HealthPlugin._schedule`,
  and each reconcile rebuilds the heap from the targets (a safety net, and it
  drops the stale entries);
* plain ``http://`` checks of IP addresses (the common case: a local service) do
  not take a worker: one :class:`~healthchecks.reactor.HttpReactor` thread keeps
  them all in flight on a selector, so slow or hanging services delay no other
  probe; its completions run the same result handling as a worker's;
* a small pool of action workers performs remediation (XML-RPC calls retried by
  the client's tenacity policy), so a slow restart never delays probing.

State lives in :class:`Target` objects (one per check × process instance), guarded
by one lock. A target is probed only while its process is RUNNING (events, plus
``getAllProcessInfo`` at start and every ``reconcile`` seconds); its
:class:`~healthchecks.probe.Probe` decides verdicts, its
:class:`~healthchecks.breaker.Breaker` allows or refuses restarts. A restart
already under way is not repeated; event-listener processes are never targeted.

Published on the plugin bus (for metrics and alerts): ``health.result``
(:class:`CheckOutcome`), ``health.action`` (:class:`Remediation`),
``health.breaker`` (:class:`BreakerChange`), ``health.verdict`` (:class:`VerdictChange`).
"""

from __future__ import annotations

import functools
import gc
import heapq
import itertools
import math
import os
import resource
import subprocess
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from healthchecks.breaker import Breaker, BreakerState, BreakerTransition
from healthchecks.config import (
    ActionKind,
    CheckType,
    HealthCheckConfig,
    build_breaker,
    build_check,
    build_probe,
    load_healthchecks,
)
from healthchecks.heartbeat import HeartbeatCheck
from healthchecks.http import HttpCheck
from healthchecks.memory import MemoryCheck
from healthchecks.probe import Probe, Verdict
from healthchecks.reactor import HttpReactor
from healthchecks.result import Check, CheckResult
from listeners.plugin import PluginContext
from manager.events import EventType, ProcessCommunication, ProcessStateChange
from manager.protocol import Notification
from manager.rpcclient import RPCError, RPCFault

__all__ = ["BreakerChange", "CheckOutcome", "HealthPlugin", "Remediation", "Target", "setup"]

E = EventType
#: Seconds between getAllProcessInfo reconciliations.
RECONCILE_EVERY = 30.0
#: fds kept free besides the checks' connections (logs, XML-RPC, pipes, exec checks)
FD_HEADROOM = 4096
#: Most check worker threads (idle ones are reused first; see the module docstring).
CHECK_WORKERS = 128


@dataclass(frozen=True)
class CheckOutcome:
    """One probe's result; ``lateness`` = start of the check minus its due time (s).

    ``queue_wait`` is the part of ``lateness`` from the scheduler claiming the probe to the
    check beginning (the check pool's queue, or the hand-over to the HTTP reactor).
    """

    check: str
    group: str
    name: str
    result: CheckResult
    lateness: float
    queue_wait: float = 0.0


@dataclass(frozen=True)
class VerdictChange:
    check: str
    group: str
    name: str
    healthy: bool
    detail: str


@dataclass(frozen=True)
class Remediation:
    check: str
    group: str
    name: str
    action: str
    reason: str
    ok: bool
    error: str = ""


@dataclass(frozen=True)
class BreakerChange:
    check: str
    group: str
    name: str
    transition: BreakerTransition


def namespec(group: str, name: str) -> str:
    return name if group == name else f"{group}:{name}"


@dataclass
class Target:
    """One check applied to one process instance."""

    cfg: HealthCheckConfig
    group: str
    name: str
    check: Check
    probe: Probe
    breaker: Breaker
    pid: int = 0
    #: a restart (or other action) was issued and the process has not been RUNNING since
    acting: bool = False
    fatal_attempts: int = 0
    fatal_timer: float | None = None
    #: the time of this target's live entry in the scheduler's heap (``None``: none)
    wake_at: float | None = None

    def next_wake(self) -> float | None:
        """The earliest of the next probe, breaker change and FATAL-recovery timer."""
        times = [
            w
            for w in (self.probe.next_due(), self.breaker.next_change(), self.fatal_timer)
            if w is not None
        ]
        return min(times) if times else None

    @property
    def offset(self) -> float:
        spread = zlib.crc32(f"{self.cfg.name}/{self.group}/{self.name}".encode()) / 2**32
        return spread * self.cfg.probe.period

    @property
    def namespec(self) -> str:
        return namespec(self.group, self.name)


@dataclass
class HealthPlugin:
    ctx: PluginContext
    configs: list[HealthCheckConfig]
    clock: Callable[[], float] = time.monotonic
    workers: int = CHECK_WORKERS
    targets: dict[tuple[str, str, str], Target] = field(default_factory=dict)
    listener_groups: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self.log = self.ctx.log
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.checks = ThreadPoolExecutor(self.workers, thread_name_prefix="vigil-check")
        self.actions = ThreadPoolExecutor(4, thread_name_prefix="vigil-action")
        self.next_reconcile = 0.0
        self.probes_started = itertools.count()
        #: (when, tie-breaker, target): wake-ups; an entry is live iff ``when == t.wake_at``
        self.heap: list[tuple[float, int, Target]] = []
        self.heap_seq = itertools.count()
        #: when the scheduler thread will wake next (a nearer wake-up notifies it)
        self.sleep_until = -math.inf
        #: runs the non-blocking HTTP checks; started with the first one
        self.reactor: HttpReactor | None = None
        self.frozen = False
        self.thread = threading.Thread(target=self._run, name="vigil-health", daemon=True)

    # -- targets ---------------------------------------------------------------------

    def _targets_for(self, group: str, name: str) -> list[Target]:
        """The targets of one process, created on first sight. Caller holds the lock."""
        if group in self.listener_groups:
            return []
        found = []
        for cfg in self.configs:
            if not cfg.program.matches(group, name):
                continue
            key = (cfg.name, group, name)
            target = self.targets.get(key)
            if target is None:
                target = self._make_target(cfg, group, name)
                self.targets[key] = target
            found.append(target)
        return found

    def _make_target(self, cfg: HealthCheckConfig, group: str, name: str) -> Target:
        holder: list[Target] = []

        def pid() -> int | None:
            return holder[0].pid or None if holder else None

        def on_transition(t: BreakerTransition) -> None:
            self.log.warning(
                "breaker %s for %s: %s -> %s (%s)",
                cfg.name,
                namespec(group, name),
                t.old.name,
                t.new.name,
                t.reason,
            )
            self.ctx.bus.publish("health.breaker", BreakerChange(cfg.name, group, name, t))

        target = Target(
            cfg,
            group,
            name,
            build_check(cfg, pid_source=pid, clock=self.clock),
            build_probe(cfg, self.clock),
            build_breaker(cfg, self.clock, on_transition=on_transition),
        )
        holder.append(target)
        return target

    # -- what the supervisor tells us ------------------------------------------------

    def on_state(self, n: Notification) -> None:
        ev = n.event
        assert isinstance(ev, ProcessStateChange)
        now = self.clock()
        with self.lock:
            for t in self._targets_for(ev.groupname, ev.processname):
                self._apply_state(t, ev.to_state, ev.pid or 0, now, since=now)

    def _apply_state(self, t: Target, state: str, pid: int, now: float, *, since: float) -> None:
        """Caller holds the lock."""
        if state == "RUNNING":
            if not t.probe.statistics().running or pid != t.pid:
                t.pid = pid
                # A fixed offset within the period, from the check's name, spreads the
                # probes of many checks of one process instead of firing them together.
                t.probe.process_running(since + t.offset)
                if isinstance(t.check, HeartbeatCheck | MemoryCheck):
                    t.check.reset()
            t.acting = False
            t.fatal_attempts = 0
            t.fatal_timer = None
        else:
            t.probe.process_stopped()
            if state in ("STOPPED", "EXITED", "FATAL", "BACKOFF"):
                t.pid = 0
            if state == "FATAL":
                # a trial restart that cannot even start gives no probe verdict
                t.acting = False
                t.breaker.record_unhealthy(now)
            if state == "FATAL" and t.cfg.fatal_recovery and t.fatal_timer is None:
                t.fatal_attempts += 1
                delay = t.breaker.fatal_backoff(t.fatal_attempts)
                t.fatal_timer = now + delay
                self.log.warning(
                    "%s is FATAL: recovery attempt %d in %.1fs",
                    t.namespec,
                    t.fatal_attempts,
                    delay,
                )
        self._schedule(t)

    def on_communication(self, n: Notification) -> None:
        ev = n.event
        assert isinstance(ev, ProcessCommunication)
        with self.lock:
            for t in self._targets_for(ev.groupname, ev.processname):
                if isinstance(t.check, HeartbeatCheck):
                    t.check.beat()

    def reconcile(self) -> None:
        """Bring process states in line with ``getAllProcessInfo`` (at start and periodically)."""
        try:
            infos = self.ctx.supervisor().supervisor.getAllProcessInfo()
        except RPCError as exc:
            self.log.warning("reconcile: getAllProcessInfo failed: %s", exc)
            return
        now = self.clock()
        with self.lock:
            for info in infos:
                uptime = max(0, int(info["now"]) - int(info["start"]))
                for t in self._targets_for(info["group"], info["name"]):
                    running = t.probe.statistics().running
                    if info["statename"] == "RUNNING" and (not running or t.pid != info["pid"]):
                        self._apply_state(t, "RUNNING", info["pid"], now, since=now - uptime)
                    elif info["statename"] != "RUNNING" and running:
                        self._apply_state(t, info["statename"], 0, now, since=now)
            # safety net, and the stale entries go: the heap is rebuilt from the targets
            self.heap.clear()
            for t in self.targets.values():
                t.wake_at = None
                self._schedule(t)

    # -- the scheduler ---------------------------------------------------------------

    def _schedule(self, t: Target) -> None:
        """Queue ``t``'s next wake-up if it changed; wake the scheduler if it is nearer.

        Caller holds the lock. Called after anything that may move the target's probe,
        breaker or FATAL timer.
        """
        when = t.next_wake()
        if when == t.wake_at:
            return
        t.wake_at = when
        if when is None:
            return
        heapq.heappush(self.heap, (when, next(self.heap_seq), t))
        if when < self.sleep_until:
            self.sleep_until = when
            self.wake.notify()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        with self.lock:
            self.wake.notify()
        self.thread.join(5)
        self.checks.shutdown(wait=False, cancel_futures=True)
        self.actions.shutdown(wait=False, cancel_futures=True)
        if self.reactor is not None:
            self.reactor.stop()

    def _run(self) -> None:
        while not self.ctx.stopping.is_set():
            try:
                self._run_once()
            except Exception:  # a bug must not end probing for good: log it, carry on
                self.log.exception("health: scheduler error; carrying on")
                self.ctx.stopping.wait(0.1)

    def _run_once(self) -> None:
        """One wake-up of the scheduler thread: reconcile if due, dispatch, sleep."""
        now = self.clock()
        if now >= self.next_reconcile:
            self.next_reconcile = now + RECONCILE_EVERY
            self.reconcile()
            if not self.frozen:
                # the targets and their checks live as long as the listener: keep them
                # out of the cyclic collector's generations (less work per collection)
                self.frozen = True
                gc.freeze()
            now = self.clock()
        with self.lock:
            wake_at = min(self.next_reconcile, self._dispatch(now))
            self.sleep_until = wake_at
            if not self.ctx.stopping.is_set():
                self.wake.wait(max(0.0, min(wake_at - self.clock(), 1.0)))
            self.sleep_until = -math.inf  # awake: nobody needs to notify

    def _dispatch(self, now: float) -> float:
        """Service every target whose wake-up is due at ``now``; the next wake-up (or inf).

        Caller holds the lock.
        """
        heap = self.heap
        while heap and heap[0][0] <= now:
            when, _, t = heapq.heappop(heap)
            if when != t.wake_at:
                continue  # stale: the target was re-scheduled since
            t.wake_at = None
            self._service(t, now)
            self._schedule(t)
        return heap[0][0] if heap else math.inf

    def _service(self, t: Target, now: float) -> None:
        """Start ``t``'s due probe, advance its breaker, fire its FATAL timer (lock held)."""
        if t.probe.due(now):
            lateness = t.probe.start(now)
            next(self.probes_started)
            check = t.check
            if isinstance(check, HttpCheck) and check.nonblocking:
                if self.reactor is None:
                    self.reactor = HttpReactor(self.clock)
                    self.reactor.start()
                self.reactor.submit(check, functools.partial(self._done, t, lateness, now))
            else:
                self.checks.submit(self._probe, t, lateness, now)
        change = t.breaker.advance(now)
        if change is not None and change.new is BreakerState.HALF_OPEN:
            self._maybe_trial(t, now)
        if t.fatal_timer is not None and now >= t.fatal_timer:
            t.fatal_timer = None
            self._remediate(t, now, "FATAL recovery", start_only=True)

    def _probe(self, t: Target, lateness: float, submitted: float) -> None:
        """A check pool worker: run the check, then handle its result."""
        started = self.clock()
        try:
            self._done(t, lateness, submitted, t.check.check(), started)
        except Exception:  # the pool's future would keep it silently
            self.log.exception("health: handling a result of %s failed", t.namespec)

    def _done(
        self, t: Target, lateness: float, submitted: float, result: CheckResult, started: float
    ) -> None:
        """Count ``result`` (on a pool worker or the HTTP reactor's thread).

        Lateness as the check sees it: behind schedule when claimed, plus the wait from
        the claim to the check starting (the pool's queue, or the reactor's hand-over).
        """
        queue_wait = max(0.0, started - submitted)
        lateness += queue_wait
        now = self.clock()
        with self.lock:
            verdict = t.probe.record(result, now)
            if verdict is Verdict.UNHEALTHY:
                self.log.warning(
                    "%s is unhealthy (%s: %d failures in a row): %s",
                    t.namespec,
                    t.cfg.name,
                    t.cfg.probe.failure_threshold,
                    result.detail,
                )
                self.ctx.bus.publish(
                    "health.verdict",
                    VerdictChange(t.cfg.name, t.group, t.name, False, result.detail),
                )
                self._on_unhealthy(t, now, result.detail)
            elif verdict is Verdict.HEALTHY:
                self.log.info("%s is healthy again (%s)", t.namespec, t.cfg.name)
                self.ctx.bus.publish(
                    "health.verdict",
                    VerdictChange(t.cfg.name, t.group, t.name, True, result.detail),
                )
                t.breaker.record_healthy(now)
            self._schedule(t)
        self.ctx.bus.publish(
            "health.result",
            CheckOutcome(t.cfg.name, t.group, t.name, result, lateness, queue_wait),
        )

    def _on_unhealthy(self, t: Target, now: float, detail: str) -> None:
        """Caller holds the lock."""
        if t.breaker.record_unhealthy(now) is not None:
            return  # the half-open trial failed: OPEN again
        self._remediate(t, now, detail)

    def _maybe_trial(self, t: Target, now: float) -> None:
        """HALF_OPEN: if the process is still unhealthy, make the one trial restart now."""
        if not t.probe.statistics().healthy or t.pid == 0:
            self._remediate(t, now, "breaker half-open: trial restart")

    def _remediate(self, t: Target, now: float, reason: str, *, start_only: bool = False) -> None:
        """Caller holds the lock."""
        action = t.cfg.action
        if action.kind is ActionKind.NONE and not start_only:
            self.log.info("%s: action none; not acting on %s", t.namespec, reason)
            return
        if t.acting:
            self.log.info("%s: an action is already under way; not repeating it", t.namespec)
            return
        restarts = start_only or action.kind is ActionKind.RESTART
        if restarts and not t.breaker.allow_restart(now):
            self.log.warning(
                "%s: breaker %s, not restarting (%s)", t.namespec, t.breaker.state.name, reason
            )
            return
        if restarts:
            t.breaker.record_restart(now)
        t.acting = True
        t.probe.process_stopped()
        self._schedule(t)
        label = "start" if start_only else str(action)
        self.actions.submit(self._act, t, label, reason)

    def _act(self, t: Target, label: str, reason: str) -> None:
        client = self.ctx.supervisor().supervisor
        ns = t.namespec
        error = ""
        try:
            if label in ("restart", "start"):
                if label == "restart":
                    try:
                        client.stopProcess(ns, True)
                    except RPCFault as exc:
                        if exc.name != "NOT_RUNNING":
                            raise
                client.startProcess(ns, False)
            elif label == "stop":
                client.stopProcess(ns, False)
            elif label.startswith("signal:"):
                client.signalProcess(ns, label.removeprefix("signal:"))
            elif label.startswith("exec:"):
                env = dict(
                    os.environ, VIGIL_PROCESS=ns, VIGIL_CHECK=t.cfg.name, VIGIL_REASON=reason
                )
                subprocess.run(
                    label.removeprefix("exec:"), shell=True, env=env, timeout=60, check=True
                )
        except (RPCError, OSError, subprocess.SubprocessError) as exc:
            error = str(exc)
        ok = not error
        (self.log.warning if ok else self.log.error)(
            "%s %s (%s: %s)%s",
            label,
            ns,
            t.cfg.name,
            reason,
            "" if ok else f" failed: {error}",
        )
        with self.lock:
            if not ok or label not in ("restart", "start"):
                t.acting = False
        self.ctx.bus.publish(
            "health.action", Remediation(t.cfg.name, t.group, t.name, label, reason, ok, error)
        )


def raise_fd_limit(ctx: PluginContext, wanted: int) -> None:
    """Raise the soft RLIMIT_NOFILE towards ``wanted`` (at most the hard limit).

    Each plain-http check keeps its keep-alive connection open, one fd per probed
    process (``group:*`` checks more); a listener at supervisord's usual 1024 would fail
    probes with EMFILE — taken for unhealthy services — past about a thousand.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            ctx.log.warning("health: cannot raise the open-files limit to %d: %s", target, exc)
            return
        ctx.log.info("health: open-files limit raised from %d to %d", soft, target)
    if target < wanted:
        ctx.log.warning(
            "health: the open-files limit (%d) is below the %d the checks may need", target, wanted
        )


def setup(ctx: PluginContext) -> None:
    if ctx.config is None:
        ctx.log.warning("health: no config file, no checks")
        return
    configs = load_healthchecks(ctx.config)
    for cfg in configs:
        for warning in cfg.warnings:
            ctx.log.warning("%s", warning)
    listener_groups = frozenset(
        s.name.removeprefix("eventlistener:")
        for s in ctx.config.sections_with_prefix("eventlistener:")
    )
    http_checks = sum(1 for cfg in configs if cfg.type is CheckType.HTTP)
    raise_fd_limit(ctx, FD_HEADROOM + 2 * http_checks)
    plugin = HealthPlugin(ctx, configs, listener_groups=listener_groups)
    ctx.subscribe(plugin.on_state, E.PROCESS_STATE)
    ctx.subscribe(plugin.on_communication, E.PROCESS_COMMUNICATION)
    ctx.on_stop(plugin.stop)
    plugin.start()
    ctx.log.info("health: %d check(s) configured", len(configs))
