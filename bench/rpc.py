"""The control plane: XML-RPC and the command-line clients, vigild against supervisord 4.3.

For each core, in one run: ``getAllProcessInfo`` latency with 50 and 500 processes (end to
end with ``xmlrpc.client`` as supervisorctl reads it, end to end with Vigil's client
(:mod:`manager.rpcclient`, which vigilctl and the listeners use), and server side), a
stop+start round trip (``wait=True``) of one process, and ``vigilctl status`` /
``supervisorctl status`` wall time with 500 processes (each client against each core).

Usage: ``python -m bench.rpc [--calls N]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from pathlib import Path
from typing import Any

from manager.rpcclient import SupervisorClient

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
BIN = Path(PY).parent
DAEMONS = {
    "supervisord": [PY, "-m", "supervisor.supervisord", "-n", "-c"],
    "vigild": [str(BIN / "vigild"), "-n", "-c"],
}


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(self.path)
        self.sock = s


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        return _UnixConnection(self.path)


class Core:
    def __init__(self, kind: str, n: int) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"rpc-{kind}-", dir="/tmp"))
        self.sock = self.dir / "s.sock"
        self.conf = self.dir / "c.conf"
        self.conf.write_text(
            f"""[supervisord]
logfile = {self.dir}/d.log
pidfile = {self.dir}/d.pid
childlogdir = {self.dir}
loglevel = warn

[unix_http_server]
file = {self.sock}

[supervisorctl]
serverurl = unix://{self.sock}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[program:p]
command = sleep 600
numprocs = {n}
process_name = p_%(process_num)03d
startsecs = 0
stopwaitsecs = 2
stdout_logfile = NONE
stderr_logfile = NONE
"""
        )
        self.proc = subprocess.Popen([*DAEMONS[kind], str(self.conf)], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                infos = self.rpc().supervisor.getAllProcessInfo()
                if len(infos) == n and all(i["statename"] == "RUNNING" for i in infos):
                    break
            except (OSError, xmlrpc.client.Fault):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{kind} did not start {n} processes")
            time.sleep(0.1)

    def rpc(self) -> Any:
        with xmlrpc.client.ServerProxy(
            "http://localhost", transport=_UnixTransport(str(self.sock))
        ) as proxy:
            return proxy

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def raw_call(sock_path: Path, method: str) -> None:
    """One XML-RPC call over a fresh unix connection, reading the reply without parsing it.

    Measures the server (and the transfer), not the client's XML parsing, which costs
    the same against either core (~21 ms for 500 process structs in CPython).
    """
    body = xmlrpc.client.dumps((), method).encode()
    req = (
        b"POST /RPC2 HTTP/1.0\r\nContent-Type: text/xml\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(sock_path))
        s.sendall(req)
        while s.recv(1 << 16):
            pass


def stop_start(rpc: Any, count: int) -> tuple[str, int]:
    """(p50 ms of a settled stop+start, ``wait=True``; stops that lost their SIGTERM).

    supervisord marks a ``startsecs = 0`` process RUNNING when it forks, before the child
    execs; a SIGTERM in that window reaches supervisord's own handler, inherited by the
    fork, and is lost, so the stop waits ``stopwaitsecs`` (2 s here) for the SIGKILL.
    vigild has the pid only once the exec succeeded. The timed cycles pause 0.1 s
    (untimed) after each start, so they measure the control plane; the second loop
    stops at once.
    """
    out = []
    for _ in range(count):
        t = time.perf_counter()
        rpc.supervisor.stopProcess("p:p_000", True)
        rpc.supervisor.startProcess("p:p_000", True)
        out.append(time.perf_counter() - t)
        time.sleep(0.1)
    lost = 0
    rpc.supervisor.stopProcess("p:p_000", True)
    for _ in range(count):
        rpc.supervisor.startProcess("p:p_000", True)
        t = time.perf_counter()
        rpc.supervisor.stopProcess("p:p_000", True)
        lost += time.perf_counter() - t > 1.0
    rpc.supervisor.startProcess("p:p_000", True)  # all 50 running again
    return ms(out), lost


def timed(fn: Any, count: int) -> list[float]:
    out = []
    for _ in range(count):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def ms(xs: list[float]) -> str:
    return f"{statistics.median(xs) * 1e3:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=30)
    args = ap.parse_args()
    rows: dict[str, dict[str, str]] = {}
    for kind in DAEMONS:
        for n in (50, 500):
            core = Core(kind, n)
            calls = args.calls * (10 if n == 50 else 1)  # small calls: more samples, same time
            try:
                rpc = core.rpc()
                rows.setdefault(f"getAllProcessInfo, {n} processes (p50 ms)", {})[kind] = ms(
                    timed(rpc.supervisor.getAllProcessInfo, calls)
                )
                vigil = SupervisorClient(f"unix://{core.sock}")
                rows.setdefault(f"getAllProcessInfo, {n} processes, Vigil's client (p50 ms)", {})[
                    kind
                ] = ms(timed(vigil.supervisor.getAllProcessInfo, calls))
                raw = functools.partial(raw_call, core.sock, "supervisor.getAllProcessInfo")
                rows.setdefault(f"getAllProcessInfo, {n} processes, server side (p50 ms)", {})[
                    kind
                ] = ms(timed(raw, calls))
                if n == 50:
                    cycle_ms, lost = stop_start(rpc, 10)
                    rows.setdefault("stop+start round trip, wait=True (p50 ms)", {})[kind] = (
                        cycle_ms
                    )
                    rows.setdefault("stop at once after start: SIGTERM lost (of 10)", {})[kind] = (
                        str(lost)
                    )
                if n == 500:
                    for client, argv in (
                        ("supervisorctl", [PY, "-m", "supervisor.supervisorctl"]),
                        ("vigilctl", [str(BIN / "vigilctl")]),
                    ):
                        if not Path(argv[0]).exists():
                            continue
                        cmd = [*argv, "-c", str(core.conf), "status"]
                        rows.setdefault(f"`{client} status`, 500 processes (p50 ms)", {})[kind] = (
                            ms(timed(lambda cmd=cmd: subprocess.run(cmd, capture_output=True), 5))
                        )
            finally:
                core.stop()
    print("| measurement | supervisord | vigild | ratio |")
    print("|---|---|---|---|")
    for name, vals in rows.items():
        a, b = vals.get("supervisord", "nan"), vals.get("vigild", "nan")
        ratio = f"{float(a) / float(b):.1f}x" if float(b) and "lost" not in name else ""
        print(f"| {name} | {a} | {b} | {ratio} |")


if __name__ == "__main__":
    main()
