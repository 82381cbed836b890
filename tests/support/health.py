"""Test helpers for HTTP health checks."""

from __future__ import annotations

import threading

from healthchecks.http import HttpCheck
from healthchecks.reactor import HttpReactor
from healthchecks.result import CheckResult


class ReactorCheck(HttpCheck):
    """An HttpCheck whose ``check()`` runs on an :class:`HttpReactor` when it can."""

    reactor: HttpReactor

    def check(self) -> CheckResult:
        if not self.nonblocking:
            return super().check()
        got: list[CheckResult] = []
        finished = threading.Event()

        def done(result: CheckResult, started: float) -> None:
            got.append(result)
            finished.set()

        self.reactor.submit(self, done)
        assert finished.wait(10), "the reactor never completed the check"
        return got[0]
