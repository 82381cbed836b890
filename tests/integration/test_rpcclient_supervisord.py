"""SupervisorClient against a real supervisord 4.3 on a password-protected unix socket."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from manager.ini import read_ini
from manager.rpcclient import AuthenticationError, RPCFault, SupervisorClient

pytestmark = pytest.mark.integration

USER, PASSWORD = "vigil", "correct horse"
CONF = f"""
[unix_http_server]
file = %(here)s/sv.sock
chmod = 0700
username = {USER}
password = {PASSWORD}

[supervisord]
logfile = %(here)s/supervisord.log
pidfile = %(here)s/supervisord.pid
childlogdir = %(here)s
loglevel = info

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl = unix://%(here)s/sv.sock
username = {USER}
password = {PASSWORD}

[program:sleeper]
command = sleep 600
startsecs = 0
stopwaitsecs = 5
"""


@dataclass(frozen=True)
class Running:
    """A started supervisord: its config, socket URL and process."""

    conf: Path
    url: str
    proc: subprocess.Popen[bytes]

    def client(
        self, username: str | None = USER, password: str | None = PASSWORD
    ) -> SupervisorClient:
        return SupervisorClient(self.url, username, password, timeout=5.0, retry_for=2.0)


def wait_for_state(client: SupervisorClient, name: str, state: str, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        info = client.supervisor.getProcessInfo(name)
        if info["statename"] == state:
            return info
        assert time.monotonic() < deadline, f"{name} stuck in {info['statename']}, wanted {state}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def supervisord(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One supervisord for the module (a short directory keeps the socket path < 108 bytes)."""
    base = tmp_path_factory.mktemp("sv")
    conf = base / "supervisord.conf"
    conf.write_text(CONF)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_")}
    with open(base / "stdio.log", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-n", "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=base,
        )
    try:
        running = Running(conf, f"unix://{base}/sv.sock", proc)
        # the client's own retry policy waits for the socket to appear
        boot = SupervisorClient(running.url, USER, PASSWORD, retry_for=10.0)
        try:
            boot.supervisor.getState()
        except Exception as exc:
            log = (base / "stdio.log").read_text(errors="replace")
            pytest.fail(f"supervisord did not come up ({exc}); exit={proc.poll()}\n{log}")
        wait_for_state(boot, "sleeper", "RUNNING")
        yield running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_get_state_with_the_right_credentials(supervisord: Running) -> None:
    assert supervisord.client().supervisor.getState() == {"statecode": 1, "statename": "RUNNING"}


def test_client_from_config_uses_the_supervisorctl_section(supervisord: Running) -> None:
    client = SupervisorClient.from_config(read_ini(supervisord.conf), environ={}, timeout=5.0)
    assert client.url == supervisord.url
    assert "supervisor.getProcessInfo" in client.system.listMethods()
    assert client.supervisor.getAPIVersion() == "3.0"


@pytest.mark.parametrize("creds", [(USER, "wrong"), (None, None)])
def test_wrong_or_missing_credentials_raise_authentication_error(
    supervisord: Running, creds: tuple[str | None, str | None]
) -> None:
    with pytest.raises(AuthenticationError) as info:
        supervisord.client(*creds).supervisor.getState()
    assert "wrong" not in str(info.value)
    assert supervisord.url in str(info.value)


def test_get_process_info_of_a_running_program(supervisord: Running) -> None:
    info = supervisord.client().supervisor.getProcessInfo("sleeper")
    assert (info["name"], info["group"], info["statename"]) == ("sleeper", "sleeper", "RUNNING")
    assert info["state"] == 20
    assert info["pid"] > 0


def test_stop_and_start_round_trip(supervisord: Running) -> None:
    client = supervisord.client()
    before = client.supervisor.getProcessInfo("sleeper")["pid"]
    assert client.supervisor.stopProcess("sleeper") is True
    stopped = client.supervisor.getProcessInfo("sleeper")
    assert (stopped["statename"], stopped["pid"]) == ("STOPPED", 0)
    with pytest.raises(RPCFault) as info:
        client.supervisor.stopProcess("sleeper")
    assert (info.value.code, info.value.name, info.value.detail) == (70, "NOT_RUNNING", "sleeper")
    assert client.supervisor.startProcess("sleeper") is True
    after = wait_for_state(client, "sleeper", "RUNNING")
    assert after["pid"] not in (0, before)


def test_unknown_process_is_a_bad_name_fault(supervisord: Running) -> None:
    with pytest.raises(RPCFault) as info:
        supervisord.client().supervisor.getProcessInfo("nosuch")
    assert (info.value.code, info.value.name, info.value.detail) == (10, "BAD_NAME", "nosuch")
