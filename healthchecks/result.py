"""What every check returns, and the shape every check has.

A check is a small object with one method, ``check() -> CheckResult`` (the
prometheus ``Collector`` shape), plus ``close()`` to release what it holds (an
HTTP connection pool; a no-op for the others). ``check()`` never raises: any
error becomes ``ok=False`` with a one-line ``detail`` that says what went wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Check", "CheckResult", "Clock", "run_guarded", "short"]

#: A monotonic clock: seconds as a float, only differences are meaningful.
Clock = Callable[[], float]

#: Longest ``detail`` a check produces (alerts and logs quote it whole).
MAX_DETAIL = 1000


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check."""

    #: the check passed
    ok: bool
    #: one line for humans: ``HTTP 500 from http://127.0.0.1:8081/healthz``
    detail: str
    #: seconds the check took, measured on the check's clock
    duration: float


@runtime_checkable
class Check(Protocol):
    """One health check of one process."""

    def check(self) -> CheckResult:
        """Run the check once; never raises."""
        ...

    def close(self) -> None:
        """Release held resources; ``check()`` must not be called afterwards."""
        ...


def short(text: str, limit: int = MAX_DETAIL) -> str:
    """``text`` on one line, cut to ``limit`` characters (an ellipsis marks the cut)."""
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


def run_guarded(body: Callable[[], tuple[bool, str]], clock: Clock) -> CheckResult:
    """Time ``body`` on ``clock`` and turn its ``(ok, detail)`` into a result.

    An exception escaping ``body`` is a bug in the check, not a crash of the
    caller: it becomes ``ok=False`` with ``internal error: <Type>: <message>``.
    """
    start = clock()
    try:
        ok, detail = body()
    except Exception as exc:
        ok, detail = False, f"internal error: {type(exc).__name__}: {exc}"
    return CheckResult(ok, short(detail), clock() - start)
