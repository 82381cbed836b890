"""Health checking: Vigil's health plugin against superlance ``httpok``, in one run.

1. **Detection and recovery.** The demo service (``conf/demo/web.py``) starts answering 500,
   or hangs, when its fault file says so. Measured per checker, from writing the fault file:

   * *old process gone*: the old pid leaves ``/proc`` (or is a zombie), polled every 10 ms:
     the checker's restart reached the process (the demo exits at once on SIGTERM);
   * *new RUNNING*: ``getProcessInfo("web")`` shows a new pid RUNNING, polled every 20 ms
     over the unix socket (``startsecs = 1``, so this includes one second of start).

   Checkers: ``httpok -p web -t 3`` on ``TICK_5`` under supervisord 4.3 (its interval can be
   no finer); Vigil's health plugin with ``period = 1, timeout = 1`` and ``failure_threshold``
   2 and 1, under supervisord and under vigild. All cores run at once (idle but for their own
   probing) and are measured one at a time, in a rotating order. Faults are injected at
   stratified phases of each checker's own schedule, ``(i + 0.5) / n`` of the way through it
   (httpok: supervisord's wall-clock 5 s tick slice; Vigil: its 1 s probe grid, anchored at
   the process's RUNNING), so a median is a median over a uniform phase.

2. **Capacity.** One ``vigil-listener`` under vigild (or ``--core supervisord``) probing 1,000
   HTTP endpoints (``[healthcheck:c0..c999]``, ``period = 1``, ``timeout = 1``, ``action =
   none``) of one local ``ThreadingHTTPServer`` (this module with ``--serve``: the ``web``
   program itself, answering 200 on ``/ok/<n>``; HTTP/1.0, so a connection per probe, or
   HTTP/1.1 keep-alive with ``--keepalive``). After a warm-up, over the measured window: the
   listener's CPU (``/proc/<pid>/stat`` utime+stime) as % of a core and as CPU ms per probe
   (far less dependent on the machine's load than the lateness), probe lateness p50/p99/max (due →
   the check begun: in a pool worker, or on the HTTP reactor for plain-http checks of an IP
   address, so the pool's queue or the reactor's hand-over included) and missed periods
   (``bench/programs/health_stats.py``'s snapshots), probe duration, results per second.

Usage: ``python -m bench.health [--quick] [--only detect,capacity] [--keepalive] [--hang N]
[--host NAME] [--core supervisord]``; prints Markdown tables.
Loopback and unix sockets only; every process started is stopped by pid (temp dirs removed).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
BIN = Path(PY).parent
WEB = ROOT / "conf" / "demo" / "web.py"
TICK = 5.0  # httpok's interval: supervisord's TICK_5
CLK_TCK = os.sysconf("SC_CLK_TCK")
DAEMONS = {
    "supervisord": [PY, "-m", "supervisor.supervisord", "-n", "-c"],
    "vigild": [str(BIN / "vigild"), "-n", "-c"],
}


# ---------------------------------------------------------------------------------------------
# XML-RPC over the core's unix socket, one connection per call


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(self.timeout)
            s.connect(self.unix_path)
        except BaseException:
            s.close()
            raise
        self.sock = s


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__()
        self.unix_path = path
        self.timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        conn = _UnixConnection(self.unix_path, self.timeout)
        self._connection = (host, conn)
        return conn

    def request(self, host: Any, handler: str, request_body: Any, verbose: bool = False) -> Any:
        try:
            return super().request(host, handler, request_body, verbose)
        finally:
            self.close()


# ---------------------------------------------------------------------------------------------
# A core (supervisord or vigild) on a fresh config in a temp dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_stat(pid: int) -> tuple[str, float] | None:
    """(state letter, utime+stime seconds) of ``pid``, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = text[text.rindex(")") + 2 :].split()
    return rest[0], (int(rest[11]) + int(rest[12])) / CLK_TCK


def gone(pid: int) -> bool:
    st = proc_stat(pid)
    return st is None or st[0] in ("Z", "X")


class Core:
    """``body(dir, port)`` is the config after the standard sections; ``port`` is a free one."""

    def __init__(self, kind: str, label: str, body: Callable[[Path, int], str]) -> None:
        self.kind = kind
        self.label = label
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="bench-health-", dir="/tmp"))
        self.sock = self.dir / "s.sock"
        self.conf = self.dir / "c.conf"
        self.conf.write_text(
            f"""[supervisord]
logfile = {self.dir}/d.log
pidfile = {self.dir}/d.pid
childlogdir = {self.dir}
loglevel = info
identifier = bench

[unix_http_server]
file = {self.sock}
chmod = 0700

[supervisorctl]
serverurl = unix://{self.sock}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
{body(self.dir, self.port)}"""
        )
        self.children: set[int] = set()
        with open(self.dir / "d.out", "wb") as out:
            self.proc = subprocess.Popen(
                [*DAEMONS[kind], str(self.conf)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=out,
                cwd=self.dir,
            )

    def rpc(self, timeout: float = 10) -> Any:
        return xmlrpc.client.ServerProxy(
            "http://localhost/RPC2", transport=_UnixTransport(str(self.sock), timeout)
        ).supervisor

    def info(self, name: str) -> dict[str, Any]:
        info: dict[str, Any] = self.rpc().getProcessInfo(name)
        if info.get("pid"):
            self.children.add(int(info["pid"]))
        return info

    def wait_running(self, name: str, timeout: float = 30, not_pid: int = 0) -> tuple[int, float]:
        """(pid, monotonic time first seen) of ``name`` RUNNING with a pid other than ``not_pid``;
        polls every 20 ms."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label}: core exited\n{self.tail()}")
            try:
                info = self.info(name)
            except (OSError, xmlrpc.client.Error) as exc:
                last = exc
            else:
                last = info
                if info["statename"] == "RUNNING" and int(info["pid"]) not in (0, not_pid):
                    return int(info["pid"]), time.monotonic()
            time.sleep(0.02)
        raise RuntimeError(f"{self.label}: {name} not RUNNING in {timeout}s: {last!r}")

    def tail(self, name: str = "d.log", lines: int = 30) -> str:
        p = self.dir / name
        text = p.read_text(errors="replace") if p.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        with contextlib.suppress(OSError, xmlrpc.client.Error):
            for i in self.rpc(timeout=2).getAllProcessInfo():
                if i.get("pid"):
                    self.children.add(int(i["pid"]))
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in self.children:  # only the pids this core reported, if they outlived it
            if not gone(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def cores(specs: list[tuple[str, str, Callable[[Path, int], str]]]) -> Iterator[list[Core]]:
    """Start one core per (kind, label, body(dir, port)) and stop them all on the way out."""
    started: list[Core] = []
    try:
        for kind, label, body in specs:
            started.append(Core(kind, label, body))
        yield started
    finally:
        for core in started:
            core.stop()


# ---------------------------------------------------------------------------------------------
# 1. detection and recovery


@dataclass
class Contender:
    label: str
    kind: str
    #: "tick": httpok's wall-clock TICK_5 slices; "probe": Vigil's 1 s grid from RUNNING
    schedule: str
    period: float
    core: Core | None = None
    pid: int = 0
    running_at: float = 0.0
    gone_s: dict[str, list[float]] = field(default_factory=dict)
    up_s: dict[str, list[float]] = field(default_factory=dict)


def web_program(d: Path, port: int) -> str:
    return f"""
[program:web]
command = {PY} {WEB} --port {port}
environment = DEMO_FAULT_FILE="{d}/fault"
startsecs = 1
stopwaitsecs = 2
stdout_logfile = NONE
stderr_logfile = NONE
"""


def httpok_body(d: Path, port: int) -> str:
    return web_program(d, port) + (
        f"""
[eventlistener:httpok]
command = {BIN}/httpok -p web -t 3 http://127.0.0.1:{port}/healthz
events = TICK_5
stdout_logfile = NONE
stderr_logfile = {d}/httpok.err
"""
    )


def vigil_body(threshold: int) -> Callable[[Path, int], str]:
    def body(d: Path, port: int) -> str:
        return web_program(d, port) + (
            f"""
[eventlistener:health]
command = {BIN}/vigil-listener -c {d}/c.conf --plugins health
events = PROCESS_STATE,PROCESS_COMMUNICATION
buffer_size = 100
stdout_logfile = NONE
stderr_logfile = {d}/health.err

[healthcheck:web]
program = web
type = http
url = http://127.0.0.1:{port}/healthz
period = 1
timeout = 1
failure_threshold = {threshold}
max_restarts = 1000
restart_window = 300
"""
        )

    return body


def fault_at(c: Contender, i: int, n: int, settle: float) -> float:
    """Monotonic time to inject the fault of repetition ``i`` of ``n`` into ``c``."""
    phase = (i + 0.5) / n
    now_m, now_w = time.monotonic(), time.time()
    earliest = max(now_m, c.running_at) + settle
    if c.schedule == "tick":
        # supervisord's TICK_5 fires when time.time() enters a new 5 s slice
        slice_start_w = math.floor((now_w + (earliest - now_m)) / TICK) * TICK
        t_w = slice_start_w + phase * TICK
        while t_w - now_w + now_m < earliest:
            t_w += TICK
        return t_w - now_w + now_m
    # Vigil probes at running_at + k * period
    t = c.running_at + phase * c.period
    while t < earliest:
        t += c.period
    return t


def measure(c: Contender, fault: str, when: float, timeout: float = 25) -> None:
    assert c.core is not None
    fault_file = c.core.dir / "fault"
    old = c.pid
    time.sleep(max(0.0, when - time.monotonic()))
    fault_file.write_text(fault)
    t0 = time.monotonic()
    try:
        while not gone(old):
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"{c.label}: pid {old} not restarted in {timeout}s")
            time.sleep(0.01)
        t_gone = time.monotonic()
    finally:
        fault_file.unlink(missing_ok=True)
    c.pid, c.running_at = c.core.wait_running("web", timeout, not_pid=old)
    c.gone_s.setdefault(fault, []).append(t_gone - t0)
    c.up_s.setdefault(fault, []).append(c.running_at - t0)


def detect(reps: int) -> list[Contender]:
    contenders = [
        Contender("httpok -t 3, TICK_5", "supervisord", "tick", TICK),
        Contender("Vigil period 1, failure_threshold 2", "supervisord", "probe", 1.0),
        Contender("Vigil period 1, failure_threshold 2", "vigild", "probe", 1.0),
        Contender("Vigil period 1, failure_threshold 1", "supervisord", "probe", 1.0),
        Contender("Vigil period 1, failure_threshold 1", "vigild", "probe", 1.0),
    ]
    bodies = [httpok_body, vigil_body(2), vigil_body(2), vigil_body(1), vigil_body(1)]
    specs = [(c.kind, c.label, b) for c, b in zip(contenders, bodies, strict=True)]
    with cores(specs) as started:
        for c, core in zip(contenders, started, strict=True):
            c.core = core
        for c in contenders:
            assert c.core is not None
            c.core.wait_running("httpok" if c.schedule == "tick" else "health")
            # one restart by hand, so Vigil's probe grid is anchored at a RUNNING we saw
            old, _ = c.core.wait_running("web")
            c.core.rpc().stopProcess("web", True)
            c.core.rpc().startProcess("web", False)
            c.pid, c.running_at = c.core.wait_running("web", not_pid=old)
        for fault in ("500", "hang"):
            for i in range(reps):
                for j in range(len(contenders)):
                    c = contenders[(i + j) % len(contenders)]
                    try:
                        measure(c, fault, fault_at(c, i, reps, settle=2.0))
                    except RuntimeError as exc:  # counted out of n; the run goes on
                        print(f"  {c.kind}, {c.label}: {exc}", file=sys.stderr, flush=True)
                        assert c.core is not None
                        c.pid, c.running_at = c.core.wait_running("web", 60)
                print(f"  {fault} repetition {i + 1}/{reps} done", file=sys.stderr, flush=True)
    return contenders


def detect_table(contenders: list[Contender]) -> str:
    def cell(xs: list[float]) -> str:
        if not xs:
            return "—"
        return f"{statistics.median(xs):.2f} s ({min(xs):.2f}–{max(xs):.2f})"

    ref = contenders[0]
    out = [
        "| fault | checker | core | n | fault → old process gone, p50 (min–max) "
        "| fault → new RUNNING, p50 (min–max) | httpok ÷ this (gone / RUNNING) |",
        "|---|---|---|---|---|---|---|",
    ]
    for fault in ("500", "hang"):
        g0 = statistics.median(ref.gone_s.get(fault) or [math.nan])
        u0 = statistics.median(ref.up_s.get(fault) or [math.nan])
        for c in contenders:
            g, u = c.gone_s.get(fault, []), c.up_s.get(fault, [])
            ratio = (
                "—"
                if c is ref or not g
                else f"{g0 / statistics.median(g):.1f}× / {u0 / statistics.median(u):.1f}×"
            )
            out.append(
                f"| {fault} | {c.label} | {c.kind} | {len(g)} | {cell(g)} | {cell(u)} | {ratio} |"
            )
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# 2. capacity


class _OkHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/hang/"):
            time.sleep(2.0)  # longer than the checks' timeout: they give up first
            self.close_connection = True
            return
        ok = self.path.startswith("/ok/")
        body = b"ok" if ok else b"not found\n"
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _KeepAliveHandler(_OkHandler):
    protocol_version = "HTTP/1.1"


class _OkServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # 1,000 probes a second connect in bursts


def serve(port: int, keepalive: bool = False) -> None:
    def on_term(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    server = _OkServer(("127.0.0.1", port), _KeepAliveHandler if keepalive else _OkHandler)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def capacity_body(
    checks: int,
    period: float,
    d: Path,
    port: int,
    keepalive: bool = False,
    hang: int = 0,
    host: str = "127.0.0.1",
) -> str:
    serve = f"--serve {port}" + (" --keepalive" if keepalive else "")
    out = [
        f"""
[program:web]
command = {PY} -m bench.health {serve}
directory = {ROOT}
autostart = false
startsecs = 1
stdout_logfile = NONE
stderr_logfile = {d}/web.err

[eventlistener:health]
command = {BIN}/vigil-listener -c {d}/c.conf --plugins health,bench.programs.health_stats:setup
events = PROCESS_STATE,PROCESS_COMMUNICATION
buffer_size = 100
environment = PYTHONPATH="{ROOT}",BENCH_HEALTH_STATS="{d}/stats.json"
stdout_logfile = NONE
stderr_logfile = {d}/health.err
"""
    ]
    for n in range(checks):
        out.append(
            f"""
[healthcheck:c{n}]
program = web
type = http
url = http://{host}:{port}/{"hang" if n < hang else "ok"}/{n}
period = {period}
timeout = 1
action = none
"""
        )
    return "".join(out)


def read_stats(path: Path, after_seq: int, timeout: float = 10) -> tuple[dict[str, Any], float]:
    """The first snapshot with seq > after_seq, and the monotonic time it was seen.

    The file is replaced at each snapshot: only a new inode is parsed (polled every 5 ms).
    """
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            inode = path.stat().st_ino
            if inode != seen:
                seen = inode
                snap: dict[str, Any] = json.loads(path.read_text())
                if snap["seq"] > after_seq:
                    return snap, time.monotonic()
        time.sleep(0.005)
    raise RuntimeError(f"no new snapshot in {path} within {timeout}s")


def hist_delta(a: dict[str, int], b: dict[str, int]) -> dict[int, int]:
    out = {int(k): v - a.get(k, 0) for k, v in b.items()}
    return {k: v for k, v in out.items() if v > 0}


def hist_mean(h: dict[int, int], bucket: float) -> float:
    total = sum(h.values())
    return sum((k + 0.5) * bucket * v for k, v in h.items()) / total if total else math.nan


def hist_pct(h: dict[int, int], q: float, bucket: float) -> float:
    """The q-quantile (upper edge of its bucket), in seconds."""
    total = sum(h.values())
    if not total:
        return math.nan
    rank, seen = q * total, 0
    for k in sorted(h):
        seen += h[k]
        if seen >= rank:
            return (k + 1) * bucket
    return (max(h) + 1) * bucket


def capacity(
    checks: int,
    seconds: float,
    warmup: float,
    period: float = 1.0,
    keepalive: bool = False,
    hang: int = 0,
    host: str = "127.0.0.1",
    core_kind: str = "vigild",
) -> dict[str, float]:
    def body(d: Path, port: int) -> str:
        return capacity_body(checks, period, d, port, keepalive, hang, host)

    with cores([(core_kind, "capacity", body)]) as (core,):
        listener, _ = core.wait_running("health", 60)
        stats = core.dir / "stats.json"
        read_stats(stats, 0, 60)  # the plugins are set up: they will see web's RUNNING event
        core.rpc().startProcess("web", False)
        web_pid, _ = core.wait_running("web", 60)
        time.sleep(warmup)
        a, t_a = read_stats(stats, read_stats(stats, 0)[0]["seq"])
        cpu_a = [proc_stat(p) for p in (listener, web_pid, core.proc.pid)]
        time.sleep(max(0.0, seconds - 0.5))
        b, t_b = read_stats(stats, json.loads(stats.read_text())["seq"])
        cpu_b = [proc_stat(p) for p in (listener, web_pid, core.proc.pid)]
        if None in cpu_a or None in cpu_b:
            raise RuntimeError(f"a process died during the run\n{core.tail('health.err')}")
        status = Path(f"/proc/{listener}/status").read_text()
        rss_kb = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS:"))
        threads = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("Threads:"))
        fds = len(os.listdir(f"/proc/{listener}/fd"))
    wall = b["t"] - a["t"]
    cpu = [
        100.0 * (y[1] - x[1]) / (t_b - t_a)
        for x, y in zip(cpu_a, cpu_b, strict=True)
        if x is not None and y is not None
    ]
    bucket = float(b["bucket"])
    hists = {
        k: hist_delta(a[k], b[k]) for k in ("lateness", "claim_lateness", "queue_wait", "duration")
    }
    results = b["results"] - a["results"]
    per_check = [
        b["per_check"].get(f"c{n}", 0) - a["per_check"].get(f"c{n}", 0) for n in range(checks)
    ]
    out = {
        "checks": float(checks),
        "window_s": wall,
        "results": float(results),
        "results_per_s": results / wall,
        "expected_per_s": checks / period,
        "failures": float(b["failures"] - a["failures"]),
        "missed_periods": float(b["missed"] - a["missed"]),
        "short_of_schedule": checks * wall / period - results,
        "probes_per_check_min": float(min(per_check)),
        "probes_per_check_max": float(max(per_check)),
        "keepalive": float(keepalive),
        "hang": float(hang),
        "by_name": float(host != "127.0.0.1"),
        "under_supervisord": float(core_kind == "supervisord"),
        "listener_cpu_pct": cpu[0],
        "listener_rss_mib": rss_kb / 1024,
        "listener_threads": float(threads),
        "listener_fds": float(fds),
        "listener_cpu_ms_per_probe": 10.0 * cpu[0] * (t_b - t_a) / max(1, results),
        "server_cpu_pct": cpu[1],
        "vigild_cpu_pct": cpu[2],
    }
    for name, h in hists.items():
        out[f"{name}_p50_ms"] = hist_pct(h, 0.50, bucket) * 1e3
        out[f"{name}_p99_ms"] = hist_pct(h, 0.99, bucket) * 1e3
        out[f"{name}_max_ms"] = hist_pct(h, 1.0, bucket) * 1e3
        out[f"{name}_mean_ms"] = hist_mean(h, bucket) * 1e3
    return out


def capacity_table(r: dict[str, float]) -> str:
    def ms(name: str) -> str:
        return (
            f"{r[name + '_p50_ms']:.1f} / {r[name + '_p99_ms']:.1f} / "
            f"{r[name + '_mean_ms']:.1f} / {r[name + '_max_ms']:.1f} ms"
        )

    short_pct = 100 * r["short_of_schedule"] / (r["expected_per_s"] * r["window_s"])
    rows = [
        ("listener CPU (% of one core)", f"{r['listener_cpu_pct']:.0f} %", "—"),
        (
            "listener CPU per probe (far less load-dependent than lateness)",
            f"{r['listener_cpu_ms_per_probe']:.3f} ms",
            "—",
        ),
        (
            "probe lateness p50 / **p99** / mean / max (due → check begun)",
            ms("lateness"),
            "p99 ≤ 100 ms",
        ),
        ("of which: due → claimed by the scheduler", ms("claim_lateness"), "—"),
        (
            "of which: claimed → begun (pool queue, or hand-over to the HTTP reactor)",
            ms("queue_wait"),
            "—",
        ),
        (
            "missed periods (Σ ⌊lateness / period⌋ over the probes)",
            f"{r['missed_periods']:.0f}",
            "0",
        ),
        (
            "probes short of the schedule (checks × window / period − results)",
            f"{r['short_of_schedule']:.0f} ({short_pct:.1f} %)",
            "0",
        ),
        (
            "results per second",
            f"{r['results_per_s']:.0f} (of {r['expected_per_s']:.0f} scheduled)",
            "—",
        ),
        (
            "probes per check in the window, min–max",
            f"{r['probes_per_check_min']:.0f}–{r['probes_per_check_max']:.0f}",
            f"{r['window_s']:.0f}",
        ),
        ("failed probes", f"{r['failures']:.0f}", "0"),
        ("probe duration p50 / p99 / mean / max", ms("duration"), "—"),
        (
            "listener VmRSS / threads / open fds at the end",
            f"{r['listener_rss_mib']:.1f} MiB / {r['listener_threads']:.0f} / "
            f"{r['listener_fds']:.0f}",
            "—",
        ),
        (
            "HTTP server CPU / core CPU",
            f"{r['server_cpu_pct']:.0f} % / {r['vigild_cpu_pct']:.0f} %",
            "—",
        ),
    ]
    server = (
        "HTTP/1.1 keep-alive server" if r["keepalive"] else "HTTP/1.0 server (connect per probe)"
    )
    if r["hang"]:
        server += f", {r['hang']:.0f} of them hanging"
    if r["by_name"]:
        server += ", host by name (blocking checks in the worker pool)"
    out = [
        f"| {int(r['checks']):,} HTTP checks, period 1 s, {r['window_s']:.0f} s window, {server} "
        f"| Vigil under {'supervisord' if r['under_supervisord'] else 'vigild'} | target |",
        "|---|---|---|",
    ]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------


def _on_term(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # so that the cores are stopped on the way out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 repetitions, a 30 s capacity window")
    ap.add_argument("--only", default="detect,capacity", help="detect, capacity or both")
    ap.add_argument("--reps", type=int, help="repetitions per fault and checker (5; 3 quick)")
    ap.add_argument("--checks", type=int, default=1000, help="capacity: HTTP checks")
    ap.add_argument("--seconds", type=float, help="capacity: measured window (60; 30 quick)")
    ap.add_argument("--warmup", type=float, default=10.0, help="capacity: seconds before it")
    ap.add_argument(
        "--keepalive", action="store_true", help="capacity: the server keeps connections open"
    )
    ap.add_argument(
        "--hang", type=int, default=0, help="capacity: this many endpoints never answer in time"
    )
    ap.add_argument(
        "--host",
        default="127.0.0.1",
        help="capacity: host in the URLs (a name, e.g. localhost, takes the blocking worker "
        "pool instead of the non-blocking reactor)",
    )
    ap.add_argument(
        "--core", choices=sorted(DAEMONS), default="vigild", help="capacity: the core to run under"
    )
    ap.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve is not None:
        serve(args.serve, args.keepalive)
        return
    signal.signal(signal.SIGTERM, _on_term)
    only = set(args.only.split(","))

    def load() -> str:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())

    if "detect" in only:
        reps = args.reps or (3 if args.quick else 5)
        before = load()
        table = detect_table(detect(reps))
        print(f"{table}\n\n(load average before / after: {before} / {load()})\n", flush=True)
    if "capacity" in only:
        seconds = args.seconds or (30.0 if args.quick else 60.0)
        before = load()
        table = capacity_table(
            capacity(
                args.checks,
                seconds,
                args.warmup,
                keepalive=args.keepalive,
                hang=args.hang,
                host=args.host,
                core_kind=args.core,
            )
        )
        print(f"{table}\n(load average before / after: {before} / {load()})", flush=True)


if __name__ == "__main__":
    main()
