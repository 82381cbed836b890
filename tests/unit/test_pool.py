"""Listener pools: buffering, overflow, rebuffering, backpressure — pure, with fake listeners."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from manager.config import PoolConfig, load_config
from manager.events import EventType, ProcessCommunication, ProcessLog, Tick
from manager.pool import SPILL, ListenerPool, fail_delay
from manager.protocol import ListenerConnection, ListenerState, Notification

E = EventType


def pool_config(tmp_path: Path, events: str, buffer_size: int = 3, numprocs: int = 1) -> PoolConfig:
    conf = tmp_path / "p.conf"
    conf.write_text(
        f"""[supervisord]
[eventlistener:p]
command = /bin/cat
events = {events}
buffer_size = {buffer_size}
numprocs = {numprocs}
process_name = l%(process_num)d
"""
    )
    (pool,) = load_config(conf).pools
    return pool


class FakeListener:
    """The listener end: a real ListenerConnection fed with what the pool writes."""

    def __init__(self, pool: ListenerPool, name: str) -> None:
        self.pool = pool
        self.name = name
        self.conn = ListenerConnection()
        self.got: list[Notification] = []
        pool.attach(name, self.write)

    def write(self, data: bytes) -> None:
        self.conn.receive_data(data)
        n = self.conn.next_event()
        assert isinstance(n, Notification)
        self.got.append(n)

    def ready(self) -> None:
        self.pool.receive(self.name, self.conn.ready())

    def answer(self, body: bytes = b"OK", *, then_ready: bool = True) -> None:
        data = self.conn.result(body)
        if then_ready:
            data += self.conn.ready()
        self.pool.receive(self.name, data)

    @property
    def serials(self) -> list[int]:
        return [n.header.serial for n in self.got]


def tick(i: int) -> Tick:
    return Tick(E.TICK_5, i)


@pytest.fixture
def log() -> logging.Logger:
    return logging.getLogger("test.pool")


def test_events_wait_until_a_listener_is_running_and_ready(
    tmp_path: Path, log: logging.Logger
) -> None:
    pool = ListenerPool(pool_config(tmp_path, "TICK"), "sv", log)
    lst = FakeListener(pool, "l0")
    pool.accept(tick(0), 0)
    lst.ready()
    assert lst.got == []  # READY but not RUNNING (startsecs not over)
    pool.set_running("l0", True)
    assert lst.serials == [0]
    lst.answer()
    pool.accept(tick(1), 1)
    assert lst.serials == [0, 1]


def test_past_buffer_size_the_pool_holds_events_and_warns_once(
    tmp_path: Path, log: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    pool = ListenerPool(pool_config(tmp_path, "TICK", buffer_size=3), "sv", log)
    for i in range(3 * SPILL):
        pool.accept(tick(i), 10 + i)
    assert [b.serial for b in pool.buffer] == list(range(10, 10 + 3 * SPILL))
    assert pool.discarded == 0 and not pool.has_room()
    assert caplog.text.count("pool p is behind: 3 events buffered (buffer_size)") == 1
    assert "overflowed" not in caplog.text


def test_past_spill_times_buffer_size_the_oldest_is_discarded_and_logged(
    tmp_path: Path, log: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    pool = ListenerPool(pool_config(tmp_path, "TICK", buffer_size=3), "sv", log)
    for i in range(3 * SPILL + 2):
        pool.accept(tick(i), 10 + i)
    assert len(pool.buffer) == 3 * SPILL
    assert [b.serial for b in pool.buffer][:2] == [12, 13]
    assert [b.poolserial for b in pool.buffer][:2] == [2, 3]
    assert pool.discarded == 2
    assert "pool p event buffer overflowed, discarding event 10" in caplog.text
    assert "pool p event buffer overflowed, discarding event 11" in caplog.text


def test_a_drained_pool_warns_again_when_it_falls_behind_again(
    tmp_path: Path, log: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    pool = ListenerPool(pool_config(tmp_path, "TICK", buffer_size=2), "sv", log)
    lst = FakeListener(pool, "l0")
    for i in range(4):
        pool.accept(tick(i), i)
    pool.set_running("l0", True)
    lst.ready()
    for _ in range(4):
        lst.answer()
    assert not pool.buffer and lst.serials == [0, 1, 2, 3]
    for i in range(4, 8):  # 4 goes out at once, 5-7 wait: behind again
        pool.accept(tick(i), i)
    assert caplog.text.count("pool p is behind") == 2


def test_overflow_never_discards_log_events_but_the_oldest_other_one(
    tmp_path: Path, log: logging.Logger
) -> None:
    pool = ListenerPool(pool_config(tmp_path, "PROCESS_LOG,TICK", 1), "sv", log)
    pool.accept(ProcessLog(E.PROCESS_LOG_STDOUT, "a", "a", 1, "stdout", "kept"), 0)
    for i in range(1, SPILL + 1):
        pool.accept(tick(i), i)
    assert [b.serial for b in pool.buffer] == [0, *range(2, SPILL + 1)]
    assert pool.discarded == 1


def test_log_and_communication_events_are_never_discarded(
    tmp_path: Path, log: logging.Logger
) -> None:
    pool = ListenerPool(pool_config(tmp_path, "PROCESS_LOG,PROCESS_COMMUNICATION", 2), "sv", log)
    drained: list[int] = []
    pool.on_drain = lambda: drained.append(len(pool.buffer))
    for i in range(5):
        pool.accept(ProcessLog(E.PROCESS_LOG_STDOUT, "a", "a", 1, "stdout", f"line {i}"), i)
    pool.accept(ProcessCommunication(E.PROCESS_COMMUNICATION_STDOUT, "a", "a", 1, "c"), 5)
    assert len(pool.buffer) == 6 and pool.discarded == 0
    assert not pool.has_room()
    lst = FakeListener(pool, "l0")
    pool.set_running("l0", True)
    lst.ready()
    for _ in range(5):
        lst.answer()
    assert lst.serials == [0, 1, 2, 3, 4, 5]
    # Producers are resumed once there is room again, not before.
    assert drained and all(n < 2 for n in drained)


def test_fail_puts_the_event_back_at_the_head_with_the_same_serials(
    tmp_path: Path, log: logging.Logger
) -> None:
    pool = ListenerPool(pool_config(tmp_path, "TICK"), "sv", log)
    lst = FakeListener(pool, "l0")
    pool.set_running("l0", True)
    lst.ready()
    pool.accept(tick(0), 7)
    pool.accept(tick(1), 8)
    lst.answer(b"FAIL")
    assert [(n.header.serial, n.header.poolserial) for n in lst.got] == [(7, 0), (7, 0)]
    lst.answer()
    assert lst.serials == [7, 7, 8]
    assert pool.rejected == 1


def test_a_dying_listener_gets_its_event_redelivered_to_the_next(
    tmp_path: Path, log: logging.Logger
) -> None:
    pool = ListenerPool(pool_config(tmp_path, "TICK", numprocs=2), "sv", log)
    first, second = FakeListener(pool, "l0"), FakeListener(pool, "l1")
    for name in ("l0", "l1"):
        pool.set_running(name, True)
    first.ready()
    pool.accept(tick(0), 3)
    assert first.serials == [3]
    pool.set_running("l0", False)
    pool.detach("l0")
    second.ready()
    assert second.serials == [3]


def test_protocol_violation_makes_a_listener_unknown_and_reroutes_its_event(
    tmp_path: Path, log: logging.Logger
) -> None:
    pool = ListenerPool(pool_config(tmp_path, "TICK", numprocs=2), "sv", log)
    first, second = FakeListener(pool, "l0"), FakeListener(pool, "l1")
    for name in ("l0", "l1"):
        pool.set_running(name, True)
    first.ready()
    pool.accept(tick(0), 1)
    pool.receive("l0", b"garbage\n")
    assert pool.listener_state("l0") is ListenerState.UNKNOWN
    second.ready()
    assert second.serials == [1]
    pool.accept(tick(1), 2)
    second.answer()
    assert first.serials == [1] and second.serials == [1, 2]


def test_overlapping_subscriptions_deliver_an_event_once(
    tmp_path: Path, log: logging.Logger
) -> None:
    cfg = pool_config(tmp_path, "TICK,TICK_5,EVENT")
    pool = ListenerPool(cfg, "sv", log)
    assert pool.subscribes(E.TICK_5)
    pool.accept(tick(0), 0)
    assert len(pool.buffer) == 1


SEEN: list[bytes] = []


def picky_handler(event: object, response: bytes) -> None:
    """A custom result_handler: only ``YES`` accepts; anything else is rejected."""
    SEEN.append(response)
    if response != b"YES":
        from manager.results import RejectEvent

        raise RejectEvent(response)


def test_custom_result_handler_decides_acceptance(tmp_path: Path, log: logging.Logger) -> None:
    conf = tmp_path / "p.conf"
    conf.write_text(
        "[supervisord]\n[eventlistener:p]\ncommand = /bin/cat\nevents = TICK\n"
        "result_handler = tests.unit.test_pool:picky_handler\n"
    )
    (cfg,) = load_config(conf).pools
    pool = ListenerPool(cfg, "sv", log)
    lst = FakeListener(pool, "p")
    pool.set_running("p", True)
    lst.ready()
    pool.accept(tick(0), 5)
    lst.answer(b"OK")  # fine for supervisord's default, rejected by this handler
    assert lst.serials == [5, 5] and pool.rejected == 1
    lst.answer(b"YES")
    assert pool.delivered == 1 and SEEN[-2:] == [b"OK", b"YES"]


class FakeTimers:
    """An injected clock and ``call_later`` for the pool: time moves only by ``advance``."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pending: list[tuple[float, Callable[[], None]]] = []

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        self.pending.append((self.now + delay, callback))

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [cb for when, cb in self.pending if when <= self.now + 1e-9]
        self.pending = [(w, cb) for w, cb in self.pending if w > self.now + 1e-9]
        for cb in due:
            cb()


def test_fail_delay_is_exponential_from_the_second_rejection() -> None:
    assert [fail_delay(n) for n in range(1, 10)] == [
        0.0,
        0.01,
        0.02,
        0.04,
        0.08,
        0.16,
        0.32,
        0.64,
        1.0,
    ]
    assert fail_delay(1000) == 1.0


def test_a_listener_failing_in_a_row_rests_longer_each_time(
    tmp_path: Path, log: logging.Logger
) -> None:
    timers = FakeTimers()
    pool = ListenerPool(
        pool_config(tmp_path, "TICK"),
        "sv",
        log,
        call_later=timers.call_later,
        clock=lambda: timers.now,
    )
    lst = FakeListener(pool, "l0")
    pool.set_running("l0", True)
    lst.ready()
    pool.accept(tick(0), 0)
    assert lst.serials == [0]
    lst.answer(b"FAIL")  # first rejection: redelivered at once
    assert lst.serials == [0, 0]
    lst.answer(b"FAIL")  # second: 10 ms rest
    assert lst.serials == [0, 0]
    timers.advance(0.009)
    assert lst.serials == [0, 0]
    timers.advance(0.002)
    assert lst.serials == [0, 0, 0]
    lst.answer(b"FAIL")  # third: 20 ms
    timers.advance(0.015)
    assert lst.serials == [0, 0, 0]
    timers.advance(0.01)
    assert lst.serials == [0, 0, 0, 0]
    lst.answer()  # accepted: no more rest
    pool.accept(tick(1), 1)
    assert lst.serials == [0, 0, 0, 0, 1]
    lst.answer(b"FAIL")
    assert lst.serials == [0, 0, 0, 0, 1, 1]  # a first rejection again
    assert pool.rejected == 4 and pool.delivered == 1


def test_a_resting_listener_does_not_hold_the_others(tmp_path: Path, log: logging.Logger) -> None:
    timers = FakeTimers()
    pool = ListenerPool(
        pool_config(tmp_path, "TICK", numprocs=2),
        "sv",
        log,
        call_later=timers.call_later,
        clock=lambda: timers.now,
    )
    bad, good = FakeListener(pool, "l0"), FakeListener(pool, "l1")
    for name in ("l0", "l1"):
        pool.set_running(name, True)
    bad.ready()
    pool.accept(tick(0), 0)
    bad.answer(b"FAIL")  # redelivered at once, to the first READY listener: bad again
    bad.answer(b"FAIL", then_ready=True)  # now bad rests
    good.ready()
    assert good.serials == [0]
    good.answer()
    assert pool.delivered == 1 and bad.serials == [0, 0]


def test_a_stalled_pool_discards_the_oldest_of_any_type_at_the_spill_limit(
    tmp_path: Path, log: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    pool = ListenerPool(pool_config(tmp_path, "PROCESS_LOG", 1), "sv", log)
    for i in range(SPILL):
        pool.accept(ProcessLog(E.PROCESS_LOG_STDOUT, "a", "a", 1, "stdout", f"line {i}"), i)
    pool.accept(ProcessLog(E.PROCESS_LOG_STDOUT, "a", "a", 1, "stdout", "more"), SPILL)
    assert pool.discarded == 0 and len(pool.buffer) == SPILL + 1  # never discarded...
    pool.accept(ProcessLog(E.PROCESS_LOG_STDOUT, "a", "a", 1, "stdout", "x"), 99, stalled=True)
    assert pool.discarded == 1 and pool.buffer[0].serial == 1  # ...unless stalled
    assert "pool p event buffer overflowed, discarding event 0" in caplog.text
