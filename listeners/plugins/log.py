"""The ``log`` plugin: one JSON object per event on stderr, for debugging and tests.

Each line holds ``eventname``, ``serial``, ``pool``, ``poolserial``, ``server``
and every payload field the event carries (``processname``, ``from_state``, ``pid``,
``tries``, ``expected``, ``data``...); fields an event type does not have are left out.
It runs inline, before the acknowledgement, so its line is written even if the
listener dies right after; the write is a single short syscall.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any, TextIO

from listeners.plugin import PluginContext
from manager.events import EventType
from manager.protocol import Notification

__all__ = ["record", "setup"]


def record(n: Notification) -> dict[str, Any]:
    """The JSON-ready dict for one notification."""
    h = n.header
    out: dict[str, Any] = {
        "eventname": h.eventname,
        "serial": h.serial,
        "pool": h.pool,
        "poolserial": h.poolserial,
        "server": h.server,
    }
    for f in dataclasses.fields(n.event):
        value = getattr(n.event, f.name)
        if f.name == "type" or value is None:
            continue
        out[f.name] = value.value if isinstance(value, EventType) else value
    return out


def setup(ctx: PluginContext, stream: TextIO | None = None) -> None:
    def log_event(n: Notification) -> None:
        out = stream or sys.stderr
        out.write(json.dumps(record(n), ensure_ascii=False, sort_keys=True) + "\n")
        out.flush()

    ctx.subscribe(log_event, EventType.EVENT, inline=True)
