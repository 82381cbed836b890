"""The ``metrics`` plugin: Prometheus metrics of the supervisor, its processes and Vigil's checks.

Theory of operation
-------------------
The parts live in :mod:`listeners.metrics`; this module wires them to the listener.
A :class:`~listeners.metrics.collector.MetricsCollector` (a prometheus-client custom
collector over an in-memory model guarded by one lock) is fed from four sides:

* PROCESS_STATE events (the plugin's queued handler, :meth:`MetricsPlugin.on_state`): state
  codes, start times and every counter — restarts by cause, exits, FATAL transitions;
* ``getAllProcessInfo`` on a background thread at start and every ``reconcile`` seconds,
  plus ``getProcessInfo`` some 50 ms after a STARTING, EXITED, BACKOFF or FATAL event (events
  carry no exit status and no exact start time), by a
  :class:`~listeners.metrics.reconciler.Reconciler`. A reconcile overwrites the gauges of a
  process unless an event for it arrived while the call was in flight (the event is newer),
  so a missed event is wrong for at most one period; counters are never touched by it;
* the health plugin's bus topics (``health.result``/``.verdict``/``.breaker``/``.action``);
* the listener runtime's ``statistics()``, read at scrape time.

Nothing is computed on a timer: every scrape reads the model as it is. Restart causes and
their attribution are documented in :mod:`listeners.metrics.model`, the ``vigil_breaker_state``
values and the ``node_exporter_compat`` series in :mod:`listeners.metrics.records`. Counters
live in the listener process: when the listener restarts they start again from 0, while
gauges are right again after the first reconcile.

A :class:`~listeners.metrics.server.MetricsServer` serves the Prometheus text format 0.0.4
on ``/metrics`` (gzip when asked), behind optional HTTP Basic auth (send it over TLS beyond
loopback) and TLS through prometheus-client's ``start_http_server(certfile=, keyfile=)``.
Each process and check keeps its lines rendered until one of its values changes, so a scrape
of 1,000 processes and 1,000 checks costs milliseconds (``bench/metrics.py``).

Config, section ``[metrics]`` of the supervisord file (values get supervisord's
``%(ENV_X)s``/``%(here)s`` expansion)::

    listen                127.0.0.1:9876   HOST:PORT, [IPv6]:PORT, :PORT (all interfaces); port 0:
                                           any free one (logged)
    username, password    (none)           HTTP Basic auth; both or neither
    tls_cert, tls_key     (none)           serve HTTPS; both or neither; relative to the file
    reconcile             15               seconds between getAllProcessInfo reconciles (> 0)
    node_exporter_compat  false            also export node_supervisord_{up,state,...}

The names this module exported before the parts moved to :mod:`listeners.metrics` are
re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from listeners.metrics import (
    BREAKER_VALUES,
    DURATION_BUCKETS,
    RESTART_CAUSES,
    Family,
    MetricsCollector,
    MetricsConfig,
    MetricsServer,
    Reconciler,
    load_metrics_config,
    render_text,
)
from listeners.plugin import PluginContext, PluginError
from listeners.plugins.health import BreakerChange, CheckOutcome, Remediation, VerdictChange
from listeners.runtime import RuntimeStatistics
from manager.events import EventType, ProcessStateChange
from manager.protocol import Notification

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
        self.reconciler = Reconciler(
            self.collector, ctx.supervisor, ctx.stopping, ctx.log, config.reconcile
        )

    def _statistics(self) -> RuntimeStatistics | None:
        try:
            stats: RuntimeStatistics = self.ctx.statistics()
        except PluginError:
            return None
        return stats

    def on_state(self, n: Notification) -> None:
        """The PROCESS_STATE handler: update the model, then queue a refresh if it needs one."""
        ev = n.event
        assert isinstance(ev, ProcessStateChange)
        self.collector.process_state(ev)
        self.reconciler.notice(ev)

    def subscribe_bus(self) -> None:
        """Feed the health plugin's ``health.*`` bus messages to the model."""

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
        """Serve, then start reconciling.

        Raises:
            PluginError: cannot serve on the configured address.
        """
        try:
            self.server.start()
        except OSError as exc:
            c = self.config
            raise PluginError(f"metrics: cannot serve on {c.host}:{c.port}: {exc}") from exc
        self.reconciler.start()
        c = self.config
        host = f"[{c.host}]" if ":" in c.host else c.host
        self.log.info("metrics: serving %s://%s:%d/metrics", c.scheme, host, self.server.port)

    def stop(self) -> None:
        """Stop reconciling (the listener's ``stopping`` is set), then stop serving."""
        self.reconciler.stop()
        self.server.stop()


def setup(ctx: PluginContext) -> None:
    """The ``vigil.plugins`` entry point: read ``[metrics]``, subscribe, serve, reconcile.

    Raises:
        ConfigError: a bad ``[metrics]`` section.
        PluginError: cannot serve on the configured address.
    """
    config = load_metrics_config(ctx.config)
    plugin = MetricsPlugin(ctx, config)
    ctx.subscribe(plugin.on_state, EventType.PROCESS_STATE)
    plugin.subscribe_bus()
    plugin.start()
    ctx.on_stop(plugin.stop)
