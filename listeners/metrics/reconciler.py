"""Keeping the metrics model in step with the supervisor over XML-RPC, on a background thread.

Theory of operation
-------------------
Events carry no exit status and no exact start time, and a listener misses the events sent
before it started (or while it was down). :class:`Reconciler` fills both gaps on its own
daemon thread, so the listener's protocol loop never waits on XML-RPC:

* ``getAllProcessInfo`` at start and every ``period`` seconds (:meth:`Reconciler.reconcile`;
  ``getSupervisorVersion`` and ``getIdentification`` too, once): a complete snapshot, which
  also forgets processes the supervisor no longer has;
* ``getProcessInfo`` some :data:`REFRESH_DELAY` after a STARTING, EXITED, BACKOFF or FATAL
  event (:meth:`Reconciler.notice`), so that a burst of exits costs one round of calls; more
  than :data:`REFRESH_BATCH` processes at once take one ``getAllProcessInfo`` instead, at most
  every :data:`FULL_REFRESH_EVERY` seconds.

Each call is bracketed by the model's ``reconcile_token()``, so the model can tell which of its
records an event touched while the call was in flight. A supervisor that does not answer sets
``supervisor_up`` to 0 (logged once, as is its return); a fault of ``getProcessInfo`` (the
process is gone) skips that process until the next complete snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from listeners.metrics.model import MetricsModel
from manager.events import ProcessStateChange
from manager.rpcclient import RPCError, RPCFault, SupervisorClient

__all__ = ["FULL_REFRESH_EVERY", "REFRESH_BATCH", "REFRESH_DELAY", "REFRESH_STATES", "Reconciler"]

#: More processes than this to refresh at once: one getAllProcessInfo instead.
REFRESH_BATCH = 8
#: Pause before a refresh, so that a burst of exits costs one round of calls.
REFRESH_DELAY = 0.05
#: A storm of events refreshes with getAllProcessInfo at most this often (seconds).
FULL_REFRESH_EVERY = 1.0
#: Events after which the process's exact start time or exit status is fetched.
REFRESH_STATES = frozenset({"STARTING", "EXITED", "BACKOFF", "FATAL"})


class Reconciler:
    """Feed ``model`` from the supervisor's XML-RPC API on a daemon thread.

    Args:
        model: the model to feed.
        supervisor: returns an XML-RPC client (called once per round of calls).
        stopping: set when the listener stops; the thread then ends.
        log: where losing and regaining the supervisor is logged.
        period: seconds between ``getAllProcessInfo`` reconciles.
    """

    def __init__(
        self,
        model: MetricsModel,
        supervisor: Callable[[], SupervisorClient],
        stopping: threading.Event,
        log: logging.Logger,
        period: float,
    ) -> None:
        self.model = model
        self.log = log
        self.period = period
        self._supervisor = supervisor
        self._stopping = stopping
        self._lock = threading.Lock()
        #: processes to refresh after their events (guarded by ``_lock``)
        self._refresh: set[tuple[str, str]] = set()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vigil-metrics", daemon=True)
        self._reachable = True
        self._last_full = -FULL_REFRESH_EVERY

    def notice(self, ev: ProcessStateChange) -> None:
        """Queue a refresh of ``ev``'s process if its new state is in :data:`REFRESH_STATES`."""
        if ev.to_state in REFRESH_STATES:
            with self._lock:
                self._refresh.add((ev.groupname, ev.processname))
            self._wake.set()

    def start(self) -> None:
        """Start the thread: a reconcile at once, then every ``period`` seconds."""
        self._thread.start()

    def stop(self) -> None:
        """Wake the thread and wait for it (up to 5 s); ``stopping`` must be set first."""
        self._wake.set()
        self._thread.join(5)

    def _run(self) -> None:
        next_full = 0.0
        stopping = self._stopping
        while not stopping.is_set():
            self._wake.clear()
            if time.monotonic() >= next_full:
                with self._lock:
                    self._refresh.clear()
                self.reconcile()
                next_full = time.monotonic() + self.period
            else:
                with self._lock:
                    pending = bool(self._refresh)
                if pending and not stopping.wait(REFRESH_DELAY):
                    with self._lock:
                        batch, self._refresh = self._refresh, set()
                    self.refresh(batch)
            self._wake.wait(max(0.0, next_full - time.monotonic()))

    def _unreachable(self, exc: RPCError) -> None:
        self.model.supervisor_unreachable()
        if self._reachable:
            self.log.warning("metrics: the supervisor does not answer: %s", exc)
        self._reachable = False

    def _reached(self) -> None:
        if not self._reachable:
            self.log.info("metrics: the supervisor answers again")
        self._reachable = True

    def reconcile(self) -> None:
        """One ``getAllProcessInfo`` (and, once, version and identification)."""
        self._last_full = time.monotonic()
        rpc = self._supervisor().supervisor
        token = self.model.reconcile_token()
        try:
            infos = rpc.getAllProcessInfo()
            if not self.model.has_supervisor_info:
                self.model.supervisor_info(
                    str(rpc.getSupervisorVersion()), str(rpc.getIdentification())
                )
        except RPCFault as exc:
            self.log.warning("metrics: reconcile failed: %s", exc)
            return
        except RPCError as exc:
            self._unreachable(exc)
            return
        self._reached()
        self.model.reconciled(token, infos, complete=True)

    def refresh(self, batch: set[tuple[str, str]]) -> None:
        """Start times and exit statuses (and state) of a few processes, after their events."""
        if len(batch) > REFRESH_BATCH:
            pause = self._last_full + FULL_REFRESH_EVERY - time.monotonic()
            if pause > 0 and self._stopping.wait(pause):
                return
            self.reconcile()
            return
        rpc = self._supervisor().supervisor
        token = self.model.reconcile_token()
        infos = []
        for group, name in sorted(batch):
            try:
                infos.append(rpc.getProcessInfo(f"{group}:{name}"))
            except RPCFault:
                continue  # gone (BAD_NAME): the next reconcile forgets it
            except RPCError as exc:
                self._unreachable(exc)
                return
        self._reached()
        self.model.reconciled(token, infos, complete=False)
