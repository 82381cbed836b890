"""Memory check: the process's resident set stays under a limit (superlance memmon).

RSS is read from ``<proc>/<pid>/status`` (``VmRSS``), not by running ``ps``.
With ``include_children`` the RSS of every descendant is added; descendants are
found through the parent pid in ``<proc>/*/stat``. The check fails once
``consecutive`` samples in a row were over the limit; a sample under it resets
the count (so does :meth:`MemoryCheck.reset`, for a restarted process). An
error (no pid, the process vanished, ``/proc`` unreadable) fails the check
without touching the count. ``proc`` is injectable so tests use a fake tree, as
prometheus_client's process collector does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from healthchecks.result import CheckResult, Clock, run_guarded

__all__ = ["MemoryCheck", "descendants", "format_bytes", "read_ppid", "read_rss"]

_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}


def read_rss(proc: Path, pid: int) -> int:
    """Resident set size of ``pid`` in bytes (0 for a process without one, e.g. a zombie).

    Raises:
        OSError: the process does not exist (``FileNotFoundError``) or is unreadable.
        ValueError: a malformed ``VmRSS`` line.
    """
    text = (proc / str(pid) / "status").read_text(errors="replace")
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            fields = line.split()
            unit = fields[2].lower() if len(fields) > 2 else "kb"
            factor = _UNITS.get(unit)
            if factor is None or len(fields) < 2:
                raise ValueError(f"malformed VmRSS line: {line!r}")
            return int(fields[1]) * factor
    return 0


def read_ppid(proc: Path, pid: int) -> int:
    """Parent pid of ``pid`` from ``<proc>/<pid>/stat`` (the comm may hold spaces and ``)``).

    Raises:
        OSError, ValueError, IndexError: missing or malformed stat file.
    """
    text = (proc / str(pid) / "stat").read_text(errors="replace")
    after_comm = text[text.rindex(")") + 1 :].split()
    return int(after_comm[1])


def descendants(proc: Path, pid: int) -> list[int]:
    """Every descendant of ``pid`` (children first), from one scan of ``<proc>``."""
    children: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            children.setdefault(read_ppid(proc, int(entry.name)), []).append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue  # exited while we looked, or not a process directory
    found: list[int] = []
    seen = {pid}
    todo = sorted(children.get(pid, []))
    while todo:
        child = todo.pop(0)
        if child in seen:
            continue
        seen.add(child)
        found.append(child)
        todo += sorted(children.get(child, []))
    return found


def format_bytes(size: int) -> str:
    """``1536`` → ``1.5 KiB``; binary units as supervisord's ``KB`` is 1024."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


class MemoryCheck:
    """Fails after ``consecutive`` samples with RSS over ``limit_bytes``.

    Args:
        limit_bytes: the RSS limit.
        pid_source: returns the current pid of the process, ``None`` if it has none.
        include_children: add the RSS of all descendants.
        consecutive: over-limit samples in a row before the check fails.
        proc: the procfs mount point.

    Raises:
        ValueError: non-positive ``limit_bytes`` or ``consecutive``.
    """

    def __init__(
        self,
        limit_bytes: int,
        *,
        pid_source: Callable[[], int | None],
        include_children: bool = False,
        consecutive: int = 1,
        proc: Path = Path("/proc"),
        clock: Clock = time.monotonic,
    ) -> None:
        if limit_bytes <= 0:
            raise ValueError("limit_bytes must be positive")
        if consecutive < 1:
            raise ValueError("consecutive must be at least 1")
        self.limit_bytes = limit_bytes
        self.pid_source = pid_source
        self.include_children = include_children
        self.consecutive = consecutive
        self.proc = proc
        self._clock = clock
        #: over-limit samples in a row so far
        self.over_count = 0

    def reset(self) -> None:
        """Forget over-limit samples (the process restarted)."""
        self.over_count = 0

    def check(self) -> CheckResult:
        """Sample RSS once; never raises."""
        return run_guarded(self._check, self._clock)

    def close(self) -> None:
        """Nothing is held."""

    def __repr__(self) -> str:
        return f"MemoryCheck(limit={format_bytes(self.limit_bytes)})"

    def sample(self, pid: int) -> tuple[int, int]:
        """``(rss_bytes, descendants_counted)`` for ``pid``.

        Raises:
            OSError, ValueError: ``pid`` itself cannot be read.
        """
        rss = read_rss(self.proc, pid)
        counted = 0
        if self.include_children:
            for child in descendants(self.proc, pid):
                try:
                    rss += read_rss(self.proc, child)
                except (OSError, ValueError):
                    continue  # exited meanwhile
                counted += 1
        return rss, counted

    def _check(self) -> tuple[bool, str]:
        pid = self.pid_source()
        if pid is None:
            return False, "no pid: the process is not running"
        try:
            rss, counted = self.sample(pid)
        except FileNotFoundError:
            return False, f"pid {pid} does not exist"
        except (OSError, ValueError) as exc:
            return False, f"cannot read the RSS of pid {pid}: {exc}"
        whose = f"pid {pid}" + (f" + {counted} descendants" if self.include_children else "")
        said = f"RSS {format_bytes(rss)} ({whose})"
        limit = format_bytes(self.limit_bytes)
        if rss <= self.limit_bytes:
            self.over_count = 0
            return True, f"{said} within limit {limit}"
        self.over_count += 1
        over = f"{said} over limit {limit}"
        if self.over_count < self.consecutive:
            return True, f"{over} ({self.over_count} of {self.consecutive} samples)"
        return False, f"{over} for {self.over_count} consecutive samples"
