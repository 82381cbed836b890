"""fcgi-program sockets: the reference count, the unix socket file, and the supervisor's use.

Real sockets on 127.0.0.1 and in a private temporary directory; the supervisor tests
spawn through a fake OS that records the fd it was handed as the child's stdin.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from manager.config import InetSocketConfig, UnixSocketConfig, load_config
from manager.fcgisocket import FcgiSocketError, SharedSocket, check_sockets, socket_configs
from manager.loop import Loop
from manager.osfacade import Spawned, SpawnError, SpawnSpec
from manager.states import ProcessState
from manager.supervisor import Supervisor
from tests.support.net import free_port

LOG = logging.getLogger("test.fcgi")


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 somebody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def listening(fd: int) -> bool:
    with socket.socket(fileno=os.dup(fd)) as s:
        return bool(s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))


def connectable(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as c:
        try:
            c.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return False
    return True


# --- SharedSocket ------------------------------------------------------------------------------


def test_first_acquire_creates_last_release_closes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "test.fcgi")
    shared = SharedSocket(InetSocketConfig("127.0.0.1", 0, backlog=5), log=LOG)
    assert not shared.is_open
    fd = shared.acquire()
    assert shared.acquire() == fd and shared.refcount == 2
    assert listening(fd)
    shared.release()
    assert shared.is_open and listening(fd)
    shared.release()
    assert not shared.is_open and shared.refcount == 0
    with pytest.raises(RuntimeError):
        shared.release()
    assert [r.getMessage() for r in caplog.records] == [
        "Creating socket tcp://127.0.0.1:0",
        "Closing socket tcp://127.0.0.1:0",
    ]


def test_check_creates_and_closes_at_once() -> None:
    shared = SharedSocket(InetSocketConfig("127.0.0.1", 0), log=LOG)
    shared.check()
    assert not shared.is_open and shared.refcount == 0


def test_a_taken_port_is_supervisords_error_and_takes_no_reference(taken_port: int) -> None:
    shared = SharedSocket(InetSocketConfig("127.0.0.1", taken_port), log=LOG)
    with pytest.raises(FcgiSocketError) as info:
        shared.acquire()
    assert str(info.value).startswith(
        f"Could not create FastCGI socket tcp://127.0.0.1:{taken_port}: [Errno 98] "
    )
    assert shared.refcount == 0 and not shared.is_open


def test_unix_socket_gets_its_mode_and_is_removed_when_closed(sockdir: Path) -> None:
    path = sockdir / "web.sock"
    shared = SharedSocket(UnixSocketConfig(str(path), mode=0o640, owner=(os.getuid(), -1)), log=LOG)
    fd = shared.acquire()
    st = path.stat()
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640
    assert listening(fd) and connectable(path)
    shared.release()
    assert not path.exists()


def test_a_stale_socket_file_is_replaced(sockdir: Path) -> None:
    path = sockdir / "web.sock"
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(path))
    assert not connectable(path)
    shared = SharedSocket(UnixSocketConfig(str(path)), log=LOG)
    shared.acquire()
    assert connectable(path)
    shared.close()
    assert not path.exists()


def test_a_file_that_is_not_a_socket_is_left_alone(sockdir: Path) -> None:
    path = sockdir / "web.sock"
    path.write_text("data")
    shared = SharedSocket(UnixSocketConfig(str(path)), log=LOG)
    with pytest.raises(FcgiSocketError) as info:
        shared.check()
    assert str(info.value) == (
        f"Could not create FastCGI socket unix://{path}: {path} exists and is not a socket"
    )
    assert path.read_text() == "data"


def test_a_socket_file_replaced_meanwhile_is_not_removed(sockdir: Path) -> None:
    path = sockdir / "web.sock"
    shared = SharedSocket(UnixSocketConfig(str(path)), log=LOG)
    shared.acquire()
    path.unlink()
    path.write_text("someone else's")
    shared.release()
    assert path.read_text() == "someone else's"


def test_check_sockets_checks_each_socket_of_a_config_once(tmp_path: Path, taken_port: int) -> None:
    conf = tmp_path / "s.conf"
    port = free_port()
    conf.write_text(
        "[supervisord]\n[program:p]\ncommand = c\n"
        f"[fcgi-program:a]\ncommand = c\nsocket = tcp://127.0.0.1:{port}\nnumprocs = 2\n"
        "process_name = a%(process_num)d\n"
        f"[fcgi-program:b]\ncommand = c\nsocket = tcp://127.0.0.1:{taken_port}\n"
    )
    config = load_config(conf)
    assert [s.url for s in socket_configs(config)] == [
        f"tcp://127.0.0.1:{port}",
        f"tcp://127.0.0.1:{taken_port}",
    ]
    with pytest.raises(FcgiSocketError, match=f"tcp://127.0.0.1:{taken_port}"):
        check_sockets(config, log=LOG)


# --- the supervisor ----------------------------------------------------------------------------


@dataclass
class FakeOS:
    """Spawns nothing: records the stdin fd it was handed; ``fail_with`` fails the spawn."""

    fail_with: SpawnError | None = None
    stdins: list[int | None] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)
    pids: itertools.count[int] = field(default_factory=lambda: itertools.count(4_000_000))

    def spawn(self, spec: SpawnSpec) -> Spawned:
        if self.fail_with is not None:
            raise self.fail_with
        self.stdins.append(spec.stdin)
        r, w = os.pipe()
        self.fds.append(w)
        return Spawned(next(self.pids), None, r, None)

    def kill(self, pid: int, sig: int, *, group: bool) -> None:
        pass

    def released(self, pid: int) -> None:
        pass

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)


@pytest.fixture
def fake_os() -> Iterator[FakeOS]:
    fake = FakeOS()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def supervisor(tmp_path: Path, fake_os: FakeOS) -> Iterator[Supervisor]:
    """A supervisor (not started) for ``tmp_path/s.conf``, written by the test first."""
    loop = Loop()
    sup: Supervisor | None = None
    try:
        sup = Supervisor(load_config(tmp_path / "s.conf"), log=LOG, os_facade=fake_os, loop=loop)
        yield sup
    finally:
        if sup is not None:
            sup.close_children_io()
        loop.close()


def fcgi_conf(tmp_path: Path, socket_line: str, extra: str = "") -> None:
    (tmp_path / "s.conf").write_text(
        f"[supervisord]\nchildlogdir = {tmp_path}\n"
        "[fcgi-program:web]\ncommand = /bin/cat\nstartsecs = 0\nstartretries = 0\n"
        "stdout_logfile = NONE\nstderr_logfile = NONE\n"
        f"{socket_line}\n{extra}"
    )


@pytest.fixture
def tcp_conf(tmp_path: Path) -> None:
    fcgi_conf(
        tmp_path,
        f"socket = tcp://127.0.0.1:{free_port()}",
        "numprocs = 2\nprocess_name = web%(process_num)d\n",
    )


@pytest.mark.usefixtures("tcp_conf")
def test_every_child_is_handed_the_one_socket(supervisor: Supervisor, fake_os: FakeOS) -> None:
    supervisor.start()
    shared = supervisor.groups["web"].sockets["web"]
    assert shared.refcount == 2
    fd = shared.acquire()
    shared.release()
    assert fake_os.stdins == [fd, fd] and listening(fd)
    assert [p.state for p in supervisor.groups["web"].ordered()] == [ProcessState.STARTING] * 2
    supervisor.remove_group("web")  # (a test shortcut: its processes are still RUNNING)
    assert not shared.is_open


@pytest.mark.usefixtures("tcp_conf")
def test_a_failed_spawn_gives_its_reference_back(supervisor: Supervisor, fake_os: FakeOS) -> None:
    fake_os.fail_with = SpawnError("can't find command '/bin/cat'")
    supervisor.start()
    shared = supervisor.groups["web"].sockets["web"]
    assert shared.refcount == 0 and not shared.is_open
    assert [p.state for p in supervisor.groups["web"].ordered()] == [ProcessState.FATAL] * 2


@pytest.fixture
def taken_conf(tmp_path: Path, taken_port: int) -> None:
    fcgi_conf(tmp_path, f"socket = tcp://127.0.0.1:{taken_port}")


@pytest.mark.usefixtures("taken_conf")
def test_add_group_fails_and_adds_nothing_when_the_socket_cannot_be_created(
    supervisor: Supervisor, taken_port: int
) -> None:
    """As addProcessGroup in supervisord (whose client gets an HTTP 500)."""
    (group,) = supervisor.config.groups
    with pytest.raises(FcgiSocketError, match=f"tcp://127.0.0.1:{taken_port}"):
        supervisor.add_group(group)
    assert "web" not in supervisor.groups


@pytest.mark.usefixtures("taken_conf")
def test_a_socket_that_cannot_be_created_fails_each_spawn(
    supervisor: Supervisor, fake_os: FakeOS, taken_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    """At (re)start the group is kept; supervisord dies of the exception."""
    supervisor.start()
    process = supervisor.groups["web"].processes["web"]
    assert process.state is ProcessState.FATAL
    why = f"Could not create FastCGI socket tcp://127.0.0.1:{taken_port}: [Errno 98] "
    assert process.spawnerr.startswith(why)
    assert fake_os.stdins == []
    assert any(r.levelname == "CRITICAL" and r.getMessage().startswith(why) for r in caplog.records)
