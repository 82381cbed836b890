"""The controller's plumbing: one command line in, output and an exit status out.

:class:`ControllerBase` holds what every command shares: the connection (made on the
first call), the output, the exit status and its rules, the API check supervisorctl
runs before most commands (:meth:`~ControllerBase.upcheck`), the per-name loop of
``start``/``stop``/``signal``/``clear`` and the dispatch of a command line to its
``do_<command>`` method (:meth:`~ControllerBase.onecmd`). The commands themselves are
mixins on top of it (:mod:`manager.ctl.processes`, :mod:`manager.ctl.logs`,
:mod:`manager.ctl.server`, :mod:`manager.ctl.shell`), put together in
:class:`manager.ctl.controller.Controller`.

Exit statuses are supervisorctl 4.3's (reference §6.3): the LSB init codes
(:class:`InitExit`) everywhere, the LSB status codes (:class:`StatusExit`) for
``status``; once set, supervisorctl never resets the status within a command line.
"""

from __future__ import annotations

import cmd
import enum
import errno
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TextIO

from manager.ctl.formatting import HELP, UnknownResult, fault_result, make_namespec, split_namespec
from manager.ctl.options import client_url
from manager.faults import Fault
from manager.rpcclient import (
    AuthenticationError,
    RPCError,
    RPCFault,
    SupervisorClient,
    Unreachable,
)

__all__ = [
    "API_VERSION",
    "RPC",
    "RPC_TIMEOUT",
    "Connect",
    "ControllerBase",
    "InitExit",
    "StatusExit",
    "default_connect",
    "errno_of",
]

#: the XML-RPC API version supervisorctl 4.3 insists on
API_VERSION = "3.0"
#: no timeout in supervisorctl; ours is long enough for any ``start``/``stop`` wait
RPC_TIMEOUT = 3600.0


class InitExit(enum.IntEnum):
    """LSB init-script exit statuses, as supervisorctl uses them."""

    SUCCESS = 0
    GENERIC = 1
    INVALID_ARGS = 2
    UNIMPLEMENTED_FEATURE = 3
    INSUFFICIENT_PRIVILEGES = 4
    NOT_INSTALLED = 5
    NOT_RUNNING = 7


class StatusExit(enum.IntEnum):
    """LSB ``status`` exit statuses (only the ``status`` command uses them)."""

    NOT_RUNNING = 3
    UNKNOWN = 4


#: faults meaning "the program is dead": exit 7 instead of 1
DEAD_PROGRAM_FAULTS = frozenset({Fault.SPAWN_ERROR, Fault.ABNORMAL_TERMINATION, Fault.NOT_RUNNING})


class RPC(Protocol):
    """What the controller needs of a client (``SupervisorClient`` has it)."""

    def call(self, method: str, *params: Any) -> Any: ...


def errno_of(exc: Unreachable) -> int | None:
    """The ``errno`` of the OS error behind ``exc`` (``ECONNREFUSED``, ``ENOENT``...)."""
    cause = exc.__cause__
    return cause.errno if isinstance(cause, OSError) else None


def default_connect(serverurl: str, username: str | None, password: str | None) -> SupervisorClient:
    """supervisorctl's client: no retries, no practical timeout."""
    return SupervisorClient(
        client_url(serverurl), username, password, timeout=RPC_TIMEOUT, retry_for=0
    )


Connect = Callable[[str, str | None, str | None], RPC]


class ControllerBase:
    """Runs one supervisorctl command line against a server.

    Args:
        serverurl: the server URL as the user gave it (it appears in messages).
        username, password: HTTP Basic credentials, or ``None``.
        out: where output goes (``sys.stdout`` in :func:`manager.vigilctl.main`).
        err: where the few messages supervisorctl writes to stderr go (``sys.stderr``
            if ``None``).
        connect: builds the RPC client for a URL (injectable for tests); ``fg`` calls
            the client from two threads at once.
        read_line: reads a line for ``fg`` to send to the process (``input``).
    """

    def __init__(
        self,
        serverurl: str,
        username: str | None = None,
        password: str | None = None,
        *,
        out: TextIO,
        err: TextIO | None = None,
        connect: Connect = default_connect,
        read_line: Callable[[], str] = input,
    ) -> None:
        self.serverurl = serverurl
        self.username = username
        self.password = password
        self._out = out
        self._err = sys.stderr if err is None else err
        self._connect = connect
        self._read_line = read_line
        self._client: RPC | None = None
        #: the exit status so far (supervisorctl never resets it within a command)
        self.exitstatus: int = InitExit.SUCCESS

    # -- plumbing

    def output(self, message: str) -> None:
        """Write ``message`` and a newline."""
        self._out.write(message + "\n")

    def _write(self, data: str) -> None:
        self._out.write(data)
        self._out.flush()

    def _rpc(self, method: str, *params: Any) -> Any:
        if self._client is None:
            self._client = self._connect(self.serverurl, self.username, self.password)
        return self._client.call(f"supervisor.{method}", *params)

    def _exit_from_fault(self, code: int, ignored: int | None = None) -> None:
        if code in (ignored, Fault.SUCCESS):
            return
        if code in DEAD_PROGRAM_FAULTS:
            self.exitstatus = InitExit.NOT_RUNNING
        else:
            self.exitstatus = InitExit.GENERIC

    def _help(self, command: str) -> None:
        self.output(HELP[command])

    def _check_encoding(self) -> None:
        enc = getattr(self._out, "encoding", None) or ""
        if not enc.lower().startswith("utf"):
            self.output(
                f"Warning: sys.stdout.encoding is set to {enc or None}, so Unicode output "
                "may fail. Check your LANG and PYTHONIOENCODING environment settings."
            )

    def upcheck(self) -> bool:
        """Check the server speaks API 3.0; print why not and set the exit status.

        Raises:
            RPCError: any other failure (the caller's ``error:`` line).
        """
        try:
            api = self._rpc("getVersion")
        except RPCFault as exc:
            if exc.code == Fault.UNKNOWN_METHOD:
                self.output(
                    "Sorry, supervisord responded but did not recognize the supervisor "
                    "namespace commands that supervisorctl uses to control it.  Please "
                    "check that the [rpcinterface:supervisor] section is enabled in the "
                    "configuration file (see sample.conf)."
                )
                self.exitstatus = InitExit.UNIMPLEMENTED_FEATURE
                return False
            self.exitstatus = InitExit.GENERIC
            raise
        except Unreachable as exc:
            code = errno_of(exc)
            if code == errno.ECONNREFUSED:
                self.output(f"{self.serverurl} refused connection")
                self.exitstatus = InitExit.INSUFFICIENT_PRIVILEGES
                return False
            if code == errno.ENOENT:
                self.output(f"{self.serverurl} no such file")
                self.exitstatus = InitExit.NOT_RUNNING
                return False
            self.exitstatus = InitExit.GENERIC
            raise
        if api != API_VERSION:
            self.output(
                "Sorry, this version of supervisorctl expects to talk to a server with API "
                f"version {API_VERSION}, but the remote version is {api}."
            )
            self.exitstatus = InitExit.NOT_INSTALLED
            return False
        return True

    # -- dispatch

    def onecmd(self, line: str) -> int:
        """Run one command line (``"start web"``) and return the exit status."""
        line = line.strip()
        if not line:
            return int(self.exitstatus)
        if line[0] == "?":
            line = "help " + line[1:]
        i = 0
        while i < len(line) and line[i] in cmd.IDENTCHARS:
            i += 1
        command, arg = line[:i], line[i:].strip()
        handler = self._handler(command)
        if not command or handler is None:
            self.output(f"*** Unknown syntax: {line}")
            self.exitstatus = InitExit.GENERIC
            return int(self.exitstatus)
        try:
            handler(arg)
        except AuthenticationError as exc:
            self.output("Server requires authentication")
            self.output(f"error: {exc}")
            self.exitstatus = InitExit.GENERIC
        except (RPCError, UnknownResult) as exc:
            self.output(f"error: {exc}")
            self.exitstatus = InitExit.GENERIC
        return int(self.exitstatus)

    def _handler(self, command: str) -> Callable[[str], None] | None:
        """The ``do_<command>`` method of the mixin that has it, if one does."""
        handler: Callable[[str], None] | None = getattr(self, f"do_{command}", None)
        return handler

    # -- what several commands share

    def _results(
        self,
        results: Sequence[Mapping[str, Any]],
        fmt: Callable[[Mapping[str, Any]], str],
        ignored: int | None,
    ) -> None:
        for result in results:
            self.output(fmt(result))
            self._exit_from_fault(result["status"], ignored)

    def _has_args(self, arg: str, command: str) -> bool:
        """Complain (exit 1) if ``command``, which takes no arguments, got some."""
        if arg:
            self.output(f"Error: {command} accepts no arguments")
            self.exitstatus = InitExit.GENERIC
            self._help(command)
        return bool(arg)

    def _names(self, arg: str, command: str, missing_exit: int) -> list[str] | None:
        """The names after ``command``, or ``None`` (after saying why) to stop here."""
        if not self.upcheck():
            return None
        names = arg.split()
        if not names:
            self.output(f"Error: {command} requires a process name")
            self.exitstatus = missing_exit
            self._help(command)
            return None
        return names

    def _per_name(
        self,
        names: Sequence[str],
        *,
        one: Callable[[str], object],
        group: Callable[[str], Sequence[Mapping[str, Any]]] | None,
        fmt: Callable[[Mapping[str, Any]], str],
        success: str,
        ignored: int | None = None,
        bad_group_exit: int = InitExit.GENERIC,
    ) -> None:
        """Call ``one(name)`` (``group(g)`` for ``g:*``) per name; report as supervisorctl.

        Raises:
            RPCError: a fault other than the per-name ones supervisorctl reports.
        """
        for name in names:
            group_name, process = split_namespec(name)
            if process is None and group is not None:
                try:
                    results = group(group_name)
                except RPCFault as exc:
                    if exc.code != Fault.BAD_NAME:
                        raise
                    self.output(f"{group_name}: ERROR (no such group)")
                    self.exitstatus = bad_group_exit
                else:
                    self._results(results, fmt, ignored)
                continue
            try:
                one(name)
            except RPCFault as exc:
                self.output(fmt(fault_result(exc, group_name, process)))
                self._exit_from_fault(exc.code, ignored)
            else:
                self.output(f"{make_namespec(group_name, process)}: {success}")
