"""The process state machine, driven by a fake host: injected clock, fake OS, no sleeping."""

from __future__ import annotations

import heapq
import itertools
import logging
import signal
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from manager.config import ProcessConfig, load_config
from manager.datatypes import AutoRestart
from manager.events import Event, ProcessStateChange
from manager.faults import Fault
from manager.loop import Timer
from manager.osfacade import Spawned, SpawnError, SpawnSpec
from manager.process import Process
from manager.states import (
    TRANSITIONS,
    IllegalTransition,
    ProcessState,
    check_transition,
)

P = ProcessState


@dataclass
class FakeOS:
    pids: itertools.count[int] = field(default_factory=lambda: itertools.count(100))
    fail_with: SpawnError | None = None
    spawned: list[SpawnSpec] = field(default_factory=list)
    killed: list[tuple[int, int, bool]] = field(default_factory=list)
    kill_error: OSError | None = None

    def spawn(self, spec: SpawnSpec) -> Spawned:
        if self.fail_with is not None:
            raise self.fail_with
        self.spawned.append(spec)
        return Spawned(next(self.pids), -1, -1, -1)

    def released(self, pid: int) -> None:
        pass

    def kill(self, pid: int, sig: int, *, group: bool) -> None:
        if self.kill_error is not None:
            raise self.kill_error
        self.killed.append((pid, sig, group))


@dataclass
class FakeHost:
    """Clock, timers and event sink for one process; ``advance`` runs due timers."""

    fake_os: FakeOS = field(default_factory=FakeOS)
    t: float = 1000.0
    events: list[ProcessStateChange] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)
    accepting: bool = True
    defer: bool = False
    deferred: list[Process] = field(default_factory=list)
    seq: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def os(self) -> FakeOS:
        return self.fake_os

    @property
    def log(self) -> logging.Logger:
        return logging.getLogger("test.process")

    def now(self) -> float:
        return self.t

    def wallclock(self) -> float:
        return 1_700_000_000 + self.t

    def call_at(self, when: float, callback: object) -> Timer:
        assert callable(callback)
        timer = Timer(when, next(self.seq), callback)
        heapq.heappush(self.timers, timer)
        return timer

    def emit(self, event: Event) -> None:
        assert isinstance(event, ProcessStateChange)
        self.events.append(event)

    def spawn_spec(self, process: Process) -> SpawnSpec:
        return SpawnSpec(argv=process.config.argv, env={})

    def spawn_child(self, process: Process) -> Spawned:
        return self.fake_os.spawn(self.spawn_spec(process))

    def spawned(self, process: Process, spawned: Spawned) -> None:
        pass

    def state_changed(self, process: Process, old: ProcessState) -> None:
        pass

    def accepting_restarts(self) -> bool:
        return self.accepting

    def defer_spawn(self, process: Process) -> bool:
        if self.defer:
            self.deferred.append(process)
        return self.defer

    def advance(self, seconds: float) -> None:
        end = self.t + seconds
        while self.timers and self.timers[0].when <= end:
            timer = heapq.heappop(self.timers)
            if timer.cancelled:
                continue
            self.t = max(self.t, timer.when)
            callback = timer.callback
            timer.cancel()  # fired: a later cancel() is a no-op (cancel drops the callback)
            callback()
        self.t = end

    def path(self) -> list[tuple[str, str, int | None]]:
        """(to_state, from_state, tries-or-pid) per event."""
        return [
            (e.to_state, e.from_state, e.tries if e.tries is not None else e.pid)
            for e in self.events
        ]


EXIT_0 = 0  # waitpid status for exit(0)


def status(code: int) -> int:
    return code << 8


def killed_by(sig: int) -> int:
    return sig


@pytest.fixture
def base(tmp_path: Path) -> ProcessConfig:
    conf = tmp_path / "s.conf"
    conf.write_text("[supervisord]\n[program:app]\ncommand = /bin/true\n")
    (group,) = load_config(conf).groups
    return group.processes[0]


def state(p: Process) -> ProcessState:
    """The state, read through a call so that mypy does not narrow it across calls."""
    return p.state


def make(base: ProcessConfig, **changes: object) -> tuple[Process, FakeHost]:
    host = FakeHost()
    return Process(replace(base, **changes), host), host  # type: ignore[arg-type]


def test_transition_stopped_to_running_after_startsecs(base: ProcessConfig) -> None:
    p, host = make(base, startsecs=1.0)
    p.spawn()
    assert state(p) is P.STARTING and p.pid == 100
    host.advance(0.99)
    assert state(p) is P.STARTING
    host.advance(0.02)
    assert state(p) is P.RUNNING
    assert host.path() == [("STARTING", "STOPPED", 0), ("RUNNING", "STARTING", 100)]


def test_transition_starting_to_backoff_to_fatal_after_startretries(base: ProcessConfig) -> None:
    p, host = make(base, startsecs=3.0, startretries=3)
    p.spawn()
    spawn_times = [p.started_at]
    for _ in range(4):
        host.advance(0.2)
        p.exited(status(1))
        if state(p) is P.BACKOFF:
            host.advance(p.backoff - 0.001)
            assert state(p) is P.BACKOFF  # not a moment early
            host.advance(0.001)
            spawn_times.append(p.started_at)
    assert state(p) is P.FATAL
    # Waits after failures 1, 2, 3 are 1 s, 2 s, 3 s (linear backoff), no loop jitter.
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(spawn_times)]
    assert gaps == [1.2, 2.2, 3.2]
    assert host.path() == [
        ("STARTING", "STOPPED", 0),
        ("BACKOFF", "STARTING", 1),
        ("STARTING", "BACKOFF", 1),
        ("BACKOFF", "STARTING", 2),
        ("STARTING", "BACKOFF", 2),
        ("BACKOFF", "STARTING", 3),
        ("STARTING", "BACKOFF", 3),
        ("BACKOFF", "STARTING", 4),
        ("FATAL", "BACKOFF", None),
    ]
    assert p.backoff == 0


def test_exit_before_startsecs_is_backoff_even_with_an_expected_code(base: ProcessConfig) -> None:
    p, host = make(base, startsecs=1.0, startretries=0)
    p.spawn()
    host.advance(0.5)
    p.exited(EXIT_0)
    assert [e.to_state for e in host.events] == ["STARTING", "BACKOFF", "FATAL"]
    assert p.spawnerr.startswith("Exited too quickly")


def test_spawn_error_goes_to_backoff_with_spawnerr(base: ProcessConfig) -> None:
    p, host = make(base, startretries=1)
    host.fake_os.fail_with = SpawnError("can't find command 'nope'", Fault.NO_FILE)
    p.spawn()
    assert state(p) is P.BACKOFF and p.spawnerr == "can't find command 'nope'"
    host.advance(1.0)
    assert state(p) is P.FATAL
    assert [e.to_state for e in host.events] == [
        "STARTING",
        "BACKOFF",
        "STARTING",
        "BACKOFF",
        "FATAL",
    ]


@pytest.mark.parametrize(
    ("autorestart", "code", "restarts", "expected"),
    [
        (AutoRestart.UNEXPECTED, 0, False, True),
        (AutoRestart.UNEXPECTED, 3, True, False),
        (AutoRestart.TRUE, 0, True, True),
        (AutoRestart.FALSE, 3, False, False),
    ],
)
def test_transition_running_to_exited_then_autorestart(
    base: ProcessConfig, autorestart: AutoRestart, code: int, restarts: bool, expected: bool
) -> None:
    p, host = make(base, autorestart=autorestart, exitcodes=frozenset({0}), startsecs=0.0)
    p.spawn()
    host.advance(0)
    assert state(p) is P.RUNNING
    p.exited(status(code))
    exited = host.events[2]
    assert (exited.to_state, exited.expected, exited.pid) == ("EXITED", expected, 100)
    # The status stays until the next spawn clears it (as supervisord).
    assert p.exitstatus == (0 if restarts else code)
    assert (state(p) is P.STARTING) is restarts
    if restarts:
        assert host.events[3].from_state == "EXITED" and host.events[3].tries == 0


def test_signal_death_is_never_expected_and_reported_as_minus_one(base: ProcessConfig) -> None:
    p, host = make(base, autorestart=AutoRestart.FALSE, startsecs=0.0)
    p.spawn()
    host.advance(0)
    p.exited(killed_by(signal.SIGSEGV))
    assert host.events[-1].expected is False and p.exitstatus == -1


def test_no_autorestart_while_shutting_down(base: ProcessConfig) -> None:
    p, host = make(base, autorestart=AutoRestart.TRUE, startsecs=0.0)
    p.spawn()
    host.advance(0)
    host.accepting = False
    p.exited(status(1))
    assert state(p) is P.EXITED


def test_stop_sends_stopsignal_then_sigkill_after_stopwaitsecs(base: ProcessConfig) -> None:
    p, host = make(
        base, stopsignal=signal.SIGINT, stopwaitsecs=2.0, stopasgroup=True, killasgroup=True
    )
    p.spawn()
    host.advance(2)
    p.stop()
    assert state(p) is P.STOPPING
    assert host.fake_os.killed == [(100, signal.SIGINT, True)]
    host.advance(1.9)
    assert len(host.fake_os.killed) == 1
    host.advance(0.2)
    assert host.fake_os.killed[-1] == (100, signal.SIGKILL, True)
    host.advance(2.0)
    assert host.fake_os.killed[-1] == (100, signal.SIGKILL, True) and len(host.fake_os.killed) == 3
    p.exited(killed_by(signal.SIGKILL))
    assert host.path()[-2:] == [("STOPPING", "RUNNING", 100), ("STOPPED", "STOPPING", 100)]


def test_group_left_by_an_exiting_leader_gets_sigkill_at_the_deadline(base: ProcessConfig) -> None:
    p, host = make(base, stopwaitsecs=2.0, stopasgroup=True)
    p.spawn()
    host.advance(2)
    p.stop()
    host.advance(0.5)
    p.exited(killed_by(signal.SIGTERM))  # the leader went; its group answers signal 0
    assert state(p) is P.STOPPED
    assert host.fake_os.killed == [(100, signal.SIGTERM, True), (100, 0, True)]
    host.advance(1.4)
    assert len(host.fake_os.killed) == 2
    host.advance(0.2)
    assert host.fake_os.killed[-1] == (100, signal.SIGKILL, True)


def test_an_empty_group_gets_no_sigkill(base: ProcessConfig) -> None:
    p, host = make(base, stopwaitsecs=2.0, killasgroup=True)
    p.spawn()
    host.advance(2)
    p.stop()
    host.fake_os.kill_error = ProcessLookupError(3, "ESRCH")  # no member left
    p.exited(killed_by(signal.SIGTERM))
    host.advance(5)
    assert host.fake_os.killed == [(100, signal.SIGTERM, False)]
    assert state(p) is P.STOPPED


def test_group_rest_is_killed_at_once_when_the_daemon_is_going_away(base: ProcessConfig) -> None:
    p, host = make(base, stopwaitsecs=10.0, stopasgroup=True)
    p.spawn()
    host.advance(2)
    host.accepting = False  # shutdown or reload
    p.stop()
    p.exited(killed_by(signal.SIGTERM))
    assert host.fake_os.killed[-1] == (100, signal.SIGKILL, True)


def test_stop_from_backoff_is_stopped_pid_0_and_resets_tries(base: ProcessConfig) -> None:
    p, host = make(base, startsecs=1.0, startretries=5)
    p.spawn()
    p.exited(status(1))
    assert state(p) is P.BACKOFF and p.backoff == 1
    p.stop()
    assert host.path()[-1] == ("STOPPED", "BACKOFF", 0)
    host.advance(10)
    assert state(p) is P.STOPPED  # the retry timer was cancelled
    p.spawn()
    # supervisord would continue the count (tries:1); Vigil starts afresh.
    assert host.events[-1].tries == 0


def test_kill_failure_other_than_esrch_is_unknown(base: ProcessConfig) -> None:
    p, host = make(base)
    p.spawn()
    host.advance(2)
    host.fake_os.kill_error = PermissionError(1, "EPERM")
    p.stop()
    assert state(p) is P.UNKNOWN


def test_reap_after_startsecs_but_before_the_timer_is_running_then_exited(
    base: ProcessConfig,
) -> None:
    p, host = make(base, startsecs=1.0, autorestart=AutoRestart.FALSE)
    p.spawn()
    host.t += 1.5  # time passes, the timer has not run yet
    p.exited(status(0))
    assert [e.to_state for e in host.events] == ["STARTING", "RUNNING", "EXITED"]


def test_every_illegal_transition_raises() -> None:
    for old in ProcessState:
        for new in ProcessState:
            if new in TRANSITIONS[old]:
                check_transition("x", old, new)
            else:
                with pytest.raises(IllegalTransition, match=f"{old.name} -> {new.name}"):
                    check_transition("x", old, new)


def test_start_of_a_stopping_process_is_refused_by_the_table(base: ProcessConfig) -> None:
    p, host = make(base)
    p.spawn()
    host.advance(2)
    p.stop()
    with pytest.raises(IllegalTransition):
        p.spawn()


def test_a_deferred_restart_happens_when_the_host_says_so(base: ProcessConfig) -> None:
    p, host = make(base, autorestart=AutoRestart.TRUE, startsecs=0.0)
    p.spawn()
    host.advance(0)
    host.defer = True
    p.exited(status(1))
    assert state(p) is P.EXITED and host.deferred == [p]
    p.respawn()
    assert state(p) is P.STARTING


def test_a_deferred_restart_is_dropped_if_the_process_was_started_meanwhile(
    base: ProcessConfig,
) -> None:
    p, host = make(base, autorestart=AutoRestart.TRUE, startsecs=0.0)
    p.spawn()
    host.advance(0)
    host.defer = True
    p.exited(status(1))
    p.spawn()  # a manual start
    host.advance(0)
    count = len(host.fake_os.spawned)
    p.respawn()
    assert len(host.fake_os.spawned) == count and state(p) is P.RUNNING
