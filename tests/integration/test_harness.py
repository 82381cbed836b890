"""Self-test of the integration harness in tests/support/supervisor.py."""

from __future__ import annotations

import os
import time
import xmlrpc.client
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.supervisor import PYTHON, Supervisor, start_supervisor

pytestmark = pytest.mark.integration

Factory = Callable[..., Supervisor]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_start_wait_stop_and_no_leftover_process(tmp_path: Path) -> None:
    sv = start_supervisor(
        tmp_path,
        """
[program:sleeper]
command = sleep 600
startsecs = 0
""",
    )
    try:
        assert sv.rpc().supervisor.getIdentification() == "vigiltest"
        info = sv.wait_state("sleeper", "RUNNING")
        child = info["pid"]
        assert child > 0
        sv.rpc().supervisor.stopProcess("sleeper")
        stopped = sv.wait_state("sleeper", "STOPPED")
        assert stopped["pid"] == 0
        assert _gone(child)
        assert "sleeper" in sv.log_text()
    finally:
        sv.stop()
    assert sv.proc.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.kill(sv.pid, 0)
    assert sv.stop() == sv.proc.returncode  # idempotent
    assert not sv.sock.exists()


def test_stop_takes_running_children_down(supervisor_factory: Factory) -> None:
    sv = supervisor_factory("[program:sleeper]\ncommand = sleep 600\nstartsecs = 0\n")
    child = sv.wait_state("sleeper", "RUNNING")["pid"]
    sv.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(sv.pid, 0)
    assert _gone(child)


def test_child_log_wait_for_and_failure_messages(supervisor_factory: Factory) -> None:
    body = f"""
[program:talker]
command = {PYTHON} -c "import sys, time; print('out-line', flush=True); print('err-line', file=sys.stderr, flush=True); time.sleep(600)"
startsecs = 0
"""  # noqa: E501
    sv = supervisor_factory(body)
    sv.wait_state("talker", "RUNNING")
    sv.wait_for(lambda: "out-line" in sv.child_log("talker"), 5, "stdout of talker")
    sv.wait_for(lambda: "err-line" in sv.child_log("talker", "stderr"), 5, "stderr of talker")
    with pytest.raises(AssertionError, match=r"(?s)did not reach FATAL.*supervisord\.log"):
        sv.wait_state("talker", "FATAL", timeout=0.2)
    with pytest.raises(AssertionError, match="never"):
        sv.wait_for(lambda: False, 0.1, "never")
    with pytest.raises(xmlrpc.client.Fault, match="BAD_NAME"):
        sv.rpc().supervisor.getProcessInfo("nosuch")


def test_several_cores_and_long_tmp_dir(supervisor_factory: Factory, tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    a = supervisor_factory("[program:a]\ncommand = sleep 600\nstartsecs = 0\n")
    b = supervisor_factory("[program:b]\ncommand = sleep 600\nstartsecs = 0\n", tmp=deep)
    assert a.dir == tmp_path and b.dir == deep
    assert len(os.fsencode(b.sock)) < 108 and b.sockdir is not None
    a.wait_state("a", "RUNNING")
    b.wait_state("b", "RUNNING")
    b.stop()
    assert not b.sockdir.exists()


def test_start_failure_reports_the_error_and_leaves_nothing(tmp_path: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"(?s)exited with status 2.*no-command"):
        start_supervisor(tmp_path, "[program:no-command]\nautostart = true\n")
    assert time.monotonic() - t0 < 10


def test_stop_escalates_to_sigkill_and_reaps_the_children(supervisor_factory: Factory) -> None:
    body = f"""
[program:stubborn]
command = {PYTHON} -c "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('armed', flush=True); time.sleep(600)"
startsecs = 0
stopwaitsecs = 60
"""  # noqa: E501
    sv = supervisor_factory(body)
    child = sv.wait_state("stubborn", "RUNNING")["pid"]
    sv.wait_for(lambda: "armed" in sv.child_log("stubborn"), 5, "SIGTERM ignored")
    t0 = time.monotonic()
    status = sv.stop(timeout=1)
    assert time.monotonic() - t0 < 5
    assert status == -9
    sv.wait_for(lambda: _gone(child), 2, "the orphaned child to be killed")
