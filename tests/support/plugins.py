"""Plugins used by the integration tests (loaded by dotted path from a real listener)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from listeners.plugin import PluginContext
from manager.events import EventType, ProcessStateChange
from manager.protocol import Notification


def block_once(ctx: PluginContext) -> None:
    """Inline: on the first RUNNING of ``VIGIL_TEST_TARGET``, record pid+serial, then hang.

    The marker file (``VIGIL_TEST_MARKER``) makes later listener instances pass the
    event through, so a SIGKILLed first instance proves redelivery.
    """
    marker = Path(ctx.environ["VIGIL_TEST_MARKER"])
    target = ctx.environ["VIGIL_TEST_TARGET"]

    @ctx.on(EventType.PROCESS_STATE_RUNNING, inline=True)
    def hang(n: Notification) -> None:
        assert isinstance(n.event, ProcessStateChange)
        if n.event.processname != target or marker.exists():
            return
        marker.write_text(f"{os.getpid()} {n.header.serial}\n")
        time.sleep(60)


def slow(ctx: PluginContext) -> None:
    """Queued: every event takes a second of work."""

    @ctx.on(EventType.EVENT)
    def work(n: Notification) -> None:
        time.sleep(1.0)


def slow_inline(ctx: PluginContext) -> None:
    """Inline: every event takes a second *before* the acknowledgement (superlance-style)."""

    @ctx.on(EventType.EVENT, inline=True)
    def work(n: Notification) -> None:
        time.sleep(1.0)


def broken(ctx: PluginContext) -> None:
    """Every handler call raises."""

    @ctx.on(EventType.PROCESS_STATE)
    def fail(n: Notification) -> None:
        raise RuntimeError(f"broken plugin on {n.header.eventname}")
