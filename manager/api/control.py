"""``supervisor.*`` that start, stop and signal processes, one, a group or all.

Theory of operation
-------------------
``startProcess``/``stopProcess``/``signalProcess`` act on one process; given ``g:*``
they hand over to the group form, and the group and all forms act on each matching
process through :meth:`~manager.api.base.NamespaceBase._for_each`, collecting one
result struct per process. With ``wait=True`` a start answers once the process is
RUNNING (or faults as soon as it is neither STARTING nor RUNNING) and a stop once it
is stopped, through a :class:`~manager.api.answers.Deferred`; meanwhile a waited stop
logs supervisord's ``waiting for <name> to stop`` every :data:`STOP_REPORT_EVERY` s.

Differences from supervisord 4.3, on purpose:

* ``startProcess`` of a STOPPING process answers ABNORMAL_TERMINATION at once
  (4.3 silently does nothing, then answers ABNORMAL_TERMINATION after waiting);
* ``signalAllProcesses`` checks the supervisor state before signalling (4.3
  signals first, then faults);
* the result structs of group/all operations that wait come in process order,
  not in the order in which 4.3's 50 ms polls happened to see them finish.
"""

from __future__ import annotations

from manager.api.answers import PENDING, Deferred, RPCError
from manager.api.base import NamespaceBase, Result
from manager.datatypes import signal_number
from manager.faults import Fault
from manager.osfacade import SpawnError, resolve_command
from manager.process import Process
from manager.states import RUNNING_STATES, SIGNALLABLE_STATES, STOPPED_STATES, ProcessState

__all__ = ["STOP_REPORT_EVERY", "ControlMethods"]

P = ProcessState

#: how often a waiting stop is reported in the log, seconds (supervisord: 2)
STOP_REPORT_EVERY = 2.0


class ControlMethods(NamespaceBase):
    """Starting, stopping and signalling processes, with and without waiting."""

    # -- starting and stopping

    def startProcess(self, name: str, wait: bool = True) -> bool | list[Result] | Deferred:
        """Start a process

        @param string name Process name (or ``group:name``, or ``group:*``)
        @param boolean wait Wait for process to be fully started
        @return boolean result     Always true unless error

        """
        self._require_running()
        group_name, process = self._lookup(name)
        if process is None:
            return self.startProcessGroup(group_name, wait)
        # don't bother spawning what cannot be found or run
        argv = process.config.argv
        if not argv:
            raise RPCError(Fault.NOT_EXECUTABLE, "empty command")
        try:
            resolve_command(argv[0], self._sup.spawn_spec(process).env.get("PATH"))
        except SpawnError as exc:
            raise RPCError(exc.fault, exc) from None
        state = process.state
        if state in RUNNING_STATES:
            raise RPCError(Fault.ALREADY_STARTED, name)
        if state is P.UNKNOWN:
            raise RPCError(Fault.FAILED, f"{name} is in an unknown process state")
        if state is P.STOPPING:
            raise RPCError(Fault.ABNORMAL_TERMINATION, name)
        process.spawn()
        if process.spawnerr:
            raise RPCError(Fault.SPAWN_ERROR, name)
        if not wait or process.state is P.RUNNING:
            return True

        def started() -> object:
            if process.spawnerr:
                raise RPCError(Fault.SPAWN_ERROR, name)
            if process.state not in (P.STARTING, P.RUNNING):
                raise RPCError(Fault.ABNORMAL_TERMINATION, name)
            return True if process.state is P.RUNNING else PENDING

        return self._wait(started)

    def startProcessGroup(self, name: str, wait: bool = True) -> list[Result] | Deferred:
        """Start all processes in the group named 'name'

        @param string name     The group name
        @param boolean wait    Wait for each process to be fully started
        @return array result   An array of process status info structs
        """
        self._require_running()
        return self._for_each(
            self._group_processes(name),
            lambda p: p.state not in RUNNING_STATES,
            lambda spec: self.startProcess(spec, wait),
        )

    def startAllProcesses(self, wait: bool = True) -> list[Result] | Deferred:
        """Start all processes listed in the configuration file

        @param boolean wait    Wait for each process to be fully started
        @return array result   An array of process status info structs
        """
        self._require_running()
        return self._for_each(
            self._sup.all_processes(),
            lambda p: p.state not in RUNNING_STATES,
            lambda spec: self.startProcess(spec, wait),
        )

    def stopProcess(self, name: str, wait: bool = True) -> bool | list[Result] | Deferred:
        """Stop a process named by name

        @param string name  The name of the process to stop (or 'group:name')
        @param boolean wait        Wait for the process to be fully stopped
        @return boolean result     Always return True unless error
        """
        self._require_running()
        group_name, process = self._lookup(name)
        if process is None:
            return self.stopProcessGroup(group_name, wait)
        if process.state not in RUNNING_STATES:
            raise RPCError(Fault.NOT_RUNNING, name)
        process.stop()
        if process.state is P.UNKNOWN:
            raise RPCError(Fault.FAILED, f"unknown problem killing {name}")
        if not wait or process.state in STOPPED_STATES:
            return True
        self._stop_report(process)
        return self._wait(lambda: True if process.state in STOPPED_STATES else PENDING)

    def _stop_report(self, process: Process) -> None:
        """supervisord's ``waiting for <name> to stop`` (INFO): now, then every 2 s while a
        ``wait=True`` stop is still STOPPING."""
        if process.state is not P.STOPPING:
            return
        self._sup.log.info("waiting for %s to stop", process.name)
        self._sup.loop.call_later(STOP_REPORT_EVERY, lambda: self._stop_report(process))

    def stopProcessGroup(self, name: str, wait: bool = True) -> list[Result] | Deferred:
        """Stop all processes in the process group named 'name'

        @param string name     The group name
        @param boolean wait    Wait for each process to be fully stopped
        @return array result   An array of process status info structs
        """
        self._require_running()
        return self._for_each(
            self._group_processes(name),
            lambda p: p.state in RUNNING_STATES,
            lambda spec: self.stopProcess(spec, wait),
        )

    def stopAllProcesses(self, wait: bool = True) -> list[Result] | Deferred:
        """Stop all processes in the process list

        @param  boolean wait   Wait for each process to be fully stopped
        @return array result   An array of process status info structs
        """
        self._require_running()
        return self._for_each(
            self._sup.all_processes(),
            lambda p: p.state in RUNNING_STATES,
            lambda spec: self.stopProcess(spec, wait),
        )

    # -- signals

    def signalProcess(self, name: str, signal: str | int) -> bool | list[Result] | Deferred:
        """Send an arbitrary UNIX signal to the process named by name

        @param string name    Name of the process to signal (or 'group:name')
        @param string signal  Signal to send, as name ('HUP') or number ('1')
        @return boolean
        """
        self._require_running()
        group_name, process = self._lookup(name)
        if process is None:
            return self.signalProcessGroup(group_name, signal)
        try:
            sig = signal_number(str(signal))
        except ValueError:
            raise RPCError(Fault.BAD_SIGNAL, signal) from None
        if process.state not in SIGNALLABLE_STATES:
            raise RPCError(Fault.NOT_RUNNING, name)
        if not process.send_signal(sig):
            raise RPCError(Fault.FAILED, f"unknown problem sending signal {sig} to {name}")
        return True

    def signalProcessGroup(self, name: str, signal: str | int) -> list[Result] | Deferred:
        """Send a signal to all processes in the group named 'name'

        @param string name    The group name
        @param string signal  Signal to send, as name ('HUP') or number ('1')
        @return array
        """
        self._require_running()
        return self._for_each(
            self._group_processes(name),
            lambda p: p.state in SIGNALLABLE_STATES,
            lambda spec: self.signalProcess(spec, signal),
        )

    def signalAllProcesses(self, signal: str | int) -> list[Result] | Deferred:
        """Send a signal to all processes in the process list

        @param string signal  Signal to send, as name ('HUP') or number ('1')
        @return array         An array of process status info structs
        """
        self._require_running()
        return self._for_each(
            self._sup.all_processes(),
            lambda p: p.state in SIGNALLABLE_STATES,
            lambda spec: self.signalProcess(spec, signal),
        )
