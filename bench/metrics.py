"""Scrape latency of the ``metrics`` plugin at 1,000 processes and 1,000 health checks, and RSS.

Side by side in one run, each scraped 200 times with ``requests`` on 127.0.0.1 (one
connection per scrape, ``Accept-Encoding: gzip`` as Prometheus sends it):

1. **In process**: a :class:`MetricsCollector` fed 1,000 processes (STARTING, RUNNING; every
   tenth crashed and was restarted) and 1,000 check outcomes, served by :class:`MetricsServer`;
   * *static*: nothing changes between scrapes;
   * *churn*: between scrapes every check gets a new outcome and 100 processes restart
     (what a 15 s scrape interval sees with 1,000 checks at ``period = 10``);
   * the same collector and registry served by prometheus-client's own ``make_wsgi_app``
     (``generate_latest``), for comparison.
2. **A real ``vigil-listener --plugins metrics,bench.metrics:synthetic_checks``**: driven on its
   pipes by the supervisor half of the protocol with 2,000 PROCESS_STATE events (1,000
   processes to RUNNING), 1,000 check outcomes published on its bus by the synthetic plugin,
   and a fake supervisor (XML-RPC on 127.0.0.1) answering ``getAllProcessInfo`` with the
   1,000 processes: once with the default ``reconcile = 15``, once with ``reconcile = 1``
   (a reconcile decodes 1,000 structs while holding the GIL; scrapes that meet one wait).
   Its RSS (VmRSS, and the peak VmHWM) is read from ``/proc`` (the first run), beside an
   idle listener with no plugin.

Usage: ``python -m bench.metrics [--scrapes N]``; prints Markdown tables.
"""

from __future__ import annotations

import argparse
import itertools
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

import requests
from prometheus_client import CollectorRegistry, make_wsgi_app

from healthchecks.result import CheckResult
from listeners.plugin import PluginContext
from listeners.plugins.health import CheckOutcome
from listeners.plugins.metrics import MetricsCollector, MetricsConfig, MetricsServer
from manager.events import EventType, ProcessStateChange
from manager.protocol import NEED_DATA, Ready, Result, SupervisorConnection

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROCESSES = 1000
CHECKS = 1000


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


# --- synthetic state -------------------------------------------------------------------------


def proc_name(i: int) -> tuple[str, str]:
    return f"svc{i // 10:03d}", f"svc{i // 10:03d}_{i % 10}"  # 100 groups of 10


def feed_processes(collector: MetricsCollector) -> None:
    for i in range(PROCESSES):
        group, name = proc_name(i)
        path = ["STOPPED", "STARTING", "RUNNING"]
        if i % 10 == 0:
            path += ["EXITED", "STARTING", "RUNNING"]
        for frm, to in itertools.pairwise(path):
            ev = ProcessStateChange(
                EventType[f"PROCESS_STATE_{to}"], name, group, frm, pid=1000 + i, expected=False
            )
            collector.process_state(ev)


def outcomes(round_: int) -> list[CheckOutcome]:
    out = []
    for i in range(CHECKS):
        group, name = proc_name(i)
        ok = (i + round_) % 17 != 0
        duration = 0.0005 + ((i * 7 + round_) % 100) / 1000
        out.append(CheckOutcome(f"http{i}", group, name, CheckResult(ok, "x", duration), 0.0))
    return out


def churn(collector: MetricsCollector, round_: int) -> None:
    for o in outcomes(round_):
        collector.check_result(o)
    for i in range(round_ % 10, PROCESSES, 10):  # 100 processes crash and restart
        group, name = proc_name(i)
        for frm, to in (("RUNNING", "EXITED"), ("EXITED", "STARTING"), ("STARTING", "RUNNING")):
            collector.process_state(
                ProcessStateChange(
                    EventType[f"PROCESS_STATE_{to}"], name, group, frm, expected=False
                )
            )


def synthetic_checks(ctx: PluginContext) -> None:
    """A plugin for the listener run: 1,000 check outcomes on the bus at set-up."""
    for o in outcomes(0):
        ctx.bus.publish("health.result", o)


# --- scraping --------------------------------------------------------------------------------


def scrape_many(
    url: str, n: int, between: Callable[[int], None] | None = None
) -> tuple[list[float], int, int]:
    """Latencies of ``n`` scrapes (``between(i)`` runs, untimed, before each)."""
    samples = []
    size = raw = 0
    for i in range(n):
        if between is not None:
            between(i)
        t0 = time.perf_counter()
        with requests.get(url, headers={"Accept-Encoding": "gzip"}, timeout=10) as r:
            body = r.content
            size = int(r.headers.get("Content-Length", 0))
        samples.append(time.perf_counter() - t0)
        assert r.status_code == 200, r.status_code
        raw = len(body)
    return samples, size, raw


def row(label: str, samples: list[float], size: int, raw: int, series: int) -> str:
    return (
        f"| {label} | {series:,} | {raw / 1e6:.2f} MB ({size / 1e3:.0f} kB gzip) | "
        f"{statistics.median(samples) * 1e3:.1f} ms | {pct(samples, 0.99) * 1e3:.1f} ms | "
        f"{max(samples) * 1e3:.1f} ms |"
    )


def in_process(scrapes: int) -> list[str]:
    collector = MetricsCollector()
    feed_processes(collector)
    for o in outcomes(0):
        collector.check_result(o)
    series = collector.exposition().count(b"\n") - 2 * len(collector.families())
    rows = []
    registry = CollectorRegistry()
    server = MetricsServer(MetricsConfig(port=0), collector, registry)
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        scrape_many(url, 5)  # warm-up
        rows.append(row("in process, static", *scrape_many(url, scrapes), series))
        rows.append(
            row(
                "in process, churn (1,000 outcomes + 100 restarts between scrapes)",
                *scrape_many(url, scrapes, lambda i: churn(collector, i + 1)),
                series,
            )
        )
        assert server._server is not None
        server._server.set_app(make_wsgi_app(registry))  # prometheus-client's own exposition
        reference = scrape_many(url, max(20, scrapes // 5))
        rows.append(row("same, prometheus-client make_wsgi_app", *reference, series))
    finally:
        server.stop()
    return rows


# --- a real listener -------------------------------------------------------------------------


class _Quiet(SimpleXMLRPCRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def fake_supervisor() -> tuple[SimpleXMLRPCServer, threading.Thread, list[int]]:
    """XML-RPC on 127.0.0.1 with what the metrics plugin calls; counts getAllProcessInfo."""
    calls = [0]
    now = int(time.time())
    infos = []
    for i in range(PROCESSES):
        group, name = proc_name(i)
        infos.append(
            {
                "group": group,
                "name": name,
                "state": 20,
                "statename": "RUNNING",
                "start": now - 60,
                "stop": 0,
                "now": now,
                "pid": 1000 + i,
                "exitstatus": 0,
                "spawnerr": "",
                "description": "",
            }
        )

    def get_all() -> list[dict[str, Any]]:
        calls[0] += 1
        return infos

    server = SimpleXMLRPCServer(
        ("127.0.0.1", 0), requestHandler=_Quiet, allow_none=True, logRequests=False
    )
    server.register_function(get_all, "supervisor.getAllProcessInfo")
    server.register_function(lambda name: infos[0], "supervisor.getProcessInfo")
    server.register_function(lambda: "4.3.0", "supervisor.getSupervisorVersion")
    server.register_function(lambda: "bench", "supervisor.getIdentification")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread, calls


def rss_kb(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def listener_run(scrapes: int, reconcile: float) -> tuple[str, dict[str, int]]:
    rpc, rpc_thread, calls = fake_supervisor()
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        conf = Path(tmp) / "supervisord.conf"
        conf.write_text(f"[metrics]\nlisten = 127.0.0.1:{port}\nreconcile = {reconcile}\n")
        env = dict(
            os.environ,
            PYTHONPATH=str(ROOT),
            SUPERVISOR_SERVER_URL=f"http://127.0.0.1:{rpc.server_address[1]}",
        )
        argv = [str(BIN / "vigil-listener"), "-c", str(conf), "--plugins"]
        argv.append("metrics,bench.metrics:synthetic_checks")
        with open(Path(tmp) / "listener.err", "wb") as err:
            p = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, cwd=ROOT, env=env
            )
        assert p.stdin is not None and p.stdout is not None
        try:
            if not _wait_port(port):
                raise RuntimeError("the listener's metrics endpoint never answered")
            sv = SupervisorConnection(server="bench", pool="vigil")

            def expect(kind: type) -> None:
                assert p.stdout is not None
                while (item := sv.next_event()) is NEED_DATA:
                    data = os.read(p.stdout.fileno(), 4096)
                    if not data:
                        raise RuntimeError("vigil-listener exited")
                    sv.receive_data(data)
                assert isinstance(item, kind), item

            expect(Ready)
            serial = 0
            for i in range(PROCESSES):
                group, name = proc_name(i)
                for frm, to in (("STOPPED", "STARTING"), ("STARTING", "RUNNING")):
                    ev = ProcessStateChange(
                        EventType[f"PROCESS_STATE_{to}"], name, group, frm, pid=i
                    )
                    p.stdin.write(sv.send_event(ev, serial=serial, poolserial=serial))
                    p.stdin.flush()
                    serial += 1
                    expect(Result)
                    expect(Ready)
            url = f"http://127.0.0.1:{port}/metrics"
            deadline = time.monotonic() + 30
            while True:
                with requests.get(url, timeout=10) as r:
                    text = r.text
                if text.count("supervisor_process_up{") == PROCESSES and calls[0] >= 1:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("the listener never showed 1,000 processes")
                time.sleep(0.1)
            series = text.count("\n") - 2 * text.count("# TYPE")
            time.sleep(1.5)  # the refreshes the 2,000 events asked for are over
            scrape_many(url, 5)
            before = calls[0]
            samples, size, raw = scrape_many(url, scrapes)
            loaded = rss_kb(p.pid)
            reconciles = calls[0] - before
        finally:
            p.stdin.close()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            p.stdout.close()
            rpc.shutdown()
            rpc.server_close()
            rpc_thread.join(5)
    label = f"vigil-listener, reconcile = {reconcile:g} s ({reconciles} reconciles meanwhile)"
    return row(label, samples, size, raw, series), loaded


def baseline_rss() -> dict[str, int]:
    """RSS of ``vigil-listener`` with no plugin, once it has said READY."""
    p = subprocess.Popen(
        [str(BIN / "vigil-listener"), "--plugins", ""],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    assert p.stdin is not None and p.stdout is not None
    try:
        assert p.stdout.read(6) == b"READY\n"
        return rss_kb(p.pid)
    finally:
        p.stdin.close()
        p.wait(10)
        p.stdout.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with requests.get(f"http://127.0.0.1:{port}/", timeout=1) as r:
                return r.status_code == 200
        except requests.ConnectionError:
            time.sleep(0.05)
    return False


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scrapes", type=int, default=200)
    args = ap.parse_args()
    rows = in_process(args.scrapes)
    listener_row, loaded = listener_run(args.scrapes, 15)
    stress_row, _ = listener_run(args.scrapes, 1)
    idle = baseline_rss()
    n = args.scrapes
    print(f"Scrapes of /metrics, {PROCESSES:,} processes and {CHECKS:,} checks ({n} each):\n")
    print("| endpoint | series | body | p50 | p99 | max |")
    print("|---|---|---|---|---|---|")
    for r in [*rows, listener_row, stress_row]:
        print(r)
    print("\nvigil-listener RSS:\n")
    print("| listener | VmRSS | VmHWM (peak) |")
    print("|---|---|---|")
    for when, kb in (
        ("no plugin, idle (baseline)", idle),
        (f"metrics, {PROCESSES:,} processes + {CHECKS:,} checks, after {n} scrapes", loaded),
    ):
        print(f"| {when} | {kb['VmRSS'] / 1024:.1f} MiB | {kb['VmHWM'] / 1024:.1f} MiB |")


if __name__ == "__main__":
    main()
