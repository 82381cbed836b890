"""The demo system (conf/demo.conf) under a real supervisord, and its programs on their own.

The demo is copied into a temporary directory laid out like the repository (``conf/``,
``run/`` and a ``.venv`` symlink to the running virtualenv) so every ``%(here)s/..`` path in
it resolves, and its port 8081 is rewritten to a free one. The ``vigil`` event listener is
started too but nothing here depends on it being healthy.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.support.net import free_port
from tests.support.supervisor import CORES, Supervisor, core_command, run_core

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "conf" / "demo"
VENV = Path(sys.executable).parent.parent
#: The demo programs run with ``python3`` from PATH; put the test interpreter's first.
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    with requests.get(url, timeout=timeout) as r:
        return r.status_code, r.text


@dataclass
class Demo:
    sv: Supervisor
    base: Path
    port: int

    @property
    def run(self) -> Path:
        return self.base / "run"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture(scope="module", params=CORES)
def demo(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Demo]:
    """The demo, copied into a temp dir, under supervisord and under vigild (the main job)."""
    base = tmp_path_factory.mktemp("demo")
    own_dir: Path | None = None
    if len(os.fsencode(base / "run" / "vigil-demo.sock")) > 100:  # sun_path limit
        base = own_dir = Path(tempfile.mkdtemp(prefix="vd", dir="/tmp"))
    try:
        shutil.copytree(ROOT / "conf", base / "conf")
        (base / "run").mkdir()
        (base / ".venv").symlink_to(VENV, target_is_directory=True)
        port = free_port()
        conf = base / "conf" / "demo.conf"
        text = conf.read_text()
        assert "--port 8081" in text and "127.0.0.1:8081/healthz" in text
        conf.write_text(text.replace("8081", str(port)))
        sv = run_core(
            conf,
            sock=base / "run" / "vigil-demo.sock",
            logfile=base / "run" / "vigil-demo.log",
            env=ENV,
            command=core_command(Path("{conf}"), str(request.param)),
        )
        try:
            yield Demo(sv, base, port)
        finally:
            sv.stop()
    finally:
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)


def test_desk_and_risk_reach_running(demo: Demo) -> None:
    for name in ("desk:marketdata", "desk:strategy", "risk:risk_00", "risk:risk_01"):
        info = demo.sv.wait_state(name, "RUNNING")
        assert info["pid"] > 0
    infos = demo.sv.rpc().supervisor.getAllProcessInfo()
    assert {(i["group"], i["name"]) for i in infos} == {
        ("desk", "marketdata"),
        ("desk", "strategy"),
        ("risk", "risk_00"),
        ("risk", "risk_01"),
        ("feedhandler", "feedhandler"),
        ("vigil", "vigil"),
    }
    assert demo.sv.rpc().supervisor.getIdentification() == "vigil-demo"


def test_marketdata_serves_healthz_and_quotes(demo: Demo) -> None:
    demo.sv.wait_state("desk:marketdata", "RUNNING")
    assert get(demo.url("/healthz")) == (200, "ok")
    with requests.get(demo.url("/quote"), timeout=2) as r:
        assert r.status_code == 200
        quote = r.json()
    assert quote["bid"] < quote["ask"] and quote["symbol"]


def test_marketdata_fault_switch(demo: Demo) -> None:
    demo.sv.wait_state("desk:marketdata", "RUNNING")
    fault = demo.run / "marketdata.fault"
    try:
        fault.write_text("500\n")
        assert get(demo.url("/healthz"))[0] == 500
    finally:
        fault.unlink()
    assert get(demo.url("/healthz")) == (200, "ok")


def test_feedhandler_ends_fatal(demo: Demo) -> None:
    info = demo.sv.wait_state("feedhandler", "FATAL", timeout=15)
    assert "Exited too quickly" in info["spawnerr"]  # supervisord keeps no exitstatus here
    assert "exit status 3; not expected" in demo.sv.log_text()
    assert "gave up: feedhandler entered FATAL state" in demo.sv.log_text()
    assert "connection refused" in demo.sv.child_log("feedhandler", "stderr")


def test_strategy_heartbeat_advances(demo: Demo) -> None:
    demo.sv.wait_state("desk:strategy", "RUNNING")
    beat = demo.run / "strategy.heartbeat"
    demo.sv.wait_for(beat.exists, 5, "the heartbeat file")
    first = beat.stat().st_mtime_ns
    demo.sv.wait_for(lambda: beat.stat().st_mtime_ns > first, 5, "the heartbeat to advance")
    assert "strategy heartbeat" in demo.sv.child_log("desk:strategy")
    assert "VaR99=" in demo.sv.child_log("risk:risk_01")


# --- the demo programs on their own --------------------------------------------------------


def test_crasher_exits_3_after_its_delay() -> None:
    t0 = time.monotonic()
    r = subprocess.run(
        [sys.executable, DEMO / "crasher.py", "--delay", "0.2"], capture_output=True, timeout=10
    )
    assert r.returncode == 3
    assert time.monotonic() - t0 >= 0.2
    assert b"giving up" in r.stderr


def test_web_fault_switch_and_sigterm(tmp_path: Path) -> None:
    port = free_port()
    fault = tmp_path / "fault"
    env = {**os.environ, "DEMO_FAULT_FILE": str(fault)}
    cmd = [sys.executable, str(DEMO / "web.py"), "--port", str(port)]
    with subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as p:
        try:
            url = f"http://127.0.0.1:{port}/healthz"
            deadline = time.monotonic() + 5
            while True:
                try:
                    assert get(url) == (200, "ok")
                    break
                except requests.ConnectionError:
                    assert time.monotonic() < deadline, "web.py did not start listening"
                    time.sleep(0.05)
            fault.write_text("500")
            assert get(url)[0] == 500
            fault.write_text("hang")
            with pytest.raises(requests.ReadTimeout):
                get(url, timeout=0.3)
            fault.unlink()
            assert get(url) == (200, "ok")
            assert get(f"http://127.0.0.1:{port}/nope")[0] == 404
            p.send_signal(signal.SIGTERM)  # prompt even with a handler thread hung
            assert p.wait(5) == 0
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_worker_and_heartbeat_exit_0_promptly_on_sigterm(tmp_path: Path) -> None:
    beat = tmp_path / "beat"
    progs = {
        "worker": [sys.executable, str(DEMO / "worker.py"), "--interval", "5"],
        "heartbeat": [
            sys.executable,
            str(DEMO / "heartbeat.py"),
            "--file",
            str(beat),
            "--interval",
            "0.05",
            "--comm-every",
            "0.1",
        ],
    }
    for name, cmd in progs.items():
        with subprocess.Popen(cmd, stdout=subprocess.PIPE) as p:
            try:
                assert p.stdout is not None
                first = p.stdout.readline()
                assert first.strip(), name
                if name == "heartbeat":
                    lines = [p.stdout.readline() for _ in range(3)]
                    assert any(
                        b"<!--XSUPERVISOR:BEGIN-->heartbeat<!--XSUPERVISOR:END-->" in x
                        for x in lines
                    )
                    assert beat.exists()
                t0 = time.monotonic()
                p.send_signal(signal.SIGTERM)
                out, _ = p.communicate(timeout=5)
                assert p.returncode == 0, name
                assert time.monotonic() - t0 < 1, name
                assert b"stopping" in out, name
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
