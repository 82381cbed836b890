"""Helpers for the fault-injection scenarios: /proc inspection, log timing, delivery accounting.

Everything reads /proc directly (Linux), so tests can check which processes really exist —
by pid, by process group, or by a token in their command line (the test's tmp path) — without
trusting what the core reports.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tests.support.supervisor import PYTHON, Supervisor

__all__ = [
    "CHILD",
    "LISTENER",
    "Delivery",
    "Record",
    "account",
    "alive",
    "children_of",
    "cpu_seconds",
    "figure",
    "group_members",
    "kill_pids",
    "log_entries",
    "pids_with_token",
    "read_records",
    "rss_kib",
    "wait_until",
]

PROGRAMS = Path(__file__).resolve().parents[1] / "reliability" / "programs"
#: ``command=`` prefixes of the helper programs (a mode and its arguments follow).
LISTENER = f"{PYTHON} {PROGRAMS / 'listener.py'}"
CHILD = f"{PYTHON} {PROGRAMS / 'child.py'}"

_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\w+) (.*)$", re.MULTILINE)


# ---------------------------------------------------------------------------------------------
# /proc


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def _all_pids() -> Iterator[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            yield int(entry.name)


def group_members(pgid: int) -> set[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    found = set()
    for pid in _all_pids():
        fields = _stat(pid)
        if fields is not None and fields[0] != "Z" and int(fields[2]) == pgid:
            found.add(pid)
    return found


def pids_with_token(token: str) -> set[int]:
    """Live processes whose command line contains ``token`` (use the test's tmp path)."""
    needle = token.encode()
    found = set()
    for pid in _all_pids():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline and alive(pid):
            found.add(pid)
    return found


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used by ``pid`` so far."""
    fields = _stat(pid)
    assert fields is not None, f"{pid} is gone"
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def kill_pids(pids: Iterable[int]) -> None:
    """SIGKILL each of ``pids`` that is still alive (teardown of leftovers we created)."""
    for pid in pids:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def wait_until(predicate: object, timeout: float, what: str, poll: float = 0.01) -> float:
    """Poll ``predicate()`` until true; return the seconds it took, else AssertionError."""
    assert callable(predicate)
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start >= timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(poll)
    return time.monotonic() - start


# ---------------------------------------------------------------------------------------------
# the core's main log


def log_entries(sv: Supervisor) -> list[tuple[float, str]]:
    """(epoch seconds, message) for every line of the core's main log."""
    return [
        (datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").timestamp(), m[3])
        for m in _LOG_LINE.finditer(sv.log_text())
    ]


# ---------------------------------------------------------------------------------------------
# delivery accounting (records written by programs/listener.py ``record``)


@dataclass(frozen=True)
class Record:
    pid: int
    serial: int
    poolserial: int
    eventname: str
    ident: str


def read_records(path: Path) -> list[Record]:
    """Every complete line of a ``record`` listener's file, in arrival order."""
    if not path.exists():
        return []
    out = []
    text = path.read_text()
    for line in text[: text.rfind("\n") + 1].splitlines():  # not a line still being written
        parts = line.split()
        if len(parts) == 5:
            out.append(Record(int(parts[0]), int(parts[1]), int(parts[2]), parts[3], parts[4]))
    return out


@dataclass(frozen=True)
class Delivery:
    """What a pool received compared with what was sent."""

    sent: int
    delivered: int  # distinct events received at least once
    duplicates: int  # receptions beyond the first (redeliveries)
    lost: int  # sent, never received
    order_violations: int  # first receptions that came after a later event's first reception
    unexpected: int  # received but never sent

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.order_violations == 0 and self.unexpected == 0


def account(sent: list[str], received: list[str]) -> Delivery:
    """Compare the idents ``sent`` (in order) with those ``received`` (in arrival order)."""
    rank = {ident: i for i, ident in enumerate(sent)}
    first: list[str] = []
    seen: set[str] = set()
    for ident in received:
        if ident not in seen:
            seen.add(ident)
            first.append(ident)
    known = [rank[i] for i in first if i in rank]
    violations = sum(1 for a, b in itertools.pairwise(known) if b < a)
    return Delivery(
        sent=len(sent),
        delivered=len(seen & rank.keys()),
        duplicates=len(received) - len(seen),
        lost=len(rank.keys() - seen),
        order_violations=violations,
        unexpected=len(seen - rank.keys()),
    )


# ---------------------------------------------------------------------------------------------
# figures


def figure(scenario: str, core: str, **values: object) -> None:
    """Print one measured figure (``pytest -s`` shows it) and append it as a JSON line to
    ``$VIGIL_FIGURES`` when that is set (RELIABILITY.md tables are made from those)."""
    line = json.dumps({"scenario": scenario, "core": core, **values}, sort_keys=True)
    print(f"FIGURE {line}")
    target = os.environ.get("VIGIL_FIGURES")
    if target:
        with open(target, "a") as f:
            f.write(line + "\n")


def children_of(pid: int) -> set[int]:
    """Live (non-zombie) processes whose parent is ``pid``."""
    found = set()
    for p in _all_pids():
        fields = _stat(p)
        if fields is not None and fields[0] != "Z" and int(fields[1]) == pid:
            found.add(p)
    return found
