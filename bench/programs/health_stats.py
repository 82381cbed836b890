"""A tiny vigil-listener plugin for benchmarks: statistics of the health plugin's probes.

Load it next to ``health`` by dotted path (``--plugins health,bench.programs.health_stats:setup``,
with the project root on ``PYTHONPATH``). It subscribes to ``health.result`` on the plugin bus
and keeps, cumulatively since start:

* ``results`` / ``failures``: probe results published, and how many failed;
* ``missed``: whole periods missed, ``floor(lateness / period)`` summed over the probes, with
  the published lateness (queue wait included, so at least the probe's own ``skipped``
  count; periods come from the ``[healthcheck:x]`` sections);
* ``lateness``: the published lateness: due time → the check begun (in a pool worker, or
  on the HTTP reactor), so it includes the wait in the pool's queue or the hand-over;
* ``claim_lateness``: due time → the scheduler claiming the probe and handing it to the
  pool (``lateness − queue_wait``);
* ``queue_wait``: claimed → begun: the wait in the check pool's queue, or the hand-over to
  the HTTP reactor (published by the health plugin);
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
import os
import threading
import time
from collections import Counter
from pathlib import Path

from healthchecks.config import load_healthchecks
from listeners.plugin import PluginContext
from listeners.plugins.health import CheckOutcome

__all__ = ["BUCKET", "HealthStats", "setup"]

#: Histogram bucket width, seconds.
BUCKET = 1e-4


class HealthStats:
    def __init__(self, path: Path, periods: dict[str, float]) -> None:
        self.path = path
        self.periods = periods
        self.lock = threading.Lock()
        self.results = 0
        self.failures = 0
        self.missed = 0
        self.lateness: Counter[int] = Counter()
        self.claim_lateness: Counter[int] = Counter()
        self.queue_wait: Counter[int] = Counter()
        self.duration: Counter[int] = Counter()
        self.per_check: Counter[str] = Counter()
        self.seq = 0

    def on_result(self, message: object) -> None:
        if not isinstance(message, CheckOutcome):
            return
        m = message
        period = self.periods.get(m.check, 0.0)
        with self.lock:
            self.results += 1
            if not m.result.ok:
                self.failures += 1
            if period > 0:
                self.missed += int(m.lateness // period)
            self.lateness[int(m.lateness / BUCKET)] += 1
            self.claim_lateness[int(max(0.0, m.lateness - m.queue_wait) / BUCKET)] += 1
            self.queue_wait[int(m.queue_wait / BUCKET)] += 1
            self.duration[int(m.result.duration / BUCKET)] += 1
            self.per_check[m.check] += 1

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
                "lateness": {str(k): v for k, v in self.lateness.items()},
                "claim_lateness": {str(k): v for k, v in self.claim_lateness.items()},
                "queue_wait": {str(k): v for k, v in self.queue_wait.items()},
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
    stats = HealthStats(Path(target), {cfg.name: cfg.probe.period for cfg in configs})
    ctx.bus.subscribe("health.result", stats.on_result)

    def loop() -> None:
        while not ctx.stopping.wait(every):
            stats.dump()

    thread = threading.Thread(target=loop, name="bench-health-stats", daemon=True)
    ctx.on_stop(stats.dump)
    stats.dump()
    thread.start()
    ctx.log.info("health_stats: writing %s every %.1fs", target, every)
