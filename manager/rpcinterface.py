"""supervisord's XML-RPC API: the ``supervisor.*`` and ``system.*`` namespaces (reference §5).

Theory of operation
-------------------
Each public method of :class:`SupervisorNamespace` and :class:`SystemNamespace`
is one wire method; its name is the wire name (camelCase is the wire contract,
house rule 18) and aliases are plain class attributes (``getVersion =
getAPIVersion``), as in supervisord. Docstrings keep supervisord's ``@param
type name`` / ``@return type`` lines: ``system.methodHelp`` returns them and
``system.methodSignature`` is computed from them. The Python annotations are
what :mod:`manager.rpcserver` checks arguments against (wrong type or count is
INCORRECT_PARAMETERS).

A method answers at once with a value, raises :class:`RPCError` (a fault), or
returns a :class:`Deferred` when the answer has to wait for a state —
``startProcess(name, wait=True)`` waits for RUNNING. A wait never blocks: it
is a callback in ``Supervisor.watchers``, evaluated on every process state
change, which settles the Deferred on the next turn of the loop (never from
inside the state change that decided it, so a reply never re-enters the state
machine). ``rpcserver`` sends the response when the Deferred settles and
cancels it if the client goes away.

Version strings: ``getAPIVersion`` is ``3.0`` and ``getSupervisorVersion`` is
``4.3.0`` — vigild presents itself as supervisord 4.3.0 because clients
(supervisorctl, superlance, our own listeners) compare these strings to decide
what the server can do; vigild's own version is in its log and ``--version``.

Differences from supervisord 4.3, on purpose:

* ``startProcess`` of a STOPPING process answers ABNORMAL_TERMINATION at once
  (4.3 silently does nothing, then answers ABNORMAL_TERMINATION after waiting);
* ``signalAllProcesses`` checks the supervisor state before signalling (4.3
  signals first, then faults);
* the result structs of group/all operations that wait come in process order,
  not in the order in which 4.3's 50 ms polls happened to see them finish;
* log text that is not valid UTF-8 is decoded with replacement characters
  instead of failing the call (rpcserver also replaces characters XML cannot
  carry).
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import functools
import logging
import os
import pwd
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from manager import mainlog
from manager.config import Config, GroupConfig, PoolConfig, ProcessConfig, diff_groups
from manager.datatypes import LogKind, signal_number
from manager.events import RemoteCommunication
from manager.faults import Fault
from manager.ini import ConfigError
from manager.logfiles import LogReadError, read_log, tail_log
from manager.osfacade import SpawnError, resolve_command
from manager.process import Process
from manager.states import (
    RUNNING_STATES,
    SIGNALLABLE_STATES,
    STOPPED_STATES,
    ProcessState,
    SupervisorState,
)
from manager.supervisor import Supervisor
from manager.xmlrpcwire import MAXINT, Marshalled, text

__all__ = [
    "API_VERSION",
    "PENDING",
    "SUPERVISOR_VERSION",
    "Deferred",
    "RPCError",
    "SupervisorNamespace",
    "SystemNamespace",
    "abandon",
    "gettags",
    "make_namespec",
    "method_table",
    "split_namespec",
    "wire_table",
]

log = logging.getLogger("vigild.rpc")

API_VERSION = "3.0"
#: the supervisord release whose API and behaviour vigild reproduces
SUPERVISOR_VERSION = "4.3.0"

P = ProcessState
#: A result struct of the group/all operations.
Result = dict[str, object]


class RPCError(Exception):
    """A fault: ``code`` is the :class:`Fault`, ``text`` is ``NAME`` or ``NAME: detail``."""

    def __init__(self, fault: Fault, detail: object = None) -> None:
        self.code = fault
        self.text = fault.name if detail is None else f"{fault.name}: {detail}"
        super().__init__(self.text)


# --- deferred answers ------------------------------------------------------------------------


class _Pending(enum.Enum):
    PENDING = "PENDING"


#: What a wait condition returns while its state has not been reached.
PENDING = _Pending.PENDING


class Deferred:
    """An answer that is not known yet.

    Exactly one of :meth:`resolve`, :meth:`fail` or :meth:`cancel` takes effect;
    later calls are ignored. Done callbacks run on resolve/fail (at once if already
    settled), cancel callbacks on cancel (the client went away).
    """

    def __init__(self) -> None:
        self.done = False
        self.cancelled = False
        self._value: object = None
        self._error: Exception | None = None
        self._callbacks: list[Callable[[Deferred], None]] = []
        self._cancellers: list[Callable[[], None]] = []

    def resolve(self, value: object) -> None:
        if not self.done:
            self._value = value
            self._settle()

    def fail(self, error: Exception) -> None:
        if not self.done:
            self._error = error
            self._settle()

    def result(self) -> object:
        """The value, or raise the error it failed with.

        Raises:
            RPCError: the fault it failed with (or any other exception it carries).
        """
        assert self.done and not self.cancelled
        if self._error is not None:
            raise self._error
        return self._value

    def add_done_callback(self, callback: Callable[[Deferred], None]) -> None:
        if self.done:
            if not self.cancelled:
                callback(self)
            return
        self._callbacks.append(callback)

    def on_cancel(self, callback: Callable[[], None]) -> None:
        if not self.done:
            self._cancellers.append(callback)

    def cancel(self) -> None:
        if self.done:
            return
        self.done = self.cancelled = True
        self._callbacks.clear()
        cancellers, self._cancellers = self._cancellers, []
        for cb in cancellers:
            try:
                cb()
            except Exception:
                log.exception("error while cancelling a deferred XML-RPC answer")

    def _settle(self) -> None:
        self.done = True
        self._cancellers.clear()
        callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            # a broken callback must not take the loop (and every process) down with it
            try:
                cb(self)
            except Exception:
                log.exception("error in a callback of a deferred XML-RPC answer")


def outcome(deferred: Deferred) -> object:
    """A settled Deferred as multicall reports it: the value, or a fault struct."""
    try:
        return deferred.result()
    except RPCError as exc:
        return {"faultCode": int(exc.code), "faultString": exc.text}
    except Exception as exc:
        return _failed_struct(exc)


def _failed_struct(exc: Exception) -> dict[str, object]:
    # supervisord's text for an unexpected exception inside multicall
    return {"faultCode": int(Fault.FAILED), "faultString": f"FAILED: {type(exc)}:{exc}"}


# --- names -----------------------------------------------------------------------------------


def make_namespec(group: str, name: str) -> str:
    """``name`` when a process is alone in its homonymous group, else ``group:name``."""
    return name if group == name else f"{group}:{name}"


def split_namespec(namespec: str) -> tuple[str, str | None]:
    """``name`` → (name, name); ``g:n`` → (g, n); ``g:*`` and ``g:`` → (g, None)."""
    group, sep, process = namespec.partition(":")
    if not sep:
        return namespec, namespec
    if not process or process == "*":
        return group, None
    return group, process


# --- introspection ---------------------------------------------------------------------------


def method_table(namespaces: Mapping[str, object]) -> dict[str, Callable[..., object]]:
    """Every published method as ``{"ns.method": bound method}``, aliases included.

    A method is published when its class defines it (not a base class) and its name
    does not start with ``_`` — supervisord's rule.
    """
    table: dict[str, Callable[..., object]] = {}
    for ns_name, ns in namespaces.items():
        for attr, value in vars(type(ns)).items():
            if attr.startswith("_") or not callable(value):
                continue
            table[f"{ns_name}.{attr}"] = getattr(ns, attr)
    return table


def wire_table(namespaces: Mapping[str, object]) -> dict[str, Callable[..., object]]:
    """The ``_wire_<method>`` twins, as ``{"ns.method": bound twin}``.

    A twin takes the method's arguments and returns its value already marshalled
    (:class:`~manager.xmlrpcwire.Marshalled`); it must unmarshal to what the
    method returns.
    """
    table: dict[str, Callable[..., object]] = {}
    for ns_name, ns in namespaces.items():
        for attr in vars(type(ns)):
            if attr.startswith("_wire_") and callable(getattr(ns, attr[6:], None)):
                table[f"{ns_name}.{attr[6:]}"] = getattr(ns, attr)
    return table


Tag = tuple[int, str | None, str | None, str | None, str]


def gettags(comment: str) -> list[Tag]:
    """Parse ``@tag type name text`` lines of a docstring, as supervisord's ``gettags``.

    Returns:
        ``(line, tag, datatype, name, text)`` tuples; the first one is the text
        before any tag (tag ``None``).
    """
    tags: list[Tag] = []
    tag: str | None = None
    datatype: str | None = None
    name: str | None = None
    tag_lineno = 0
    tag_text: list[str] = []
    for lineno, raw in enumerate(comment.split("\n")):
        line = raw.strip()
        if line.startswith("@"):
            tags.append((tag_lineno, tag, datatype, name, "\n".join(tag_text)))
            parts = line.split(None, 3)
            datatype = parts[1] if len(parts) > 1 else ""
            name = parts[2] if len(parts) > 2 else ""
            tag_text = [parts[3].lstrip()] if len(parts) > 3 else []
            tag = parts[0][1:]
            tag_lineno = lineno
        elif line:
            tag_text.append(line)
    tags.append((tag_lineno, tag, datatype, name, "\n".join(tag_text)))
    return tags


# --- the supervisor namespace ----------------------------------------------------------------


def _capped(value: float) -> int:
    return max(-(2**31), min(2**31 - 1, int(value)))


def _number(value: float) -> int | float:
    return int(value) if value == int(value) else value


def _result(process: Process, code: Fault, text: str) -> Result:
    return {"name": process.name, "group": process.group, "status": int(code), "description": text}


def _description(
    state: ProcessState, name: str, start: int, stop: int, now: int, pid: int, spawnerr: str
) -> str:
    """supervisord's ``_interpretProcessInfo``: the text after the state in ``status``."""
    if state is P.RUNNING:
        # whole seconds in UTC, as supervisord's gmtime-built datetimes subtract
        up = max(now - start, 0)
        if up < 86400:  # str(timedelta) without building one: "H:MM:SS"
            return f"pid {pid}, uptime {up // 3600}:{up // 60 % 60:02d}:{up % 60:02d}"
        return f"pid {pid}, uptime {datetime.timedelta(seconds=up)}"
    if state is P.FATAL or state is P.BACKOFF:
        return spawnerr or f'unknown error (try "tail {name}")'
    if state is P.STOPPED or state is P.EXITED:
        if start:
            return datetime.datetime(*time.localtime(stop)[:6]).strftime("%b %d %I:%M %p")
        return "Not started"
    return ""


def _member(name: str, kind: str, value: object) -> str:
    return f"<member><name>{name}</name><value><{kind}>{value}</{kind}></value></member>"


#: how often a waiting stop is reported in the log, seconds (supervisord: 2)
STOP_REPORT_EVERY = 2.0


class SupervisorNamespace:
    """The ``supervisor.*`` methods, on one running :class:`Supervisor`."""

    def __init__(self, sup: Supervisor) -> None:
        self._sup = sup
        #: the configuration read last (``reloadConfig``), which ``addProcessGroup``
        #: and ``getAllConfigInfo`` use
        self._config: Config = sup.config
        #: waits in progress, and how to stop watching for each
        self._pending: dict[Deferred, Callable[[], None]] = {}
        #: :meth:`_static_members` of each process, as of the last getAllProcessInfo
        self._statics: dict[Process, tuple[str, str]] = {}

    # -- helpers (not published: they start with "_")

    def _require_running(self) -> None:
        if self._sup.state is not SupervisorState.RUNNING:
            raise RPCError(Fault.SHUTDOWN_STATE)

    def _lookup(self, name: str) -> tuple[str, Process | None]:
        """(group name, process) for a namespec; process is None for ``g:*`` / ``g:``."""
        group_name, process_name = split_namespec(name)
        group = self._sup.groups.get(group_name)
        if group is None:
            raise RPCError(Fault.BAD_NAME, name)
        if process_name is None:
            return group_name, None
        process = group.processes.get(process_name)
        if process is None:
            raise RPCError(Fault.BAD_NAME, name)
        return group_name, process

    def _process(self, name: str) -> Process:
        _group, process = self._lookup(name)
        if process is None:
            raise RPCError(Fault.BAD_NAME, name)
        return process

    def _group_processes(self, name: str) -> list[Process]:
        group = self._sup.groups.get(name)
        if group is None:
            raise RPCError(Fault.BAD_NAME, name)
        return group.ordered()

    def _wait(self, check: Callable[[], object]) -> Deferred:
        """A Deferred settled by ``check()`` once it stops returning :data:`PENDING`.

        ``check`` runs after every process state change; it may raise RPCError.
        """
        sup = self._sup
        deferred = Deferred()

        def stop() -> None:
            with contextlib.suppress(ValueError):
                sup.watchers.remove(watcher)
            self._pending.pop(deferred, None)

        def settle(action: Callable[[], None]) -> None:
            stop()
            # answer on the next turn, outside the state change that decided it
            sup.loop.call_soon(action)

        def watcher(_process: Process) -> None:
            if deferred.done:
                stop()
                return
            try:
                value = check()
            except Exception as exc:  # RPCError, or a bug: either way the client hears of it
                settle(functools.partial(deferred.fail, exc))
                return
            if value is not PENDING:
                settle(functools.partial(deferred.resolve, value))

        sup.watchers.append(watcher)
        self._pending[deferred] = stop
        deferred.on_cancel(stop)
        return deferred

    def _for_each(
        self,
        processes: Sequence[Process],
        predicate: Callable[[Process], bool],
        action: Callable[[str], object],
    ) -> list[Result] | Deferred:
        """supervisord's ``make_allfunc``: act on each matching process, collect result structs.

        Immediate results come first, in ``processes`` order; waited ones follow, also
        in ``processes`` order, once the last has finished. (supervisord appends them
        as its 50 ms polls see them finish, which is the same order whenever they
        finish together, e.g. a group stopped at once; ours does not depend on timing.)
        """
        results: list[Result] = []
        waiting: list[tuple[Process, Deferred]] = []
        for process in processes:
            if not predicate(process):
                continue
            try:
                value = action(process.namespec)
            except RPCError as exc:
                results.append(_result(process, exc.code, exc.text))
                continue
            if isinstance(value, Deferred):
                waiting.append((process, value))
            else:
                results.append(_result(process, Fault.SUCCESS, "OK"))
        if not waiting:
            return results
        combined = Deferred()

        def finished(_d: Deferred) -> None:
            if combined.done or not all(d.done for _p, d in waiting):
                return
            for process, d in waiting:
                try:
                    d.result()
                except RPCError as exc:
                    results.append(_result(process, exc.code, exc.text))
                except Exception as exc:
                    combined.fail(exc)
                    return
                else:
                    results.append(_result(process, Fault.SUCCESS, "OK"))
            combined.resolve(results)

        def cancel_all() -> None:
            for _process, d in waiting:
                d.cancel()

        combined.on_cancel(cancel_all)
        for _process, d in waiting:
            d.add_done_callback(finished)
        return combined

    def _abandon(self) -> None:
        """This supervisor is gone (reload, shutdown): fail every pending wait."""
        for deferred, stop in list(self._pending.items()):
            stop()
            deferred.fail(RPCError(Fault.SHUTDOWN_STATE))

    # -- status and control of the supervisor

    def getAPIVersion(self) -> str:
        """Return the version of the RPC API used by supervisord

        @return string version id
        """
        self._require_running()
        return API_VERSION

    getVersion = getAPIVersion  # b/w compatibility with releases before 3.0

    def getSupervisorVersion(self) -> str:
        """Return the version of the supervisor package in use by supervisord

        @return string version id
        """
        self._require_running()
        return SUPERVISOR_VERSION

    def getIdentification(self) -> str:
        """Return identifying string of supervisord

        @return string identifier identifying string
        """
        self._require_running()
        return self._sup.config.supervisord.identifier

    def getState(self) -> dict[str, object]:
        """Return current state of supervisord as a struct

        @return struct A struct with keys int statecode, string statename
        """
        self._require_running()
        state = self._sup.state
        return {"statecode": int(state), "statename": state.name}

    def getPID(self) -> int:
        """Return the PID of supervisord

        @return int PID
        """
        self._require_running()
        return os.getpid()

    def readLog(self, offset: int, length: int) -> str:
        """Read length bytes from the main log starting at offset

        @param int offset         offset to start reading from.
        @param int length         number of bytes to read from the log.
        @return string result     Bytes of log
        """
        self._require_running()
        logfile = self._sup.config.supervisord.logfile
        return _read(logfile if logfile != "syslog" else None, offset, length)

    readMainLog = readLog  # b/w compatibility with releases before 2.1

    def clearLog(self) -> bool:
        """Clear the main log.

        @return boolean result always returns True unless error
        """
        self._require_running()
        logfile = self._sup.config.supervisord.logfile
        if logfile == "syslog" or not os.path.exists(logfile):
            raise RPCError(Fault.NO_FILE)
        try:
            os.remove(logfile)
        except OSError:
            raise RPCError(Fault.FAILED) from None
        self._sup.log.info("reopening log file")
        try:
            mainlog.reopen(self._sup.log)
        except OSError:
            raise RPCError(Fault.FAILED) from None
        return True

    def shutdown(self) -> bool:
        """Shut down the supervisor process

        @return boolean result always returns True unless error
        """
        self._require_running()
        self._sup.request_stop(SupervisorState.SHUTDOWN)
        return True

    def restart(self) -> bool:
        """Restart the supervisor process

        @return boolean result  always return True unless error
        """
        self._require_running()
        self._sup.request_stop(SupervisorState.RESTARTING)
        return True

    def reloadConfig(self) -> list[list[list[str]]]:
        """
        Reload the configuration.

        The result contains three arrays containing names of process
        groups:

        * `added` gives the process groups that have been added
        * `changed` gives the process groups whose contents have
          changed
        * `removed` gives the process groups that are no longer
          in the configuration

        @return array result  [[added, changed, removed]]

        """
        self._require_running()
        sup = self._sup
        loader = sup._config_loader
        if loader is None:
            raise RPCError(Fault.CANT_REREAD, "no configuration file to read")
        try:
            new = loader()
        except ConfigError as exc:
            raise RPCError(Fault.CANT_REREAD, supervisord_wording(exc)) from None
        except (ValueError, OSError) as exc:
            raise RPCError(Fault.CANT_REREAD, exc) from None
        self._config = new
        groups = [g.config for g in sup.ordered_groups()]
        active = replace(
            sup.config,
            groups=tuple(g for g in groups if isinstance(g, GroupConfig)),
            pools=tuple(g for g in groups if isinstance(g, PoolConfig)),
        )
        added, changed, removed = diff_groups(active, new)
        return [[added, changed, removed]]

    def addProcessGroup(self, name: str) -> bool:
        """Update the config for a running process from config file.

        @param string name         name of process group to add
        @return boolean result     true if successful
        """
        self._require_running()
        cfg = self._config.group(name)
        if cfg is None:
            raise RPCError(Fault.BAD_NAME, name)
        sup = self._sup
        if name in sup.groups:
            raise RPCError(Fault.ALREADY_ADDED, name)
        try:
            group = sup.add_group(cfg)
        except OSError as exc:
            raise RPCError(Fault.FAILED, exc) from None
        sup.start_group(group)
        return True

    def removeProcessGroup(self, name: str) -> bool:
        """Remove a stopped process from the active configuration.

        @param string name         name of process group to remove
        @return boolean result     Indicates whether the removal was successful
        """
        self._require_running()
        group = self._sup.groups.get(name)
        if group is None:
            raise RPCError(Fault.BAD_NAME, name)
        if any(p.state not in STOPPED_STATES for p in group.processes.values()):
            raise RPCError(Fault.STILL_RUNNING, name)
        self._sup.remove_group(name)
        return True

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

    # -- information

    def getAllConfigInfo(self) -> list[dict[str, object]]:
        """Get info about all available process configurations. Each struct
        represents a single process (i.e. groups get flattened).

        @return array result  An array of process config info structs
        """
        self._require_running()
        infos = [
            self._config_info(gcfg, pcfg)
            for gcfg in self._config.all_groups()
            for pcfg in gcfg.processes
        ]
        infos.sort(key=lambda info: str(info["name"]))
        return infos

    def _config_info(
        self, gcfg: GroupConfig | PoolConfig, pcfg: ProcessConfig
    ) -> dict[str, object]:
        group = self._sup.groups.get(gcfg.name)
        live = group.processes.get(pcfg.name) if group is not None else None
        info: dict[str, object] = {
            "autostart": pcfg.autostart,
            "directory": pcfg.directory if pcfg.directory is not None else "none",
            "uid": _uid(pcfg.user),
            "command": pcfg.command,
            "exitcodes": sorted(pcfg.exitcodes),
            "group": gcfg.name,
            "group_prio": gcfg.priority,
            "inuse": group is not None,
            "killasgroup": pcfg.killasgroup,
            "name": pcfg.name,
            "process_prio": pcfg.priority,
            "redirect_stderr": pcfg.redirect_stderr,
            "startretries": pcfg.startretries,
            "startsecs": _number(pcfg.startsecs),
            "stopsignal": int(pcfg.stopsignal),
            "stopwaitsecs": _number(pcfg.stopwaitsecs),
            "serverurl": pcfg.serverurl if pcfg.serverurl is not None else "auto",
        }
        for channel, lc in (("stdout", pcfg.stdout), ("stderr", pcfg.stderr)):
            path = self._sup.log_path(live, channel) if live is not None else None
            if path is not None:
                logfile = str(path)
            elif lc.target.kind is LogKind.FILE and lc.target.path is not None:
                logfile = lc.target.path
            else:
                logfile = "auto" if lc.target.is_auto else "none"
            info[f"{channel}_capture_maxbytes"] = lc.capture_maxbytes
            info[f"{channel}_events_enabled"] = lc.events_enabled
            info[f"{channel}_logfile"] = logfile
            info[f"{channel}_logfile_backups"] = lc.backups
            info[f"{channel}_logfile_maxbytes"] = lc.maxbytes
            info[f"{channel}_syslog"] = lc.syslog
        return info

    def getProcessInfo(self, name: str) -> dict[str, object]:
        """Get info about a process named name

        @param string name The name of the process (or 'group:name')
        @return struct result     A structure containing data about the process
        """
        self._require_running()
        return self._info(self._process(name))

    def _info(self, process: Process, now: int | None = None) -> dict[str, object]:
        sup = self._sup
        stdout = sup.log_path(process, "stdout")
        stderr = sup.log_path(process, "stderr")
        start = _capped(process.laststart)
        stop = _capped(process.laststop)
        if now is None:
            now = _capped(sup.wallclock())
        spawnerr = process.spawnerr or ""
        return {
            "name": process.name,
            "group": process.group,
            "start": start,
            "stop": stop,
            "now": now,
            "state": int(process.state),
            "statename": process.state.name,
            "spawnerr": spawnerr,
            "exitstatus": process.exitstatus or 0,
            "logfile": str(stdout) if stdout is not None else "",
            "stdout_logfile": str(stdout) if stdout is not None else "",
            "stderr_logfile": str(stderr) if stderr is not None else "",
            "pid": process.pid,
            "description": _description(
                process.state, process.name, start, stop, now, process.pid, spawnerr
            ),
        }

    def getAllProcessInfo(self) -> list[dict[str, object]]:
        """Get info about all processes

        @return array result  An array of process status results
        """
        self._require_running()
        groups = self._sup.groups
        now = _capped(self._sup.wallclock())
        return [
            self._info(groups[g].processes[p], now)
            for g in sorted(groups)
            for p in sorted(groups[g].processes)
        ]

    # -- the same two, marshalled directly (what HTTP clients get; see rpcserver)

    def _static_members(self, process: Process) -> tuple[str, str]:
        """The members that never change for ``process``: (name and group, the log paths).

        Log files are made with the Process and dropped with it, so these hold for
        the object's lifetime.
        """
        info = self._info(process, 0)
        head = _member("name", "string", text(process.name)) + _member(
            "group", "string", text(process.group)
        )
        tail = "".join(
            _member(key, "string", text(str(info[key])))
            for key in ("logfile", "stdout_logfile", "stderr_logfile")
        )
        return head, tail

    def _info_xml(self, process: Process, now: int, static: tuple[str, str]) -> str:
        """:meth:`_info` as a ``<value>``, in one f-string (4× faster than marshalling)."""
        start = min(int(process.laststart), MAXINT)  # wall-clock times: never negative
        stop = min(int(process.laststop), MAXINT)
        state = process.state
        pid = process.pid
        spawnerr = process.spawnerr or ""
        description = _description(state, process.name, start, stop, now, pid, spawnerr)
        if state is not P.RUNNING:  # "pid N, uptime H:MM:SS" needs no escaping
            description = text(description)
        if spawnerr:
            spawnerr = text(spawnerr)
        return (
            f"<value><struct>{static[0]}"
            f"<member><name>start</name><value><int>{start}</int></value></member>"
            f"<member><name>stop</name><value><int>{stop}</int></value></member>"
            f"<member><name>now</name><value><int>{now}</int></value></member>"
            f"<member><name>state</name><value><int>{int(state)}</int></value></member>"
            f"<member><name>statename</name><value><string>{state.name}</string></value></member>"
            f"<member><name>spawnerr</name><value><string>{spawnerr}</string></value>"
            "</member><member><name>exitstatus</name><value><int>"
            f"{process.exitstatus or 0}</int></value></member>{static[1]}"
            f"<member><name>pid</name><value><int>{pid}</int></value></member>"
            f"<member><name>description</name><value><string>{description}</string>"
            "</value></member></struct></value>"
        )

    def _wire_getProcessInfo(self, name: str) -> Marshalled:
        self._require_running()
        process = self._process(name)
        now = _capped(self._sup.wallclock())
        return Marshalled(self._info_xml(process, now, self._static_members(process)))

    def _wire_getAllProcessInfo(self) -> Marshalled:
        self._require_running()
        groups = self._sup.groups
        now = _capped(self._sup.wallclock())
        old, self._statics = self._statics, {}  # rebuilt each time: removed processes drop out
        out = ["<value><array><data>"]
        for g in sorted(groups):
            processes = groups[g].processes
            for p in sorted(processes):
                process = processes[p]
                static = old.get(process)
                if static is None:
                    static = self._static_members(process)
                self._statics[process] = static
                out.append(self._info_xml(process, now, static))
        out.append("</data></array></value>")
        return Marshalled("".join(out))

    # -- process logs

    def _log_path(self, name: str, channel: str) -> str | None:
        path = self._sup.log_path(self._process(name), channel)
        return None if path is None else str(path)

    def readProcessStdoutLog(self, name: str, offset: int, length: int) -> str:
        """Read length bytes from name's stdout log starting at offset

        @param string name        the name of the process (or 'group:name')
        @param int offset         offset to start reading from.
        @param int length         number of bytes to read from the log.
        @return string result     Bytes of log
        """
        self._require_running()
        return _read(self._log_path(name, "stdout"), offset, length)

    readProcessLog = readProcessStdoutLog  # b/c alias

    def readProcessStderrLog(self, name: str, offset: int, length: int) -> str:
        """Read length bytes from name's stderr log starting at offset

        @param string name        the name of the process (or 'group:name')
        @param int offset         offset to start reading from.
        @param int length         number of bytes to read from the log.
        @return string result     Bytes of log
        """
        self._require_running()
        return _read(self._log_path(name, "stderr"), offset, length)

    def tailProcessStdoutLog(self, name: str, offset: int, length: int) -> list[object]:
        """
        Provides a more efficient way to tail the (stdout) log than
        readProcessStdoutLog().  Use readProcessStdoutLog() to read
        chunks and tailProcessStdoutLog() to tail.

        Requests (length) bytes from the (name)'s log, starting at
        (offset).  If the total log size is greater than (offset +
        length), the overflow flag is set and the (offset) is
        automatically increased to position the buffer at the end of
        the log.  If less than (length) bytes are available, the
        maximum number of available bytes will be returned.  (offset)
        returned is always the last offset in the log +1.

        @param string name         the name of the process (or 'group:name')
        @param int offset          offset to start reading from
        @param int length          maximum number of bytes to return
        @return array result       [string bytes, int offset, bool overflow]
        """
        self._require_running()
        return _tail(self._log_path(name, "stdout"), offset, length)

    tailProcessLog = tailProcessStdoutLog  # b/c alias

    def tailProcessStderrLog(self, name: str, offset: int, length: int) -> list[object]:
        """
        Provides a more efficient way to tail the (stderr) log than
        readProcessStderrLog().  Use readProcessStderrLog() to read
        chunks and tailProcessStderrLog() to tail.

        Requests (length) bytes from the (name)'s log, starting at
        (offset).  If the total log size is greater than (offset +
        length), the overflow flag is set and the (offset) is
        automatically increased to position the buffer at the end of
        the log.  If less than (length) bytes are available, the
        maximum number of available bytes will be returned.  (offset)
        returned is always the last offset in the log +1.

        @param string name         the name of the process (or 'group:name')
        @param int offset          offset to start reading from
        @param int length          maximum number of bytes to return
        @return array result       [string bytes, int offset, bool overflow]
        """
        self._require_running()
        return _tail(self._log_path(name, "stderr"), offset, length)

    def clearProcessLogs(self, name: str) -> bool:
        """Clear the stdout and stderr logs for the named process and
        reopen them.

        @param string name   The name of the process (or 'group:name')
        @return boolean result      Always True unless error
        """
        self._require_running()
        process = self._process(name)
        try:
            for channel in ("stdout", "stderr"):
                f = self._sup.logfile(process, channel)
                if f is not None:
                    f.clear()
        except OSError:
            raise RPCError(Fault.FAILED, name) from None
        return True

    clearProcessLog = clearProcessLogs  # b/c alias

    def clearAllProcessLogs(self) -> list[Result] | Deferred:
        """Clear all process log files

        @return array result   An array of process status info structs
        """
        self._require_running()
        return self._for_each(self._sup.all_processes(), lambda p: True, self.clearProcessLogs)

    # -- talking to processes and listeners

    def sendProcessStdin(self, name: str, chars: str) -> bool:
        """Send a string of chars to the stdin of the process name.
        If non-7-bit data is sent (unicode), it is encoded to utf-8
        before being sent to the process' stdin.  If chars is not a
        string or is not unicode, raise INCORRECT_PARAMETERS.  If the
        process is not running, raise NOT_RUNNING.  If the process'
        stdin cannot accept input (e.g. it was closed by the child
        process), raise NO_FILE.

        @param string name        The process name to send to (or 'group:name')
        @param string chars       The character data to send to the process
        @return boolean result    Always return True unless error
        """
        self._require_running()
        process = self._process(name)
        if not process.pid or process.state is P.STOPPING:
            raise RPCError(Fault.NOT_RUNNING, name)
        if not self._sup.send_stdin(process, chars.encode("utf-8")):
            raise RPCError(Fault.NO_FILE, name)
        return True

    def sendRemoteCommEvent(self, type: str, data: str) -> bool:
        """Send an event that will be received by event listener
        subprocesses subscribing to the RemoteCommunicationEvent.

        @param  string  type  String for the "type" key in the event header
        @param  string  data  Data for the event body
        @return boolean       Always return True unless error
        """
        self._sup.emit(RemoteCommunication(type, data))
        return True


def abandon(namespace: SupervisorNamespace) -> None:
    """Its supervisor is gone (reload, shutdown): every pending wait fails with SHUTDOWN_STATE."""
    namespace._abandon()


def _uid(user: str | None) -> int | str:
    if user is None:
        return "none"
    try:
        return int(user) if user.isdigit() else pwd.getpwnam(user).pw_uid
    except KeyError:
        return "none"


def _read(path: str | None, offset: int, length: int) -> str:
    if path is None:
        raise RPCError(Fault.NO_FILE, path)
    try:
        data = read_log(path, offset, length)
    except LogReadError as exc:
        raise RPCError(exc.fault, path if exc.fault is Fault.NO_FILE else None) from None
    return data.decode("utf-8", "replace")


def _tail(path: str | None, offset: int, length: int) -> list[object]:
    if path is None:
        return ["", 0, False]
    data, size, overflow = tail_log(path, offset, length)
    return [data.decode("utf-8", "replace"), size, overflow]


# --- the system namespace --------------------------------------------------------------------

#: ``call(method, params)``: dispatch one call as the XML-RPC server does.
Caller = Callable[[str, object], object]


class SystemNamespace:
    """The ``system.*`` methods: introspection and ``multicall``.

    Args:
        namespaces: the other namespaces by name (``system`` is added).
        call: how :meth:`multicall` makes each call (the server's dispatcher, so
            arguments are checked the same way).
    """

    def __init__(self, namespaces: Mapping[str, object], call: Caller) -> None:
        self._namespaces: dict[str, object] = {**namespaces, "system": self}
        self._call = call

    def _methods(self) -> dict[str, Callable[..., object]]:
        return method_table(self._namespaces)

    def listMethods(self) -> list[str]:
        """Return an array listing the available method names

        @return array result  An array of method names available (strings).
        """
        return sorted(self._methods())

    def methodHelp(self, name: str) -> str:
        """Return a string showing the method's documentation

        @param string name   The name of the method.
        @return string result The documentation for the method name.
        """
        method = self._methods().get(name)
        if method is None:
            raise RPCError(Fault.SIGNATURE_UNSUPPORTED)
        return str(method.__doc__)

    def methodSignature(self, name: str) -> list[str]:
        """Return an array describing the method signature in the
        form [rtype, ptype, ptype...] where rtype is the return data type
        of the method, and ptypes are the parameter data types that the
        method accepts in method argument order.

        @param string name  The name of the method.
        @return array result  The result.
        """
        method = self._methods().get(name)
        if method is None:
            raise RPCError(Fault.SIGNATURE_UNSUPPORTED)
        rtype: str | None = None
        ptypes: list[str] = []
        for _line, tag, datatype, _name, _text in gettags(str(method.__doc__)):
            if tag == "return":
                rtype = datatype or ""
            elif tag == "param":
                ptypes.append(datatype or "")
        if rtype is None:
            raise RPCError(Fault.SIGNATURE_UNSUPPORTED)
        return [rtype, *ptypes]

    def multicall(self, calls: list[Any]) -> list[object] | Deferred:
        """Process an array of calls, and return an array of
        results. Calls should be structs of the form {'methodName':
        string, 'params': array}. Each result will either be a
        single-item array containing the result value, or a struct of
        the form {'faultCode': int, 'faultString': string}. This is
        useful when you need to make lots of small calls without lots
        of round trips.

        @param array calls  An array of call requests
        @return array result  An array of results
        """
        # As supervisord 4.3 (reference §5.5): each entry is the bare value, not a
        # one-element array as the docstring above (supervisord's own) says.
        results: list[object] = []
        remaining = list(calls)
        overall = Deferred()

        def step() -> None:
            while remaining:
                value = self._one(remaining.pop(0))
                if isinstance(value, Deferred):
                    if not value.done:
                        overall.on_cancel(value.cancel)
                        value.add_done_callback(resume)
                        return
                    value = outcome(value)
                results.append(value)
            overall.resolve(results)

        def resume(d: Deferred) -> None:
            results.append(outcome(d))
            step()

        step()
        return results if overall.done else overall

    def _one(self, call: object) -> object:
        try:
            if not isinstance(call, dict):
                raise RPCError(Fault.INCORRECT_PARAMETERS, "a call must be a struct")
            name = call.get("methodName")
            params = call.get("params", [])
            if name is None:
                raise RPCError(Fault.INCORRECT_PARAMETERS, "No methodName")
            if name == "system.multicall":
                raise RPCError(Fault.INCORRECT_PARAMETERS, "Recursive system.multicall forbidden")
            if not isinstance(name, str):
                raise RPCError(Fault.INCORRECT_PARAMETERS, "methodName must be a string")
            return self._call(name, params)
        except RPCError as exc:
            return {"faultCode": int(exc.code), "faultString": exc.text}
        except Exception as exc:
            return _failed_struct(exc)


def supervisord_wording(exc: ConfigError) -> str:
    """A config error as supervisord words it in CANT_REREAD faults (``supervisorctl reread``).

    ``why in section 'program:x' (file: '/path')`` — vigild's own one-line form names the
    key and value too, but clients that parse reread output expect supervisord's.
    """
    if exc.section is None or exc.file is None:
        return str(exc)
    return f"{exc.why} in section {exc.section!r} (file: {str(exc.file)!r})"
