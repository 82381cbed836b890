"""Heartbeat check: the program proved it was alive less than ``max_age`` seconds ago.

Two kinds of proof count, the freshest wins:

* :meth:`HeartbeatCheck.beat`, called by the driver when the program sends a
  heartbeat (a ``PROCESS_COMMUNICATION`` event), timed on the monotonic
  ``clock``;
* when ``file`` is given, the file's modification time (the program touches
  it), compared with the wall clock ``wall_clock`` because mtimes are wall time.

The grace period starts at construction and again at :meth:`reset` (call it when
the process (re)starts): a program that has not beaten yet is given ``max_age``
seconds to do so. ``beat`` and ``check`` may run on different threads (each
only reads or replaces one float).
"""

from __future__ import annotations

import time
from pathlib import Path

from healthchecks.result import CheckResult, Clock, run_guarded

__all__ = ["HeartbeatCheck"]


class HeartbeatCheck:
    """Fails after ``max_age`` seconds without a heartbeat.

    Args:
        max_age: seconds a heartbeat stays fresh.
        file: a file whose mtime also counts as a heartbeat (a missing file
            counts as none).
        clock: monotonic clock for :meth:`beat`, :meth:`reset` and ``duration``.
        wall_clock: wall clock the file's mtime is compared with.

    Raises:
        ValueError: ``max_age`` is not positive.
    """

    def __init__(
        self,
        max_age: float,
        *,
        file: Path | None = None,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
    ) -> None:
        if max_age <= 0:
            raise ValueError("max_age must be positive")
        self.max_age = float(max_age)
        self.file = file
        self._clock = clock
        self._wall_clock = wall_clock
        #: monotonic time of the last beat, or of the start of the grace period
        self._last: float = clock()
        #: whether ``_last`` is a real beat (else it is a grace start)
        self._beaten = False

    def beat(self, at: float | None = None) -> None:
        """Record a heartbeat at ``at`` (default: now on ``clock``).

        A beat older than the last one, or than the last :meth:`reset` (a
        heartbeat of the previous run, delivered late), is ignored.
        """
        at = self._clock() if at is None else at
        if at < self._last:
            return
        self._last = at
        self._beaten = True

    def reset(self, at: float | None = None) -> None:
        """Forget past beats; the grace period starts at ``at`` (default: now)."""
        self._last = self._clock() if at is None else at
        self._beaten = False

    def check(self) -> CheckResult:
        """Judge the freshest heartbeat; never raises."""
        return run_guarded(self._check, self._clock)

    def close(self) -> None:
        """Nothing is held."""

    def __repr__(self) -> str:
        return f"HeartbeatCheck(max_age={self.max_age}, file={self.file})"

    def _file_age(self) -> tuple[float | None, str]:
        """Seconds since the file was modified (``None`` if unknown) and why unknown."""
        if self.file is None:
            return None, ""
        try:
            mtime = self.file.stat().st_mtime
        except FileNotFoundError:
            return None, f"; {self.file} does not exist"
        except OSError as exc:
            return None, f"; cannot stat {self.file}: {exc.strerror or exc}"
        return max(0.0, self._wall_clock() - mtime), ""

    def _check(self) -> tuple[bool, str]:
        beat_age = max(0.0, self._clock() - self._last)
        file_age, file_note = self._file_age()
        source = "last heartbeat" if self._beaten else "no heartbeat yet, grace started"
        proofs = [(beat_age, source)]
        if file_age is not None:
            proofs.append((file_age, f"{self.file} touched"))
        age, source = min(proofs)
        said = f"{source} {age:.1f}s ago (max_age {self.max_age:g}s){file_note}"
        return age <= self.max_age, said
