"""Process state changes and the shutdown sequence.

Shutdown (SHUTDOWN) and reload (RESTARTING) stop groups one at a time in descending
priority, waiting for each (a step runs on every process state change); a report of
the processes still alive is logged every SHUTDOWN_REPORT_EVERY seconds.
"""

from __future__ import annotations

from manager.daemon.pacing import PacingMixin
from manager.events import EventType, SupervisorStateChange
from manager.process import Process
from manager.states import RUNNING_STATES, STOPPED_STATES, ProcessState, SupervisorState

__all__ = ["SHUTDOWN_REPORT_EVERY", "ShutdownMixin"]

E = EventType
#: How often a shutdown reports the processes it is still waiting for, seconds (supervisord: 3).
SHUTDOWN_REPORT_EVERY = 3.0


class ShutdownMixin(PacingMixin):
    """``ProcessHost.state_changed``, :meth:`request_stop` and the shutdown steps."""

    def state_changed(self, process: Process, old: ProcessState) -> None:
        group = self.groups.get(process.group)
        if group is not None and group.pool is not None:
            group.pool.set_running(process.name, process.state is ProcessState.RUNNING)
        for watcher in list(self.watchers):
            watcher(process)
        if self.state is not SupervisorState.RUNNING:
            self.loop.call_soon(self._shutdown_step)

    def request_stop(self, why: SupervisorState) -> None:
        """Begin a shutdown (SHUTDOWN) or reload (RESTARTING)."""
        if self.state is not SupervisorState.RUNNING:
            if why is SupervisorState.SHUTDOWN:
                self.state = why
            return
        self.state = why
        self.emit(SupervisorStateChange(E.SUPERVISOR_STATE_CHANGE_STOPPING))
        self.loop.call_soon(self._shutdown_step)
        self.loop.call_soon(self._shutdown_report)

    def _shutdown_report(self) -> None:
        """supervisord's ``waiting for a, b to die`` (INFO): now, then every 3 s until all
        processes are stopped."""
        if self.done:
            return
        alive = [p.name for p in self.all_processes() if p.state not in STOPPED_STATES]
        if alive:
            self.log.info("waiting for %s to die", ", ".join(alive))
        self.loop.call_later(SHUTDOWN_REPORT_EVERY, self._shutdown_report)

    def _shutdown_step(self) -> None:
        """Stop the highest-priority group still alive; finish when none is."""
        if self.state is SupervisorState.RUNNING or self.done:
            return
        current = self._stopping_group
        if current is not None and current.name in self.groups and current.alive():
            return  # still waiting for it
        for group in self.ordered_groups(reverse=True):
            if group.alive():
                self._stopping_group = group
                for p in group.ordered(reverse=True):
                    if p.state is ProcessState.BACKOFF:
                        p.give_up()
                    elif p.state in RUNNING_STATES:
                        p.stop()
                if group.alive():
                    return
        self._stopping_group = None
        self.done = True
