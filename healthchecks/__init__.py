"""Health checks, probe semantics and the restart circuit breaker — pure logic.

This package knows nothing about supervisord, event listeners or XML-RPC: the
``health`` plugin of ``vigil-listener`` drives it. Clocks are injected
everywhere (``time.monotonic`` by default).

* check primitives, each ``check() -> CheckResult`` and never raising:
  :class:`HttpCheck`, :class:`TcpCheck`, :class:`HeartbeatCheck`,
  :class:`ExecCheck`, :class:`MemoryCheck`;
* :class:`Probe` — Kubernetes probe semantics per process (initial delay,
  period, failure/success thresholds) emitting :class:`Verdict`\\ s;
* :class:`Breaker` — CLOSED/OPEN/HALF_OPEN around restarts, plus
  :class:`FatalBackoff` for FATAL recovery;
* :func:`load_healthchecks` / :func:`build_check` — ``[healthcheck:x]``
  sections to configs to checks.
"""

from healthchecks.breaker import Breaker as Breaker
from healthchecks.breaker import BreakerEvent as BreakerEvent
from healthchecks.breaker import BreakerSpec as BreakerSpec
from healthchecks.breaker import BreakerState as BreakerState
from healthchecks.breaker import BreakerStatistics as BreakerStatistics
from healthchecks.breaker import BreakerTransition as BreakerTransition
from healthchecks.breaker import FatalBackoff as FatalBackoff
from healthchecks.config import Action as Action
from healthchecks.config import ActionKind as ActionKind
from healthchecks.config import CheckType as CheckType
from healthchecks.config import HealthCheckConfig as HealthCheckConfig
from healthchecks.config import ProgramSelector as ProgramSelector
from healthchecks.config import build_breaker as build_breaker
from healthchecks.config import build_check as build_check
from healthchecks.config import build_probe as build_probe
from healthchecks.config import load_healthchecks as load_healthchecks
from healthchecks.execcheck import ExecCheck as ExecCheck
from healthchecks.heartbeat import HeartbeatCheck as HeartbeatCheck
from healthchecks.http import HttpCheck as HttpCheck
from healthchecks.memory import MemoryCheck as MemoryCheck
from healthchecks.probe import Probe as Probe
from healthchecks.probe import ProbeSpec as ProbeSpec
from healthchecks.probe import ProbeStatistics as ProbeStatistics
from healthchecks.probe import Verdict as Verdict
from healthchecks.result import Check as Check
from healthchecks.result import CheckResult as CheckResult
from healthchecks.tcp import TcpCheck as TcpCheck
