"""vigild's loop: timers in order, fds, signals through the wakeup pipe; the stall timer."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import time
import weakref
from collections.abc import Callable
from pathlib import Path

import pytest

from manager.config import load_config
from manager.events import RemoteCommunication
from manager.loop import COMPACT_AFTER, Loop
from manager.osfacade import RealOS, SpawnSpec
from manager.pool import SPILL, ListenerPool
from manager.states import ProcessState, SupervisorState
from manager.supervisor import STALL_AFTER, Supervisor
from manager.watchdog import Watchdog


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


# ---------------------------------------------------------------------------------------------
# the supervisor's stall timer (a full pool that accepts nothing stops holding producers back)


def _stall_setup(tmp_path: Path) -> tuple[FakeClock, Loop, Supervisor, ListenerPool]:
    conf = tmp_path / "s.conf"
    conf.write_text(
        f"[supervisord]\nchildlogdir = {tmp_path}\n"
        "[eventlistener:p]\ncommand = /bin/cat\nevents = REMOTE_COMMUNICATION\n"
        "buffer_size = 2\nstdout_logfile = NONE\nstderr_logfile = NONE\n"
    )
    config = load_config(conf)
    clock = FakeClock()
    loop = Loop(clock)
    sup = Supervisor(config, log=logging.getLogger("test.stall"), loop=loop)
    pool = sup.add_group(config.pools[0]).pool
    assert pool is not None
    pool.attach("p", lambda data: None)
    pool.set_running("p", True)
    pool.receive("p", b"READY\n")
    for i in range(3):  # one in flight, two buffered: full
        sup.emit(RemoteCommunication("t", str(i)))
    assert not sup.room_for(pool)
    return clock, loop, sup, pool


def test_a_full_pool_that_accepts_nothing_for_stall_after_is_stalled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    clock, loop, sup, pool = _stall_setup(tmp_path)
    sup.watch_stall(pool)
    clock.t = STALL_AFTER - 0.01
    loop.run_once(max_wait=0)
    assert not sup.room_for(pool)
    clock.t = STALL_AFTER
    loop.run_once(max_wait=0)
    assert sup.room_for(pool)  # stalled: producers go on
    assert "pool p has accepted no event for 5 seconds with its buffer full" in caplog.text
    cap = SPILL * 2  # ... and holds SPILL × buffer_size events, discarding the oldest
    for i in range(3, cap + 10):
        sup.emit(RemoteCommunication("t", str(i)))
    held = list(pool.buffer)
    assert [b.event.payload() for b in held] == [f"type:t\n{i}" for i in range(10, cap + 10)]
    assert pool.discarded == 9  # events 1..9 (event 0 is in flight)
    assert f"pool p event buffer overflowed, discarding event {held[0].serial - 1}" in caplog.text
    # One accepted event ends the stall: backpressure again.
    pool.receive("p", b"RESULT 2\nOK")
    assert not sup.room_for(pool)
    assert "pool p accepts events again; backpressure resumes" in caplog.text
    loop.close()


def test_a_slow_pool_that_still_accepts_events_is_not_stalled(tmp_path: Path) -> None:
    clock, loop, sup, pool = _stall_setup(tmp_path)
    sup.watch_stall(pool)
    clock.t = STALL_AFTER - 1
    pool.receive("p", b"RESULT 2\nOKREADY\n")  # one accepted, the next one sent
    sup.emit(RemoteCommunication("t", "refill"))  # full again
    clock.t = STALL_AFTER
    loop.run_once(max_wait=0)
    assert not sup.room_for(pool)  # it moved: still backpressure, and still watched
    clock.t = 2 * STALL_AFTER
    loop.run_once(max_wait=0)
    assert sup.room_for(pool)  # nothing accepted in the second period: stalled
    loop.close()


# ---------------------------------------------------------------------------------------------
# reaping closes the child's pipes, whoever else holds them


def test_a_reaped_childs_pipes_are_closed_though_its_daemon_holds_them(tmp_path: Path) -> None:
    """supervisord closes its ends at reap; vigild kept 3 fds per daemonizing exit (a leak)."""
    pidfile = tmp_path / "daemon.pid"
    conf = tmp_path / "d.conf"
    conf.write_text(
        f"[supervisord]\nchildlogdir = {tmp_path}\n"
        f"[program:d]\ncommand = sh -c 'sleep 30 & echo $! > {pidfile}; exit 0'\n"
        "startsecs = 0\nautorestart = false\nstdout_logfile = NONE\nstderr_logfile = NONE\n"
    )
    loop = Loop()
    sup = Supervisor(load_config(conf), log=logging.getLogger("test.reap"), loop=loop)
    sup.start()
    proc = sup.groups["d"].processes["d"]
    daemon = 0
    try:
        deadline = time.monotonic() + 10
        while proc.state is not ProcessState.EXITED and time.monotonic() < deadline:
            sup.reap()
            time.sleep(0.005)
        assert proc.state is ProcessState.EXITED
        daemon = int(pidfile.read_text())
        os.kill(daemon, 0)  # the daemon still runs and holds the pipes' write ends
        assert sup.children == {}  # ... yet vigild's ends are closed
        assert not any(loop.has_reader(fd) for fd in range(3, 1024))
    finally:
        if daemon:
            os.kill(daemon, signal.SIGKILL)  # not our child (reparented): init reaps it
        sup.close_children_io()
        loop.close()


# ---------------------------------------------------------------------------------------------
# the orphan watchdog is replaced when it dies


def test_a_dead_watchdog_is_replaced_and_told_every_live_child(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watchdog = Watchdog.start()
    real = RealOS(watchdog=watchdog)
    child = real.spawn(SpawnSpec(argv=["sleep", "30"], env=dict(os.environ)))
    old = watchdog.pid
    try:
        os.kill(old, signal.SIGKILL)
        os.waitpid(old, 0)
        real.released(old)  # what vigild's reaper does with any pid
        assert watchdog.pid != old
        os.kill(watchdog.pid, 0)
        assert f"the orphan watchdog (pid {old}) died; a new one" in caplog.text
        # As if vigild died: the new watchdog sees EOF and kills the child it was told of.
        watchdog.close()
        _, status = os.waitpid(child.pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(child.pid, 0)
        for fd in (child.stdin, child.stdout, child.stderr):
            if fd is not None:
                os.close(fd)
        watchdog.close()


# ---------------------------------------------------------------------------------------------
# cancelled timers let go of their callbacks


class _Held:
    def __call__(self) -> None:
        raise AssertionError("a cancelled timer fired")


def test_a_cancelled_timer_drops_its_callback_and_the_heap_is_compacted() -> None:
    """A closed HTTP connection stayed alive in its cancelled 60-s request timer (~30% of
    XML-RPC requests: 15 MB of RSS after 40,000 getState calls)."""
    clock = FakeClock()
    loop = Loop(clock)
    held = _Held()
    ref = weakref.ref(held)
    loop.call_later(60, held).cancel()
    del held
    gc.collect()
    assert ref() is None  # not kept until the deadline
    timers = [loop.call_later(60, lambda: None) for _ in range(2 * COMPACT_AFTER)]
    for t in timers[1:]:
        t.cancel()
    loop.call_later(60, lambda: None)  # compaction happens here
    assert len(loop._timers) <= 3
    fired: list[str] = []
    loop.call_at(1, lambda: fired.append("due"))
    clock.t = 1
    loop.run_once(max_wait=0)
    assert fired == ["due"]
    loop.close()


# ---------------------------------------------------------------------------------------------
# work after the next turn's I/O; a burst of automatic restarts takes one per turn


def test_call_after_io_runs_next_turn_after_the_ready_fds() -> None:
    loop = Loop()
    r, w = os.pipe()
    order: list[str] = []
    try:
        loop.add_reader(r, lambda: order.append(f"read {os.read(r, 10).decode()}"))

        def later() -> None:
            order.append(f"after io, turn {loop.turn}")
            if loop.turn < 3:
                loop.call_after_io(later)

        loop.call_after_io(later)
        os.write(w, b"x")
        started = time.monotonic()
        loop.run_once(max_wait=5)  # pending work: no sleep
        assert order == ["read x", "after io, turn 1"]
        loop.run_once(max_wait=5)
        loop.run_once(max_wait=5)
        assert order[2:] == ["after io, turn 2", "after io, turn 3"]
        assert time.monotonic() - started < 1.0
        loop.run_once(max_wait=0.05)  # nothing left: the turn may sleep, runs nothing
        assert len(order) == 4
    finally:
        loop.remove_reader(r)
        os.close(r)
        os.close(w)
        loop.close()


def _burst(tmp_path: Path, n: int) -> tuple[Loop, Supervisor]:
    conf = tmp_path / "burst.conf"
    conf.write_text(
        f"[supervisord]\nchildlogdir = {tmp_path}\n"
        f"[program:x]\ncommand = sh -c 'sleep 0.3; exit 1'\nnumprocs = {n}\n"
        "process_name = x_%(process_num)d\nstartsecs = 0\nautorestart = true\n"
        "stdout_logfile = NONE\nstderr_logfile = NONE\n"
    )
    loop = Loop()
    sup = Supervisor(load_config(conf), log=logging.getLogger("test.burst"), loop=loop)
    sup.start()
    return loop, sup


def _shutdown(loop: Loop, sup: Supervisor) -> None:
    loop.install_signals([signal.SIGCHLD], sup.handle_signal)  # run() reaps on SIGCHLD
    os.kill(os.getpid(), signal.SIGCHLD)  # exits that happened before the handler
    sup.request_stop(SupervisorState.SHUTDOWN)
    sup.run()
    loop.close()


def _wait_all_exited(sup: Supervisor, n: int) -> None:
    """Until n children have exited (without reaping them)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        zombies = 0
        for pid in sup.by_pid:
            with contextlib.suppress(OSError):
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                zombies += state == "Z"
        if zombies == n:
            return
        time.sleep(0.01)
    raise AssertionError("the children did not exit")


def test_children_exiting_together_restart_one_per_turn_after_their_exited_events(
    tmp_path: Path,
) -> None:
    """vigild used to fork and exec every restart in the turn that reaped the exits, so a
    listener's answer waited behind them all (busy p99 13.4 ms, bench/core.py)."""
    loop, sup = _burst(tmp_path, 4)
    procs = list(sup.groups["x"].processes.values())
    try:
        _wait_all_exited(sup, 4)
        sup.reap()  # all four in one turn
        states = sorted(p.state.name for p in procs)
        assert states == ["EXITED", "EXITED", "EXITED", "STARTING"]
        for spawned in (2, 3, 4):
            loop.run_once(max_wait=0)
            assert sum(p.state is not ProcessState.EXITED for p in procs) == spawned
        assert all(p.pid for p in procs)
    finally:
        _shutdown(loop, sup)


def test_a_restart_waiting_for_its_turn_is_dropped_with_its_group(tmp_path: Path) -> None:
    loop, sup = _burst(tmp_path, 2)
    try:
        _wait_all_exited(sup, 2)
        sup.reap()
        waiting = next(p for p in sup.groups["x"].processes.values() if not p.pid)
        assert waiting.state is ProcessState.EXITED
        group = sup.groups.pop("x")  # as removeProcessGroup leaves it: gone from the table
        loop.run_once(max_wait=0)
        assert waiting.state is ProcessState.EXITED and not waiting.pid
        sup.groups["x"] = group
    finally:
        _shutdown(loop, sup)


# ---------------------------------------------------------------------------------------------
# a callback that raises: fatal by default, logged and survived under an error policy


def _raise(kind: type[Exception]) -> Callable[[], None]:
    def callback() -> None:
        raise kind("a bug")

    return callback


def test_without_an_error_policy_a_raising_callback_ends_run_once() -> None:
    loop = Loop()
    try:
        loop.call_soon(_raise(ZeroDivisionError))
        with pytest.raises(ZeroDivisionError):
            loop.run_once(max_wait=0)
    finally:
        loop.close()


def test_under_an_error_policy_the_loop_goes_on_and_drops_a_failing_fds_callback() -> None:
    errors: list[tuple[str, str]] = []
    loop = Loop(on_error=lambda what, exc: errors.append((what, type(exc).__name__)))
    bad_r, bad_w = os.pipe()
    good_r, good_w = os.pipe()
    got: list[bytes] = []
    fired: list[str] = []

    def bad_reader() -> None:
        raise ValueError("a bug")  # and leaves the fd readable: it must not spin the loop

    try:
        loop.add_reader(bad_r, bad_reader)
        loop.add_reader(good_r, lambda: got.append(os.read(good_r, 10)))
        loop.add_writer(good_w, _raise(KeyError))
        loop.call_soon(_raise(ZeroDivisionError))
        loop.call_soon(lambda: fired.append("next timer"))
        loop.call_after_io(_raise(IndexError))
        os.write(bad_w, b"x")
        os.write(good_w, b"y")
        loop.run_once(max_wait=0)
        loop.run_once(max_wait=0)  # the after-I/O callback
        assert got == [b"y"] and fired == ["next timer"]
        assert sorted(errors) == sorted(
            [
                (f"reader of fd {bad_r}", "ValueError"),
                (f"writer of fd {good_w}", "KeyError"),
                ("timer", "ZeroDivisionError"),
                ("after-I/O callback", "IndexError"),
            ]
        )
        assert not loop.has_reader(bad_r) and loop.has_reader(good_r)
        os.write(good_w, b"z")  # the healthy reader is still served
        loop.run_once(max_wait=1)
        assert got == [b"y", b"z"] and len(errors) == 4
    finally:
        loop.remove_reader(good_r)
        for fd in (bad_r, bad_w, good_r, good_w):
            os.close(fd)
        loop.close()


def test_under_an_error_policy_a_raising_signal_handler_is_reported() -> None:
    errors: list[str] = []
    loop = Loop(on_error=lambda what, exc: errors.append(what))

    def handler(signum: int) -> None:
        raise RuntimeError(signum)

    try:
        loop.install_signals([signal.SIGUSR1], handler)
        os.kill(os.getpid(), signal.SIGUSR1)
        loop.run_once(max_wait=1)
        assert errors == [f"handler of signal {int(signal.SIGUSR1)}"]
    finally:
        loop.close()
