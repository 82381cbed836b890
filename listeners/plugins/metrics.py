"""The ``metrics`` plugin: Prometheus metrics of the supervisor, its processes and Vigil's checks.

Theory of operation
-------------------
:class:`MetricsCollector` is a prometheus-client custom collector over an in-memory model
guarded by one lock. Nothing is computed on a timer: every scrape reads the model as it is
(``collect()`` for prometheus-client tooling, ``exposition()`` for the HTTP endpoint; both
render the same :class:`Family` list, see below). The model is fed from four sides:

* PROCESS_STATE events (the plugin's queued handler): state codes, start times and every
  counter — restarts by cause, exits, FATAL transitions;
* ``getAllProcessInfo`` on a background thread at start and every ``reconcile`` seconds,
  plus ``getProcessInfo`` some 50 ms after a STARTING, EXITED, BACKOFF or FATAL event (events
  carry no exit status and no exact start time). A reconcile overwrites the gauges of a
  process unless an event for it arrived while the call was in flight (the event is newer),
  so a missed event is wrong for at most one period; counters are never touched by it;
* the health plugin's bus topics (``health.result``/``.verdict``/``.breaker``/``.action``);
* the listener runtime's ``statistics()``, read at scrape time.

Restart causes (``supervisor_process_restarts_total{cause}``), decided per STARTING event
from its ``from_state``:

=================  ===========================================================================
``crash``          from EXITED after an unexpected exit (supervisord's autorestart)
``exit``           from EXITED after an expected exit (``autorestart = true``)
``backoff``        from BACKOFF: a retry of a start that died before ``startsecs``
``health``         the health plugin restarted it (its ``health.action``, either order)
``fatal_recovery`` the health plugin's FATAL recovery started it
``manual``         from STOPPED (after a stop by request) or FATAL, by anyone else
=================  ===========================================================================

A process's first start (STOPPED→STARTING never preceded by a stop) is not a restart.
Events do not say who issued a start, so a start from STOPPED/FATAL waits ``START_GRACE``
seconds for the health plugin to claim it before it counts as ``manual``; a start from EXITED
by hand counts as ``crash``/``exit``. Counters live in the listener process: when the listener
restarts they start again from 0 (Prometheus' ``rate``/``increase`` handle the reset), while
gauges are right again after the first reconcile.

``vigil_breaker_state``: 0 closed, 1 half-open, 2 open. With ``node_exporter_compat`` the
four ``node_supervisord_*`` series of node_exporter's deprecated collector are added with its
label names and meanings (``up`` is 1 in STARTING, RUNNING and STOPPING; the start time is
there only while up); the start time is typed gauge, not counter as node_exporter had it,
so that its name stays the same in the text format.

The endpoint serves the Prometheus text format 0.0.4 on ``/metrics`` (gzip when asked),
behind optional HTTP Basic auth (send it over TLS beyond loopback) and TLS through
prometheus-client's ``start_http_server(certfile=, keyfile=)``. Each process and check keeps
its lines rendered until one of its values changes, so a scrape of 1,000 processes and 1,000
checks costs milliseconds (``bench/metrics.py``).

Config, section ``[metrics]`` of the supervisord file (values get supervisord's
``%(ENV_X)s``/``%(here)s`` expansion)::

    listen                127.0.0.1:9876   HOST:PORT, [IPv6]:PORT, :PORT (all interfaces); port 0:
                                           any free one (logged)
    username, password    (none)           HTTP Basic auth; both or neither
    tls_cert, tls_key     (none)           serve HTTPS; both or neither; relative to the file
    reconcile             15               seconds between getAllProcessInfo reconciles (> 0)
    node_exporter_compat  false            also export node_supervisord_{up,state,...}
"""

from __future__ import annotations

import base64
import binascii
import difflib
import gzip
import hmac
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer
from wsgiref.types import StartResponse, WSGIEnvironment

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

from healthchecks.breaker import BreakerState
from listeners.plugin import PluginContext, PluginError
from listeners.plugins.health import BreakerChange, CheckOutcome, Remediation, VerdictChange
from listeners.runtime import RuntimeStatistics
from manager.events import EventType, ProcessStateChange
from manager.ini import IniFile, Section
from manager.protocol import Notification
from manager.rpcclient import RPCError, RPCFault
from manager.states import ProcessState

__all__ = [
    "BREAKER_VALUES",
    "DURATION_BUCKETS",
    "RESTART_CAUSES",
    "Family",
    "MetricsCollector",
    "MetricsConfig",
    "MetricsPlugin",
    "MetricsServer",
    "load_metrics_config",
    "render_text",
    "setup",
]

SECTION = "metrics"
DEFAULT_LISTEN = "127.0.0.1:9876"
KEYS = (
    "listen",
    "username",
    "password",
    "tls_cert",
    "tls_key",
    "reconcile",
    "node_exporter_compat",
)
#: Label values of ``supervisor_process_restarts_total{cause}`` (all exported, from 0).
RESTART_CAUSES = ("crash", "exit", "backoff", "health", "fatal_recovery", "manual")
#: ``vigil_breaker_state`` values.
BREAKER_VALUES: Mapping[BreakerState, int] = {
    BreakerState.CLOSED: 0,
    BreakerState.HALF_OPEN: 1,
    BreakerState.OPEN: 2,
}
#: Upper bounds of ``vigil_check_duration_seconds`` (prometheus-client's defaults).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Seconds a start from STOPPED/FATAL waits for the health plugin to claim it.
START_GRACE = 0.5
#: Seconds a health action waits for the STARTING event it caused.
HINT_TTL = 5.0
#: A start time from a snapshot older than the event's by more than this is a previous run's
#: (the supervisor truncates to seconds; the event arrives a little after the spawn).
START_SLACK = 5.0
#: More processes than this to refresh at once: one getAllProcessInfo instead.
REFRESH_BATCH = 8
#: Pause before a refresh, so that a burst of exits costs one round of calls.
REFRESH_DELAY = 0.05
#: A storm of events refreshes with getAllProcessInfo at most this often (seconds).
FULL_REFRESH_EVERY = 1.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

S = ProcessState
#: node_exporter's supervisord collector calls these states up.
_NODE_UP = frozenset({S.STARTING, S.RUNNING, S.STOPPING})
#: Events after which the process's exact start time or exit status is fetched.
_REFRESH_STATES = frozenset({"STARTING", "EXITED", "BACKOFF", "FATAL"})
#: ``le`` values as prometheus-client writes them (its Go-style float formatting; untyped).
_go_float: Callable[[float], str] = floatToGoString
_LE = (*(_go_float(b) for b in DURATION_BUCKETS), "+Inf")

#: One sample: (name suffix, label values, the same labels rendered, value).
Sample = tuple[str, tuple[str, ...], str, float]


# --- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricsConfig:
    host: str = "127.0.0.1"
    port: int = 9876
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: seconds between getAllProcessInfo reconciles
    reconcile: float = 15.0
    node_exporter_compat: bool = False

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or ``:PORT`` (all interfaces) → (host, port).

    Raises:
        ValueError: with the reason.
    """
    host, sep, port_text = text.strip().rpartition(":")
    if not sep:
        raise ValueError("not HOST:PORT (e.g. 127.0.0.1:9876, [::1]:9876, :9876)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("an IPv6 address needs brackets, e.g. [::1]:9876")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"port {port_text!r} is not a number") from None
    if not 0 <= port < 65536:
        raise ValueError("port must be 0-65535 (0: any free port)")
    return host or "0.0.0.0", port


def load_metrics_config(ini: IniFile | None) -> MetricsConfig:
    """Read ``[metrics]`` (defaults when there is no file or no section).

    Raises:
        ConfigError: the first problem, naming file, section, key and value.
    """
    section = ini.section(SECTION) if ini is not None else None
    if section is None:
        return MetricsConfig()
    for key in section.values:
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise section.error(key, f"unknown key{hint}; known: {', '.join(KEYS)}")
    listen = section.expand("listen", {}, DEFAULT_LISTEN)
    assert listen is not None
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        raise section.error("listen", str(exc), value=listen) from None
    username, password = _pair(section, "username", "password")
    tls_cert, tls_key = _pair(section, "tls_cert", "tls_key")
    reconcile = section.get_float("reconcile", 15.0, names={})
    if reconcile <= 0:
        raise section.error("reconcile", "must be positive")
    return MetricsConfig(
        host=host,
        port=port,
        username=username,
        password=password,
        tls_cert=_file(section, "tls_cert", tls_cert),
        tls_key=_file(section, "tls_key", tls_key),
        reconcile=reconcile,
        node_exporter_compat=section.get_bool("node_exporter_compat", False, names={}),
    )


def _pair(section: Section, a: str, b: str) -> tuple[str | None, str | None]:
    first, second = section.expand(a, {}), section.expand(b, {})
    for key, value, other, other_value in ((a, first, b, second), (b, second, a, first)):
        if value == "":
            raise section.error(key, "must not be empty")
        if value is not None and other_value is None:
            raise section.error(other, f"required when {key} is set")
    return first, second


def _file(section: Section, key: str, value: str | None) -> Path | None:
    if value is None:
        return None
    path = section.here / value  # an absolute value replaces here
    if not path.is_file():
        raise section.error(key, f"no such file: {path}", value=value)
    return path


# --- the model -------------------------------------------------------------------------------


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _labels(names: Iterable[str], values: Iterable[str]) -> str:
    return ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True))


_CAUSE = {c: f',cause="{c}"' for c in RESTART_CAUSES}
_EXPECTED = {True: ',expected="true"', False: ',expected="false"'}


@dataclass(frozen=True)
class Family:
    """One metric family as both renderings see it.

    ``name`` is the family name (a counter's samples add ``_total``); ``samples`` hold
    their labels rendered too, so that rendering formats nothing per label.
    """

    name: str
    kind: str
    help: str
    labelnames: tuple[str, ...]
    samples: list[Sample]
    #: the samples' text-format lines, when rendered ahead (``samples`` is then empty)
    text: str | None = None


#: Label values and their rendering, computed once per series.
_LabelSet = tuple[tuple[str, ...], str]

_GN = ("group", "name")
_CGN = ("check", "group", "name")
#: The per-process and per-check families, in exposition order: name -> (type, help, labels).
_SERIES_FAMILIES: Mapping[str, tuple[str, str, tuple[str, ...]]] = {
    "supervisor_process_state": (
        "gauge",
        "supervisord process state code: 0 STOPPED, 10 STARTING, 20 RUNNING, 30 BACKOFF, "
        "40 STOPPING, 100 EXITED, 200 FATAL, 1000 UNKNOWN",
        _GN,
    ),
    "supervisor_process_up": ("gauge", "1 when the process is RUNNING", _GN),
    "supervisor_process_start_time_seconds": (
        "gauge",
        "Unix time the process was last started",
        _GN,
    ),
    "supervisor_process_exit_status": (
        "gauge",
        "Exit status of the process's last exit (supervisord's exitstatus)",
        _GN,
    ),
    "supervisor_process_restarts": (
        "counter",
        "Starts of a process that had run before, by cause: crash, exit, backoff, health, "
        "fatal_recovery, manual (since this listener started)",
        (*_GN, "cause"),
    ),
    "supervisor_process_exits": (
        "counter",
        "EXITED transitions, by whether the exit status was in exitcodes",
        (*_GN, "expected"),
    ),
    "supervisor_process_fatal": ("counter", "FATAL transitions", _GN),
    "vigil_check_up": ("gauge", "1 when the check's last probe passed", _CGN),
    "vigil_check_healthy": (
        "gauge",
        "The probe verdict with thresholds applied: 1 healthy, 0 unhealthy",
        _CGN,
    ),
    "vigil_check_duration_seconds": ("histogram", "Duration of health check probes", _CGN),
    "vigil_check_failures": ("counter", "Failed probes", _CGN),
    "vigil_breaker_state": (
        "gauge",
        "Restart circuit breaker: 0 closed, 1 half-open, 2 open",
        _CGN,
    ),
    "vigil_remediations": (
        "counter",
        "Actions the health plugin took, by action kind and result (ok, error)",
        (*_CGN, "action", "result"),
    ),
    "node_supervisord_up": (
        "gauge",
        "node_exporter compatible: 1 when STARTING, RUNNING or STOPPING",
        _GN,
    ),
    "node_supervisord_state": ("gauge", "node_exporter compatible: process state code", _GN),
    "node_supervisord_exit_status": ("gauge", "node_exporter compatible: last exit status", _GN),
    "node_supervisord_start_time_seconds": (
        "gauge",
        "node_exporter compatible: Unix start time, while up",
        _GN,
    ),
}


@dataclass(eq=False)
class _Process:
    group: str
    name: str
    state: ProcessState | None = None
    #: epoch seconds of the last start (supervisord's ``start``); 0 = never / unknown
    start: float = 0.0
    exit_status: int | None = None
    #: the model's event sequence number when an event last touched this process
    seq: int = 0
    last_exit_expected: bool | None = None
    #: stopped by request after running: the next start from STOPPED is a restart
    restartable: bool = False
    restarts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESTART_CAUSES, 0))
    exits: dict[bool, int] = field(default_factory=lambda: {False: 0, True: 0})
    fatal: int = 0
    #: a start not yet attributed: (cause if nobody claims it, deadline)
    pending: tuple[str, float] | None = None
    #: a health action not yet matched to its STARTING event: (cause, expiry)
    hint: tuple[str, float] | None = None

    def __post_init__(self) -> None:
        self.values = (self.group, self.name)
        self.text = _labels(("group", "name"), self.values)
        self.cause_labels: list[_LabelSet] = [
            ((*self.values, c), self.text + _CAUSE[c]) for c in RESTART_CAUSES
        ]
        self.exit_labels: list[_LabelSet] = [
            ((*self.values, str(e).lower()), self.text + _EXPECTED[e]) for e in (False, True)
        ]
        self._signature: tuple[object, ...] = ()
        self._rendered: dict[str, str] = {}

    def rows(self, compat: bool) -> dict[str, list[Sample]]:
        """This process's samples, by family (see :data:`_SERIES_FAMILIES`)."""
        v, t, state = self.values, self.text, self.state
        out: dict[str, list[Sample]] = {
            "supervisor_process_restarts": [
                ("_total", lv, lt, n)
                for (lv, lt), n in zip(self.cause_labels, self.restarts.values(), strict=True)
            ],
            "supervisor_process_exits": [
                ("_total", lv, lt, self.exits[e])
                for e, (lv, lt) in zip((False, True), self.exit_labels, strict=True)
            ],
            "supervisor_process_fatal": [("_total", v, t, self.fatal)],
        }
        if state is not None:
            out["supervisor_process_state"] = [("", v, t, state.value)]
            out["supervisor_process_up"] = [("", v, t, int(state is S.RUNNING))]
        if self.start > 0:
            out["supervisor_process_start_time_seconds"] = [("", v, t, self.start)]
        if self.exit_status is not None:
            out["supervisor_process_exit_status"] = [("", v, t, self.exit_status)]
        if compat and state is not None:
            node_up = state in _NODE_UP
            out["node_supervisord_up"] = [("", v, t, int(node_up))]
            out["node_supervisord_state"] = [("", v, t, state.value)]
            if self.exit_status is not None:
                out["node_supervisord_exit_status"] = [("", v, t, self.exit_status)]
            if node_up and self.start > 0:
                out["node_supervisord_start_time_seconds"] = [("", v, t, self.start)]
        return out

    def rendered(self, compat: bool) -> dict[str, str]:
        """:meth:`rows` as text-format lines, re-rendered only when a value changed."""
        signature = (
            self.state,
            self.start,
            self.exit_status,
            *self.restarts.values(),
            self.exits[False],
            self.exits[True],
            self.fatal,
            compat,
        )
        if signature != self._signature:
            self._rendered = {f: _lines(f, rows) for f, rows in self.rows(compat).items()}
            self._signature = signature
        return self._rendered


@dataclass(eq=False)
class _Check:
    values: tuple[str, str, str]
    up: bool = True
    healthy: bool = True
    breaker: BreakerState = BreakerState.CLOSED
    failures: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    total: float = 0.0
    count: int = 0
    remediations: dict[tuple[str, str], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.text = _labels(("check", "group", "name"), self.values)
        self.bucket_labels: list[_LabelSet] = [
            ((*self.values, le), f'{self.text},le="{le}"') for le in _LE
        ]
        self._signature: tuple[object, ...] = ()
        self._rendered: dict[str, str] = {}

    def rows(self, compat: bool) -> dict[str, list[Sample]]:
        """This check's samples, by family (see :data:`_SERIES_FAMILIES`)."""
        v, t = self.values, self.text
        duration: list[Sample] = []
        cumulative = 0
        for (lv, lt), n in zip(self.bucket_labels, self.buckets, strict=True):
            cumulative += n
            duration.append(("_bucket", lv, lt, cumulative))
        duration.append(("_count", v, t, self.count))
        duration.append(("_sum", v, t, self.total))
        return {
            "vigil_check_up": [("", v, t, int(self.up))],
            "vigil_check_healthy": [("", v, t, int(self.healthy))],
            "vigil_check_duration_seconds": duration,
            "vigil_check_failures": [("_total", v, t, self.failures)],
            "vigil_breaker_state": [("", v, t, BREAKER_VALUES[self.breaker])],
            "vigil_remediations": [
                ("_total", (*v, kind, result), f'{t},action="{kind}",result="{result}"', n)
                for (kind, result), n in self.remediations.items()
            ],
        }

    def rendered(self, compat: bool) -> dict[str, str]:
        """:meth:`rows` as text-format lines, re-rendered only when a value changed (every
        result changes ``count``, so the buckets need no place in the signature)."""
        signature = (
            self.up,
            self.healthy,
            self.breaker,
            self.failures,
            self.count,
            self.total,
            *self.remediations.items(),
        )
        if signature != self._signature:
            self._rendered = {f: _lines(f, rows) for f, rows in self.rows(compat).items()}
            self._signature = signature
        return self._rendered


def _state(name: str) -> ProcessState:
    try:
        return ProcessState[name]
    except KeyError:
        return ProcessState.UNKNOWN


class MetricsCollector:
    """A prometheus-client Collector over the supervisor's processes and Vigil's checks.

    Args:
        statistics: returns the listener runtime's counters (None: not running yet).
        node_exporter_compat: also produce the ``node_supervisord_*`` families.
        clock: monotonic clock (start attribution deadlines).
        wallclock: epoch clock (start times learned from events).
        start_grace: see :data:`START_GRACE`.
    """

    def __init__(
        self,
        *,
        statistics: Callable[[], RuntimeStatistics | None] | None = None,
        node_exporter_compat: bool = False,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], float] = time.time,
        start_grace: float = START_GRACE,
    ) -> None:
        self._statistics = statistics
        self._compat = node_exporter_compat
        self._clock = clock
        self._wallclock = wallclock
        self._grace = start_grace
        self._lock = threading.Lock()
        self._processes: dict[tuple[str, str], _Process] = {}
        self._checks: dict[tuple[str, str, str], _Check] = {}
        self._seq = 0
        self._up: bool | None = None
        self._info: tuple[str, str] | None = None
        self._reconciles = {"ok": 0, "error": 0}

    # -- records (caller holds the lock) ------------------------------------------------------

    def _process(self, group: str, name: str) -> _Process:
        p = self._processes.get((group, name))
        if p is None:
            p = _Process(group, name)
            self._processes[(group, name)] = p
        return p

    def _check(self, check: str, group: str, name: str) -> _Check:
        c = self._checks.get((check, group, name))
        if c is None:
            c = _Check((check, group, name))
            self._checks[c.values] = c
        return c

    def _settle(self, p: _Process, now: float, *, force: bool = False) -> None:
        if p.pending is not None and (force or now >= p.pending[1]):
            p.restarts[p.pending[0]] += 1
            p.pending = None

    def _take_hint(self, p: _Process, now: float) -> str | None:
        hint, p.hint = p.hint, None
        return hint[0] if hint is not None and now < hint[1] else None

    def _count_start(self, p: _Process, from_state: str, now: float) -> None:
        cause: str | None
        if from_state == "BACKOFF":
            cause = "backoff"
        elif from_state == "EXITED":
            expected = p.last_exit_expected
            if expected is None:  # the exit was before this listener: guess from the status
                expected = p.exit_status == 0
            cause = self._take_hint(p, now) or ("exit" if expected else "crash")
        elif from_state == "FATAL" or (from_state == "STOPPED" and p.restartable):
            cause = self._take_hint(p, now)
            if cause is None:
                p.pending = ("manual", now + self._grace)
        else:  # a first start
            cause = None
        if cause is not None:
            p.restarts[cause] += 1
        p.restartable = False

    # -- feeding ------------------------------------------------------------------------------

    def process_state(self, ev: ProcessStateChange) -> None:
        """Apply one PROCESS_STATE event: state, start time and the counters."""
        now = self._clock()
        to = _state(ev.to_state)
        with self._lock:
            self._seq += 1
            p = self._process(ev.groupname, ev.processname)
            p.seq = self._seq
            self._settle(p, now, force=to is S.STARTING)
            if to is S.STARTING:
                self._count_start(p, ev.from_state, now)
                p.start = self._wallclock()
            elif to is S.EXITED:
                p.last_exit_expected = bool(ev.expected)
                p.exits[bool(ev.expected)] += 1
            elif to is S.FATAL:
                p.fatal += 1
            elif to is S.STOPPED:
                p.restartable = True
            p.state = to

    def reconcile_token(self) -> int:
        """Take before an XML-RPC snapshot; give to :meth:`reconciled` with its result."""
        with self._lock:
            return self._seq

    def reconciled(self, token: int, infos: Iterable[Mapping[str, Any]], *, complete: bool) -> None:
        """Apply ``getAllProcessInfo`` (``complete``: also forget processes not in it) or
        some ``getProcessInfo`` results, taken after :meth:`reconcile_token` gave ``token``.

        A process an event touched since then keeps its event state (it is newer). Its exit
        status is taken anyway (events carry none), and so is its start time unless it is
        older than the one its STARTING event gave (the supervisor's own is exact; the
        event's is when the listener heard of it).
        """
        seen: set[tuple[str, str]] = set()
        with self._lock:
            self._up = True
            for info in infos:
                key = (str(info["group"]), str(info["name"]))
                seen.add(key)
                p = self._process(*key)
                p.exit_status = int(info["exitstatus"])
                start = float(info["start"])
                if p.seq > token:
                    if start >= p.start - START_SLACK:
                        p.start = start
                    continue
                try:
                    p.state = ProcessState(int(info["state"]))
                except ValueError:
                    p.state = S.UNKNOWN
                p.start = start
                p.restartable = p.state is S.STOPPED and start > 0
            if complete:
                self._reconciles["ok"] += 1
                for key in [k for k, p in self._processes.items() if k not in seen]:
                    if self._processes[key].seq <= token:
                        del self._processes[key]

    def supervisor_unreachable(self) -> None:
        with self._lock:
            self._up = False
            self._reconciles["error"] += 1

    def supervisor_info(self, version: str, identification: str) -> None:
        with self._lock:
            self._info = (version, identification)

    @property
    def has_supervisor_info(self) -> bool:
        with self._lock:
            return self._info is not None

    def check_result(self, o: CheckOutcome) -> None:
        r = o.result
        index = next((i for i, b in enumerate(DURATION_BUCKETS) if r.duration <= b), -1)
        with self._lock:
            c = self._check(o.check, o.group, o.name)
            c.up = r.ok
            c.failures += not r.ok
            c.buckets[index] += 1
            c.total += r.duration
            c.count += 1

    def verdict(self, v: VerdictChange) -> None:
        with self._lock:
            self._check(v.check, v.group, v.name).healthy = v.healthy

    def breaker_change(self, b: BreakerChange) -> None:
        with self._lock:
            self._check(b.check, b.group, b.name).breaker = b.transition.new

    def remediation(self, r: Remediation) -> None:
        """Count the health plugin's action; a successful (re)start claims its STARTING event.

        The health plugin issues ``start`` only for FATAL recovery, ``restart`` otherwise.
        """
        kind = r.action.partition(":")[0]
        now = self._clock()
        with self._lock:
            c = self._check(r.check, r.group, r.name)
            outcome = (kind, "ok" if r.ok else "error")
            c.remediations[outcome] = c.remediations.get(outcome, 0) + 1
            if not r.ok or kind not in ("restart", "start"):
                return
            cause = "fatal_recovery" if kind == "start" else "health"
            p = self._process(r.group, r.name)
            self._settle(p, now)  # a start past its grace is someone else's
            if p.pending is not None:
                p.restarts[cause] += 1
                p.pending = None
            else:
                p.hint = (cause, now + HINT_TTL)

    # -- reading ------------------------------------------------------------------------------

    def families(self, *, rendered: bool = False) -> list[Family]:
        """The model right now, as metric families (what every scrape reads).

        ``rendered``: per-series families carry their text-format lines (``text``, cached
        per process and per check while its values stay the same) instead of ``samples``.
        """
        now = self._clock()
        compat = self._compat
        rows: dict[str, list[Sample]] = {name: [] for name in _SERIES_FAMILIES}
        texts: dict[str, list[str]] = {name: [] for name in _SERIES_FAMILIES}
        with self._lock:
            records: list[_Process | _Check] = [*self._processes.values()]
            for p in self._processes.values():
                self._settle(p, now)
            records += self._checks.values()
            if rendered:
                for r in records:
                    for name, chunk in r.rendered(compat).items():
                        texts[name].append(chunk)
            else:
                for r in records:
                    for name, samples in r.rows(compat).items():
                        rows[name] += samples
            sv_up = self._up
            info = self._info
            reconciles = dict(self._reconciles)
        out: list[Family] = []
        if sv_up is not None:
            out.append(
                Family(
                    "supervisor_up",
                    "gauge",
                    "1 when the supervisor answered the last XML-RPC call, else 0",
                    (),
                    [("", (), "", int(sv_up))],
                )
            )
        if info is not None:
            out.append(
                Family(
                    "supervisor_info",
                    "gauge",
                    "The supervisor's version and identification (value 1)",
                    ("version", "identification"),
                    [("", info, _labels(("version", "identification"), info), 1)],
                )
            )
        for name, (kind, doc, labelnames) in _SERIES_FAMILIES.items():
            if name.startswith("node_") and not compat:
                continue
            text = "".join(texts[name]) if rendered else None
            out.append(Family(name, kind, doc, labelnames, rows[name], text))
        out.append(
            Family(
                "vigil_metrics_reconciles",
                "counter",
                "getAllProcessInfo reconciles, by result (ok, error)",
                ("result",),
                [("_total", (r,), f'result="{r}"', n) for r, n in reconciles.items()],
            )
        )
        out += self._listener_families()
        return out

    def _listener_families(self) -> list[Family]:
        stats = self._statistics() if self._statistics is not None else None
        if stats is None:
            return []

        def per(label: str, counts: Mapping[str, int], suffix: str = "") -> list[Sample]:
            return [(suffix, (k,), _labels((label,), (k,)), n) for k, n in sorted(counts.items())]

        return [
            Family(
                "vigil_listener_events",
                "counter",
                "Events received from the supervisor, by event name",
                ("eventname",),
                per("eventname", stats.received, "_total"),
            ),
            Family(
                "vigil_listener_events_acknowledged",
                "counter",
                "Events acknowledged (RESULT OK)",
                (),
                [("_total", (), "", stats.acknowledged)],
            ),
            Family(
                "vigil_listener_handler_errors",
                "counter",
                "Plugin handler calls that raised",
                (),
                [("_total", (), "", stats.handler_errors)],
            ),
            Family(
                "vigil_listener_queue_depth",
                "gauge",
                "Events queued for a plugin's worker, not yet handled",
                ("plugin",),
                per("plugin", stats.queue_depth),
            ),
            Family(
                "vigil_listener_dropped_events",
                "counter",
                "Events dropped because a plugin's queue was full",
                ("plugin",),
                per("plugin", stats.dropped, "_total"),
            ),
            Family(
                "vigil_listener_poolserial_gaps",
                "counter",
                "Events the supervisor discarded before sending (gaps in poolserial)",
                (),
                [("_total", (), "", stats.poolserial_gaps)],
            ),
        ]

    def collect(self) -> Iterator[Metric]:
        """The prometheus-client Collector protocol (``registry.get_sample_value`` etc.)."""
        for f in self.families():
            m = Metric(f.name, f.help, f.kind)
            bucket_names = (*f.labelnames, "le")
            for suffix, values, _text, value in f.samples:
                names = bucket_names if suffix == "_bucket" else f.labelnames
                m.add_sample(f.name + suffix, dict(zip(names, values, strict=True)), value)
            yield m

    def exposition(self) -> bytes:
        """The text format 0.0.4 of :meth:`families` (what ``/metrics`` serves)."""
        return render_text(self.families(rendered=True))


def _lines(name: str, samples: Iterable[Sample]) -> str:
    """Text-format lines of ``samples`` of family ``name``: labels come rendered, and values
    are written as Python prints them (``20``, ``0.25``, ``1764213123.5``)."""
    return "".join(
        [
            f"{name}{suffix}{{{text}}} {value}\n" if text else f"{name}{suffix} {value}\n"
            for suffix, _values, text, value in samples
        ]
    )


def render_text(families: Iterable[Family]) -> bytes:
    """Prometheus text format 0.0.4 of ``families``: what ``generate_latest`` writes for
    the same samples, several times faster at thousands of series."""
    out: list[str] = []
    for f in families:
        exposed = f.name + "_total" if f.kind == "counter" else f.name
        doc = f.help.replace("\\", r"\\").replace("\n", r"\n")
        out.append(f"# HELP {exposed} {doc}\n# TYPE {exposed} {f.kind}\n")
        out.append(f.text if f.text is not None else _lines(f.name, f.samples))
    return "".join(out).encode()


# --- HTTP ------------------------------------------------------------------------------------


class MetricsServer:
    """Serve a collector's exposition with prometheus-client's ``start_http_server``.

    The server starts on ``registry`` (empty until :meth:`start` has installed the app), so
    a request that races start-up gets an empty page, never an unauthenticated one.
    """

    def __init__(
        self, config: MetricsConfig, collector: MetricsCollector, registry: CollectorRegistry
    ) -> None:
        self.config = config
        self.collector = collector
        self.registry = registry
        self._credentials: tuple[bytes, bytes] | None = None
        if config.username is not None and config.password is not None:
            self._credentials = (config.username.encode(), config.password.encode())
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the kernel's choice for port 0)."""
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Bind and serve on a daemon thread; then register the collector.

        Raises:
            OSError: cannot bind (or TLS files unusable).
        """
        c = self.config
        server, thread = start_http_server(
            c.port,
            c.host,
            registry=self.registry,
            certfile=str(c.tls_cert) if c.tls_cert else None,
            keyfile=str(c.tls_key) if c.tls_key else None,
        )
        server.set_app(self.app)
        self._server, self._thread = server, thread
        self.registry.register(self.collector)

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self.registry.unregister(self.collector)
        self._server = self._thread = None

    def _authorized(self, header: str | None) -> bool:
        assert self._credentials is not None
        if header is None or header[:6].lower() != "basic ":
            return False
        try:
            raw = base64.b64decode(header[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = raw.partition(b":")
        same_user = hmac.compare_digest(user, self._credentials[0])
        same_password = hmac.compare_digest(password, self._credentials[1])
        return bool(sep) and same_user and same_password

    def app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI application: ``/metrics`` (GET, HEAD), behind Basic auth if configured."""
        plain = ("Content-Type", "text/plain; charset=utf-8")
        if self._credentials is not None and not self._authorized(
            environ.get("HTTP_AUTHORIZATION")
        ):
            start_response("401 Unauthorized", [plain, ("WWW-Authenticate", 'Basic realm="vigil"')])
            return [b"401 Unauthorized\n"]
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [plain, ("Allow", "GET, HEAD")])
            return [b"405 Method Not Allowed\n"]
        path = environ.get("PATH_INFO", "/")
        if path == "/":
            start_response("200 OK", [plain])
            return [b"vigil-listener metrics: /metrics\n"]
        if path != "/metrics":
            start_response("404 Not Found", [plain])
            return [b"404 Not Found\n"]
        body = self.collector.exposition()
        headers = [("Content-Type", CONTENT_TYPE)]
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            body = gzip.compress(body, compresslevel=1)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        start_response("200 OK", headers)
        return [b"" if method == "HEAD" else body]


# --- the plugin ------------------------------------------------------------------------------


class MetricsPlugin:
    """Glue: events and bus messages in, reconciles on a background thread, HTTP out."""

    def __init__(self, ctx: PluginContext, config: MetricsConfig) -> None:
        self.ctx = ctx
        self.config = config
        self.log = ctx.log
        self.collector = MetricsCollector(
            statistics=self._statistics, node_exporter_compat=config.node_exporter_compat
        )
        self.registry = CollectorRegistry()
        self.server = MetricsServer(config, self.collector, self.registry)
        self._lock = threading.Lock()
        self._refresh: set[tuple[str, str]] = set()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vigil-metrics", daemon=True)
        self._reachable = True
        self._last_full = -FULL_REFRESH_EVERY

    def _statistics(self) -> RuntimeStatistics | None:
        try:
            stats: RuntimeStatistics = self.ctx.statistics()
        except PluginError:
            return None
        return stats

    def on_state(self, n: Notification) -> None:
        ev = n.event
        assert isinstance(ev, ProcessStateChange)
        self.collector.process_state(ev)
        if ev.to_state in _REFRESH_STATES:
            with self._lock:
                self._refresh.add((ev.groupname, ev.processname))
            self._wake.set()

    def subscribe_bus(self) -> None:
        def typed(kind: type[Any], apply: Callable[[Any], None]) -> Callable[[object], None]:
            def deliver(message: object) -> None:
                if isinstance(message, kind):
                    apply(message)

            return deliver

        bus = self.ctx.bus
        bus.subscribe("health.result", typed(CheckOutcome, self.collector.check_result))
        bus.subscribe("health.verdict", typed(VerdictChange, self.collector.verdict))
        bus.subscribe("health.breaker", typed(BreakerChange, self.collector.breaker_change))
        bus.subscribe("health.action", typed(Remediation, self.collector.remediation))

    def start(self) -> None:
        try:
            self.server.start()
        except OSError as exc:
            c = self.config
            raise PluginError(f"metrics: cannot serve on {c.host}:{c.port}: {exc}") from exc
        self._thread.start()
        c = self.config
        host = f"[{c.host}]" if ":" in c.host else c.host
        self.log.info("metrics: serving %s://%s:%d/metrics", c.scheme, host, self.server.port)

    def stop(self) -> None:
        self._wake.set()
        self._thread.join(5)
        self.server.stop()

    # -- reconciling (the background thread) ---------------------------------------------

    def _run(self) -> None:
        next_full = 0.0
        stopping = self.ctx.stopping
        while not stopping.is_set():
            self._wake.clear()
            if time.monotonic() >= next_full:
                with self._lock:
                    self._refresh.clear()
                self.reconcile()
                next_full = time.monotonic() + self.config.reconcile
            else:
                with self._lock:
                    pending = bool(self._refresh)
                if pending and not stopping.wait(REFRESH_DELAY):
                    with self._lock:
                        batch, self._refresh = self._refresh, set()
                    self.refresh(batch)
            self._wake.wait(max(0.0, next_full - time.monotonic()))

    def _unreachable(self, exc: RPCError) -> None:
        self.collector.supervisor_unreachable()
        if self._reachable:
            self.log.warning("metrics: the supervisor does not answer: %s", exc)
        self._reachable = False

    def _reached(self) -> None:
        if not self._reachable:
            self.log.info("metrics: the supervisor answers again")
        self._reachable = True

    def reconcile(self) -> None:
        """One ``getAllProcessInfo`` (and, once, version and identification)."""
        self._last_full = time.monotonic()
        rpc = self.ctx.supervisor().supervisor
        token = self.collector.reconcile_token()
        try:
            infos = rpc.getAllProcessInfo()
            if not self.collector.has_supervisor_info:
                self.collector.supervisor_info(
                    str(rpc.getSupervisorVersion()), str(rpc.getIdentification())
                )
        except RPCFault as exc:
            self.log.warning("metrics: reconcile failed: %s", exc)
            return
        except RPCError as exc:
            self._unreachable(exc)
            return
        self._reached()
        self.collector.reconciled(token, infos, complete=True)

    def refresh(self, batch: set[tuple[str, str]]) -> None:
        """Start times and exit statuses (and state) of a few processes, after their events."""
        if len(batch) > REFRESH_BATCH:
            pause = self._last_full + FULL_REFRESH_EVERY - time.monotonic()
            if pause > 0 and self.ctx.stopping.wait(pause):
                return
            self.reconcile()
            return
        rpc = self.ctx.supervisor().supervisor
        token = self.collector.reconcile_token()
        infos = []
        for group, name in sorted(batch):
            try:
                infos.append(rpc.getProcessInfo(f"{group}:{name}"))
            except RPCFault:
                continue  # gone (BAD_NAME): the next reconcile forgets it
            except RPCError as exc:
                self._unreachable(exc)
                return
        self._reached()
        self.collector.reconciled(token, infos, complete=False)


def setup(ctx: PluginContext) -> None:
    config = load_metrics_config(ctx.config)
    plugin = MetricsPlugin(ctx, config)
    ctx.subscribe(plugin.on_state, EventType.PROCESS_STATE)
    plugin.subscribe_bus()
    plugin.start()
    ctx.on_stop(plugin.stop)
