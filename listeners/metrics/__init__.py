"""The parts of the ``metrics`` plugin (:mod:`listeners.plugins.metrics` wires them).

* :mod:`~listeners.metrics.config` — ``[metrics]`` section → :class:`MetricsConfig`;
* :mod:`~listeners.metrics.exposition` — :class:`Family` and the fast text format 0.0.4
  (pure);
* :mod:`~listeners.metrics.records` — one record per process and per check, rendering and
  caching its own series; the per-series family list;
* :mod:`~listeners.metrics.model` — the model fed by events, XML-RPC snapshots and the
  health plugin's bus messages; restart-cause attribution (pure, clocks passed in);
* :mod:`~listeners.metrics.collector` — the prometheus-client Collector reading the model
  at scrape time;
* :mod:`~listeners.metrics.server` — the ``/metrics`` HTTP(S) endpoint, Basic auth, gzip;
* :mod:`~listeners.metrics.reconciler` — ``getAllProcessInfo``/``getProcessInfo`` on a
  background thread.
"""

from listeners.metrics.collector import MetricsCollector as MetricsCollector
from listeners.metrics.config import MetricsConfig as MetricsConfig
from listeners.metrics.config import load_metrics_config as load_metrics_config
from listeners.metrics.exposition import Family as Family
from listeners.metrics.exposition import render_text as render_text
from listeners.metrics.model import START_GRACE as START_GRACE
from listeners.metrics.model import MetricsModel as MetricsModel
from listeners.metrics.reconciler import Reconciler as Reconciler
from listeners.metrics.records import BREAKER_VALUES as BREAKER_VALUES
from listeners.metrics.records import DURATION_BUCKETS as DURATION_BUCKETS
from listeners.metrics.records import RESTART_CAUSES as RESTART_CAUSES
from listeners.metrics.server import MetricsServer as MetricsServer
