""":class:`SupervisorBase`: the state every part of :class:`~manager.supervisor.Supervisor`
shares, the clock and OS part of :class:`~manager.process.ProcessHost`, and lookups over
groups and pools.

Everything runs on the loop's thread; the mixins in :mod:`manager.daemon` add the
behaviour.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping

from manager.config import Config
from manager.daemon.group import Group
from manager.daemon.pipes import Child, Output
from manager.events import EventType
from manager.fcgisocket import SharedSocket
from manager.logfiles import RotatingFile
from manager.loop import Loop, Timer
from manager.osfacade import OS, RealOS
from manager.pool import ListenerPool
from manager.process import Process
from manager.states import SupervisorState

__all__ = ["SupervisorBase"]


class SupervisorBase:
    """The state of one :class:`~manager.supervisor.Supervisor`.

    Args:
        config: the configuration it runs.
        log: vigild's main log.
        os_facade: fork/exec/kill (:class:`~manager.osfacade.RealOS` if ``None``).
        loop: the event loop (a new :class:`~manager.loop.Loop` if ``None``).
        environ: the environment children inherit (a copy of ``os.environ`` if ``None``).
        wallclock: wall-clock time, for the XML-RPC times and TICK boundaries.
        config_loader: re-reads the configuration (``reloadConfig``); ``None`` if it
            cannot be re-read.
    """

    def __init__(
        self,
        config: Config,
        *,
        log: logging.Logger,
        os_facade: OS | None = None,
        loop: Loop | None = None,
        environ: Mapping[str, str] | None = None,
        wallclock: Callable[[], float] = time.time,
        config_loader: Callable[[], Config] | None = None,
    ) -> None:
        self.config = config
        self._log = log
        self._os = os_facade or RealOS()
        self.loop = loop or Loop()
        self._environ = dict(os.environ if environ is None else environ)
        self._wallclock = wallclock
        self._config_loader = config_loader
        self.state = SupervisorState.RUNNING
        self.groups: dict[str, Group] = {}
        self.children: dict[int, Child] = {}
        self.by_pid: dict[int, Process] = {}
        #: pid -> the fcgi socket that child holds (released when it is reaped)
        self._socket_refs: dict[int, SharedSocket] = {}
        self.paused: set[Output] = set()
        self.logfiles: dict[tuple[str, str, str], RotatingFile] = {}
        self._tick_timers: list[Timer] = []
        self._last_tick: dict[EventType, int] = {}
        self._stopping_group: Group | None = None
        self._exit_requested: SupervisorState | None = None
        self.done = False
        #: Automatic restarts waiting for room in a listener pool (restart pacing).
        self._paced: dict[Process, Timer] = {}
        #: Automatic restarts waiting for their loop turn (one per turn), and the
        #: turn of the last one.
        self._turn_queue: deque[Process] = deque()
        self._turn_armed = False
        self._spawn_turn = -1
        self._subscribers: dict[EventType, list[ListenerPool]] = {}
        #: Stalled pools (by name) -> their ``delivered`` count when they stalled.
        self._stalled: dict[str, int] = {}
        self._stall_timers: dict[str, Timer] = {}
        #: Callbacks run whenever any process changes state (RPC waits use it).
        self.watchers: list[Callable[[Process], None]] = []

    # -- ProcessHost -----------------------------------------------------------------

    @property
    def os(self) -> OS:
        return self._os

    @property
    def log(self) -> logging.Logger:
        return self._log

    def now(self) -> float:
        return self.loop.clock()

    def wallclock(self) -> float:
        return self._wallclock()

    def call_at(self, when: float, callback: object) -> Timer:
        assert callable(callback)
        return self.loop.call_at(when, callback)

    def accepting_restarts(self) -> bool:
        return self.state is SupervisorState.RUNNING

    # -- lookups ---------------------------------------------------------------------

    def pools(self) -> Iterator[ListenerPool]:
        for g in self.groups.values():
            if g.pool is not None:
                yield g.pool

    def subscribers(self, t: EventType) -> list[ListenerPool]:
        """The pools an event of type ``t`` goes to (cached; groups change rarely)."""
        found = self._subscribers.get(t)
        if found is None:
            found = self._subscribers[t] = [p for p in self.pools() if p.subscribes(t)]
        return found

    def ordered_groups(self, *, reverse: bool = False) -> list[Group]:
        return sorted(self.groups.values(), key=lambda g: (g.priority, g.name), reverse=reverse)

    def all_processes(self) -> list[Process]:
        return [p for g in self.ordered_groups() for p in g.ordered()]

    def _owns(self, process: Process) -> bool:
        """``process`` is still one of ours (its group was not removed or replaced)."""
        group = self.groups.get(process.group)
        return group is not None and group.processes.get(process.name) is process
