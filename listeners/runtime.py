"""The listener runtime: drives :class:`ListenerConnection` over two file descriptors.

Theory of operation
-------------------
One loop on the main thread: say READY, read until a whole event is parsed,
run the *inline* handlers, hand the event to every subscribed plugin's worker
queue, acknowledge (``RESULT 2\\nOK``) and say READY again — one write for both.
The loop never waits for a queued handler, so a slow plugin cannot make the
supervisor's pool buffer overflow.

Each plugin has one worker thread with a bounded queue (``queue_size``).
Handlers of one plugin see events in order. If a plugin falls so far behind that
its queue is full, the oldest queued event is dropped for that plugin only, and
the drop is logged and counted; the protocol loop still never blocks.

Ends: EOF at a message boundary and :class:`Terminate` (raised by the SIGTERM
handler) are clean (exit 0); the event in hand at SIGTERM is *not* acknowledged
so the supervisor redelivers it. A protocol violation is logged with the
offending bytes and ends with exit status 2. stdout carries protocol bytes only.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from listeners.plugin import Subscription
from manager.events import EventType
from manager.protocol import (
    NEED_DATA,
    Closed,
    ListenerConnection,
    Notification,
    ProtocolError,
)

__all__ = ["EXIT_OK", "EXIT_PROTOCOL", "Runtime", "RuntimeStatistics", "Terminate"]

EXIT_OK = 0
EXIT_PROTOCOL = 2
_READ_SIZE = 65536


class Terminate(BaseException):
    """Raised (from a signal handler) to end the loop cleanly; not an Exception, so no
    handler's `except Exception` can swallow it."""


@dataclass(frozen=True)
class RuntimeStatistics:
    #: Events received, by concrete event name.
    received: Mapping[str, int]
    #: Events acknowledged with OK.
    acknowledged: int
    #: Handler calls that raised.
    handler_errors: int
    #: Queued, not yet handled, per plugin.
    queue_depth: Mapping[str, int]
    #: Events a plugin's full queue dropped (per plugin).
    dropped: Mapping[str, int]
    #: Events the supervisor discarded before sending them (gaps in ``poolserial``).
    poolserial_gaps: int


class _Worker:
    """One plugin's thread and bounded drop-oldest queue."""

    def __init__(
        self, plugin: str, capacity: int, run: Callable[[Subscription, Notification], None]
    ) -> None:
        self.plugin = plugin
        self.capacity = capacity
        self.dropped = 0
        self._run = run
        self._items: deque[tuple[Subscription, Notification]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=f"vigil-{plugin}", daemon=True)
        self._thread.start()

    def put(self, sub: Subscription, n: Notification) -> Notification | None:
        """Queue one call; returns the notification dropped to make room, if any."""
        dropped = None
        with self._cond:
            if len(self._items) >= self.capacity:
                dropped = self._items.popleft()[1]
                self.dropped += 1
            self._items.append((sub, n))
            self._cond.notify()
        return dropped

    def depth(self) -> int:
        with self._cond:
            return len(self._items)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def join(self, timeout: float) -> bool:
        self._thread.join(max(0.0, timeout))
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._closed:
                    self._cond.wait()
                if not self._items:
                    return
                sub, n = self._items.popleft()
            self._run(sub, n)


def describe(n: Notification) -> str:
    h = n.header
    return f"{h.eventname} serial:{h.serial} pool:{h.pool} poolserial:{h.poolserial}"


class Runtime:
    """Run the protocol loop for a set of subscriptions.

    Args:
        subscriptions: from the plugins' setup.
        stdin_fd / stdout_fd: the protocol channel (0 and 1 under a supervisor).
        log: where every diagnostic goes (stderr).
        queue_size: capacity of each plugin's queue.
        slow_inline: an inline handler slower than this (seconds) is logged.
        clock: monotonic clock, injectable.
    """

    def __init__(
        self,
        subscriptions: Iterable[Subscription],
        *,
        stdin_fd: int = 0,
        stdout_fd: int = 1,
        log: logging.Logger | None = None,
        queue_size: int = 10000,
        slow_inline: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, not {queue_size}")
        self._subs = list(subscriptions)
        self._in = stdin_fd
        self._out = stdout_fd
        self.log = log or logging.getLogger("vigil.runtime")
        self._slow = slow_inline
        self._clock = clock
        self._conn = ListenerConnection()
        self._routes: dict[EventType, tuple[list[Subscription], list[Subscription]]] = {}
        self._workers = {
            plugin: _Worker(plugin, queue_size, self._call)
            for plugin in dict.fromkeys(s.plugin for s in self._subs if not s.inline)
        }
        self._lock = threading.Lock()
        self._received: Counter[str] = Counter()
        self._acknowledged = 0
        self._errors = 0
        self._gaps = 0
        self._last_poolserial: dict[str, int] = {}

    # -- statistics ----------------------------------------------------------------

    def statistics(self) -> RuntimeStatistics:
        with self._lock:
            return RuntimeStatistics(
                received=dict(self._received),
                acknowledged=self._acknowledged,
                handler_errors=self._errors,
                queue_depth={p: w.depth() for p, w in self._workers.items()},
                dropped={p: w.dropped for p, w in self._workers.items()},
                poolserial_gaps=self._gaps,
            )

    # -- handlers ------------------------------------------------------------------

    def _route(self, t: EventType) -> tuple[list[Subscription], list[Subscription]]:
        route = self._routes.get(t)
        if route is None:
            matching = [s for s in self._subs if s.matches(t)]
            route = ([s for s in matching if s.inline], [s for s in matching if not s.inline])
            self._routes[t] = route
        return route

    def _call(self, sub: Subscription, n: Notification) -> None:
        try:
            sub.handler(n)
        except Exception:
            with self._lock:
                self._errors += 1
            self.log.exception(
                "handler %s failed on %s; payload %r", sub.label, describe(n), n.payload[:500]
            )

    def _dispatch(self, n: Notification) -> None:
        inline, queued = self._route(n.event.type)
        for sub in inline:
            started = self._clock()
            self._call(sub, n)
            took = self._clock() - started
            if took > self._slow:
                self.log.warning(
                    "inline handler %s took %.3fs on %s (keep inline handlers fast; "
                    "the supervisor waits for them)",
                    sub.label,
                    took,
                    describe(n),
                )
        for sub in queued:
            dropped = self._workers[sub.plugin].put(sub, n)
            if dropped is not None:
                self.log.error(
                    "plugin %s is behind by %d events: dropped %s for it",
                    sub.plugin,
                    self._workers[sub.plugin].capacity,
                    describe(dropped),
                )

    def _account(self, n: Notification) -> None:
        h = n.header
        with self._lock:
            self._received[h.eventname] += 1
            last = self._last_poolserial.get(h.pool)
            if last is not None and h.poolserial > last + 1:
                gap = h.poolserial - last - 1
                self._gaps += gap
                self.log.warning(
                    "pool %s skipped poolserial %d..%d: the supervisor discarded %d event(s) "
                    "(buffer overflow?)",
                    h.pool,
                    last + 1,
                    h.poolserial - 1,
                    gap,
                )
            # A lower poolserial is a redelivery or a supervisor reload (pools restart at 0).
            self._last_poolserial[h.pool] = h.poolserial

    # -- I/O -----------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._out, view)
            view = view[n:]

    def run(self) -> int:
        """Serve until EOF, :class:`Terminate` or a protocol error; return the exit status."""
        conn = self._conn
        try:
            self._write(conn.ready())
            while True:
                item = conn.next_event()
                if item is NEED_DATA:
                    conn.receive_data(os.read(self._in, _READ_SIZE))
                    continue
                if isinstance(item, Closed):
                    self.log.info("stdin closed; exiting")
                    return EXIT_OK
                assert isinstance(item, Notification)
                self._account(item)
                self._dispatch(item)
                self._write(conn.ok() + conn.ready())
                with self._lock:
                    self._acknowledged += 1
        except Terminate:
            self.log.info("terminating on signal")
            return EXIT_OK
        except ProtocolError as exc:
            self.log.error("protocol error, exiting: %s", exc)
            return EXIT_PROTOCOL
        except BrokenPipeError:
            self.log.error("stdout closed by the supervisor; exiting")
            return EXIT_PROTOCOL

    def drain(self, timeout: float) -> int:
        """Stop the workers, letting them finish queued work for up to ``timeout`` s.

        Returns:
            The number of queued calls abandoned.
        """
        deadline = self._clock() + timeout
        for w in self._workers.values():
            w.close()
        left = 0
        for w in self._workers.values():
            if not w.join(deadline - self._clock()):
                left += w.depth() + 1
                self.log.warning(
                    "plugin %s did not finish within %.1fs; abandoning %d queued event(s)",
                    w.plugin,
                    timeout,
                    w.depth(),
                )
        return left
