"""An in-process publish/subscribe bus shared by the plugins of one listener.

The health plugin publishes what it observes and does (probe results, restarts,
breaker transitions); the metrics and alerts plugins subscribe. Callbacks run on
the publisher's thread and must be quick; one that raises is logged and skipped.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

__all__ = ["Bus"]

Callback = Callable[[Any], None]


class Bus:
    def __init__(self, log: logging.Logger | None = None) -> None:
        self._subs: defaultdict[str, list[Callback]] = defaultdict(list)
        self._lock = threading.Lock()
        self._log = log or logging.getLogger("vigil.bus")

    def subscribe(self, topic: str, callback: Callback) -> None:
        with self._lock:
            self._subs[topic].append(callback)

    def publish(self, topic: str, message: object) -> None:
        with self._lock:
            callbacks = list(self._subs.get(topic, ()))
        for cb in callbacks:
            try:
                cb(message)
            except Exception:
                self._log.exception("bus subscriber %r failed on %s", cb, topic)
