"""vigild against real supervisord 4.3, side by side in one run (issue 3's benchmarks).

Each scenario starts the daemon on a fresh config in a temp dir with a lean recording
listener (bench/programs/recorder.py), measures, and stops it. Nothing needs XML-RPC.

Usage: ``python -m bench.core [--only NAME,...] [--quick]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
PROGS = ROOT / "bench" / "programs"
DAEMONS = {
    "supervisord": [PY, "-m", "supervisor.supervisord", "-n", "-c"],
    "vigild": [PY, "-m", "manager.vigild", "-n", "-c"],
}


class Run:
    def __init__(
        self,
        kind: str,
        body: str,
        *,
        buffer_size: int = 10,
        events: str = "EVENT",
        count_only: bool = False,
    ) -> None:
        self.kind = kind
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-", dir="/tmp"))
        self.out = self.dir / "events.txt"
        self.conf = self.dir / "bench.conf"
        self.conf.write_text(
            f"""[supervisord]
logfile = {self.dir}/daemon.log
pidfile = {self.dir}/daemon.pid
childlogdir = {self.dir}
loglevel = info
identifier = bench

[eventlistener:rec]
command = {PY} {PROGS}/recorder.py
events = {events}
buffer_size = {buffer_size}
startsecs = 0
environment = BENCH_OUT="{self.out}",BENCH_COUNT_ONLY="{int(count_only)}"
stdout_logfile = NONE
stderr_logfile = {self.dir}/rec.err
{body}
"""
        )
        self.t0 = time.time()
        self.proc = subprocess.Popen(
            [*DAEMONS[kind], str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "daemon.stderr", "wb"),  # noqa: SIM115
            cwd=ROOT,
        )

    def lines(self) -> list[list[str]]:
        if not self.out.exists():
            return []
        return [x.split(" ", 2) for x in self.out.read_text().splitlines() if x]

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return False

    def log(self) -> str:
        p = self.dir / "daemon.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self, timeout: float = 60) -> float:
        """SIGTERM; returns seconds until the daemon exited."""
        t = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return time.monotonic() - t


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def exiter(n: int, stamp: Path, after: float) -> str:
    return f"""
[program:ex]
command = sh -c 'sleep {after}; echo "$$ $(date +%%s.%%N)" >> {stamp}; exit 1'
numprocs = {n}
process_name = ex_%(process_num)02d
startsecs = 0
autorestart = true
stdout_logfile = NONE
stderr_logfile = NONE
"""


def latency(kind: str, children: int, cycles: int) -> dict[str, float]:
    """State change -> listener receipt (EXITED), and exit -> next STARTING (respawn gap)."""
    with tempfile.TemporaryDirectory() as d:
        stamp = Path(d) / "stamps"
        r = Run(kind, exiter(children, stamp, 0.3), buffer_size=1000, events="PROCESS_STATE")
        try:
            r.wait(
                lambda: (
                    sum(1 for x in r.lines() if x[1] == "PROCESS_STATE_EXITED") >= cycles * children
                ),
                cycles * 3 + 10,
            )
        finally:
            r.stop()
        exits = {}
        for line in stamp.read_text().splitlines():
            pid, t = line.split()
            exits[int(pid)] = float(t)
        lat, gaps = [], []
        pending: dict[str, float] = {}
        for t, name, first in r.lines():
            fields = dict(tok.split(":", 1) for tok in first.split())
            proc = fields.get("processname", "")
            if name == "PROCESS_STATE_EXITED":
                exited_pid = int(fields["pid"])
                if exited_pid in exits:
                    lat.append(float(t) - exits[exited_pid])
                    pending[proc] = exits[exited_pid]
            elif name == "PROCESS_STATE_STARTING" and proc in pending:
                gaps.append(float(t) - pending.pop(proc))
        return {
            "exited_p50_ms": statistics.median(lat) * 1e3,
            "exited_p99_ms": pct(lat, 0.99) * 1e3,
            "respawn_p50_ms": statistics.median(gaps) * 1e3,
            "respawn_p99_ms": pct(gaps, 0.99) * 1e3,
            "samples": float(len(lat)),
        }


def chatty(kind: str, n: int, buffer_size: int) -> dict[str, float]:
    body = f"""
[program:chatty]
command = {PY} {PROGS}/chatty.py --n {n}
stdout_capture_maxbytes = 1KB
stdout_logfile = NONE
stderr_logfile = NONE
"""
    r = Run(kind, body, buffer_size=buffer_size, events="PROCESS_COMMUNICATION", count_only=True)
    try:

        def counted() -> int:
            ls = r.lines()
            return int(ls[-1][1]) if ls else 0

        # Until all arrived, or nothing new for 3 s (after a 10 s grace for the start).
        last, progress = -1, time.monotonic() + 10
        while counted() < n and time.monotonic() - progress < 3.0:
            c = counted()
            if c != last:
                last, progress = c, max(progress, time.monotonic())
            time.sleep(0.1)
    finally:
        r.stop()
    ls = [x for x in r.lines() if len(x) >= 2]
    delivered = int(ls[-1][1]) if ls else 0
    marks = [(float(x[0]), int(x[1])) for x in ls if len(x) == 2]  # periodic, not "final"
    rate = 0.0
    if len(marks) >= 2 and marks[-1][0] > marks[0][0]:
        rate = (marks[-1][1] - marks[0][1]) / (marks[-1][0] - marks[0][0])
    dropped = len(re.findall(r"event buffer overflowed", r.log()))
    return {"delivered": float(delivered), "events_per_s": rate, "dropped": float(dropped)}


def churn(kind: str, seconds: float) -> dict[str, float]:
    body = f"""
[program:churn]
command = {PY} -c "import time; time.sleep(0.1)"
numprocs = 10
process_name = churn_%(process_num)02d
startsecs = 0
autorestart = true
stdout_logfile = NONE
stderr_logfile = NONE
"""
    r = Run(kind, body, buffer_size=10, events="PROCESS_STATE")
    try:
        time.sleep(seconds)
    finally:
        r.stop()
    delivered = len(r.lines())
    dropped = len(re.findall(r"event buffer overflowed", r.log()))
    return {
        "delivered": float(delivered),
        "dropped": float(dropped),
        "dropped_pct": 100.0 * dropped / max(1, delivered + dropped),
    }


def startup(kind: str, n: int) -> dict[str, float]:
    body = f"""
[program:s]
command = sleep 600
numprocs = {n}
process_name = s_%(process_num)03d
startsecs = 0
stdout_logfile = NONE
stderr_logfile = NONE
"""
    r = Run(kind, body, buffer_size=4 * n + 100, events="PROCESS_STATE_RUNNING")
    try:
        ok = r.wait(lambda: len(r.lines()) >= n + 1, 60)
        elapsed = max(float(x[0]) for x in r.lines()) - r.t0 if ok else float("nan")
        time.sleep(0.5)
        rss = r.rss_kb() / 1024
        shutdown = r.stop()
    finally:
        r.stop()
    return {"all_running_s": elapsed, "rss_mb": rss, "shutdown_s": shutdown}


SCENARIOS: dict[str, Callable[[str, bool], dict[str, float]]] = {
    "latency_quiet": lambda k, q: latency(k, 1, 10 if q else 20),
    "latency_busy": lambda k, q: latency(k, 8, 4 if q else 8),
    "throughput": lambda k, q: chatty(k, 20000 if q else 50000, 100000),
    "burst_5000_buffer10": lambda k, q: chatty(k, 5000, 10),
    "churn_5s_buffer10": lambda k, q: churn(k, 5.0),
    "startup_50": lambda k, q: startup(k, 50),
    "startup_200": lambda k, q: startup(k, 200),
    "startup_500": lambda k, q: startup(k, 500),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", help="comma-separated scenario names")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--daemons", default="supervisord,vigild")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(SCENARIOS)
    kinds = args.daemons.split(",")
    print(f"| scenario | metric | {' | '.join(kinds)} | ratio |")
    print("|---|---|" + "---|" * len(kinds) + "---|")
    for name in names:
        results = {k: SCENARIOS[name](k, args.quick) for k in kinds}
        for metric in results[kinds[0]]:
            vals = [results[k].get(metric, float("nan")) for k in kinds]
            ratio = ""
            if len(vals) == 2 and vals[1] not in (0, 0.0) and vals[0] == vals[0]:
                ratio = f"{vals[0] / vals[1]:.1f}x"
            cells = " | ".join(f"{v:.2f}" for v in vals)
            print(f"| {name} | {metric} | {cells} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
