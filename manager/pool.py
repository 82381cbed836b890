"""Event-listener pools: one buffer per ``[eventlistener:x]``, dispatch to READY listeners.

Theory of operation
-------------------
``accept`` puts an event in the pool's buffer (once, however many ``events=``
entries match — supervisord would deliver it once per matching entry).
``buffer_size`` is where backpressure starts, not where events are lost
(supervisord discards the oldest event there, its users' most reported event
problem): past it the supervisor paces automatic restarts and stops reading the
pipes of children whose PROCESS_LOG/PROCESS_COMMUNICATION events go to the pool
(:meth:`has_room`, resumed by ``on_drain``), and the pool holds what still comes
(XML-RPC starts and stops, TICKs, restarts that waited their longest) up to
``SPILL × buffer_size`` events. Only past that — a listener that no longer reads —
is the oldest event other than PROCESS_LOG/PROCESS_COMMUNICATION discarded, logged
with supervisord's words; those two are never discarded.

``dispatch`` gives buffered events, oldest first, to the first listener that is
RUNNING and READY, until none is. A FAIL answer, a protocol violation or the
death of a listener puts its event back at the head of **this pool only**
(supervisord rebuffers it in every pool of equal priority).

A listener that FAILs again and again rests before it gets the next event: the
first rejection is redelivered at once (as supervisord), each further one in a
row after ``fail_delay`` (10 ms doubling to 1 s), until it accepts one. A
listener that FAILs forever costs one rejection (and one log line) a second
instead of a hot loop of thousands; other listeners of the pool are not held.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from manager import results
from manager.config import PoolConfig
from manager.events import Event, EventType
from manager.protocol import (
    NEED_DATA,
    ListenerState,
    ProtocolError,
    Ready,
    Result,
    SupervisorConnection,
)
from manager.results import Outcome

__all__ = ["Buffered", "ListenerPool", "PoolStatistics"]

_NEVER_DROP = (EventType.PROCESS_LOG, EventType.PROCESS_COMMUNICATION)
#: a pool holds up to SPILL × buffer_size events before it discards any
SPILL = 10


def _droppable(item: Buffered) -> bool:
    t = item.event.type
    return not t.is_a(_NEVER_DROP[0]) and not t.is_a(_NEVER_DROP[1])


@dataclass(frozen=True)
class Buffered:
    serial: int
    poolserial: int
    event: Event


@dataclass(frozen=True)
class PoolStatistics:
    buffered: int
    delivered: int
    rejected: int
    discarded: int


@dataclass
class _Listener:
    """The pool's view of one listener process."""

    name: str
    conn: SupervisorConnection
    write: Callable[[bytes], None]
    running: bool = False
    in_flight: Buffered | None = None
    #: rejections in a row (reset by an accepted event)
    fails: int = 0
    #: no event before this time (``clock()``), after repeated rejections
    rest_until: float = 0.0


def fail_delay(fails: int) -> float:
    """How long a listener rests after ``fails`` rejections in a row: 0 after the first,
    then 10 ms doubling up to 1 s (tenacity's ``wait_exponential(0.01, max=1)`` shape)."""
    if fails <= 1:
        return 0.0
    return float(min(1.0, 0.01 * 2 ** min(fails - 2, 10)))


@dataclass
class ListenerPool:
    config: PoolConfig
    server: str
    log: logging.Logger
    #: Called after dispatch made room (resume paused producers, paced restarts).
    on_drain: Callable[[], None] = lambda: None
    #: ``call_later(delay, callback)``: wakes dispatch when a resting listener may go on
    call_later: Callable[[float, Callable[[], None]], object] | None = None
    clock: Callable[[], float] = time.monotonic
    buffer: deque[Buffered] = field(default_factory=deque)
    listeners: dict[str, _Listener] = field(default_factory=dict)
    poolserial: int = 0
    delivered: int = 0
    rejected: int = 0
    discarded: int = 0

    def __post_init__(self) -> None:
        self._handler = results.resolve(self.config.result_handler)
        #: past buffer_size since the last time the buffer was back within it (warned once)
        self._over = False

    @property
    def name(self) -> str:
        return self.config.name

    def subscribes(self, t: EventType) -> bool:
        return any(t.is_a(s) for s in self.config.events)

    def has_room(self) -> bool:
        return len(self.buffer) < self.config.buffer_size

    def free_slots(self) -> int:
        return self.config.buffer_size - len(self.buffer)

    def statistics(self) -> PoolStatistics:
        return PoolStatistics(len(self.buffer), self.delivered, self.rejected, self.discarded)

    # -- events in -----------------------------------------------------------------

    def accept(self, event: Event, serial: int, *, stalled: bool = False) -> None:
        """Buffer ``event`` and dispatch. ``stalled``: the supervisor has given up waiting
        for this pool's listeners, so at the spill limit the oldest event of *any* type goes
        (its producers are no longer held back, as supervisord)."""
        item = Buffered(serial, self.poolserial, event)
        self.poolserial += 1
        size = self.config.buffer_size
        if len(self.buffer) >= SPILL * size:
            if stalled:
                self._discard(self.buffer.popleft())
            elif _droppable(item) and not self._discard_oldest():
                self._discard(item)  # all held events are never-discard ones
                return
        elif len(self.buffer) == size and not self._over:
            self._over = True
            self.log.warning(
                "pool %s is behind: %d events buffered (buffer_size), holding up to %d"
                " and pacing restarts until its listeners catch up",
                self.name,
                size,
                SPILL * size,
            )
        self.buffer.append(item)
        self.dispatch()

    def _discard_oldest(self) -> bool:
        """Discard the oldest event that may be discarded; False if there is none."""
        for i, old in enumerate(self.buffer):
            if _droppable(old):
                del self.buffer[i]
                self._discard(old)
                return True
        return False

    def _discard(self, item: Buffered) -> None:
        self.discarded += 1
        self.log.error(
            "pool %s event buffer overflowed, discarding event %d", self.name, item.serial
        )

    # -- listeners -----------------------------------------------------------------

    def attach(self, name: str, write: Callable[[bytes], None]) -> None:
        """A listener process of this pool was spawned (its state: ACKNOWLEDGED)."""
        self.listeners[name] = _Listener(
            name, SupervisorConnection(server=self.server, pool=self.name), write
        )

    def set_running(self, name: str, running: bool) -> None:
        lst = self.listeners.get(name)
        if lst is not None:
            lst.running = running
            if running:
                self.dispatch()

    def detach(self, name: str) -> None:
        """A listener process died: its event in flight goes back to the head of the buffer."""
        lst = self.listeners.pop(name, None)
        if lst is not None and lst.in_flight is not None:
            self._rebuffer(lst.in_flight)
            self.dispatch()

    def listener_state(self, name: str) -> ListenerState | None:
        lst = self.listeners.get(name)
        return None if lst is None else lst.conn.state

    def receive(self, name: str, data: bytes) -> None:
        """Bytes from a listener's stdout."""
        lst = self.listeners.get(name)
        if lst is None:
            return
        conn = lst.conn
        conn.receive_data(data)
        while True:
            try:
                item = conn.next_event()
            except ProtocolError as exc:
                self.log.warning(
                    "%s: has entered the UNKNOWN state and will no longer receive events, "
                    "this usually indicates the process violated the eventlistener protocol "
                    "(%s)",
                    name,
                    exc,
                )
                if lst.in_flight is not None:
                    self._rebuffer(lst.in_flight)
                    lst.in_flight = None
                self.dispatch()
                return
            if item is NEED_DATA:
                break
            if isinstance(item, Result):
                done = lst.in_flight
                lst.in_flight = None
                if done is None:
                    continue
                if self._handler is results.default_handler:  # the hot path, inlined
                    outcome, error = (Outcome.ACCEPTED, "") if item.ok else (Outcome.REJECTED, "")
                else:
                    outcome, error = results.judge(self._handler, done.event, item.body)
                if outcome is Outcome.ACCEPTED:
                    self.delivered += 1
                    lst.fails = 0
                    self.log.debug("%s: event was processed", name)
                else:
                    self.rejected += 1
                    lst.fails += 1
                    self._rest(lst)
                    if outcome is Outcome.ERROR:
                        self.log.warning("%s: event caused an error: %s", name, error)
                    else:
                        self.log.warning("%s: event was rejected", name)
                    self._rebuffer(done)
            elif isinstance(item, Ready):
                self.log.debug("%s: ACKNOWLEDGED -> READY", name)
        self.dispatch()

    def _rebuffer(self, item: Buffered) -> None:
        self.buffer.appendleft(item)

    def _rest(self, lst: _Listener) -> None:
        delay = fail_delay(lst.fails)
        if delay <= 0 or self.call_later is None:
            return
        lst.rest_until = self.clock() + delay
        self.call_later(delay, self.dispatch)

    def dispatch(self) -> None:
        before = len(self.buffer)
        now = self.clock()
        while self.buffer:
            lst = next(
                (
                    x
                    for x in self.listeners.values()
                    if x.running and x.conn.state is ListenerState.READY and x.rest_until <= now
                ),
                None,
            )
            if lst is None:
                break
            item = self.buffer.popleft()
            data = lst.conn.send_event(item.event, serial=item.serial, poolserial=item.poolserial)
            lst.in_flight = item
            lst.write(data)
        if not self.buffer:
            self._over = False
        if len(self.buffer) < before and self.has_room():
            self.on_drain()
