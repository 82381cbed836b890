"""The prometheus-client Collector: the metrics model read at scrape time.

Theory of operation
-------------------
:class:`MetricsCollector` is the :class:`~listeners.metrics.model.MetricsModel` plus its
reading side. Nothing is computed on a timer: every scrape reads the model as it is, under
its lock, into a list of :class:`~listeners.metrics.exposition.Family` — ``collect()`` turns
that list into prometheus-client ``Metric`` objects (``registry.get_sample_value``,
``generate_latest``), ``exposition()`` into the text that ``/metrics`` serves, from the lines
each record keeps rendered. Both see the same samples. Besides the model, a scrape reads the
listener runtime's ``statistics()`` (events received and acknowledged, handler errors, queue
depths, drops, poolserial gaps), through the callable it was given.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping

from prometheus_client.metrics_core import Metric

from listeners.metrics.exposition import Family, Sample, render_labels, render_text
from listeners.metrics.model import START_GRACE, MetricsModel
from listeners.metrics.records import SERIES_FAMILIES, CheckRecord, ProcessRecord
from listeners.runtime import RuntimeStatistics

__all__ = ["MetricsCollector"]


class MetricsCollector(MetricsModel):
    """A prometheus-client Collector over the supervisor's processes and Vigil's checks.

    Args:
        statistics: returns the listener runtime's counters (None: not running yet).
        node_exporter_compat: also produce the ``node_supervisord_*`` families.
        clock: monotonic clock (start attribution deadlines).
        wallclock: epoch clock (start times learned from events).
        start_grace: see :data:`~listeners.metrics.model.START_GRACE`.
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
        super().__init__(clock=clock, wallclock=wallclock, start_grace=start_grace)
        self._statistics = statistics
        self._compat = node_exporter_compat

    def families(self, *, rendered: bool = False) -> list[Family]:
        """The model right now, as metric families (what every scrape reads).

        ``rendered``: per-series families carry their text-format lines (``text``, cached
        per process and per check while its values stay the same) instead of ``samples``.
        """
        now = self._clock()
        compat = self._compat
        rows: dict[str, list[Sample]] = {name: [] for name in SERIES_FAMILIES}
        texts: dict[str, list[str]] = {name: [] for name in SERIES_FAMILIES}
        with self._lock:
            records: list[ProcessRecord | CheckRecord] = [*self._processes.values()]
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
                    [("", info, render_labels(("version", "identification"), info), 1)],
                )
            )
        for name, (kind, doc, labelnames) in SERIES_FAMILIES.items():
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
            return [
                (suffix, (k,), render_labels((label,), (k,)), n) for k, n in sorted(counts.items())
            ]

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
