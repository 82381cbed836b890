"""Many lean HTTP checks in flight at once on one thread: a selector, not a thread per probe.

Why: a blocking check holds a worker thread for its whole duration, so the number of
workers caps throughput at ``workers / mean duration`` — a slow or hanging service (or a
stall on the server side) fills the pool and every other probe waits in its queue. Here
a probe in flight is a registered socket and a timer; one thread serves them all, so a
hanging endpoint costs nothing until its timeout.

Contract:

* :meth:`HttpReactor.submit` takes an :class:`~healthchecks.http.HttpCheck` whose
  :attr:`~healthchecks.http.HttpCheck.nonblocking` is true and a ``done(result, started)``
  callback. ``done`` is called exactly once per submission, on the reactor's thread, with
  the :class:`~healthchecks.result.CheckResult` (the same ok/detail the blocking
  ``check()`` gives) and the clock time the reactor began the check. ``done`` must be
  quick and must not raise (an exception is logged and dropped).
* The caller keeps at most one submission of a given check in flight.
* :meth:`HttpReactor.stop` drops what is in flight (no ``done`` calls after it returns)
  and closes the reactor's own sockets; the checks' connections stay with the checks.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from healthchecks.http import HttpCheck
from healthchecks.plainhttp import HttpFailure
from healthchecks.result import CheckResult, Clock

__all__ = ["Done", "HttpReactor"]

log = logging.getLogger("vigil.health")

#: ``done(result, started)``: the check's result and when the reactor began it.
Done = Callable[[CheckResult, float], None]


@dataclass(eq=False)
class _Flight:
    check: HttpCheck
    done: Done
    started: float = 0.0
    deadline: float = 0.0
    active: bool = True
    registered: socket.socket | None = field(default=None, repr=False)


class HttpReactor:
    """One thread serving every lean HTTP check in flight (see the module docstring)."""

    def __init__(self, clock: Clock = time.monotonic, name: str = "vigil-http") -> None:
        self._clock = clock
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._incoming: deque[_Flight] = deque()
        self._signalled = False
        self._timers: list[tuple[float, int, _Flight]] = []
        self._seq = itertools.count()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        #: submissions completed, ever
        self.completed = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread; drop what is in flight; close the reactor's sockets."""
        with self._lock:
            self._stopping = True
        self._poke()
        if self._thread.is_alive():
            self._thread.join(timeout)
        for key in list(self._selector.get_map().values()):
            flight = key.data
            if isinstance(flight, _Flight):
                flight.active = False
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def submit(self, check: HttpCheck, done: Done) -> None:
        """Run ``check`` without blocking; ``done(result, started)`` follows on the reactor."""
        with self._lock:
            if self._stopping:
                return
            self._incoming.append(_Flight(check, done))
            if self._signalled:
                return
            self._signalled = True
        self._poke()

    def _poke(self) -> None:
        # full (a wake-up is pending anyway) or closed (stopping): nothing to do
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    # -- the loop ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            timers = self._timers
            while timers and not timers[0][2].active:
                heapq.heappop(timers)  # its check finished: no wake-up for it
            timeout = None
            if timers:
                timeout = max(0.0, timers[0][0] - self._clock())
            for key, _ in self._selector.select(timeout):
                flight = key.data
                if flight is None:
                    self._drain_wake()
                elif isinstance(flight, _Flight) and flight.active:
                    self._step(flight)
            with self._lock:
                if self._stopping:
                    return
                incoming = list(self._incoming)
                self._incoming.clear()
                self._signalled = False
            for flight in incoming:
                self._begin(flight)
            now = self._clock()
            while self._timers and self._timers[0][0] <= now:
                _, _, flight = heapq.heappop(self._timers)
                if flight.active:
                    self._unregister(flight)
                    assert flight.check.plain is not None
                    flight.check.plain.close()
                    self._finish(flight, f"timeout after {flight.check.timeout}s")

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                pass

    def _begin(self, flight: _Flight) -> None:
        flight.started = self._clock()
        try:
            flight.deadline = flight.check.start_async()
        except HttpFailure as exc:
            self._finish(flight, exc.detail)
            return
        except Exception as exc:  # a bug: fail this check, keep the reactor (and the rest)
            self._abort(flight, exc)
            return
        heapq.heappush(self._timers, (flight.deadline, next(self._seq), flight))
        self._step(flight)

    def _step(self, flight: _Flight) -> None:
        plain = flight.check.plain
        assert plain is not None
        self._unregister(flight)
        try:
            answer = plain.advance()
            if answer is None:
                sock = plain.sock
                assert sock is not None
                self._selector.register(sock, plain.interest(), flight)
                flight.registered = sock
                return
        except HttpFailure as exc:
            self._finish(flight, exc.detail)
            return
        except Exception as exc:  # a bug: fail this check, keep the reactor (and the rest)
            self._abort(flight, exc)
            return
        self._finish(flight, answer)

    def _abort(self, flight: _Flight, exc: Exception) -> None:
        """An unexpected error: the check fails with ``internal error``, as ``run_guarded`` says."""
        self._unregister(flight)
        if flight.check.plain is not None:
            flight.check.plain.close()
        self._finish(flight, f"internal error: {type(exc).__name__}: {exc}")

    def _unregister(self, flight: _Flight) -> None:
        if flight.registered is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(flight.registered)
            flight.registered = None

    def _finish(self, flight: _Flight, outcome: tuple[int, bytes] | str) -> None:
        flight.active = False
        self.completed += 1
        try:
            result = flight.check.result_async(outcome, flight.started)
        except Exception as exc:
            detail = f"internal error: {type(exc).__name__}: {exc}"
            result = CheckResult(False, detail, self._clock() - flight.started)
        try:
            flight.done(result, flight.started)
        except Exception:
            log.exception("health: a check's completion handler failed")
