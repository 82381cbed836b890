"""vigild's event loop: one selector, a timer heap on the monotonic clock, signals via a pipe.

No fixed poll timeout: ``select`` sleeps until the earliest timer, a readable or
writable fd, or a signal (``signal.set_wakeup_fd``), so a child's exit is handled
the moment SIGCHLD arrives and a timer fires on time, not on the next 1-second tick.

A callback that raises ends ``run_once`` with the exception, unless the loop has
an ``on_error`` policy (vigild's: log it and go on, since a daemon that dies of
one bug takes every child down with it). With a policy, a failing fd callback
is also unregistered, so a readable fd nobody drains cannot spin the loop.

A cancelled timer lets go of its callback at once and the heap is compacted when
cancelled timers are most of it: an HTTP connection arms a 60-second request
timer and cancels it a millisecond later, and those closed connections (with
their requests) must not stay alive until each deadline passes.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import os
import selectors
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable
from types import FrameType

__all__ = ["Loop", "Timer"]

Callback = Callable[[], None]
#: ``on_error(what, exc)``: ``what`` names the callback ("reader of fd 7", "timer"...).
ErrorPolicy = Callable[[str, Exception], None]

#: Compact the heap when more timers than this are cancelled and they are the majority.
COMPACT_AFTER = 256


def _noop() -> None:
    pass


class Timer:
    """A scheduled callback; ``cancel()`` makes it a no-op."""

    __slots__ = ("_loop", "callback", "cancelled", "seq", "when")

    def __init__(self, when: float, seq: int, callback: Callback, loop: Loop | None = None) -> None:
        self.when = when
        self.seq = seq
        self.callback = callback
        self.cancelled = False
        self._loop = loop

    def cancel(self) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        self.callback = _noop  # drop what the callback holds now, not at the deadline
        if self._loop is not None:
            self._loop._cancelled += 1

    def __lt__(self, other: Timer) -> bool:
        return (self.when, self.seq) < (other.when, other.seq)


class Loop:
    def __init__(
        self, clock: Callable[[], float] = time.monotonic, *, on_error: ErrorPolicy | None = None
    ) -> None:
        self.clock = clock
        self.on_error = on_error
        self._sel = selectors.DefaultSelector()
        self._timers: list[Timer] = []
        #: Cancelled timers still in the heap.
        self._cancelled = 0
        self._seq = itertools.count()
        self._pending_signals: deque[int] = deque()
        self._signal_handler: Callable[[int], None] | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._readers: dict[int, Callback] = {}
        self._writers: dict[int, Callback] = {}
        self._old_handlers: dict[int, object] = {}
        self._old_wakeup = -1
        #: Turns taken so far (one per :meth:`run_once`).
        self.turn = 0
        self._after_io: list[Callback] = []

    # -- timers --------------------------------------------------------------------

    def call_at(self, when: float, callback: Callback) -> Timer:
        timers = self._timers
        if self._cancelled > COMPACT_AFTER and 2 * self._cancelled > len(timers):
            timers[:] = [t for t in timers if not t.cancelled]  # in place: run_once holds it
            heapq.heapify(timers)
            self._cancelled = 0
        t = Timer(when, next(self._seq), callback, self)
        heapq.heappush(timers, t)
        return t

    def call_later(self, delay: float, callback: Callback) -> Timer:
        return self.call_at(self.clock() + delay, callback)

    def call_soon(self, callback: Callback) -> Timer:
        return self.call_at(float("-inf"), callback)

    def call_after_io(self, callback: Callback) -> None:
        """Run ``callback`` in the next turn, once that turn's ready fds are handled.

        For work that should not delay I/O that is ready now: a burst of automatic
        restarts takes one per turn, so listeners are answered in between.
        """
        self._after_io.append(callback)

    # -- fds -----------------------------------------------------------------------

    def _update(self, fd: int) -> None:
        mask = (selectors.EVENT_READ if fd in self._readers else 0) | (
            selectors.EVENT_WRITE if fd in self._writers else 0
        )
        try:
            key = self._sel.get_key(fd)
        except KeyError:
            key = None
        if key is None:
            if mask:
                self._sel.register(fd, mask, None)
        elif mask:
            if key.events != mask:
                self._sel.modify(fd, mask, None)
        else:
            self._sel.unregister(fd)

    def add_reader(self, fd: int, callback: Callback) -> None:
        self._readers[fd] = callback
        self._update(fd)

    def remove_reader(self, fd: int) -> None:
        if self._readers.pop(fd, None) is not None:
            self._update(fd)

    def add_writer(self, fd: int, callback: Callback) -> None:
        self._writers[fd] = callback
        self._update(fd)

    def remove_writer(self, fd: int) -> None:
        if self._writers.pop(fd, None) is not None:
            self._update(fd)

    def has_reader(self, fd: int) -> bool:
        return fd in self._readers

    # -- signals -------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._pending_signals.append(signum)

    def install_signals(self, signums: Iterable[int], handler: Callable[[int], None]) -> None:
        """Deliver these signals to ``handler`` from the loop (never from inside a handler)."""
        self._signal_handler = handler
        self._old_wakeup = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for s in signums:
            self._old_handlers[s] = signal.signal(s, self._on_signal)

    def restore_signals(self) -> None:
        for s, old in self._old_handlers.items():
            signal.signal(s, old)  # type: ignore[arg-type]
        self._old_handlers.clear()
        signal.set_wakeup_fd(self._old_wakeup)

    # -- running -------------------------------------------------------------------

    def run_once(self, max_wait: float | None = None) -> None:
        """Wait for the first timer, fd or signal (at most ``max_wait`` s) and handle all ready."""
        self.turn += 1
        after_io, self._after_io = self._after_io, []
        timers = self._timers
        while timers and timers[0].cancelled:
            heapq.heappop(timers)
            self._cancelled -= 1
        timeout: float | None = None
        if timers:
            timeout = max(0.0, timers[0].when - self.clock())
        if self._pending_signals or after_io:
            timeout = 0.0
        if max_wait is not None:
            timeout = max_wait if timeout is None else min(timeout, max_wait)
        for key, mask in self._sel.select(timeout):
            fd = key.fd
            if fd == self._wake_r:
                try:
                    while os.read(fd, 4096):
                        pass
                except BlockingIOError:
                    pass
                continue
            if mask & selectors.EVENT_READ and fd in self._readers:
                callback = self._readers[fd]
                if (
                    not self._run(callback, "reader of fd", fd)
                    and self._readers.get(fd) is callback
                ):
                    self.remove_reader(fd)
            if mask & selectors.EVENT_WRITE and fd in self._writers:
                callback = self._writers[fd]
                if (
                    not self._run(callback, "writer of fd", fd)
                    and self._writers.get(fd) is callback
                ):
                    self.remove_writer(fd)
        while self._pending_signals:
            signum = self._pending_signals.popleft()
            if self._signal_handler is not None:
                self._run(
                    functools.partial(self._signal_handler, signum), "handler of signal", signum
                )
        for callback in after_io:
            self._run(callback, "after-I/O callback")
        now = self.clock()
        while timers and (timers[0].cancelled or timers[0].when <= now):
            t = heapq.heappop(timers)
            if t.cancelled:
                self._cancelled -= 1
            else:
                t.cancelled = True  # fired: a later cancel() is a no-op
                t._loop = None
                self._run(t.callback, "timer")

    def _run(self, callback: Callback, what: str, number: int | None = None) -> bool:
        """Call ``callback``; False if it raised and the error policy took the exception."""
        if self.on_error is None:
            callback()
            return True
        try:
            callback()
        except Exception as exc:
            self.on_error(what if number is None else f"{what} {number}", exc)
            return False
        return True

    def close(self) -> None:
        self.restore_signals()
        self._sel.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
