"""What a child is started with: its :class:`~manager.osfacade.SpawnSpec` (argv,
environment with the ``SUPERVISOR_*`` variables, directory, umask, user) and, for an
fcgi-program, a reference to its group's socket as fd 0 (released when it is reaped,
:mod:`manager.daemon.reaping`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from manager.daemon.base import SupervisorBase
from manager.fcgisocket import FcgiSocketError
from manager.osfacade import Spawned, SpawnError, SpawnSpec
from manager.process import Process

__all__ = ["SpawningMixin"]


class SpawningMixin(SupervisorBase):
    """``ProcessHost.spawn_child`` and the spec behind it."""

    def server_url(self, process: Process) -> str | None:
        if process.config.serverurl:
            return process.config.serverurl
        unix = self.config.unix_http_server
        if unix is not None:
            return f"unix://{Path(unix.file).resolve()}"
        for inet in self.config.inet_http_servers:
            host = inet.host if inet.host not in ("", "*") else "localhost"
            return f"http://{host}:{inet.port}"
        return None

    def spawn_spec(self, process: Process) -> SpawnSpec:
        cfg = process.config
        env = dict(self._environ)
        env["SUPERVISOR_ENABLED"] = "1"
        env["SUPERVISOR_PROCESS_NAME"] = cfg.name
        env["SUPERVISOR_GROUP_NAME"] = cfg.group
        url = self.server_url(process)
        if url:
            env["SUPERVISOR_SERVER_URL"] = url
        env.update(self.config.supervisord.environment)
        env.update(cfg.environment)
        return SpawnSpec(
            argv=cfg.argv,
            env=env,
            cwd=cfg.directory,
            umask=cfg.umask,
            user=cfg.user,
            redirect_stderr=cfg.redirect_stderr and not cfg.is_listener,
        )

    def spawn_child(self, process: Process) -> Spawned:
        """Spawn ``process``; an fcgi-program's child gets a reference to its socket as fd 0.

        Raises:
            SpawnError: also when the socket cannot be created.
        """
        spec = self.spawn_spec(process)
        group = self.groups.get(process.group)
        shared = group.sockets.get(process.config.program) if group is not None else None
        if shared is None:
            return self._os.spawn(spec)
        try:
            fd = shared.acquire()
        except FcgiSocketError as exc:
            raise SpawnError(str(exc)) from None
        try:
            spawned = self._os.spawn(replace(spec, stdin=fd))
        except BaseException:
            shared.release()
            raise
        self._socket_refs[spawned.pid] = shared
        return spawned
