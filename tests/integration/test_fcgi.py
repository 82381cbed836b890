"""``[fcgi-program:x]`` against real supervisord 4.3 and vigild, same assertions.

The child (``CHILD``) reports what its fd 0 is, then ``accept()``s on it and answers
every connection with one line, ``<process name> <pid>``. A client on 127.0.0.1 or on
the unix socket therefore sees which child answered, or that nobody listens.

Where vigild deliberately differs (reference §4.8; manager/fcgisocket.py) the test says
so and asserts each core's own behaviour: vigild removes a unix socket file when it
closes the socket, and hands a ``[group:x]`` member its socket (supervisord 4.3 spawns
it as a plain program). Tests named ``test_vigild_*`` cover what only vigild does.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import xmlrpc.client
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.net import free_port
from tests.support.supervisor import PYTHON, Supervisor, render_config

pytestmark = pytest.mark.integration

Factory = Callable[..., Supervisor]

VIGILD = str(Path(sys.executable).parent / "vigild")
#: supervisord's fault codes: no stdin to write to; a spawn that failed
NO_FILE = 20
SPAWN_ERROR = 50

CHILD = r"""
import os
import socket
import stat
import sys
import time

name = os.environ["SUPERVISOR_PROCESS_NAME"]
if not stat.S_ISSOCK(os.fstat(0).st_mode):
    print(f"{name}: fd 0 is not a socket", flush=True)
    while True:
        time.sleep(600)
print(f"{name}: fd 0 is a socket", flush=True)
listener = socket.socket(fileno=0)
while True:
    conn, _ = listener.accept()
    with conn:
        conn.sendall(f"{name} {os.getpid()}\n".encode())
"""


@pytest.fixture
def child(tmp_path: Path) -> str:
    """The ``command =`` of the fcgi child."""
    script = tmp_path / "fcgi_child.py"
    script.write_text(CHILD)
    return f"{PYTHON} {script}"


Address = tuple[str, int] | str


def ask(address: Address) -> str:
    """Connect, read the one-line answer."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as conn:
        conn.settimeout(10)
        conn.connect(address)
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(100)
            if not chunk:
                break
            data += chunk
    return data.decode()


def nobody_listens(address: Address) -> bool:
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as conn:
        conn.settimeout(10)
        try:
            conn.connect(address)
        except (ConnectionRefusedError, FileNotFoundError):
            return True
    return False


def fd0(pid: int) -> str:
    """What the process's fd 0 is, e.g. ``socket:[12345]``."""
    return os.readlink(f"/proc/{pid}/fd/0")


def test_tcp_socket_is_fd0_of_every_child_and_lives_while_one_does(
    any_core: Factory, child: str
) -> None:
    port = free_port()
    address = ("127.0.0.1", port)
    sv = any_core(
        f"""
[fcgi-program:web]
command = {child}
socket = tcp://127.0.0.1:{port}
numprocs = 2
process_name = %(program_name)s_%(process_num)d
autostart = false
startsecs = 0
stopwaitsecs = 5
"""
    )
    rpc = sv.rpc().supervisor
    # created and closed again when the group was created: nobody listens before a spawn
    assert nobody_listens(address)
    rpc.startProcessGroup("web")
    pids = {name: sv.wait_state(f"web:{name}", "RUNNING")["pid"] for name in ("web_0", "web_1")}
    sv.wait_for(lambda: "fd 0 is a socket" in sv.child_log("web:web_1"), what="web_1 log")
    # both children share one socket
    assert fd0(pids["web_0"]) == fd0(pids["web_1"])
    assert fd0(pids["web_0"]).startswith("socket:")
    for _ in range(4):
        name, pid = ask(address).split()
        assert pids[name] == int(pid)

    infos = {i["name"]: i for i in rpc.getAllProcessInfo()}
    assert {(i["group"], i["statename"]) for i in infos.values()} == {("web", "RUNNING")}
    configs = [c for c in rpc.getAllConfigInfo() if c["group"] == "web"]
    assert sorted(c["name"] for c in configs) == ["web_0", "web_1"]
    assert all(c["inuse"] and c["command"] == child for c in configs)
    with pytest.raises(xmlrpc.client.Fault) as fault:
        rpc.sendProcessStdin("web:web_0", "x")
    assert fault.value.faultCode == NO_FILE  # fd 0 is the socket: nothing to write to

    rpc.stopProcess("web:web_0")
    assert ask(address).split()[0] == "web_1"  # one child still holds the socket
    rpc.stopProcess("web:web_1")
    assert nobody_listens(address)  # the last one was reaped: closed
    rpc.startProcess("web:web_0")
    assert ask(address).split()[0] == "web_0"  # a new socket for the new child


def test_unix_socket_mode_replaces_a_stale_file_and_closes_with_the_last_child(
    any_core: Factory, core: str, child: str, sockdir: Path
) -> None:
    path = sockdir / "web.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
        stale.bind(str(path))  # closed without unlinking: a stale socket file
    sv = any_core(
        f"""
[fcgi-program:web]
command = {child}
socket = unix://{path}
socket_mode = 0640
startsecs = 0
stopwaitsecs = 5
"""
    )
    sv.wait_state("web", "RUNNING")
    st = path.stat()
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert st.st_uid == os.getuid()
    assert ask(str(path)).split()[0] == "web"

    sv.rpc().supervisor.stopProcess("web")
    assert nobody_listens(str(path))
    # supervisord leaves the closed socket's file behind; vigild removes it
    assert path.exists() == (core == "supervisord")


def test_changed_socket_is_a_changed_group(any_core: Factory, child: str) -> None:
    old, new = free_port(), free_port()
    sv = any_core(
        f"""
[fcgi-program:web]
command = {child}
socket = tcp://127.0.0.1:{old}
startsecs = 0
stopwaitsecs = 5
"""
    )
    sv.wait_state("web", "RUNNING")
    assert ask(("127.0.0.1", old)).split()[0] == "web"
    rpc = sv.rpc().supervisor
    assert rpc.reloadConfig() == [[[], [], []]]
    sv.conf.write_text(sv.conf.read_text().replace(f":{old}\n", f":{new}\n"))
    assert rpc.reloadConfig() == [[[], ["web"], []]]
    # supervisorctl update: stop, remove, add
    rpc.stopProcessGroup("web")
    assert rpc.removeProcessGroup("web") is True
    assert rpc.addProcessGroup("web") is True
    sv.wait_state("web", "RUNNING")
    assert ask(("127.0.0.1", new)).split()[0] == "web"
    assert nobody_listens(("127.0.0.1", old))


def test_group_member_fcgi_program(any_core: Factory, core: str, child: str) -> None:
    """supervisord 4.3 spawns a [group:x] member as a plain program (fd 0 a pipe, the
    socket ignored); vigild hands it its socket as for a standalone fcgi-program."""
    port = free_port()
    sv = any_core(
        f"""
[fcgi-program:web]
command = {child}
socket = tcp://127.0.0.1:{port}
startsecs = 0
stopwaitsecs = 5

[group:site]
programs = web
"""
    )
    sv.wait_state("site:web", "RUNNING")
    expected = "fd 0 is a socket" if core == "vigild" else "fd 0 is not a socket"
    sv.wait_for(lambda: expected in sv.child_log("site:web"), what=expected)
    if core == "vigild":
        assert ask(("127.0.0.1", port)).split()[0] == "web"
    else:
        assert nobody_listens(("127.0.0.1", port))


def test_vigild_refuses_to_start_when_a_socket_cannot_be_created(
    tmp_path: Path, child: str
) -> None:
    """supervisord dies of a traceback here; vigild says why, exit status 2."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        body = f"[fcgi-program:web]\ncommand = {child}\nsocket = tcp://127.0.0.1:{port}\n"
        conf = tmp_path / "supervisord.conf"
        conf.write_text(render_config(tmp_path, tmp_path / "sv.sock", body))
        result = subprocess.run(
            [VIGILD, "-n", "-c", str(conf)],
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=10,
        )
    assert result.returncode == 2, result
    assert result.stderr.startswith(
        f"Error: Could not create FastCGI socket tcp://127.0.0.1:{port}: "
    ), result.stderr
    assert not (tmp_path / "sv.sock").exists()


def test_vigild_socket_that_cannot_be_created_at_spawn_is_a_spawn_error(
    supervisor_factory: Factory, child: str
) -> None:
    """supervisord's main loop dies of this exception; vigild goes BACKOFF, then FATAL."""
    port = free_port()
    sv = supervisor_factory(
        f"""
[fcgi-program:web]
command = {child}
socket = tcp://127.0.0.1:{port}
autostart = false
startsecs = 0
startretries = 0
""",
        command=[VIGILD, "-n", "-c", "{conf}"],
    )
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", port))
        taken.listen()
        with pytest.raises(xmlrpc.client.Fault) as fault:
            sv.rpc().supervisor.startProcess("web", False)
        assert fault.value.faultCode == SPAWN_ERROR
        info = sv.wait_state("web", "FATAL")
    assert info["spawnerr"].startswith(f"Could not create FastCGI socket tcp://127.0.0.1:{port}: ")
    sv.rpc().supervisor.startProcess("web")  # the port is free again
    assert ask(("127.0.0.1", port)).split()[0] == "web"
