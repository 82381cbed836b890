"""Reaping: on SIGCHLD, ``waitpid`` every exited child; for each, release its fcgi
socket, drain and close its pipes, detach it from its pool, then run
``Process.exited`` — so a child's output and events precede its exit event."""

from __future__ import annotations

import os

from manager.daemon.childio import ChildIOMixin

__all__ = ["ReapingMixin"]


class ReapingMixin(ChildIOMixin):
    """:meth:`reap`."""

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._os.released(pid)
            process = self.by_pid.pop(pid, None)
            shared = self._socket_refs.pop(pid, None)
            if shared is not None:
                shared.release()
            child = self.children.get(pid)
            if child is not None:
                for out in child.outputs:
                    out.drain()
                    out.finish()
            if process is None:
                self.log.info("reaped unknown pid %d", pid)
                continue
            group = self.groups.get(process.group)
            if group is not None and group.pool is not None:
                group.pool.set_running(process.name, False)
                group.pool.detach(process.name)
            if process.pid == pid:
                process.exited(status)
            if child is not None and all(o.fd < 0 for o in child.outputs):
                self._release(child)
