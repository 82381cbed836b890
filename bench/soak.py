"""Soak: thousands of start/exit/restart cycles under vigild and supervisord (issue 8, point 3).

One run of one core, in a temp dir:

* ``[program:flap]`` — 4 processes, ``startsecs=0``, ``autorestart=true``; each run appends
  its pid to a file and exits 0 at once, so the core restarts it immediately. While a
  *hold* file exists they stay RUNNING instead (the quiet points where fds, RSS and
  zombies are measured: the same children alive at both points).
* ``[program:sleeper]`` — stopped and started again over XML-RPC in a loop.
* ``[eventlistener:rec]`` — subscribed to ``PROCESS_STATE`` with the default
  ``buffer_size=10``, records every event with its ``poolserial``
  (tests/reliability/programs_soak/soak_recorder.py).

Phases: warm-up (a tenth of the cycles, at least 20), hold and measure (fds, RSS,
zombies), the main cycles, hold and measure again, then account for every event:

* ``poolserial`` must run 0, 1, 2, … without a gap (a gap is an event the pool lost);
* per process, each event's ``from_state`` must be the state of the one before (in order);
* every pid a flap child wrote must have its RUNNING event, and an EXITED one unless it
  is the child still held at the end.

Usage: ``python -m bench.soak --cycles 10000`` runs vigild to 10,000 exit cycles (and a
tenth as many XML-RPC stop/start cycles), then supervisord for the same wall time (it
restarts far more slowly, see reference §9), and prints a Markdown table side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.supervisor import PYTHON, Supervisor, core_command, start_supervisor

__all__ = [
    "SoakResult",
    "account",
    "core_fds",
    "core_rss_kb",
    "core_zombies",
    "main",
    "markdown",
    "run_soak",
]

ROOT = Path(__file__).resolve().parents[1]
RECORDER = ROOT / "tests" / "reliability" / "programs_soak" / "soak_recorder.py"
FLAPS = 4
#: Pool buffer of the recording listener: supervisord's default, 10.
BUFFER = 10
POLL = 0.02


# --- /proc figures of the core ---------------------------------------------------------------


def core_fds(pid: int) -> int:
    """Open file descriptors of ``pid``."""
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def core_rss_kb(pid: int) -> int:
    """VmRSS of ``pid`` in kB (0 if unknown)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def core_zombies(pid: int) -> list[int]:
    """Pids of ``pid``'s children in state Z (exited, not reaped)."""
    zombies: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 2 and fields[0] == "Z" and int(fields[1]) == pid:
            zombies.append(int(entry.name))
    return zombies


# --- accounting ------------------------------------------------------------------------------


@dataclass
class Accounting:
    """What the listener's record says about the events of one run."""

    events: int = 0
    by_name: Counter[str] = field(default_factory=Counter)
    #: poolserials missing from 0..max: events the pool never delivered (lost)
    serial_gaps: int = 0
    #: events recorded with a poolserial lower than the one before (delivered out of order)
    reordered: int = 0
    #: events whose from_state is not the previous event's state of that process
    chain_breaks: int = 0
    #: pids a flap child wrote with no RUNNING event, or (except the held ones) no EXITED one
    missing: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.serial_gaps


def _fields(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for tok in text.split():
        key, sep, value = tok.partition(":")
        if sep:
            out[key] = value
    return out


def account(record: list[str], pids: list[int], held: set[int]) -> Accounting:
    """Check the recorded events against the pids the flap children wrote.

    Args:
        record: lines of the recorder's file (``poolserial eventname payload``).
        pids: every pid written by a flap child, in order.
        held: the pids still running (held) at the end: they need no EXITED event.
    """
    acc = Accounting()
    serials: list[int] = []
    last: dict[str, str] = {}
    running: set[int] = set()
    exited: set[int] = set()

    def problem(text: str) -> None:
        if len(acc.problems) < 10:
            acc.problems.append(text)

    for line in record:
        serial, name, payload = ([*line.split(" ", 2), "", ""])[:3]
        if serials and int(serial) < serials[-1]:
            acc.reordered += 1
            problem(f"poolserial {serial} after {serials[-1]}")
        serials.append(int(serial))
        acc.events += 1
        acc.by_name[name] += 1
        f = _fields(payload)
        proc = f"{f.get('groupname')}:{f.get('processname')}"
        state = name.removeprefix("PROCESS_STATE_")
        before = last.get(proc)
        if before is not None and f.get("from_state") != before:
            acc.chain_breaks += 1
            problem(f"{proc}: {before} then {line!r}")
        last[proc] = state
        if "pid" in f and f.get("groupname") == "flap":
            (running if state == "RUNNING" else exited).add(int(f["pid"]))
    expected = set(range(max(serials) + 1)) if serials else set()
    acc.serial_gaps = len(expected - set(serials))
    if len(serials) != len(set(serials)):
        problem(f"{len(serials) - len(set(serials))} poolserials recorded twice")
    if acc.serial_gaps:
        problem(f"{acc.serial_gaps} poolserials never delivered")
    for pid in pids:
        if pid not in running or (pid not in held and pid not in exited):
            acc.missing += 1
            problem(f"flap pid {pid}: RUNNING {pid in running}, EXITED {pid in exited}")
    return acc


# --- one run ---------------------------------------------------------------------------------


@dataclass
class SoakResult:
    """Figures of one run of one core."""

    core: str
    seconds: float = 0.0
    #: flap children that started and exited during the main phase (autorestart cycles)
    exit_cycles: int = 0
    #: XML-RPC stopProcess + startProcess cycles during the main phase
    rpc_cycles: int = 0
    fds_before: int = 0
    fds_after: int = 0
    rss_before_kb: int = 0
    rss_after_kb: int = 0
    zombies_end: int = 0
    #: most zombie children seen at one sample during the cycles (transient, before reaping)
    zombies_max_seen: int = 0
    overflow_logged: int = 0
    #: vigild's ``pool rec is behind`` warnings (backlog past buffer_size, restarts paced)
    behind_logged: int = 0
    #: ``killing 'sleeper' ... with SIGKILL``: a SIGTERM that did not stop ``sleep`` in 2 s
    sigkills: int = 0
    accounting: Accounting = field(default_factory=Accounting)
    #: pids the flap children wrote over the whole run
    flap_pids: int = 0
    #: CPU seconds (user + system) the core used over the main phase
    core_cpu: float = 0.0

    @property
    def rss_growth_kb(self) -> int:
        return self.rss_after_kb - self.rss_before_kb


def _body(tmp: Path, buffer: int, flaps: int) -> str:
    pids, hold, record = tmp / "pids", tmp / "hold", tmp / "record"
    return f"""
[eventlistener:rec]
command = {PYTHON} {RECORDER} {record}
events = PROCESS_STATE
buffer_size = {buffer}
startsecs = 0
stderr_logfile = {tmp}/rec.err

[program:flap]
command = sh -c 'echo $$ >> {pids}; while [ -e {hold} ]; do sleep 0.02; done; exit 0'
numprocs = {flaps}
process_name = flap_%(process_num)d
startsecs = 0
autorestart = true
stdout_logfile = NONE
stderr_logfile = NONE

[program:sleeper]
command = sleep 100000
startsecs = 0
autorestart = false
stopwaitsecs = 2
stdout_logfile = NONE
stderr_logfile = NONE
"""


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    # a line being written is complete only with its newline
    return text.split("\n")[:-1]


def _cpu(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Run:
    """A started core plus the files of its children."""

    def __init__(self, sv: Supervisor, tmp: Path, flaps: int) -> None:
        self.sv = sv
        self.flaps = flaps
        self.pids = tmp / "pids"
        self.hold = tmp / "hold"
        self.record = tmp / "record"
        self.rpc_cycles = 0

    def started(self) -> int:
        return len(_lines(self.pids))

    def rpc_cycle(self) -> None:
        rpc = self.sv.rpc(timeout=30).supervisor
        rpc.stopProcess("sleeper")
        rpc.startProcess("sleeper")
        self.rpc_cycles += 1

    def cycle_until(
        self, exits: int, rpcs: int, deadline: float, result: SoakResult | None = None
    ) -> None:
        """Run XML-RPC cycles while the flaps cycle, until both targets or ``deadline``."""
        start_exits, start_rpcs = self.started(), self.rpc_cycles
        next_sample = 0.0
        while time.monotonic() < deadline:
            done_exits = self.started() - start_exits >= exits
            done_rpcs = self.rpc_cycles - start_rpcs >= rpcs
            if done_exits and done_rpcs:
                return
            if not done_rpcs:
                self.rpc_cycle()
            else:
                time.sleep(POLL)
            if result is not None and time.monotonic() >= next_sample:
                next_sample = time.monotonic() + 0.5
                zombies = len(core_zombies(self.sv.pid))
                result.zombies_max_seen = max(result.zombies_max_seen, zombies)
            if self.sv.proc.poll() is not None:
                raise RuntimeError(
                    f"core exited ({self.sv.proc.returncode})\n{self.sv.diagnostics()}"
                )

    def hold_all(self, timeout: float = 30.0) -> set[int]:
        """Make the flaps stay RUNNING; return their pids once all four are held and recorded."""
        self.hold.touch()
        deadline = time.monotonic() + timeout
        while True:
            infos = self.sv.rpc().supervisor.getAllProcessInfo()
            flaps = [i for i in infos if i["group"] == "flap"]
            pids = {int(i["pid"]) for i in flaps if i["statename"] == "RUNNING"}
            written = set(int(p) for p in _lines(self.pids))
            record = _lines(self.record)
            recorded = {int(f["pid"]) for f in map(_fields, record) if "pid" in f}
            # held: every flap RUNNING (still, a moment later) with a pid that wrote its line,
            # and the listener has recorded their RUNNING events — or has nothing left to
            # record (a core that dropped one of them: account() counts it lost)
            if (
                len(pids) == self.flaps
                and pids <= written
                and self._stable(pids)
                and (pids <= recorded or len(_lines(self.record)) == len(record))
            ):
                return pids
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"flaps not held within {timeout}s: {flaps}\n{self.sv.diagnostics()}"
                )
            time.sleep(0.1)

    def _stable(self, pids: set[int]) -> bool:
        """The same pids are still RUNNING a moment later (none was mid-exit)."""
        time.sleep(0.2)
        infos = self.sv.rpc().supervisor.getAllProcessInfo()
        now = {int(i["pid"]) for i in infos if i["group"] == "flap" and i["statename"] == "RUNNING"}
        return now == pids

    def release(self) -> None:
        self.hold.unlink(missing_ok=True)

    def quiet_figures(self) -> tuple[int, int, int]:
        """(fds, RSS kB, zombies) of the core at a held point; zombies get 2 s to be reaped."""
        pid = self.sv.pid
        deadline = time.monotonic() + 2.0
        while core_zombies(pid) and time.monotonic() < deadline:
            time.sleep(POLL)
        return core_fds(pid), core_rss_kb(pid), len(core_zombies(pid))

    def wait_recorded(self, timeout: float = 30.0) -> list[str]:
        """The record once it stops growing (the listener caught up)."""
        deadline = time.monotonic() + timeout
        last = -1
        while True:
            record = _lines(self.record)
            if len(record) == last or time.monotonic() >= deadline:
                return record
            last = len(record)
            time.sleep(0.3)


def run_soak(
    core: str,
    tmp: Path,
    *,
    cycles: int,
    rpc_cycles: int | None = None,
    seconds: float | None = None,
    max_seconds: float = 3600.0,
    buffer: int = BUFFER,
    flaps: int = FLAPS,
) -> SoakResult:
    """Soak ``core`` in ``tmp``: ``cycles`` exit cycles and ``rpc_cycles`` XML-RPC cycles.

    With ``seconds``, the main phase lasts that long instead, whatever it reaches (for
    supervisord, which restarts far more slowly). The main phase never exceeds
    ``max_seconds``. The core is always stopped before returning.
    """
    rpcs = cycles // 10 if rpc_cycles is None else rpc_cycles
    warm = max(20, cycles // 10)
    result = SoakResult(core)
    tmp.mkdir(parents=True, exist_ok=True)
    sv = start_supervisor(
        tmp, _body(tmp, buffer, flaps), command=core_command(Path("{conf}"), core), loglevel="warn"
    )
    try:
        run = _Run(sv, tmp, flaps)
        sv.wait_state("rec", "RUNNING")
        sv.wait_state("sleeper", "RUNNING")
        warm_deadline = time.monotonic() + (seconds if seconds is not None else max_seconds) / 4
        run.cycle_until(warm, max(2, rpcs // 10), warm_deadline)
        run.hold_all()
        result.fds_before, result.rss_before_kb, _ = run.quiet_figures()
        before = run.started()
        rpc_before = run.rpc_cycles
        cpu_before = _cpu(sv.pid)
        t0 = time.monotonic()
        run.release()
        if seconds is not None:
            run.cycle_until(10**9, 10**9, t0 + seconds, result)
        else:
            run.cycle_until(cycles, rpcs, t0 + max_seconds, result)
        result.seconds = time.monotonic() - t0
        held = run.hold_all()
        result.core_cpu = _cpu(sv.pid) - cpu_before
        # the children held at the start exited in the main phase, those held now did not:
        # exits = starts in between
        result.exit_cycles = run.started() - before
        result.rpc_cycles = run.rpc_cycles - rpc_before
        result.fds_after, result.rss_after_kb, result.zombies_end = run.quiet_figures()
        record = run.wait_recorded()
        pids = [int(p) for p in _lines(run.pids)]
        result.accounting = account(record, pids, held)
        result.flap_pids = len(pids)
        text = sv.log_text()
        result.overflow_logged = text.count("event buffer overflowed")
        result.sigkills = text.count("with SIGKILL")
        result.behind_logged = text.count(" is behind: ")
    finally:
        with contextlib.suppress(OSError):
            (tmp / "hold").unlink()
        sv.stop()
    return result


# --- report ----------------------------------------------------------------------------------


def markdown(results: list[SoakResult]) -> str:
    """A Markdown table, one column per core."""
    rows: list[tuple[str, list[str]]] = [
        ("main phase wall time", [f"{r.seconds:.1f} s" for r in results]),
        ("start/exit/restart cycles (autorestart)", [f"{r.exit_cycles:,}" for r in results]),
        ("XML-RPC stop/start cycles", [f"{r.rpc_cycles:,}" for r in results]),
        ("core CPU over the main phase", [f"{r.core_cpu:.1f} s" for r in results]),
        (
            "PROCESS_STATE events recorded (whole run)",
            [f"{r.accounting.events:,}" for r in results],
        ),
        ("events lost (poolserial gaps)", [f"{r.accounting.lost:,}" for r in results]),
        ("events delivered out of order", [str(r.accounting.reordered) for r in results]),
        (
            "transitions whose from_state is not the last state seen",
            [f"{r.accounting.chain_breaks:,}" for r in results],
        ),
        (
            "flap pids without their RUNNING/EXITED event",
            [f"{r.accounting.missing:,} of {r.flap_pids:,}" for r in results],
        ),
        ("`event buffer overflowed` log lines", [str(r.overflow_logged) for r in results]),
        (
            "`pool rec is behind` warnings (vigild: backlog, restarts paced)",
            [str(r.behind_logged) for r in results],
        ),
        ("sleeper SIGKILLed after a lost SIGTERM", [str(r.sigkills) for r in results]),
        ("zombie children at the end", [str(r.zombies_end) for r in results]),
        ("zombie children, most seen at one sample", [str(r.zombies_max_seen) for r in results]),
        ("core fds after warm-up → end", [f"{r.fds_before} → {r.fds_after}" for r in results]),
        (
            "core VmRSS after warm-up → end",
            [
                f"{r.rss_before_kb / 1024:.1f} → {r.rss_after_kb / 1024:.1f} MB "
                f"({r.rss_growth_kb / 1024:+.2f} MB)"
                for r in results
            ],
        ),
    ]
    head = "| figure | " + " | ".join(r.core for r in results) + " |"
    sep = "|---|" + "---|" * len(results)
    return "\n".join([head, sep, *(f"| {name} | " + " | ".join(v) + " |" for name, v in rows)])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    p.add_argument("--cycles", type=int, default=10_000, help="vigild's exit cycles (10,000)")
    p.add_argument("--rpc-cycles", type=int, default=None, help="XML-RPC cycles (cycles / 10)")
    p.add_argument(
        "--supervisord-seconds",
        type=float,
        default=None,
        help="supervisord's main phase (default: vigild's wall time); 0 skips supervisord",
    )
    p.add_argument("--flaps", type=int, default=FLAPS, help="crash-looping processes (4)")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="soak-", dir="/tmp"))
    try:
        results = [
            run_soak(
                "vigild",
                tmp / "vigild",
                cycles=args.cycles,
                rpc_cycles=args.rpc_cycles,
                flaps=args.flaps,
            )
        ]
        window = args.supervisord_seconds
        if window is None:
            window = results[0].seconds
        if window > 0:
            results.append(
                run_soak(
                    "supervisord",
                    tmp / "supervisord",
                    cycles=args.cycles,
                    seconds=window,
                    flaps=args.flaps,
                )
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(markdown(results))
    for r in results:
        for problem in r.accounting.problems:
            print(f"- {r.core}: {problem}")
    ok = all(
        r.accounting.lost == 0
        and r.accounting.reordered == 0
        and r.zombies_end == 0
        and r.fds_after <= r.fds_before
        and r.rss_growth_kb <= 5 * 1024
        for r in results
        if r.core == "vigild"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
