"""Soak (issue 8, point 3): health-check restarts under the breaker, then account for all.

A program whose HTTP check fails at once (it answers 500 on a keep-alive connection,
or refuses before it listens) is restarted by the health plugin again and again, with a
breaker that keeps allowing restarts (``max_restarts`` far above the run, 1 s window).
The program answers 200 while the file ``healthy`` exists, which gives two quiet points
with the same processes alive: after a warm-up of restarts (baseline), and after the
soak. At each: the listener's and the core's open fds and VmRSS. Then:

* no zombie child of the core or of the listener;
* no fd growth in the listener or the core; listener VmRSS growth ≤ 5 MB;
* every restart accounted for: restarts the plugin issued (its log) == restarts the core
  made (a recorder listener's PROCESS_STATE events: STOPPING → STOPPED → STARTING →
  RUNNING for the program, with no other transition) == the metrics plugin's
  ``vigil_remediations_total{action="restart",result="ok"}`` and
  ``supervisor_process_restarts_total{cause="health"}``; no failed action; the breaker
  never left CLOSED (no transition logged, ``vigil_breaker_state`` 0) and never refused.

A second scenario lets the breaker trip (``max_restarts = 3``, ``breaker_cooldown = 0.3``):
after 3 restarts it opens, then allows one trial restart per cooldown (OPEN → HALF_OPEN →
trial → OPEN) until the program is healthy again (→ CLOSED). Restarts issued == 3 +
trials == restart cycles observed == the metrics' counts; one trip, one refusal, every
trial ended OPEN again or (the last) CLOSED.

CI runs ``scaled(60, 1000)`` restarts and ``scaled(15, 100)`` trials under each core;
``VIGIL_RELIABILITY=full`` runs 1,000 and 100.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.reliability.conftest import scaled
from tests.support.faults import figure, rss_kib, wait_until
from tests.support.net import free_port
from tests.support.supervisor import PYTHON, VIGIL_LISTENER, Supervisor

RESTARTS = scaled(60, 1000)
TRIALS = scaled(15, 100)
WARMUP_RESTARTS = 10
RSS_GROWTH_LIMIT_KB = 5 * 1024
RECORDER = Path(__file__).resolve().parent / "programs_soak" / "soak_recorder.py"
#: seconds per restart allowed before the run is declared stuck (a cycle takes ~0.2 s)
SECONDS_PER_RESTART = 2.0

SICK = """\
import os, socket, sys
port, healthy = int(sys.argv[1]), sys.argv[2]
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(8)
while True:
    conn, _ = srv.accept()
    buf = b""
    while True:
        chunk = conn.recv(4096)
        if not chunk:
            break
        buf += chunk
        while b"\\r\\n\\r\\n" in buf:
            _, _, buf = buf.partition(b"\\r\\n\\r\\n")
            ok = os.path.exists(healthy)
            body = b"ok" if ok else b"sick"
            status = b"200 OK" if ok else b"500 Sick"
            conn.sendall(
                b"HTTP/1.1 " + status + b"\\r\\nContent-Length: "
                + str(len(body)).encode() + b"\\r\\n\\r\\n" + body
            )
    conn.close()
"""


#: the breaker keeps allowing: far more restarts than the run makes, in a 1 s window
ALLOWING = "max_restarts = 1000000\nrestart_window = 1\nbreaker_cooldown = 600\n"
#: the breaker trips after 3 restarts and then allows one trial restart every 0.3 s
TRIPPING = "max_restarts = 3\nrestart_window = 600\nbreaker_cooldown = 0.3\n"


def config(tmp: Path, port: int, metrics_port: int, breaker: str = ALLOWING) -> str:
    return f"""
[program:sick]
command = {PYTHON} {tmp}/sick.py {port} {tmp}/healthy
startsecs = 0
autorestart = false
stopwaitsecs = 5
stdout_logfile = NONE
stderr_logfile = %(here)s/sick.err

[eventlistener:health]
command = {VIGIL_LISTENER} -c %(here)s/supervisord.conf --plugins health,metrics
events = PROCESS_STATE,PROCESS_COMMUNICATION
buffer_size = 100
stdout_logfile = NONE
stderr_logfile = %(here)s/health.err

[eventlistener:recorder]
command = {PYTHON} {RECORDER} %(here)s/events.txt
events = PROCESS_STATE
buffer_size = 100
stdout_logfile = NONE
stderr_logfile = %(here)s/recorder.err

[metrics]
listen = 127.0.0.1:{metrics_port}
reconcile = 600

[healthcheck:sick]
program = sick
type = http
url = http://127.0.0.1:{port}/healthz
period = 0.05
timeout = 0.5
initial_delay = 0.1
failure_threshold = 1
{breaker}"""


def fd_targets(pid: int) -> list[str]:
    """What each open fd of ``pid`` points at (sockets as ``socket:[inode]``)."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue  # closed meanwhile
    return sorted(out)


def open_fds(pid: int) -> int:
    """The fewest open fds of ``pid`` over 10 samples 0.1 s apart (a quiet point: a
    connection that is merely being served, e.g. our own getProcessInfo, is not a leak)."""
    counts = []
    for _ in range(10):
        counts.append(len(os.listdir(f"/proc/{pid}/fd")))
        time.sleep(0.1)
    return min(counts)


def zombie_children(*parents: int) -> list[int]:
    """Zombie processes whose parent is one of ``parents``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) in parents:
            found.append(int(entry.name))
    return found


_RESTART = re.compile(r"\brestart sick \(sick: .*?\)( failed: .*)?$", re.MULTILINE)
_TRANSITION = re.compile(r"\bbreaker sick for sick: (\w+) -> (\w+) \(")
_REFUSED = re.compile(r"\bsick: breaker \w+, not restarting \(")


@dataclass
class Counts:
    issued: int  # restart actions the plugin logged as done
    failed: int  # restart actions the plugin logged as failed
    breaker_lines: int  # breaker transitions or refusals logged
    transitions: Counter[tuple[str, str]]  # (from, to) breaker transitions logged
    refusals: int  # restarts the breaker refused (logged)
    cycles: int  # STOPPING→STOPPED→STARTING→RUNNING sequences of sick
    runs: int  # RUNNING events of sick
    other: list[str]  # sick transitions outside those sequences

    @classmethod
    def read(cls, tmp: Path) -> Counts:
        log = (tmp / "health.err").read_text(errors="replace")
        found = _RESTART.findall(log)
        states = []
        events = tmp / "events.txt"
        for line in events.read_text().splitlines() if events.exists() else []:
            parts = line.split()
            if len(parts) >= 3 and "processname:sick" in parts[2:]:
                states.append(parts[1].removeprefix("PROCESS_STATE_"))
        cycles, other, i = 0, [], 0
        cycle = ["STOPPING", "STOPPED", "STARTING", "RUNNING"]
        while i < len(states):
            if states[i : i + 4] == cycle:
                cycles += 1
                i += 4
            elif states[i] in ("STARTING", "RUNNING") and cycles == 0:
                i += 1  # the first start
            else:
                other.append(states[i])
                i += 1
        return cls(
            issued=sum(1 for f in found if not f),
            failed=sum(1 for f in found if f),
            breaker_lines=len(_TRANSITION.findall(log)) + len(_REFUSED.findall(log)),
            transitions=Counter(_TRANSITION.findall(log)),
            refusals=len(_REFUSED.findall(log)),
            cycles=cycles,
            runs=states.count("RUNNING"),
            other=other,
        )


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        r.raise_for_status()
        text = r.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@dataclass
class Quiet:
    listener_fds: int
    core_fds: int
    core_fd_targets: list[str]
    listener_rss_kb: int
    core_rss_kb: int
    counts: Counts


def heal_and_settle(sv: Supervisor, tmp: Path, listener: int) -> Quiet:
    """Make sick healthy, wait until no restart happens for 1.5 s, then measure."""
    (tmp / "healthy").touch()
    last = Counts.read(tmp)
    stable_since = time.monotonic()

    def settled() -> bool:
        nonlocal last, stable_since
        now = Counts.read(tmp)
        if (now.issued, now.cycles, now.runs) != (last.issued, last.cycles, last.runs):
            last, stable_since = now, time.monotonic()
            return False
        return (
            time.monotonic() - stable_since >= 1.5
            and now.cycles == now.issued
            and sv.process_info("sick")["statename"] == "RUNNING"
        )

    wait_until(settled, 30, "sick healthy, RUNNING and no restart for 1.5 s", poll=0.1)
    return Quiet(
        listener_fds=open_fds(listener),
        core_fds=open_fds(sv.pid),
        core_fd_targets=fd_targets(sv.pid),
        listener_rss_kb=rss_kib(listener),
        core_rss_kb=rss_kib(sv.pid),
        counts=Counts.read(tmp),
    )


def sicken_until(tmp: Path, restarts: int) -> float:
    """Make sick unhealthy until ``restarts`` restarts were issued in all; seconds taken."""
    (tmp / "healthy").unlink()
    start = time.monotonic()
    wait_until(
        lambda: Counts.read(tmp).issued >= restarts,
        SECONDS_PER_RESTART * restarts + 10,
        f"{restarts} health restarts",
        poll=0.1,
    )
    return time.monotonic() - start


def test_health_restarts_under_the_breaker_leak_nothing_and_are_all_accounted_for(
    any_core: Callable[..., Supervisor], core: str, tmp_path: Path
) -> None:
    port, metrics_port = free_port(), free_port()
    (tmp_path / "sick.py").write_text(SICK)
    (tmp_path / "healthy").touch()
    sv = any_core(config(tmp_path, port, metrics_port))
    sv.wait_state("sick", "RUNNING")
    listener = int(sv.wait_state("health", "RUNNING")["pid"])

    sicken_until(tmp_path, WARMUP_RESTARTS)
    before = heal_and_settle(sv, tmp_path, listener)
    seconds = sicken_until(tmp_path, before.counts.issued + RESTARTS)
    after = heal_and_settle(sv, tmp_path, listener)

    counts = after.counts
    samples = scrape(metrics_port)
    labels = {"check": "sick", "group": "sick", "name": "sick"}

    def metric(name: str, **extra: str) -> float | None:
        return samples.get((name, frozenset({**labels, **extra}.items())))

    restarts_total = samples.get(
        (
            "supervisor_process_restarts_total",
            frozenset({"group": "sick", "name": "sick", "cause": "health"}.items()),
        )
    )
    zombies = zombie_children(sv.pid, listener)
    soaked = counts.issued - before.counts.issued
    figure(
        "health restarts under the breaker",
        core,
        restarts=soaked,
        total_restarts=counts.issued,
        seconds=round(seconds, 1),
        restarts_per_s=round(soaked / seconds, 1),
        observed_cycles=counts.cycles,
        failed_actions=counts.failed,
        other_transitions=len(counts.other),
        zombies=len(zombies),
        listener_fds=[before.listener_fds, after.listener_fds],
        core_fds=[before.core_fds, after.core_fds],
        listener_rss_kb=[before.listener_rss_kb, after.listener_rss_kb],
        core_rss_kb=[before.core_rss_kb, after.core_rss_kb],
        remediations_metric=metric("vigil_remediations_total", action="restart", result="ok"),
        restarts_metric=restarts_total,
    )
    assert soaked >= RESTARTS
    assert not zombies
    # every restart accounted for
    assert counts.failed == 0
    assert counts.other == [], counts.other
    assert counts.cycles == counts.issued
    assert counts.runs == counts.issued + 1
    assert metric("vigil_remediations_total", action="restart", result="ok") == counts.issued
    assert restarts_total == counts.issued
    # the breaker kept allowing: never opened, never refused
    assert counts.breaker_lines == 0
    assert metric("vigil_breaker_state") == 0
    # nothing leaks
    assert after.listener_fds <= before.listener_fds, (before, after)
    assert after.core_fds <= before.core_fds, (before, after)
    assert after.listener_rss_kb - before.listener_rss_kb <= RSS_GROWTH_LIMIT_KB, (before, after)


def test_a_tripping_breaker_cycles_and_every_trial_restart_is_accounted_for(
    any_core: Callable[..., Supervisor], core: str, tmp_path: Path
) -> None:
    """max_restarts 3, cooldown 0.3 s: 3 restarts, OPEN, then one trial restart per cooldown
    (OPEN → HALF_OPEN → trial → OPEN) until the program is made healthy (→ CLOSED)."""
    port, metrics_port = free_port(), free_port()
    (tmp_path / "sick.py").write_text(SICK)
    (tmp_path / "healthy").touch()
    sv = any_core(config(tmp_path, port, metrics_port, TRIPPING))
    sv.wait_state("sick", "RUNNING")
    listener = int(sv.wait_state("health", "RUNNING")["pid"])

    seconds = sicken_until(tmp_path, 3 + TRIALS)
    counts = heal_and_settle(sv, tmp_path, listener).counts
    samples = scrape(metrics_port)
    labels = frozenset({"check": "sick", "group": "sick", "name": "sick"}.items())
    t = counts.transitions
    trials = t[("OPEN", "HALF_OPEN")]
    zombies = zombie_children(sv.pid, listener)
    figure(
        "health restarts under a tripping breaker",
        core,
        restarts=counts.issued,
        seconds=round(seconds, 1),
        trials=trials,
        transitions={f"{a}->{b}": n for (a, b), n in sorted(t.items())},
        refusals=counts.refusals,
        observed_cycles=counts.cycles,
        zombies=len(zombies),
    )
    assert trials >= TRIALS
    assert not zombies
    # 3 restarts in the window, then one per trial; every one observed as a restart cycle
    assert counts.issued == 3 + trials
    assert counts.failed == 0 and counts.other == [], counts.other
    assert counts.cycles == counts.issued and counts.runs == counts.issued + 1
    # the breaker's own story adds up: tripped once (the one refusal), each trial ended
    # OPEN again or (the last, once healthy) CLOSED, and it is CLOSED at the end
    assert t[("CLOSED", "OPEN")] == 1 and counts.refusals == 1
    assert t[("HALF_OPEN", "OPEN")] + t[("HALF_OPEN", "CLOSED")] == trials
    assert t[("HALF_OPEN", "CLOSED")] + t[("OPEN", "CLOSED")] == 1
    assert set(t) <= {
        ("CLOSED", "OPEN"),
        ("OPEN", "HALF_OPEN"),
        ("HALF_OPEN", "OPEN"),
        ("HALF_OPEN", "CLOSED"),
        ("OPEN", "CLOSED"),
    }, t
    assert samples.get(("vigil_breaker_state", labels)) == 0
    remediations = labels | {("action", "restart"), ("result", "ok")}
    assert samples.get(("vigil_remediations_total", remediations)) == counts.issued
    restarts = frozenset({"group": "sick", "name": "sick", "cause": "health"}.items())
    assert samples.get(("supervisor_process_restarts_total", restarts)) == counts.issued
