"""Flow control between producers and listener pools: emitting events, backpressure,
restart pacing and stalled pools.

* :meth:`PacingMixin.emit` numbers an event (only if some pool subscribes) and puts it
  in each subscribed pool.
* Backpressure: a child output whose events go to a full pool pauses; it is resumed
  (:meth:`PacingMixin.resume_paused`) when every pool it feeds has room again.
* Restart pacing (:meth:`PacingMixin.defer_spawn`): an automatic restart waits while a
  PROCESS_STATE pool lacks PACE_HEADROOM free slots (at most PACE_MAX_DELAY), and
  automatic restarts go one per loop turn.
* A full pool that accepts no event for STALL_AFTER seconds while someone waits on it
  is stalled: it holds nobody back until one of its listeners accepts an event again.
"""

from __future__ import annotations

import functools
import itertools

from manager.daemon.base import SupervisorBase
from manager.events import Event, EventType
from manager.pool import ListenerPool
from manager.process import Process

__all__ = ["PACE_HEADROOM", "PACE_MAX_DELAY", "STALL_AFTER", "PacingMixin"]

E = EventType
#: Longest an automatic restart waits for a full listener pool before going ahead anyway.
PACE_MAX_DELAY = 1.0
#: Free slots a pool needs before a paced restart goes ahead (the events one restart makes).
PACE_HEADROOM = 3
#: A full pool that accepts no event for this long while someone waits on it is stalled.
STALL_AFTER = 5.0
#: Serial numbers survive reloads (supervisord keeps a module-level counter).
_serials = itertools.count()


class PacingMixin(SupervisorBase):
    """Events to pools, backpressure, restart pacing, stalled pools."""

    def emit(self, event: Event) -> None:
        pools = self.subscribers(event.type)
        if not pools:
            return
        serial = next(_serials)
        for pool in pools:
            pool.accept(event, serial, stalled=bool(self._stalled) and self._is_stalled(pool))

    # -- backpressure and restart pacing ---------------------------------------------

    def _state_pools_have_room(self) -> bool:
        """Room for a restart's next few events (STARTING, RUNNING, EXITED) in every pool."""
        return all(
            p.free_slots() >= PACE_HEADROOM or self._is_stalled(p)
            for p in self.subscribers(E.PROCESS_STATE_STARTING)
        )

    def defer_spawn(self, process: Process) -> bool:
        """Restart pacing: hold an automatic restart while a PROCESS_STATE pool is full,
        and take one automatic restart per loop turn.

        A crash loop then runs at the speed its listeners acknowledge events instead of
        overflowing their buffers; after PACE_MAX_DELAY the restart goes ahead anyway, so
        a stuck listener cannot hold programs down. When several children exit at once,
        their EXITED events go out first and the restarts (a fork and exec each) follow
        one per turn, with the listeners' I/O handled in between.
        """
        if process in self._paced or process in self._turn_queue:
            return True
        if not self._state_pools_have_room():
            for pool in self.subscribers(E.PROCESS_STATE_STARTING):
                if pool.free_slots() < PACE_HEADROOM:
                    self.watch_stall(pool)
            self._paced[process] = self.loop.call_later(
                PACE_MAX_DELAY, functools.partial(self._paced_spawn, process)
            )
            return True
        if self._spawn_turn == self.loop.turn:
            self._turn_queue.append(process)
            if not self._turn_armed:
                self._turn_armed = True
                self.loop.call_after_io(self._spawn_queued)
            return True
        self._spawn_turn = self.loop.turn
        return False

    def _spawn_queued(self) -> None:
        self._turn_armed = False
        while self._turn_queue:
            process = self._turn_queue.popleft()
            if not self._owns(process):
                continue
            if not self.defer_spawn(process):  # else queued again, for the next turn
                process.respawn()
            break
        if self._turn_queue and not self._turn_armed:
            self._turn_armed = True
            self.loop.call_after_io(self._spawn_queued)

    def _paced_spawn(self, process: Process) -> None:
        timer = self._paced.pop(process, None)
        if timer is not None:
            timer.cancel()
            if self._owns(process):
                process.respawn()

    def _on_pool_drain(self) -> None:
        if self.paused:
            self.resume_paused()
        if self._paced and self._state_pools_have_room():
            self._paced_spawn(next(iter(self._paced)))

    def resume_paused(self) -> None:
        for out in list(self.paused):
            if all(self.room_for(p) for p in out.sinks()):
                self.paused.discard(out)
                out.resume()
                out.drain()
                if out.reaped and not out.paused:
                    out.close()

    # -- stalled pools --------------------------------------------------------------

    def _is_stalled(self, pool: ListenerPool) -> bool:
        """Stalled, and still not answering (an accepted event ends the stall)."""
        mark = self._stalled.get(pool.name)
        if mark is None:
            return False
        if pool.delivered != mark:
            del self._stalled[pool.name]
            self.log.info("pool %s accepts events again; backpressure resumes", pool.name)
            return False
        return True

    def room_for(self, pool: ListenerPool) -> bool:
        """May producers go on feeding ``pool``? (it has room, or it is stalled)"""
        return pool.has_room() or self._is_stalled(pool)

    def watch_stall(self, pool: ListenerPool) -> None:
        """Someone waits on the full ``pool``: check in STALL_AFTER s that it still moves."""
        if pool.name in self._stall_timers or pool.name in self._stalled:
            return
        self._stall_timers[pool.name] = self.loop.call_later(
            STALL_AFTER, functools.partial(self._stall_check, pool, pool.delivered)
        )

    def _stall_check(self, pool: ListenerPool, delivered: int) -> None:
        self._stall_timers.pop(pool.name, None)
        group = self.groups.get(pool.name)
        if group is None or group.pool is not pool or pool.has_room():
            return
        if pool.delivered != delivered:  # slow, not stuck: keep watching while it is full
            self.watch_stall(pool)
            return
        self._stalled[pool.name] = delivered
        self.log.warning(
            "pool %s has accepted no event for %s seconds with its buffer full: its "
            "producers go on and its oldest events are discarded until it answers again",
            pool.name,
            _secs(STALL_AFTER),
        )
        self._on_pool_drain()


def _secs(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)
