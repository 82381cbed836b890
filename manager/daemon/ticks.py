"""TICK_5, TICK_60 and TICK_3600: emitted on wall-clock boundaries (``when`` is the
boundary, each at most once), only while the supervisor is RUNNING."""

from __future__ import annotations

import functools

from manager.daemon.pacing import PacingMixin
from manager.events import EventType, Tick
from manager.states import SupervisorState

__all__ = ["TICK_PERIODS", "TicksMixin"]

E = EventType
TICK_PERIODS = ((E.TICK_5, 5), (E.TICK_60, 60), (E.TICK_3600, 3600))


class TicksMixin(PacingMixin):
    """The TICK timers."""

    def _schedule_ticks(self) -> None:
        now = self.wallclock()
        mono = self.now()
        for t in self._tick_timers:
            t.cancel()
        self._tick_timers = []
        for etype, period in TICK_PERIODS:
            boundary = (int(now) // period + 1) * period
            self._tick_timers.append(
                self.loop.call_at(
                    mono + (boundary - now), functools.partial(self._tick, etype, period)
                )
            )

    def _tick(self, etype: EventType, period: int) -> None:
        now = self.wallclock()
        when = int(now) // period * period
        if self._last_tick.get(etype) != when and self.state is SupervisorState.RUNNING:
            self._last_tick[etype] = when
            self.emit(Tick(etype, when))
        boundary = when + period
        self._tick_timers = [t for t in self._tick_timers if not t.cancelled]
        self._tick_timers.append(
            self.loop.call_at(
                self.now() + max(0.0, boundary - now), functools.partial(self._tick, etype, period)
            )
        )
