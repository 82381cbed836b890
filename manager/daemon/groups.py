"""Groups at run time: adding one (its processes STOPPED, its pool, its log files and
fcgi sockets), removing one, starting its autostart processes.

:class:`GroupsMixin` derives from every mixin a :class:`~manager.process.ProcessHost`
needs, because each :class:`~manager.process.Process` it creates has the supervisor as
its host.
"""

from __future__ import annotations

from pathlib import Path

from manager.config import GroupConfig, LogConfig, PoolConfig, ProcessConfig
from manager.daemon.group import Group
from manager.daemon.reaping import ReapingMixin
from manager.daemon.shutdown import ShutdownMixin
from manager.daemon.spawning import SpawningMixin
from manager.events import EventType, ProcessGroupEvent
from manager.fcgisocket import SharedSocket
from manager.logfiles import RotatingFile, auto_log_path
from manager.pool import ListenerPool
from manager.process import Process
from manager.states import ProcessState

__all__ = ["GroupsMixin"]

E = EventType


class GroupsMixin(SpawningMixin, ReapingMixin, ShutdownMixin):
    """Adding, removing and starting groups."""

    def add_group(self, cfg: GroupConfig | PoolConfig, *, check_sockets: bool = True) -> Group:
        """Create a group (its processes STOPPED) and announce it.

        Raises:
            FcgiSocketError: (with ``check_sockets``) an fcgi-program's socket cannot be
                created; nothing was added, as in supervisord.
        """
        group = Group(cfg)
        for pc in cfg.processes:
            if pc.socket is not None and pc.program not in group.sockets:
                group.sockets[pc.program] = SharedSocket(pc.socket, log=self.log)
        if check_sockets:
            for shared in group.sockets.values():
                shared.check()
        if isinstance(cfg, PoolConfig):
            group.pool = ListenerPool(
                cfg,
                server=self.config.supervisord.identifier,
                log=self.log,
                on_drain=self._on_pool_drain,
                call_later=self.loop.call_later,
                clock=self.loop.clock,
            )
        sd = self.config.supervisord
        for pc in cfg.processes:
            group.processes[pc.name] = Process(pc, self)
            for channel, lc in (("stdout", pc.stdout), ("stderr", pc.stderr)):
                path = self._resolve_log_path(pc, channel, lc)
                if path is not None:
                    f = RotatingFile(path, lc.maxbytes, lc.backups)
                    f.write(b"")
                    self.logfiles[(cfg.name, pc.name, channel)] = f
        self.groups[cfg.name] = group
        self._subscribers.clear()
        self.emit(ProcessGroupEvent(E.PROCESS_GROUP_ADDED, cfg.name))
        del sd
        return group

    def _resolve_log_path(self, pc: ProcessConfig, channel: str, lc: LogConfig) -> Path | None:
        if channel == "stderr" and pc.redirect_stderr and not pc.is_listener:
            return None
        target = lc.target
        if target.is_auto:
            return auto_log_path(
                Path(self.config.supervisord.childlogdir),
                pc.name,
                channel,
                self.config.supervisord.identifier,
            )
        if target.path is None:
            return None
        return Path(target.path)

    def remove_group(self, name: str) -> None:
        group = self.groups.pop(name)
        self._subscribers.clear()
        self._close_sockets(group)
        for p in group.processes.values():
            for channel in ("stdout", "stderr"):
                f = self.logfiles.pop((name, p.name, channel), None)
                if f is not None:
                    f.close()
        self.emit(ProcessGroupEvent(E.PROCESS_GROUP_REMOVED, name))

    def start_group(self, group: Group) -> None:
        for p in group.ordered():
            if p.config.autostart and p.state is ProcessState.STOPPED and not p.laststart:
                p.spawn()

    def _close_sockets(self, group: Group) -> None:
        """Close a group's fcgi sockets, whatever children may still hold (UNKNOWN ones)."""
        for shared in group.sockets.values():
            shared.close()
        self._socket_refs = {
            pid: s for pid, s in self._socket_refs.items() if s not in group.sockets.values()
        }
