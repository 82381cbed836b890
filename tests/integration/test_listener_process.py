"""``vigil-listener`` as a real process on pipes: exits, signals, garbage, responsiveness."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from manager.events import Event, EventType, ProcessStateChange, RemoteCommunication, Tick
from manager.protocol import NEED_DATA, Ready, Result, SupervisorConnection

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LISTENER = str(Path(sys.executable).parent / "vigil-listener")
E = EventType


class Proc:
    """A vigil-listener child and the supervisor half of its protocol."""

    def __init__(self, *args: str, stderr: Path, env: dict[str, str] | None = None) -> None:
        self.err_path = stderr
        self._err = stderr.open("wb")
        env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
        self.p = subprocess.Popen(
            [LISTENER, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            env=env,
            cwd=ROOT,
        )
        self.sv = SupervisorConnection(server="test", pool="p")

    def expect(self, kind: type, timeout: float = 10.0) -> object:
        assert self.p.stdout is not None
        deadline = time.monotonic() + timeout
        while (item := self.sv.next_event()) is NEED_DATA:
            assert time.monotonic() < deadline, f"no {kind.__name__}; stderr: {self.stderr()}"
            data = os.read(self.p.stdout.fileno(), 4096)
            assert data, f"listener closed stdout; stderr: {self.stderr()}"
            self.sv.receive_data(data)
        assert isinstance(item, kind), item
        return item

    def send(self, event: Event, serial: int) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(self.sv.send_event(event, serial=serial, poolserial=serial))
        self.p.stdin.flush()

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def finish(self, timeout: float = 10.0) -> int:
        assert self.p.stdin is not None
        if not self.p.stdin.closed:
            self.p.stdin.close()
        return self.p.wait(timeout)

    def cleanup(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        for f in (self.p.stdin, self.p.stdout):
            if f is not None and not f.closed:
                f.close()
        self._err.close()


Start = Callable[..., Proc]


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Start]:
    procs: list[Proc] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Proc:
        p = Proc(*args, stderr=tmp_path / f"stderr-{len(procs)}.log", env=env)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.cleanup()


def test_log_plugin_writes_one_json_object_per_event_and_exits_0_on_eof(listener: Start) -> None:
    p = listener("--plugins", "log")
    p.expect(Ready)
    events: list[Event] = [
        ProcessStateChange(
            E.PROCESS_STATE_EXITED, "web", "desk", "RUNNING", pid=42, expected=False
        ),
        RemoteCommunication("t", "héllo wörld"),
        Tick(E.TICK_5, 1795660510),
    ]
    for serial, ev in enumerate(events):
        p.send(ev, serial)
        result = p.expect(Result)
        assert isinstance(result, Result) and result.ok
        p.expect(Ready)
    assert p.finish() == 0
    lines = [json.loads(x) for x in p.stderr().splitlines() if x.startswith("{")]
    assert lines[0] == {
        "eventname": "PROCESS_STATE_EXITED",
        "serial": 0,
        "pool": "p",
        "poolserial": 0,
        "server": "test",
        "processname": "web",
        "groupname": "desk",
        "from_state": "RUNNING",
        "pid": 42,
        "expected": False,
    }
    assert lines[1]["data"] == "héllo wörld" and lines[1]["comm_type"] == "t"
    assert lines[2]["when"] == 1795660510
    assert len(lines) == 3


def test_sigterm_exits_0_and_leaves_the_event_in_hand_unacknowledged(
    listener: Start, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    p = listener(
        "--plugins",
        "tests.support.plugins:block_once",
        env={"VIGIL_TEST_MARKER": str(marker), "VIGIL_TEST_TARGET": "web"},
    )
    p.expect(Ready)
    p.send(ProcessStateChange(E.PROCESS_STATE_RUNNING, "web", "web", "STARTING", pid=1), 7)
    deadline = time.monotonic() + 10
    while not marker.exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    p.p.send_signal(signal.SIGTERM)
    assert p.p.wait(10) == 0
    assert p.p.stdout is not None
    assert p.p.stdout.read() == b""  # no RESULT was written for serial 7
    assert "terminating on signal" in p.stderr()


def test_ready_returns_promptly_while_a_plugin_takes_a_second_per_event(listener: Start) -> None:
    p = listener("--plugins", "tests.support.plugins:slow")
    p.expect(Ready)
    gaps = []
    for serial in range(10):
        t0 = time.monotonic()
        p.send(Tick(E.TICK_5, serial * 5), serial)
        p.expect(Result)
        p.expect(Ready)
        gaps.append(time.monotonic() - t0)
    # A blocking listener would need >= 1 s per event; all ten came back before the
    # plugin finished its first (a behavioural bound; bench/ measures the latency).
    assert sum(gaps) < 1.0, gaps
    p.p.send_signal(signal.SIGTERM)
    assert p.p.wait(15) == 0


GARBAGE = [
    (b"ver:3.0 server:s serial:1 pool:p", "ended inside a header"),
    (b"ver:3.0 server:s serial:1 pool:p poolserial:1 eventname:TICK_5 len:20\nwhen:1", "payload"),
    (b"ver:3.0 server:s serial:1 pool:p poolserial:1 eventname:TICK_5 len:x\n", "len:'x'"),
    (b"\x89PNG\r\n\x1a\n\x00\x00binary", "not UTF-8"),
    (b"x" * 20000, "no newline"),
    (
        b"ver:3.0 server:s serial:1 pool:p poolserial:1 eventname:PROCESS_STATE_RUNNING len:3\nabc",
        "not key:value",
    ),
]


@pytest.mark.parametrize(("data", "fragment"), GARBAGE)
def test_garbage_on_stdin_gives_a_clear_error_and_exit_2(
    listener: Start, data: bytes, fragment: str
) -> None:
    p = listener("--plugins", "log")
    p.expect(Ready)
    assert p.p.stdin is not None
    try:
        p.p.stdin.write(data)
        p.p.stdin.flush()
    except BrokenPipeError:
        pass
    status = p.finish(timeout=10)
    assert status == 2
    err = p.stderr()
    assert "protocol error" in err and fragment in err, err


def test_unknown_plugin_exits_1_naming_it(listener: Start) -> None:
    p = listener("--plugins", "nosuchplugin")
    assert p.finish() == 1
    assert "no plugin named 'nosuchplugin'" in p.stderr()


def test_bad_config_file_exits_2_naming_the_file(listener: Start, tmp_path: Path) -> None:
    p = listener("-c", str(tmp_path / "missing.conf"), "--plugins", "log")
    assert p.finish() == 2
    assert "missing.conf" in p.stderr()
