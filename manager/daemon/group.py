""":class:`Group`: one ``[group:x]``/``[program:x]``/``[fcgi-program:x]`` or
``[eventlistener:x]`` pool at run time: its processes, its listener pool, its fcgi sockets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from manager.config import GroupConfig, PoolConfig
from manager.fcgisocket import SharedSocket
from manager.pool import ListenerPool
from manager.process import Process
from manager.states import STOPPED_STATES

__all__ = ["Group"]


@dataclass
class Group:
    config: GroupConfig | PoolConfig
    processes: dict[str, Process] = field(default_factory=dict)
    pool: ListenerPool | None = None
    #: fcgi-program sockets by program (section) name
    sockets: dict[str, SharedSocket] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def priority(self) -> int:
        return self.config.priority

    def ordered(self, *, reverse: bool = False) -> list[Process]:
        return sorted(
            self.processes.values(),
            key=lambda p: (p.config.priority, p.name),
            reverse=reverse,
        )

    def alive(self) -> bool:
        return any(p.state not in STOPPED_STATES for p in self.processes.values())
