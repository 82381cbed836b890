"""A child's I/O on the supervisor's side: a new child's pipes wired to its log files,
events and (a listener) its pool; its stdin, written without blocking; its log files.

A child's I/O is released (stdin closed, forgotten) once it has been reaped and all its
outputs are closed.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from manager.daemon.pacing import PacingMixin
from manager.daemon.pipes import Child, Output
from manager.logfiles import RotatingFile
from manager.osfacade import Spawned
from manager.process import Process

__all__ = ["ChildIOMixin"]


class ChildIOMixin(PacingMixin):
    """``ProcessHost.spawned``, stdin, log files, releasing a child's I/O."""

    def spawned(self, process: Process, spawned: Spawned) -> None:
        stdin = -1 if spawned.stdin is None else spawned.stdin
        child = Child(spawned.pid, stdin)
        self.children[spawned.pid] = child
        self.by_pid[spawned.pid] = process
        if stdin >= 0:
            os.set_blocking(stdin, False)
        group = self.groups[process.group]
        pool = group.pool
        cfg = process.config
        channels = [("stdout", spawned.stdout, cfg.stdout)]
        if spawned.stderr is not None:
            channels.append(("stderr", spawned.stderr, cfg.stderr))
        for channel, fd, lc in channels:
            out = Output(
                self,
                process,
                channel,
                fd,
                self.logfile(process, channel),
                lc,
                pool if (pool is not None and channel == "stdout") else None,
            )
            child.outputs.append(out)
            self.loop.add_reader(fd, out.on_readable)
        if pool is not None:
            pool.attach(process.name, functools.partial(self._write_stdin, child))

    def logfile(self, process: Process, channel: str) -> RotatingFile | None:
        return self.logfiles.get((process.group, process.name, channel))

    def log_path(self, process: Process, channel: str) -> Path | None:
        f = self.logfile(process, channel)
        return None if f is None else f.path

    def _write_stdin(self, child: Child, data: bytes) -> None:
        if child.stdin < 0:
            return
        child.pending += data
        self._flush_stdin(child)

    def _flush_stdin(self, child: Child) -> None:
        while child.pending and child.stdin >= 0:
            try:
                n = os.write(child.stdin, child.pending)
            except BlockingIOError:
                self.loop.add_writer(child.stdin, functools.partial(self._flush_stdin, child))
                return
            except OSError as exc:
                self.log.debug("write to pid %d stdin failed: %s", child.pid, exc)
                child.pending.clear()
                break
            del child.pending[:n]
        if child.stdin >= 0:
            self.loop.remove_writer(child.stdin)

    def send_stdin(self, process: Process, data: bytes) -> bool:
        child = self.children.get(process.pid)
        if child is None or child.stdin < 0:
            return False
        self._write_stdin(child, data)
        return True

    def outputs_closed(self, out: Output) -> None:
        child = self.children.get(out.pid)
        if child is not None and all(o.fd < 0 for o in child.outputs):
            self._release(child)

    def _release(self, child: Child) -> None:
        if child.pid in self.by_pid:
            return  # not reaped yet
        if child.stdin >= 0:
            self.loop.remove_writer(child.stdin)
            os.close(child.stdin)
            child.stdin = -1
        self.children.pop(child.pid, None)
