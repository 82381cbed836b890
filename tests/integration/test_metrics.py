"""The metrics plugin for real: Prometheus' promtool over conf/ and over live scrapes, and the
issue's scenario (crash, health restart, FATAL, listener SIGKILLed) under supervisord and vigild.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from listeners.metrics import MetricsCollector, MetricsConfig, MetricsServer
from manager.events import EventType, ProcessStateChange
from tests.support.net import free_port
from tests.support.supervisor import PYTHON, VIGIL_LISTENER, Supervisor

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
WEB = CONF / "demo" / "web.py"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not installed (Debian package 'prometheus': apt-get install prometheus)",
)
Factory = Callable[..., Supervisor]
#: The issue's bound: a scrape shows an event's effect within this many seconds.
WITHIN = 1.0


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], input=stdin, capture_output=True, text=True, cwd=CONF, timeout=60
    )


# --- conf/ checked by the real tool ---------------------------------------------------------


@needs_promtool
def test_prometheus_config_is_valid() -> None:
    r = promtool("check", "config", "prometheus.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


@needs_promtool
def test_alert_rules_are_valid() -> None:
    r = promtool("check", "rules", "alerts.rules.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 8 rules found" in r.stdout


@needs_promtool
def test_alert_rules_fire_and_stay_quiet_as_their_unit_tests_say() -> None:
    r = promtool("test", "rules", "alerts.test.yml")
    assert r.returncode == 0, r.stdout + r.stderr


@needs_promtool
def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    dashboard = json.loads((CONF / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", []) if t.get("expr")]
    assert len(exprs) >= 15
    rules = tmp_path / "dashboard.rules.yml"
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for i, expr in enumerate(exprs):
        concrete = (
            expr.replace("$__rate_interval", "1m")
            .replace("$job", "vigil")
            .replace("$instance", ".*")
        )
        lines += [f"      - record: dashboard:expr_{i}", f"        expr: {json.dumps(concrete)}"]
    rules.write_text("\n".join(lines) + "\n")
    r = promtool("check", "rules", str(rules))
    assert r.returncode == 0, r.stdout + r.stderr


# --- scraping a live listener ---------------------------------------------------------------


@dataclass
class Scrape:
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]
    text: str

    def get(self, metric: str, /, **labels: str) -> float | None:
        return self.samples.get((metric, frozenset(labels.items())))

    def proc(self, metric: str, process: str, /, **labels: str) -> float | None:
        return self.get(metric, group=process, name=process, **labels)


def scrape(port: int) -> Scrape | None:
    try:
        with requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            if r.status_code != 200:
                return None
            text = r.text
    except requests.ConnectionError:
        return None
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    return Scrape(samples, text)


def wait_scrape(
    sv: Supervisor, port: int, ok: Callable[[Scrape], bool], within: float, what: str
) -> tuple[Scrape, float]:
    """Scrape every 20 ms until ``ok``; fail (with the last body) after ``within`` seconds."""
    t0 = time.monotonic()
    last: Scrape | None = None
    while True:
        got = scrape(port)
        if got is not None:
            last = got
            if ok(got):
                return got, time.monotonic() - t0
        if time.monotonic() - t0 > within:
            body = last.text if last is not None else "<no scrape>"
            err = sv.dir / "vigil.err"
            tail = "\n".join(err.read_text().splitlines()[-30:]) if err.exists() else ""
            raise AssertionError(
                f"not within {within}s: {what}\n--- last scrape ---\n{body}\n--- vigil.err ---\n"
                f"{tail}\n{sv.diagnostics()}"
            )
        time.sleep(0.02)


def listener(plugins: str = "metrics,health") -> str:
    return f"""
[eventlistener:vigil]
command = {VIGIL_LISTENER} -c %(here)s/supervisord.conf --plugins {plugins}
events = PROCESS_STATE,PROCESS_COMMUNICATION
buffer_size = 100
autorestart = true
stdout_logfile = NONE
stderr_logfile = %(here)s/vigil.err
"""


@needs_promtool
def test_live_scrape_passes_promtool_check_metrics(any_core: Factory) -> None:
    port = free_port()
    body = f"""
[metrics]
listen = 127.0.0.1:{port}
node_exporter_compat = true

[program:app]
command = sleep 600
startsecs = 0
""" + listener("metrics")
    sv = any_core(body)
    sv.wait_state("app", "RUNNING")
    got, _ = wait_scrape(
        sv,
        port,
        lambda s: (
            s.proc("supervisor_process_state", "app") == 20
            and s.get("supervisor_up") == 1
            and s.get("vigil_listener_events_total", eventname="PROCESS_STATE_RUNNING") is not None
        ),
        10,
        "app RUNNING, the supervisor up, events counted",
    )
    assert got.proc("node_supervisord_up", "app") == 1
    r = promtool("check", "metrics", stdin=got.text)
    assert r.returncode == 0, r.stdout + r.stderr + got.text


def wait_new_pid(sv: Supervisor, name: str, old: int, timeout: float = 15) -> int:
    """Poll every 20 ms until ``name`` has a pid other than ``old`` (and not 0)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = int(sv.process_info(name)["pid"])
        if pid not in (0, old):
            return pid
        time.sleep(0.02)
    raise AssertionError(f"{name} got no new pid within {timeout}s\n{sv.diagnostics()}")


def matches_supervisor(s: Scrape, infos: list[dict[str, Any]], names: tuple[str, ...]) -> bool:
    """Gauges of ``names`` equal what ``getAllProcessInfo`` says."""
    by_name = {i["name"]: i for i in infos}
    for n in names:
        i = by_name[n]
        want = {
            "supervisor_process_state": i["state"],
            "supervisor_process_up": int(i["statename"] == "RUNNING"),
            "supervisor_process_exit_status": i["exitstatus"],
            "supervisor_process_start_time_seconds": i["start"] or None,  # 0: never started
        }
        if any(s.proc(m, n) != v for m, v in want.items()):
            return False
    return True


@pytest.mark.slow
def test_crash_health_restart_and_fatal_are_scraped_within_a_second_and_survive_a_listener_kill(
    any_core: Factory,
) -> None:
    port, web_port = free_port(), free_port()
    body = f"""
[metrics]
listen = 127.0.0.1:{port}
reconcile = 15

[program:crasher]
command = sleep 600
startsecs = 1
stopwaitsecs = 2

[program:doomed]
command = {PYTHON} -c "raise SystemExit(3)"
autostart = false
startsecs = 1
startretries = 1

[program:web]
command = {PYTHON} {WEB} --port {web_port}
environment = DEMO_FAULT_FILE="%(here)s/fault"
startsecs = 1
stopwaitsecs = 2

[healthcheck:web]
program = web
type = http
url = http://127.0.0.1:{web_port}/healthz
period = 0.5
timeout = 0.5
failure_threshold = 2
max_restarts = 3
restart_window = 60
breaker_cooldown = 600
""" + listener()
    sv = any_core(body)
    crasher_pid = int(sv.wait_state("crasher", "RUNNING")["pid"])
    web_pid = int(sv.wait_state("web", "RUNNING")["pid"])
    sv.wait_state("vigil", "RUNNING")
    names = ("crasher", "web", "doomed")
    wait_scrape(
        sv,
        port,
        lambda s: matches_supervisor(s, sv.rpc().supervisor.getAllProcessInfo(), names),
        10,
        "the first states",
    )
    restarts = "supervisor_process_restarts_total"
    got = scrape(port)
    assert got is not None
    for n in names:  # first starts are not restarts
        assert got.proc(restarts, n, cause="crash") == 0
        assert got.proc(restarts, n, cause="manual") == 0

    # 1. crasher crashes; supervisord restarts it
    os.kill(crasher_pid, signal.SIGKILL)
    wait_new_pid(sv, "crasher", crasher_pid)
    _, took = wait_scrape(
        sv,
        port,
        lambda s: (
            s.proc(restarts, "crasher", cause="crash") == 1
            and s.proc("supervisor_process_exits_total", "crasher", expected="false") == 1
            and s.proc("supervisor_process_state", "crasher") in (10, 20)
        ),
        WITHIN,
        "crasher's crash restart",
    )
    print(f"crash restart scraped after {took * 1000:.0f} ms")
    sv.wait_state("crasher", "RUNNING")
    info = sv.process_info("crasher")
    wait_scrape(
        sv,
        port,
        lambda s: (
            s.proc("supervisor_process_state", "crasher") == 20
            and s.proc("supervisor_process_up", "crasher") == 1
            and s.proc("supervisor_process_exit_status", "crasher") == info["exitstatus"]
        ),
        WITHIN,
        "crasher RUNNING again, with its exit status",
    )

    # 2. web fails its health check; the health plugin restarts it
    (sv.dir / "fault").write_text("500")
    wait_new_pid(sv, "web", web_pid)
    (sv.dir / "fault").unlink()
    _, took = wait_scrape(
        sv,
        port,
        lambda s: (
            s.proc(restarts, "web", cause="health") == 1
            and s.get("vigil_check_failures_total", check="web", group="web", name="web")
            is not None
        ),
        WITHIN,
        "web's health restart",
    )
    print(f"health restart scraped after {took * 1000:.0f} ms")
    time.sleep(0.7)  # past the manual-start grace: it stays a health restart
    got = scrape(port)
    assert got is not None
    assert got.proc(restarts, "web", cause="health") == 1
    assert got.proc(restarts, "web", cause="manual") == 0
    assert got.proc(restarts, "web", cause="crash") == 0
    labels = {"check": "web", "group": "web", "name": "web"}
    assert got.get("vigil_remediations_total", **labels, action="restart", result="ok") == 1
    assert (got.get("vigil_check_failures_total", **labels) or 0) >= 2
    assert got.get("vigil_breaker_state", **labels) == 0
    if PROMTOOL is not None:  # now with check series: histograms, remediations
        r = promtool("check", "metrics", stdin=got.text)
        assert r.returncode == 0, r.stdout + r.stderr + got.text
    sv.wait_state("web", "RUNNING")

    # 3. doomed goes FATAL
    sv.rpc().supervisor.startProcess("doomed", False)
    doomed = sv.wait_state("doomed", "FATAL", timeout=15)
    _, took = wait_scrape(
        sv,
        port,
        lambda s: (
            s.proc("supervisor_process_state", "doomed") == 200
            and s.proc("supervisor_process_fatal_total", "doomed") == 1
            and s.proc(restarts, "doomed", cause="backoff") == 1
            # supervisord keeps no status for exits before startsecs: it reports 0
            and s.proc("supervisor_process_exit_status", "doomed") == doomed["exitstatus"]
        ),
        WITHIN,
        "doomed FATAL",
    )
    print(f"FATAL scraped after {took * 1000:.0f} ms")
    got = scrape(port)
    assert got is not None
    assert got.proc(restarts, "doomed", cause="manual") == 0  # its first start

    # 4. the listener is SIGKILLed and restarted: gauges right again, counters from 0
    old = int(sv.process_info("vigil")["pid"])
    os.kill(old, signal.SIGKILL)
    wait_new_pid(sv, "vigil", old)
    sv.wait_state("vigil", "RUNNING")
    _, took = wait_scrape(
        sv,
        port,
        lambda s: matches_supervisor(s, sv.rpc().supervisor.getAllProcessInfo(), names),
        5,
        "the states reconciled by the new listener",
    )
    print(f"reconciled after the listener's RUNNING: {took * 1000:.0f} ms")
    got = scrape(port)
    assert got is not None
    assert got.proc("supervisor_process_state", "doomed") == 200
    assert got.proc("supervisor_process_fatal_total", "doomed") == 0
    for n in names:
        for cause in ("crash", "health", "backoff", "manual"):
            assert got.proc(restarts, n, cause=cause) == 0, (n, cause)


# --- TLS, with prometheus-client's own start_http_server options ----------------------------


def test_tls_endpoint_with_basic_auth(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not installed: cannot make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    collector = MetricsCollector()
    collector.process_state(
        ProcessStateChange(EventType.PROCESS_STATE_STARTING, "app", "app", "STOPPED")
    )
    config = MetricsConfig(port=0, username="prom", password="pw", tls_cert=cert, tls_key=key)
    server = MetricsServer(config, collector, CollectorRegistry())
    server.start()
    try:
        url = f"https://127.0.0.1:{server.port}/metrics"
        with requests.get(url, verify=str(cert), auth=("prom", "pw"), timeout=5) as r:
            assert r.status_code == 200
            assert 'supervisor_process_state{group="app",name="app"} 10' in r.text
        with requests.get(url, verify=str(cert), timeout=5) as r:
            assert r.status_code == 401
        with pytest.raises(requests.ConnectionError):  # plain HTTP gets nowhere
            requests.get(url.replace("https", "http"), timeout=5).close()
    finally:
        server.stop()
    assert config.scheme == "https"
