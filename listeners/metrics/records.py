"""The per-series records: one per process, one per check, each rendering its own samples.

Theory of operation
-------------------
:data:`SERIES_FAMILIES` lists the families that have one series (or one group of series) per
process or per check, in exposition order. A :class:`ProcessRecord` or :class:`CheckRecord`
holds the values of one process or one check and turns them into samples of those families
(``rows()``, for prometheus-client's ``collect()``) or into text-format lines (``rendered()``,
for ``/metrics``). The lines are kept until one of the record's values changes (a signature
tuple compared per scrape), so a scrape of 1,000 processes and 1,000 checks costs
milliseconds (``bench/metrics.py``). Label values are rendered once, when a record is made.

The records hold no lock and do no I/O: :class:`~listeners.metrics.model.MetricsModel` owns
them and calls them under its lock.

``vigil_breaker_state``: 0 closed, 1 half-open, 2 open. With ``node_exporter_compat`` the
four ``node_supervisord_*`` series of node_exporter's deprecated collector are added with its
label names and meanings (``up`` is 1 in STARTING, RUNNING and STOPPING; the start time is
there only while up); the start time is typed gauge, not counter as node_exporter had it,
so that its name stays the same in the text format.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from prometheus_client.utils import floatToGoString

from healthchecks.breaker import BreakerState
from listeners.metrics.exposition import LabelSet, Sample, render_labels, render_lines
from manager.states import ProcessState

__all__ = [
    "BREAKER_VALUES",
    "DURATION_BUCKETS",
    "RESTART_CAUSES",
    "SERIES_FAMILIES",
    "CheckRecord",
    "ProcessRecord",
]

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
#: node_exporter's supervisord collector calls these states up.
_NODE_UP = frozenset({ProcessState.STARTING, ProcessState.RUNNING, ProcessState.STOPPING})
#: ``le`` values as prometheus-client writes them (its Go-style float formatting; untyped).
_go_float: Callable[[float], str] = floatToGoString
_LE = (*(_go_float(b) for b in DURATION_BUCKETS), "+Inf")

_CAUSE = {c: f',cause="{c}"' for c in RESTART_CAUSES}
_EXPECTED = {True: ',expected="true"', False: ',expected="false"'}
_GN = ("group", "name")
_CGN = ("check", "group", "name")
#: The per-process and per-check families, in exposition order: name -> (type, help, labels).
SERIES_FAMILIES: Mapping[str, tuple[str, str, tuple[str, ...]]] = {
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
class ProcessRecord:
    """One process as the model knows it: gauges, counters and the bookkeeping of restart
    attribution (``seq``, ``restartable``, ``pending``, ``hint``; see the model)."""

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
        self.text = render_labels(("group", "name"), self.values)
        self.cause_labels: list[LabelSet] = [
            ((*self.values, c), self.text + _CAUSE[c]) for c in RESTART_CAUSES
        ]
        self.exit_labels: list[LabelSet] = [
            ((*self.values, str(e).lower()), self.text + _EXPECTED[e]) for e in (False, True)
        ]
        self._signature: tuple[object, ...] = ()
        self._rendered: dict[str, str] = {}

    def rows(self, compat: bool) -> dict[str, list[Sample]]:
        """This process's samples, by family (see :data:`SERIES_FAMILIES`)."""
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
            out["supervisor_process_up"] = [("", v, t, int(state is ProcessState.RUNNING))]
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
            self._rendered = {f: render_lines(f, rows) for f, rows in self.rows(compat).items()}
            self._signature = signature
        return self._rendered


@dataclass(eq=False)
class CheckRecord:
    """One check of one process: last probe, verdict, breaker, duration histogram and
    remediation counts (``values`` are the labels: check, group, name)."""

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
        self.text = render_labels(("check", "group", "name"), self.values)
        self.bucket_labels: list[LabelSet] = [
            ((*self.values, le), f'{self.text},le="{le}"') for le in _LE
        ]
        self._signature: tuple[object, ...] = ()
        self._rendered: dict[str, str] = {}

    def rows(self, compat: bool) -> dict[str, list[Sample]]:
        """This check's samples, by family (see :data:`SERIES_FAMILIES`)."""
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
            self._rendered = {f: render_lines(f, rows) for f, rows in self.rows(compat).items()}
            self._signature = signature
        return self._rendered
