"""The listener runtime over real pipes, driven by the supervisor half of the protocol."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from listeners.plugin import Subscription
from listeners.runtime import EXIT_OK, EXIT_PROTOCOL, Runtime
from manager.events import Event, EventType, ProcessStateChange, Tick
from manager.protocol import NEED_DATA, Notification, Ready, Result, SupervisorConnection

E = EventType


@dataclass
class Harness:
    """A runtime on a thread, and the supervisor end of its pipes."""

    runtime: Runtime
    to_listener: int
    from_listener: int
    sv: SupervisorConnection = field(default_factory=lambda: SupervisorConnection(pool="p"))
    thread: threading.Thread | None = None
    status: list[int] = field(default_factory=list)

    def start(self) -> None:
        self.thread = threading.Thread(target=lambda: self.status.append(self.runtime.run()))
        self.thread.start()

    def expect(self, kind: type, timeout: float = 5.0) -> object:
        deadline = time.monotonic() + timeout
        while True:
            item = self.sv.next_event()
            if item is not NEED_DATA:
                assert isinstance(item, kind), item
                return item
            assert time.monotonic() < deadline, f"no {kind.__name__} within {timeout}s"
            self.sv.receive_data(os.read(self.from_listener, 4096))

    def send(self, event: Event, serial: int) -> None:
        os.write(self.to_listener, self.sv.send_event(event, serial=serial, poolserial=serial))

    def close(self) -> int:
        os.close(self.to_listener)
        assert self.thread is not None
        self.thread.join(10)
        assert not self.thread.is_alive()
        return self.status[0]


Factory = Callable[..., Harness]


@pytest.fixture
def make() -> Iterator[Factory]:
    fds: list[int] = []
    harnesses: list[Harness] = []

    def factory(subs: list[Subscription], **kw: object) -> Harness:
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        fds.extend([r1, r2, w2])
        rt = Runtime(subs, stdin_fd=r1, stdout_fd=w2, **kw)  # type: ignore[arg-type]
        h = Harness(rt, w1, r2)
        harnesses.append(h)
        h.start()
        return h

    yield factory
    for h in harnesses:
        with contextlib.suppress(OSError):
            os.close(h.to_listener)
        if h.thread:
            h.thread.join(10)
        h.runtime.drain(2)
    for fd in fds:
        os.close(fd)


def running(pid: int) -> ProcessStateChange:
    return ProcessStateChange(E.PROCESS_STATE_RUNNING, "a", "a", "STARTING", pid=pid)


def test_runtime_acknowledges_each_event_after_inline_and_queues_the_rest(make: Factory) -> None:
    seen_inline: list[int] = []
    seen_queued: list[int] = []
    done = threading.Event()

    def queued(n: Notification) -> None:
        seen_queued.append(n.header.serial)
        if len(seen_queued) == 3:
            done.set()

    subs = [
        Subscription("a", (E.PROCESS_STATE,), lambda n: seen_inline.append(n.header.serial), True),
        Subscription("b", (E.EVENT,), queued, False),
    ]
    h = make(subs)
    h.expect(Ready)
    for serial in range(3):
        h.send(running(serial), serial)
        result = h.expect(Result)
        assert isinstance(result, Result) and result.ok
        # Inline handlers have run by the time the OK arrives.
        assert seen_inline[-1] == serial
        h.expect(Ready)
    assert done.wait(5)
    assert seen_queued == [0, 1, 2]
    assert h.close() == EXIT_OK
    stats = h.runtime.statistics()
    assert stats.received == {"PROCESS_STATE_RUNNING": 3}
    assert stats.acknowledged == 3


def test_runtime_returns_to_ready_while_a_slow_handler_works(make: Factory) -> None:
    release = threading.Event()
    handled: list[int] = []

    def slow(n: Notification) -> None:
        release.wait(10)
        handled.append(n.header.serial)

    h = make([Subscription("slow", (E.EVENT,), slow, False)])
    h.expect(Ready)
    for serial in range(20):
        h.send(Tick(E.TICK_5, serial), serial)
        h.expect(Result)
        h.expect(Ready)
    # Every event was acknowledged while the handler was still stuck on the first one.
    assert handled == []
    assert h.runtime.statistics().queue_depth["slow"] >= 19
    release.set()
    assert h.close() == EXIT_OK
    assert h.runtime.drain(10) == 0
    assert handled == list(range(20))


def test_runtime_logs_a_failing_handler_with_the_event_and_goes_on(
    make: Factory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []

    def boom(n: Notification) -> None:
        calls.append(n.header.serial)
        if n.header.serial == 0:
            raise RuntimeError("kaboom")

    h = make([Subscription("p", (E.TICK,), boom, True)])
    with caplog.at_level(logging.ERROR):
        h.expect(Ready)
        for serial in range(2):
            h.send(Tick(E.TICK_60, 60 * serial), serial)
            assert isinstance(h.expect(Result), Result)
            h.expect(Ready)
        assert h.close() == EXIT_OK
    assert calls == [0, 1]
    assert h.runtime.statistics().handler_errors == 1
    text = caplog.text
    assert "kaboom" in text and "TICK_60 serial:0" in text and "when:0" in text


def test_runtime_exits_2_on_garbage_naming_the_bytes(
    make: Factory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = make([])
    with caplog.at_level(logging.ERROR):
        h.expect(Ready)
        os.write(h.to_listener, b"\x00\x01garbage here\n")
        assert h.close() == EXIT_PROTOCOL
    assert "garbage here" in caplog.text


def test_runtime_drops_oldest_for_a_plugin_whose_queue_is_full(make: Factory) -> None:
    release = threading.Event()
    started = threading.Event()
    handled: list[int] = []

    def slow(n: Notification) -> None:
        started.set()
        release.wait(10)
        handled.append(n.header.serial)

    h = make([Subscription("s", (E.EVENT,), slow, False)], queue_size=3)
    h.expect(Ready)
    for serial in range(10):
        h.send(Tick(E.TICK_5, serial), serial)
        h.expect(Result)
        h.expect(Ready)
        if serial == 0:
            assert started.wait(5)
    release.set()
    assert h.close() == EXIT_OK
    assert h.runtime.drain(10) == 0
    stats = h.runtime.statistics()
    # The first event was taken by the worker at once; of the 9 after it, the newest 3 stay.
    assert handled == [0, 7, 8, 9]
    assert stats.dropped == {"s": 6}


def test_runtime_counts_poolserial_gaps_as_events_the_supervisor_discarded(make: Factory) -> None:
    h = make([])
    h.expect(Ready)
    for serial in (0, 1, 5, 5, 6):
        os.write(
            h.to_listener, h.sv.send_event(Tick(E.TICK_5, 0), serial=serial, poolserial=serial)
        )
        h.expect(Result)
        h.expect(Ready)
    assert h.close() == EXIT_OK
    assert h.runtime.statistics().poolserial_gaps == 3
