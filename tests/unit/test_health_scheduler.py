"""The health plugin's scheduler: a heap of wake-ups, driven by hand with a fake clock.

The scheduler thread is not started: the tests call ``_dispatch(now)`` (what the thread
does at each wake-up), collect the probes it hands to the pool, and run them.
"""

from __future__ import annotations

import logging
import resource
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest

from healthchecks.breaker import BreakerState
from healthchecks.config import load_healthchecks
from healthchecks.result import CheckResult
from listeners.bus import Bus
from listeners.plugin import PluginContext
from listeners.plugins.health import HealthPlugin, Target
from manager.ini import read_ini


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class ScriptedCheck:
    """Passes or fails as told; counts its calls."""

    ok: bool = True
    calls: int = 0

    def check(self) -> CheckResult:
        self.calls += 1
        return CheckResult(self.ok, "ok" if self.ok else "HTTP 500", 0.001)

    def close(self) -> None:
        pass


@dataclass
class InlinePool:
    """Stands for the check pool: keeps what is submitted; ``run()`` runs it."""

    jobs: list[tuple[Callable[..., None], tuple[Any, ...]]] = field(default_factory=list)

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        self.jobs.append((fn, args))

    def run(self) -> int:
        jobs, self.jobs = self.jobs, []
        for fn, args in jobs:
            fn(*args)
        return len(jobs)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


CONF = """
[program:web]
command = true

[healthcheck:a]
program = web
type = http
url = http://127.0.0.1:9/a
period = 1
failure_threshold = 1
action = none

[healthcheck:b]
program = web
type = http
url = http://127.0.0.1:9/b
period = 1
failure_threshold = 1
action = none

[healthcheck:c]
program = web
type = http
url = http://127.0.0.1:9/c
period = 0.25
failure_threshold = 1
action = restart
max_restarts = 1
breaker_cooldown = 5
"""


@dataclass
class Rig:
    plugin: HealthPlugin
    clock: FakeClock
    pool: InlinePool
    checks: dict[str, ScriptedCheck]

    def state(self, state: str, pid: int = 100) -> None:
        with self.plugin.lock:
            for t in self.plugin._targets_for("web", "web"):
                self.plugin._apply_state(t, state, pid, self.clock.now, since=self.clock.now)

    def dispatch(self) -> float:
        with self.plugin.lock:
            return self.plugin._dispatch(self.clock.now)

    def target(self, name: str) -> Target:
        return self.plugin.targets[(name, "web", "web")]


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    conf = tmp_path / "supervisord.conf"
    conf.write_text(dedent(CONF).lstrip())
    ini = read_ini(conf, environ={})
    clock = FakeClock()
    ctx = PluginContext(
        name="health",
        config=ini,
        log=logging.getLogger("vigil.health"),
        stopping=threading.Event(),
        environ={},
        _client_factory=lambda: pytest.fail("no real supervisor in unit tests"),
        bus=Bus(),
    )
    plugin = HealthPlugin(ctx, load_healthchecks(ini), clock=clock)
    plugin.checks.shutdown()
    pool = InlinePool()
    plugin.checks = pool  # type: ignore[assignment]
    plugin.actions.shutdown()
    plugin.actions = InlinePool()  # type: ignore[assignment]
    rig = Rig(plugin, clock, pool, {})
    rig.state("RUNNING")
    for name in ("a", "b", "c"):
        check = ScriptedCheck()
        rig.checks[name] = check
        old = rig.target(name).check
        old.close()
        rig.target(name).check = check
    return rig


def test_each_target_is_queued_once_at_its_spread_offset(rig: Rig) -> None:
    offsets = {n: rig.target(n).offset for n in "abc"}
    assert [e[2].cfg.name for e in sorted(rig.plugin.heap)] == sorted(
        offsets, key=lambda n: offsets[n]
    )
    assert rig.dispatch() == pytest.approx(rig.clock.now + min(offsets.values()))
    assert rig.pool.jobs == []
    rig.clock.now += max(offsets.values())
    rig.dispatch()
    assert sorted(args[0].cfg.name for _, args in rig.pool.jobs) == ["a", "b", "c"]
    assert rig.dispatch() == float("inf")  # all in flight: nothing queued, nothing twice
    assert len(rig.pool.jobs) == 3


def test_probes_follow_their_periods_over_simulated_time(rig: Rig) -> None:
    start = rig.clock.now
    while rig.clock.now < start + 10:
        rig.dispatch()
        rig.pool.run()
        rig.clock.now += 0.01
    calls = {n: c.calls for n, c in rig.checks.items()}
    assert calls["a"] in (9, 10) and calls["b"] in (9, 10)
    assert 38 <= calls["c"] <= 40  # period 0.25
    assert all(rig.target(n).probe.statistics().skipped == 0 for n in "abc")


def test_a_stopped_process_leaves_only_stale_entries(rig: Rig) -> None:
    rig.state("STOPPED")
    assert all(rig.target(n).wake_at is None for n in "abc")
    rig.clock.now += 5
    assert rig.dispatch() == float("inf")
    assert rig.pool.jobs == [] and rig.plugin.heap == []
    rig.state("RUNNING", pid=101)  # probing resumes from the new RUNNING
    rig.clock.now += 1
    rig.dispatch()
    assert len(rig.pool.jobs) == 3


def test_the_breaker_cooldown_is_a_wake_up_of_its_own(rig: Rig) -> None:
    c = rig.target("c")
    rig.checks["c"].ok = False
    rig.clock.now += 0.25
    rig.dispatch()
    rig.pool.run()  # UNHEALTHY: the one restart allowed (max_restarts 1) is issued
    assert c.acting and c.breaker.statistics().restarts == 1
    rig.state("RUNNING", pid=102)  # restarted
    rig.clock.now += 0.25
    rig.dispatch()
    rig.pool.run()  # UNHEALTHY again: the breaker trips OPEN, no restart
    assert c.breaker.state is BreakerState.OPEN
    opened = c.breaker.next_change()
    assert opened is not None and c.wake_at is not None
    rig.state("STOPPED")  # not running: no probe; only the breaker's cooldown is queued
    assert c.wake_at == opened
    rig.clock.now = opened
    rig.dispatch()
    state: BreakerState = c.breaker.state
    assert state is BreakerState.HALF_OPEN


def test_a_nearer_wake_up_notifies_a_sleeping_scheduler(rig: Rig) -> None:
    notified: list[bool] = []
    rig.plugin.wake.notify = lambda n=1: notified.append(True)  # type: ignore[method-assign]
    rig.plugin.sleep_until = rig.clock.now + 100
    rig.state("STOPPED")
    rig.state("RUNNING", pid=103)
    assert notified and rig.plugin.sleep_until < rig.clock.now + 1
    notified.clear()
    rig.plugin.sleep_until = -float("inf")  # awake: no notification needed
    rig.state("STOPPED")
    rig.state("RUNNING", pid=104)
    assert not notified


class FakeSupervisor:
    def __init__(self, infos: list[dict[str, Any]]) -> None:
        self.supervisor = self
        self.infos = infos

    def getAllProcessInfo(self) -> list[dict[str, Any]]:
        return self.infos


def test_reconcile_rebuilds_the_heap_without_stale_entries(rig: Rig) -> None:
    for pid in range(200, 300):  # many re-schedules leave stale entries behind
        rig.clock.now += 0.001
        rig.state("RUNNING", pid=pid)
    assert len(rig.plugin.heap) > 300
    live = {n: rig.target(n).wake_at for n in "abc"}
    now = int(rig.clock.now)
    info = {"group": "web", "name": "web", "statename": "RUNNING", "pid": 299}
    client = FakeSupervisor([{**info, "now": now, "start": now}])
    rig.plugin.ctx._client_factory = lambda: client  # type: ignore[assignment,return-value]
    rig.plugin.reconcile()
    assert sorted((e[0], e[2].cfg.name) for e in rig.plugin.heap) == sorted(
        (w, n) for n, w in live.items()
    )


def test_setup_raises_the_open_files_limit_for_keep_alive_connections() -> None:
    """Run in a child: the soft limit is lowered to 1024, then raised towards the need."""
    code = dedent(
        """
        import logging, resource, threading
        from listeners.plugin import PluginContext
        from listeners.plugins.health import raise_fd_limit
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
        ctx = PluginContext("health", None, logging.getLogger("t"), threading.Event(), {},
                            lambda: None)
        raise_fd_limit(ctx, 3000)
        print(resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    ).stdout.split()
    soft, hard = int(out[0]), int(out[1])
    assert soft == (3000 if hard == resource.RLIM_INFINITY else min(3000, hard))


def test_a_scheduler_error_is_logged_and_probing_carries_on(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    def once() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("bug in a wake-up")
        rig.plugin.ctx.stopping.set()

    rig.plugin._run_once = once  # type: ignore[method-assign]
    rig.plugin._run()
    assert len(calls) == 2
    assert "scheduler error; carrying on" in caplog.text
    assert "bug in a wake-up" in caplog.text
