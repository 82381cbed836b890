"""A tiny vigil-listener plugin for benchmarks: statistics of the health plugin's probes.

Load it next to ``health`` by dotted path (``--plugins health,bench.programs.health_stats:setup``,
with the project root on ``PYTHONPATH``). It subscribes to ``health.result`` on the plugin bus
(and to PROCESS_STATE_RUNNING) and keeps, cumulatively since start:

* ``results`` / ``failures``: probe results published, and how many failed;
* ``missed``: whole periods skipped, ``floor(lateness / period)`` summed over the probes (the
  probe's own ``skipped`` count; periods come from the ``[healthcheck:x]`` sections);
* ``lateness``: the published lateness: due time → the scheduler claiming the probe and
  handing it to the check pool;
* ``send_lateness``: due time → the check actually starting in a pool worker, so it includes
  the wait in the pool's queue, which ``lateness`` does not see. Reconstructed per target
  with the probe's own rule (``probe.py``): the first probe of a run is due at RUNNING +
  ``initial_delay``, and probe *k + 1* is due ``period`` after probe *k* was claimed
  (``due_k + lateness_k``). RUNNING is the time this plugin handled the RUNNING event (the
  health plugin stamps its own handling of the same event, so they agree to about a
  millisecond); the start is ``publication − duration`` (later than the true start by the
  wait for the health plugin's lock after the check). Targets whose RUNNING this plugin did
  not see (e.g. found by the health plugin's reconcile) are counted in ``unanchored``;
  ``queue_wait_min`` (``send_lateness − lateness``, never negative if the reconstruction is
  right) is the check on it;
* ``duration``: the check's own duration;
* ``per_check``: results per check name.

Histograms are ``{"<bucket>": count}`` with 0.1 ms buckets (bucket ``k`` holds values in
``[k, k + 1) * 0.1 ms``). Everything is written as one JSON object to the file named by
``$BENCH_HEALTH_STATS`` (atomically: a temporary file, then a rename) every
``$BENCH_HEALTH_STATS_EVERY`` seconds (default 1) and once more at stop. ``t`` is the
``time.monotonic()`` of the snapshot (one clock for the whole machine on Linux, so the
benchmark can line it up with its own measurements), ``seq`` counts the snapshots.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections import Counter
from pathlib import Path

from healthchecks.config import load_healthchecks
from listeners.plugin import PluginContext
from listeners.plugins.health import CheckOutcome
from manager.events import EventType, ProcessStateChange
from manager.protocol import Notification

__all__ = ["BUCKET", "HealthStats", "setup"]

#: Histogram bucket width, seconds.
BUCKET = 1e-4


class HealthStats:
    def __init__(self, path: Path, periods: dict[str, float], delays: dict[str, float]) -> None:
        self.path = path
        self.periods = periods
        self.delays = delays
        self.lock = threading.Lock()
        self.results = 0
        self.failures = 0
        self.missed = 0
        self.unanchored = 0
        self.queue_wait_min = math.inf
        self.lateness: Counter[int] = Counter()
        self.send_lateness: Counter[int] = Counter()
        self.duration: Counter[int] = Counter()
        self.per_check: Counter[str] = Counter()
        #: (group, name) -> when this plugin handled its last PROCESS_STATE_RUNNING
        self.running_at: dict[tuple[str, str], float] = {}
        #: (check, group, name) -> (due time of the next probe, the RUNNING it belongs to)
        self.next_due: dict[tuple[str, str, str], tuple[float, float]] = {}
        self.seq = 0

    def on_running(self, n: Notification) -> None:
        ev = n.event
        if isinstance(ev, ProcessStateChange):
            now = time.monotonic()
            with self.lock:
                self.running_at[(ev.groupname, ev.processname)] = now

    def on_result(self, message: object) -> None:
        if not isinstance(message, CheckOutcome):
            return
        now = time.monotonic()
        m = message
        period = self.periods.get(m.check, 0.0)
        start = now - m.result.duration
        with self.lock:
            self.results += 1
            if not m.result.ok:
                self.failures += 1
            if period > 0:
                self.missed += int(m.lateness // period)
            self.lateness[int(m.lateness / BUCKET)] += 1
            self.duration[int(m.result.duration / BUCKET)] += 1
            self.per_check[m.check] += 1
            run = self.running_at.get((m.group, m.name))
            if run is None:
                self.unanchored += 1
                return
            key = (m.check, m.group, m.name)
            due, of_run = self.next_due.get(key, (0.0, None))
            if of_run != run:
                due = run + self.delays.get(m.check, 0.0)
            claimed = due + m.lateness
            self.next_due[key] = (claimed + period, run)
            send = start - due
            self.queue_wait_min = min(self.queue_wait_min, start - claimed)
            self.send_lateness[int(max(0.0, send) / BUCKET)] += 1

    def dump(self) -> None:
        with self.lock:
            self.seq += 1
            snapshot = {
                "t": time.monotonic(),
                "seq": self.seq,
                "pid": os.getpid(),
                "bucket": BUCKET,
                "results": self.results,
                "failures": self.failures,
                "missed": self.missed,
                "unanchored": self.unanchored,
                "queue_wait_min": None if math.isinf(self.queue_wait_min) else self.queue_wait_min,
                "lateness": {str(k): v for k, v in self.lateness.items()},
                "send_lateness": {str(k): v for k, v in self.send_lateness.items()},
                "duration": {str(k): v for k, v in self.duration.items()},
                "per_check": dict(self.per_check),
            }
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(snapshot))
        tmp.replace(self.path)


def setup(ctx: PluginContext) -> None:
    target = ctx.environ.get("BENCH_HEALTH_STATS", "")
    if not target:
        ctx.log.warning("health_stats: $BENCH_HEALTH_STATS is not set; not recording")
        return
    every = float(ctx.environ.get("BENCH_HEALTH_STATS_EVERY", "1"))
    configs = [] if ctx.config is None else load_healthchecks(ctx.config)
    stats = HealthStats(
        Path(target),
        {cfg.name: cfg.probe.period for cfg in configs},
        {cfg.name: cfg.probe.initial_delay for cfg in configs},
    )
    ctx.bus.subscribe("health.result", stats.on_result)
    ctx.subscribe(stats.on_running, EventType.PROCESS_STATE_RUNNING)

    def loop() -> None:
        while not ctx.stopping.wait(every):
            stats.dump()

    thread = threading.Thread(target=loop, name="bench-health-stats", daemon=True)
    ctx.on_stop(stats.dump)
    stats.dump()
    thread.start()
    ctx.log.info("health_stats: writing %s every %.1fs", target, every)
