"""vigild's loop: timers in order, fds, signals through the wakeup pipe."""

from __future__ import annotations

import os
import signal
import time

from manager.loop import Loop


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_timers_fire_in_deadline_order_and_cancelled_ones_never() -> None:
    clock = FakeClock()
    loop = Loop(clock)
    fired: list[str] = []
    loop.call_at(2.0, lambda: fired.append("b"))
    loop.call_at(1.0, lambda: fired.append("a"))
    loop.call_at(1.0, lambda: fired.append("a2"))
    loop.call_at(1.5, lambda: fired.append("never")).cancel()
    clock.t = 1.6
    loop.run_once(max_wait=0)
    assert fired == ["a", "a2"]
    clock.t = 2.0
    loop.run_once(max_wait=0)
    assert fired == ["a", "a2", "b"]
    loop.close()


def test_select_sleeps_until_the_next_timer_not_a_fixed_tick() -> None:
    loop = Loop()
    fired: list[float] = []
    start = time.monotonic()
    loop.call_later(0.05, lambda: fired.append(time.monotonic() - start))
    while not fired:
        loop.run_once()
    assert 0.05 <= fired[0] < 0.5
    loop.close()


def test_reader_callback_runs_when_data_arrives() -> None:
    loop = Loop()
    r, w = os.pipe()
    got: list[bytes] = []
    loop.add_reader(r, lambda: got.append(os.read(r, 100)))
    os.write(w, b"hello")
    loop.run_once(max_wait=1)
    assert got == [b"hello"]
    loop.remove_reader(r)
    os.write(w, b"again")
    loop.run_once(max_wait=0)
    assert got == [b"hello"]
    os.close(r)
    os.close(w)
    loop.close()


def test_a_signal_wakes_the_loop_and_reaches_the_handler_from_the_loop() -> None:
    loop = Loop()
    got: list[int] = []
    loop.install_signals([signal.SIGUSR2], got.append)
    try:
        os.kill(os.getpid(), signal.SIGUSR2)
        start = time.monotonic()
        loop.run_once(max_wait=5)
        assert got == [signal.SIGUSR2]
        assert time.monotonic() - start < 1
    finally:
        loop.close()
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL
