"""The health plugin under supervisord and vigild: faults found, processes restarted, breaker."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.net import free_port
from tests.support.supervisor import PYTHON, VIGIL_LISTENER, Supervisor

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "conf" / "demo" / "web.py"
HEARTBEAT = ROOT / "conf" / "demo" / "heartbeat.py"
Factory = Callable[..., Supervisor]


def health_listener() -> str:
    return f"""
[eventlistener:health]
command = {VIGIL_LISTENER} -c %(here)s/supervisord.conf --plugins health
events = PROCESS_STATE,PROCESS_COMMUNICATION
buffer_size = 100
stdout_logfile = NONE
stderr_logfile = %(here)s/health.err
"""


def web_program(port: int, *, command_prefix: str = "") -> str:
    return f"""
[program:web]
command = {command_prefix}{PYTHON} {WEB} --port {port}
environment = DEMO_FAULT_FILE="%(here)s/fault"
startsecs = 1
stopwaitsecs = 2
"""


def http_check(port: int, **extra: object) -> str:
    keys = {
        "program": "web",
        "type": "http",
        "url": f"http://127.0.0.1:{port}/healthz",
        "period": 0.5,
        "timeout": 0.5,
        "failure_threshold": 2,
        "max_restarts": 3,
        "restart_window": 60,
        "breaker_cooldown": 600,
        **extra,
    }
    return "\n[healthcheck:web]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())


def wait_new_pid(sv: Supervisor, name: str, old: int, timeout: float) -> tuple[int, float]:
    """The next pid of ``name`` and when it appeared (monotonic)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = int(sv.rpc().supervisor.getProcessInfo(name)["pid"])
        if pid not in (0, old):
            return pid, time.monotonic()
        time.sleep(0.02)
    raise AssertionError(f"{name} was not restarted within {timeout}s\n{sv.diagnostics()}")


@pytest.mark.parametrize("fault", ["500", "hang"])
def test_unhealthy_service_is_restarted_within_the_probe_bound(
    any_core: Factory, fault: str
) -> None:
    port = free_port()
    sv = any_core(web_program(port) + http_check(port) + health_listener())
    pid = int(sv.wait_state("web", "RUNNING")["pid"])
    sv.wait_state("health", "RUNNING")
    time.sleep(1.5)  # a few healthy probes first
    assert int(sv.rpc().supervisor.getProcessInfo("web")["pid"]) == pid
    fault_file = sv.dir / "fault"
    fault_file.write_text(fault)
    t0 = time.monotonic()
    _new_pid, seen = wait_new_pid(sv, "web", pid, 15)
    fault_file.unlink()
    elapsed = seen - t0
    # period x failure_threshold + timeout + 1 s (issue 5), + the stop of a hung server.
    bound = 0.5 * 2 + 0.5 + 1.0
    assert elapsed <= bound, f"restart took {elapsed:.2f}s > {bound}s"
    sv.wait_state("web", "RUNNING")
    err = (sv.dir / "health.err").read_text()
    assert "web is unhealthy" in err and "restart web" in err


def test_always_failing_service_trips_the_breaker_then_gets_one_trial(any_core: Factory) -> None:
    port = free_port()
    body = (
        web_program(port)
        + http_check(port, max_restarts=2, restart_window=60, breaker_cooldown=4)
        + health_listener()
    )
    sv = any_core(body)
    (sv.dir / "fault").write_text("500")
    pids = {int(sv.wait_state("web", "RUNNING")["pid"])}
    deadline = time.monotonic() + 18
    err = sv.dir / "health.err"
    while time.monotonic() < deadline:
        pid = int(sv.rpc().supervisor.getProcessInfo("web")["pid"])
        if pid:
            pids.add(pid)
        text = err.read_text() if err.exists() else ""
        if "HALF_OPEN -> OPEN" in text:
            break
        time.sleep(0.05)
    text = err.read_text()
    assert "CLOSED -> OPEN" in text, text
    assert "OPEN -> HALF_OPEN" in text, text
    assert "HALF_OPEN -> OPEN" in text, text
    # the first process, two restarts before the breaker opened, one half-open trial
    assert len(pids) == 4, (pids, text)
    assert "breaker OPEN, not restarting" in text


def test_slow_starter_inside_initial_delay_is_left_alone(any_core: Factory) -> None:
    port = free_port()
    body = (
        web_program(port, command_prefix="sh -c 'sleep 2; exec ").replace(
            f"--port {port}\n", f"--port {port}'\n"
        )
        + http_check(port, initial_delay=3)
        + health_listener()
    )
    sv = any_core(body)
    pid = int(sv.wait_state("web", "RUNNING")["pid"])
    time.sleep(5)
    info = sv.rpc().supervisor.getProcessInfo("web")
    assert (info["statename"], int(info["pid"])) == ("RUNNING", pid)
    text = (sv.dir / "health.err").read_text()
    assert "unhealthy" not in text


def test_stalled_heartbeat_is_restarted(any_core: Factory) -> None:
    body = f"""
[program:beater]
command = {PYTHON} {HEARTBEAT} --file %(here)s/beat --interval 0.2 --comm-every 0.2
startsecs = 1
stopwaitsecs = 1
stdout_capture_maxbytes = 1KB

[healthcheck:beater]
program = beater
type = heartbeat
file = %(here)s/beat
max_age = 1.5
period = 0.25
failure_threshold = 2
""" + health_listener()
    sv = any_core(body)
    pid = int(sv.wait_state("beater", "RUNNING")["pid"])
    time.sleep(2.5)
    assert int(sv.rpc().supervisor.getProcessInfo("beater")["pid"]) == pid
    os.kill(pid, signal.SIGSTOP)  # hung: no more beats, on file or as messages
    try:
        wait_new_pid(sv, "beater", pid, 12)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    assert "beater is unhealthy" in (sv.dir / "health.err").read_text()


def test_exec_check_failing_command_triggers_the_action(any_core: Factory, tmp_path: Path) -> None:
    broken = tmp_path / "broken"  # the core's own directory (commands are not %-expanded)
    body = f"""
[program:app]
command = sleep 600
startsecs = 0

[healthcheck:app]
program = app
type = exec
command = test ! -e {broken}
period = 0.3
timeout = 1
failure_threshold = 1
""" + health_listener()
    sv = any_core(body)
    pid = int(sv.wait_state("app", "RUNNING")["pid"])
    time.sleep(1.0)
    assert int(sv.rpc().supervisor.getProcessInfo("app")["pid"]) == pid
    broken.write_text("x")
    new_pid, _ = wait_new_pid(sv, "app", pid, 10)
    broken.unlink()
    assert new_pid != pid


def test_leaking_process_is_restarted_by_the_memory_check(any_core: Factory) -> None:
    leak = (
        "import time\\na = []\\nwhile True:\\n    a.append(bytearray(8_000_000)); time.sleep(0.1)"
    )
    body = f"""
[program:leaky]
command = {PYTHON} -c "exec('{leak}')"
startsecs = 0

[healthcheck:leaky]
program = leaky
type = memory
limit = 100MB
period = 0.25
failure_threshold = 1
""" + health_listener()
    sv = any_core(body)
    pid = int(sv.wait_state("leaky", "RUNNING")["pid"])
    new_pid, _ = wait_new_pid(sv, "leaky", pid, 15)
    assert new_pid != pid
    text = (sv.dir / "health.err").read_text()
    assert "leaky is unhealthy" in text and "RSS" in text.upper()


def test_fatal_program_is_recovered_on_backoff(any_core: Factory, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.write_text("x")
    body = f"""
[program:flaky]
command = sh -c 'test -e {broken} && exit 1; exec sleep 600'
startsecs = 1
startretries = 0

[healthcheck:flaky]
program = flaky
type = exec
command = true
period = 1
fatal_recovery = true
fatal_backoff_max = 1
""" + health_listener()
    sv = any_core(body)
    sv.wait_state("flaky", "FATAL")
    broken.unlink()
    sv.wait_state("flaky", "RUNNING", timeout=10)
    assert "FATAL recovery" in (sv.dir / "health.err").read_text()
