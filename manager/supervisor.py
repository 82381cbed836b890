"""vigild's core: groups of processes, listener pools, child I/O, reaping, shutdown and reload.

Theory of operation
-------------------
:class:`Supervisor` is the :class:`~manager.process.ProcessHost` of every
process. It owns the :class:`~manager.loop.Loop`; everything happens on that one
thread, in callbacks:

* a child's exit arrives as SIGCHLD on the loop's wakeup pipe; the child's
  pending output is drained and its pipes closed first, then ``Process.exited``
  runs — so the log/events of a child precede its exit event, and the exit event
  is emitted in the same turn, not on a 1-second tick. The pipes are closed even
  if a descendant (a daemon) still holds them, as supervisord does: vigild would
  otherwise keep three fds per such exit and log the daemon as the program (a
  paused pipe is closed when it has been resumed and drained);
* every state change is an event; ``emit`` gives it a serial (only if some pool
  subscribes, as supervisord) and puts it in each subscribed pool, which
  dispatches to READY listeners immediately;
* child output is read when readable, split by :class:`manager.capture.OutputChannel`
  into log data and captured PROCESS_COMMUNICATION text, written to the log
  file and emitted as events; a channel whose events go to a full pool is
  paused (its fd unregistered) until that pool drains — backpressure instead of
  dropping;
* a pool that stays full and accepts no event for STALL_AFTER seconds while
  producers or restarts wait on it is *stalled*: a listener that never answers
  (or FAILs forever) must not freeze the programs whose output it subscribes to.
  A stalled pool holds nobody back and, at ``SPILL × buffer_size`` events,
  discards its oldest event of any type (supervisord: at buffer_size), until one
  of its listeners accepts an event again.
* an ``[fcgi-program:x]``'s socket (:class:`~manager.fcgisocket.SharedSocket`, one
  per program section, kept in its :class:`Group`) is checked when the group is
  created, taken by each spawn as the child's fd 0 and released when that child is
  reaped (before its exit is processed, so an autorestart of the last child gets
  a new socket) — supervisord's socket_manager timing.

Shutdown (SIGTERM/SIGINT/SIGQUIT, RPC ``shutdown``) stops groups one at a time in
descending priority, waiting for each; reload (SIGHUP, RPC ``restart``) does the
same, then re-reads the config and starts again in the same process.

Where things are (package :mod:`manager.daemon`, one mixin of :class:`Supervisor` per
concern; each calls only what it or its bases define)
-----------------------------------------------------------------------------------
* :mod:`~manager.daemon.base`: the shared state, the clock and OS part of ProcessHost,
  lookups; :mod:`~manager.daemon.group`: :class:`Group`.
* :mod:`~manager.daemon.pacing`: ``emit``, backpressure, restart pacing, stalled pools.
* :mod:`~manager.daemon.pipes`: one child's output pipes and stdin;
  :mod:`~manager.daemon.childio`: wiring them to log files, events and pools.
* :mod:`~manager.daemon.spawning`: a child's spec and fcgi socket;
  :mod:`~manager.daemon.reaping`: waitpid and what an exit releases.
* :mod:`~manager.daemon.shutdown`: state changes, shutdown and reload steps;
  :mod:`~manager.daemon.groups`: adding, removing, starting groups;
  :mod:`~manager.daemon.ticks`: TICK events.
* Here: :class:`Supervisor` (start, signals, the run loop, closing everything at the
  end), and the names other modules import.
"""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

from manager import mainlog
from manager.config import GroupConfig, PoolConfig
from manager.daemon.group import Group as Group
from manager.daemon.groups import GroupsMixin
from manager.daemon.pacing import PACE_HEADROOM as PACE_HEADROOM
from manager.daemon.pacing import PACE_MAX_DELAY as PACE_MAX_DELAY
from manager.daemon.pacing import STALL_AFTER as STALL_AFTER
from manager.daemon.pipes import Child, Output
from manager.daemon.shutdown import SHUTDOWN_REPORT_EVERY as SHUTDOWN_REPORT_EVERY
from manager.daemon.ticks import TICK_PERIODS as TICK_PERIODS
from manager.daemon.ticks import TicksMixin
from manager.events import EventType, SupervisorStateChange
from manager.fcgisocket import FcgiSocketError
from manager.logfiles import cleanup_auto_logs
from manager.states import SupervisorState

__all__ = ["Group", "Supervisor"]

E = EventType
#: the old private names of the pipe classes
_Output = Output
_Child = Child


class Supervisor(GroupsMixin, TicksMixin):
    """Runs one configuration until shutdown."""

    def start(self) -> None:
        """Create every group (pools first), announce RUNNING, spawn autostart processes."""
        sd = self.config.supervisord
        if not sd.nocleanup:
            cleanup_auto_logs(Path(sd.childlogdir), sd.identifier)
        configs: list[GroupConfig | PoolConfig] = [*self.config.pools, *self.config.groups]
        for cfg in sorted(configs, key=lambda c: (c.priority, c.name)):
            try:
                self.add_group(cfg)
            except FcgiSocketError as exc:
                # vigild checked the sockets before starting; this is a reload: keep the
                # group, whose spawns will fail with this error (supervisord dies of it)
                self.log.critical("%s", exc)
                self.add_group(cfg, check_sockets=False)
        self.state = SupervisorState.RUNNING
        self.emit(SupervisorStateChange(E.SUPERVISOR_STATE_CHANGE_RUNNING))
        for group in self.ordered_groups():
            self.start_group(group)
        self._schedule_ticks()

    def handle_signal(self, signum: int) -> None:
        if signum == signal.SIGCHLD:
            self.reap()
        elif signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            self.log.warning("received %s indicating exit request", signal.Signals(signum).name)
            self.request_stop(SupervisorState.SHUTDOWN)
        elif signum == signal.SIGHUP:
            if self.state is SupervisorState.SHUTDOWN:
                self.log.warning("ignored SIGHUP indicating restart request (shutdown in progress)")
            else:
                self.log.warning("received SIGHUP indicating restart request")
                self.request_stop(SupervisorState.RESTARTING)
        elif signum == signal.SIGUSR2:
            self.log.info("received SIGUSR2 indicating log reopen request")
            for f in self.logfiles.values():
                f.reopen()
            mainlog.reopen(self.log)
        else:
            self.log.warning("received %s; ignored", signal.Signals(signum).name)

    def run(self) -> SupervisorState:
        """Run until shutdown or reload completes; returns which one it was."""
        while not self.done:
            self.loop.run_once()
        for t in [*self._tick_timers, *self._stall_timers.values()]:
            t.cancel()
        self._stall_timers.clear()
        self.close_children_io()
        return self.state

    def close_children_io(self) -> None:
        for child in list(self.children.values()):
            for out in child.outputs:
                if out.fd >= 0:
                    out.drain()
                    if out.fd >= 0:
                        self.loop.remove_reader(out.fd)
                        os.close(out.fd)
                        out.fd = -1
            if child.stdin >= 0:
                self.loop.remove_writer(child.stdin)
                try:
                    os.close(child.stdin)
                except OSError as exc:  # pragma: no cover
                    if exc.errno != errno.EBADF:
                        raise
                child.stdin = -1
        self.children.clear()
        for f in self.logfiles.values():
            f.close()
        for group in self.groups.values():
            self._close_sockets(group)
