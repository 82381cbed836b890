"""``vigilctl``: a one-shot, supervisorctl-compatible client for supervisord and vigild.

Usage: ``vigilctl [-c FILE] [-s URL] [-u USER] [-p PASS] COMMAND [ARGS...]``

Theory of operation
-------------------
The command line is read the way ``supervisorctl`` reads it (``getopt``: options come
before the command). ``-c FILE`` names the config file; without it the default search
path of supervisord is tried (reference §4.1). Only ``[supervisorctl]`` is read from it
(``serverurl``, ``username``, ``password``; ``%(here)s`` and ``%(ENV_X)s`` expand) and
``[include]`` is *not* followed, as supervisorctl does. ``-s``/``-u``/``-p`` beat the
file, which beats ``http://localhost:9001``. ``SUPERVISOR_SERVER_URL`` is ignored, as
supervisorctl ignores it.

The words after the options are joined with spaces and run as *one* command by
:meth:`Controller.onecmd`, whose output (stdout) and exit status are supervisorctl
4.3's, line for line (reference §6.2, §6.3): the status table, ``<name>: started``,
``<name>: ERROR (no such process)``, ``Restarted supervisord``, ``Shut down``, the
LSB init exit codes (0/1/2/3/4/5/7) and the LSB status codes (3/4) of ``status``.

Differences from supervisorctl, all deliberate:

* No command (or ``-i``) starts supervisorctl's shell (:meth:`Controller.cmdloop`):
  ``status`` first, then one command per line after ``<prompt>> `` until ``quit``,
  ``exit`` or end of input, exit 0; readline history with ``-r`` / ``history_file``.
* ``fg`` follows ``/logtail`` over HTTP as supervisorctl does, but also ends by itself
  when the process stops (supervisorctl notices only at the next line typed) and
  returns at once (supervisorctl lingers up to 30 s); see :mod:`manager.ctl.foreground`.
* ``tail -f`` polls ``tailProcessStdoutLog``/``tailProcessStderrLog`` every 0.2 s and
  ``maintail -f`` polls ``readLog`` instead of streaming ``/logtail``; the output
  (``==> Press Ctrl-C to exit <==``, the last 1024 bytes, then new bytes, a log that
  shrank is followed again from its start, a blank line on Ctrl-C, exit 0) is the same.
  A log that is truncated in place gets no ``==> File truncated <==`` line: over
  XML-RPC that cannot be told apart from a cleared or rotated (new) log, which
  supervisorctl follows without one.
* Where supervisorctl prints a Python traceback summary (``error: <class ...>, ...:
  file: ... line: ...``) vigilctl prints one ``error: <what went wrong>`` line naming
  the server URL, with the same exit status (1). After ``Server requires
  authentication`` (HTTP 401) that ``error:`` line names the URL too.
* A server URL vigilctl cannot use (not ``unix:///abs/path`` or ``http://host[:port]``)
  is a usage error (exit 2) rather than a per-command error (exit 1).
"""

from __future__ import annotations

import atexit
import cmd
import contextlib
import enum
import errno
import getopt
import os
import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

from manager.faults import Fault
from manager.ini import ConfigError, find_config_file, read_ini
from manager.rpcclient import (
    DEFAULT_SERVER_URL,
    AuthenticationError,
    RPCError,
    RPCFault,
    SupervisorClient,
    Unreachable,
    parse_server_url,
)

#: codes of manager.states.STOPPED_STATES (STOPPED, EXITED, FATAL, UNKNOWN), kept here so
#: that vigilctl starts without importing the state tables (a test holds them equal)
STOPPED_STATES = frozenset({0, 100, 200, 1000})

__all__ = [
    "EXIT_USAGE",
    "USAGE",
    "Controller",
    "CtlOptions",
    "InitExit",
    "StatusExit",
    "UsageError",
    "main",
    "parse_args",
]

PROG = "vigilctl"

USAGE = """\
vigilctl -- control a supervisord (or vigild): one command, or an interactive shell.

Usage: vigilctl [options] [action [arguments]]

Options:
-c/--configuration FILENAME -- configuration file path (searches if not given);
     only its [supervisorctl] section is read
-h/--help -- print usage message and exit
-i/--interactive -- start the interactive shell after executing commands
-s/--serverurl URL -- URL on which supervisord server is listening
     (default "http://localhost:9001").
-u/--username USERNAME -- username to use for authentication with server
-p/--password PASSWORD -- password to use for authentication with server
-r/--history_file FILE -- keep a readline history (if readline is available)

action [arguments] -- as supervisorctl: status, start, stop, restart, signal, pid,
tail, maintail, fg, clear, avail, reread, update, add, remove, reload, shutdown,
version, open, help.  Use the action "help" to list them.

Without an action vigilctl starts the interactive shell (exit status 0).
Otherwise the exit status is supervisorctl's: 0 success, 1 error, 2 invalid
arguments, 3 (status) not running, 4 (status) unknown or server unreachable,
7 not running / socket file missing.
"""

#: exit status for usage and configuration errors (as supervisorctl's ``usage()``)
EXIT_USAGE = 2
#: the XML-RPC API version supervisorctl 4.3 insists on
API_VERSION = "3.0"
#: no timeout in supervisorctl; ours is long enough for any ``start``/``stop`` wait
RPC_TIMEOUT = 3600.0
#: bytes shown by ``tail``/``maintail`` without ``-N``
TAIL_BYTES = 1600
#: bytes shown first by ``tail -f``/``maintail -f`` (supervisord's ``/logtail`` head)
TAIL_F_HEAD = 1024
#: the largest XML-RPC ``int``
MAX_XMLRPC_INT = 2**31 - 1
#: seconds between polls while following
POLL_INTERVAL = 0.2


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

#: help texts of supervisorctl 4.3, by command
HELP: dict[str, str] = {
    "help": "help\t\tPrint a list of available actions\nhelp <action>\tPrint help for <action>",
    "tail": (
        "tail [-f] <name> [stdout|stderr] (default stdout)\n"
        "Ex:\n"
        "tail -f <name>\t\tContinuous tail of named process stdout\n"
        "\t\t\tCtrl-C to exit.\n"
        "tail -100 <name>\tlast 100 *bytes* of process stdout\n"
        "tail <name> stderr\tlast 1600 *bytes* of process stderr"
    ),
    "maintail": (
        "maintail -f \tContinuous tail of supervisor main log file (Ctrl-C to exit)\n"
        "maintail -100\tlast 100 *bytes* of supervisord main log file\n"
        "maintail\tlast 1600 *bytes* of supervisor main log file\n"
    ),
    "quit": "quit\tExit the supervisor shell.",
    "exit": "exit\tExit the supervisor shell.",
    "status": (
        "status <name>\t\tGet status for a single process\n"
        "status <gname>:*\tGet status for all processes in a group\n"
        "status <name> <name>\tGet status for multiple named processes\n"
        "status\t\t\tGet all process status info"
    ),
    "pid": (
        "pid\t\t\tGet the PID of supervisord.\n"
        "pid <name>\t\tGet the PID of a single child process by name.\n"
        "pid all\t\t\tGet the PID of every child process, one per line."
    ),
    "start": (
        "start <name>\t\tStart a process\n"
        "start <gname>:*\t\tStart all processes in a group\n"
        "start <name> <name>\tStart multiple processes or groups\n"
        "start all\t\tStart all processes"
    ),
    "stop": (
        "stop <name>\t\tStop a process\n"
        "stop <gname>:*\t\tStop all processes in a group\n"
        "stop <name> <name>\tStop multiple processes or groups\n"
        "stop all\t\tStop all processes"
    ),
    "signal": (
        "signal <signal name> <name>\t\tSignal a process\n"
        "signal <signal name> <gname>:*\t\tSignal all processes in a group\n"
        "signal <signal name> <name> <name>\tSignal multiple processes or groups\n"
        "signal <signal name> all\t\tSignal all processes"
    ),
    "restart": (
        "restart <name>\t\tRestart a process\n"
        "restart <gname>:*\tRestart all processes in a group\n"
        "restart <name> <name>\tRestart multiple processes or groups\n"
        "restart all\t\tRestart all processes\n"
        "Note: restart does not reread config files. For that, see reread and update."
    ),
    "shutdown": "shutdown \tShut the remote supervisord down.",
    "reload": "reload \t\tRestart the remote supervisord.",
    "avail": "avail\t\t\tDisplay all configured processes",
    "reread": "reread \t\t\tReload the daemon's configuration files without add/remove",
    "add": "add <name> [...]\tActivates any updates in config for process/group",
    "remove": "remove <name> [...]\tRemoves process/group from active config",
    "update": (
        "update\t\t\tReload config and add/remove as necessary, and will restart "
        "affected programs\n"
        "update all\t\tReload config and add/remove as necessary, and will restart "
        "affected programs\n"
        "update <gname> [...]\tUpdate specific groups"
    ),
    "clear": (
        "clear <name>\t\tClear a process' log files.\n"
        "clear <name> <name>\tClear multiple process' log files\n"
        "clear all\t\tClear all process' log files"
    ),
    "open": (
        "open <url>\tConnect to a remote supervisord process.\n"
        "\t\t(for UNIX domain socket, use unix:///socket/path)"
    ),
    "version": "version\t\t\tShow the version of the remote supervisord process",
    "fg": "fg <process>\tConnect to a process in foreground mode\n\t\tCtrl-C to exit",
}


# --- names ---------------------------------------------------------------------------


def make_namespec(group: str, name: str | None) -> str:
    """``name`` when the process is alone in its same-named group, else ``group:name``.

    A missing name renders as ``None`` (``g:None``), as supervisorctl prints it.
    """
    return name if group == name else f"{group}:{name}"


def split_namespec(namespec: str) -> tuple[str, str | None]:
    """``g:p`` → ``(g, p)``; ``g:*`` / ``g:`` → ``(g, None)``; ``p`` → ``(p, p)``."""
    group, sep, name = namespec.partition(":")
    if not sep:
        return namespec, namespec
    return group, (None if name in ("", "*") else name)


# --- the command line ----------------------------------------------------------------


class UsageError(Exception):
    """A bad command line or config file: ``Error: <msg>`` on stderr, exit 2."""


@dataclass(frozen=True)
class CtlOptions:
    """The parsed command line, with ``[supervisorctl]`` and the defaults applied."""

    serverurl: str
    username: str | None
    password: str | None
    #: the command and its arguments (empty: none given)
    command: tuple[str, ...]
    #: the config file that was read, if any
    configfile: Path | None = None
    #: ``-h`` was given
    help: bool = False
    #: run the shell: ``-i``, or no command given
    interactive: bool = False
    #: ``[supervisorctl] prompt``; the shell shows ``<prompt>> ``
    prompt: str = "supervisor"
    #: ``-r`` or ``[supervisorctl] history_file``: the shell's readline history
    history_file: str | None = None


_SHORT = "h?ic:s:u:p:r:"
_LONG = [
    "help",
    "interactive",
    "configuration=",
    "serverurl=",
    "username=",
    "password=",
    "history_file=",
]
_OPTION_NAMES = {
    "-c": "configfile",
    "--configuration": "configfile",
    "-s": "serverurl",
    "--serverurl": "serverurl",
    "-u": "username",
    "--username": "username",
    "-r": "history_file",
    "--history_file": "history_file",
    "-p": "password",
    "--password": "password",
}


def _normalize_path(path: str) -> str:
    return os.path.normpath(os.path.abspath(os.path.expanduser(path)))


def _check_url(option: str, value: str) -> None:
    parts = urllib.parse.urlparse(value)
    if not (parts.scheme and (parts.netloc or parts.path)):
        raise UsageError(f"invalid value for {option} {value!r}: value {value!r} is not a URL")


def _client_url(serverurl: str) -> str:
    """The URL for :class:`SupervisorClient`: relative socket paths made absolute."""
    if serverurl.startswith("unix://"):
        return "unix://" + _normalize_path(serverurl[len("unix://") :])
    return serverurl


def _read_ctl_section(path: Path, environ: Mapping[str, str]) -> dict[str, str | None]:
    if not path.exists():
        raise UsageError(f"could not find config file {path}")
    try:
        ini = read_ini(path, environ=environ, follow_includes=False)
        section = ini.section("supervisorctl")
        if section is None:
            raise UsageError(".ini file does not include supervisorctl section")
        keys = ("serverurl", "username", "password", "prompt", "history_file")
        values = {key: section.expand(key, {}, environ=environ) for key in keys}
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    serverurl = values["serverurl"]
    if serverurl is not None and serverurl.startswith("unix://"):
        values["serverurl"] = "unix://" + _normalize_path(serverurl[len("unix://") :])
    return values


def parse_args(
    argv: Sequence[str],
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    argv0: str = PROG,
) -> CtlOptions:
    """Parse ``vigilctl``'s arguments (without the program name) as supervisorctl does.

    Args:
        argv: options, then the command and its arguments.
        environ: for ``%(ENV_X)s`` in the config file (``os.environ`` if ``None``).
        cwd: where the default config search starts (the current directory if ``None``).
        argv0: the program path, for the ``<dir>/../etc/supervisord.conf`` candidate.

    Returns:
        The options; ``command`` is empty when none was given.

    Raises:
        UsageError: unknown or repeated option, a value that is not a URL, a config
            file that is missing, unparsable or without ``[supervisorctl]``, or a
            server URL vigilctl cannot connect to.
    """
    env = os.environ if environ is None else environ
    try:
        opts, args = getopt.getopt(list(argv), _SHORT, _LONG)
    except getopt.GetoptError as exc:
        raise UsageError(str(exc)) from None
    given: dict[str, str] = {}
    interactive = not args
    for opt, value in opts:
        if opt in ("-h", "-?", "--help"):
            return CtlOptions(DEFAULT_SERVER_URL, None, None, tuple(args), help=True)
        if opt in ("-i", "--interactive"):
            interactive = True
            continue
        name = _OPTION_NAMES[opt]
        if name == "serverurl":
            _check_url(opt, value)
        if name in given:
            raise UsageError(f"conflicting command line option {opt!r}")
        given[name] = value

    configfile: Path | None
    if "configfile" in given:
        configfile = Path(given["configfile"])
    else:
        configfile = find_config_file(argv0=argv0, cwd=Path.cwd() if cwd is None else cwd)
    from_file: dict[str, str | None] = {}
    if configfile is not None:
        from_file = _read_ctl_section(configfile, env)

    serverurl = given.get("serverurl") or from_file.get("serverurl") or DEFAULT_SERVER_URL
    try:
        parse_server_url(_client_url(serverurl))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    username = given["username"] if "username" in given else from_file.get("username")
    password = given["password"] if "password" in given else from_file.get("password")
    return CtlOptions(
        serverurl,
        username,
        password,
        tuple(args),
        configfile,
        interactive=interactive,
        prompt=from_file.get("prompt") or "supervisor",
        history_file=given.get("history_file") or from_file.get("history_file"),
    )


# --- the controller ------------------------------------------------------------------


class RPC(Protocol):
    """What the controller needs of a client (:class:`SupervisorClient` has it)."""

    def call(self, method: str, *params: Any) -> Any: ...


class _UnknownResult(Exception):
    """A result code supervisorctl has no message for (it raises ``ValueError`` too)."""


def _errno_of(exc: Unreachable) -> int | None:
    cause = exc.__cause__
    return cause.errno if isinstance(cause, OSError) else None


def _default_connect(
    serverurl: str, username: str | None, password: str | None
) -> SupervisorClient:
    return SupervisorClient(
        _client_url(serverurl), username, password, timeout=RPC_TIMEOUT, retry_for=0
    )


Connect = Callable[[str, str | None, str | None], RPC]


class Controller:
    """Runs one supervisorctl command line against a server.

    Args:
        serverurl: the server URL as the user gave it (it appears in messages).
        username, password: HTTP Basic credentials, or ``None``.
        out: where output goes (``sys.stdout`` in :func:`main`).
        err: where the few messages supervisorctl writes to stderr go (``sys.stderr``
            if ``None``).
        connect: builds the RPC client for a URL (injectable for tests); ``fg`` calls
            the client from two threads at once.
        sleep: how to wait between polls of ``tail -f``/``maintail -f``.
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
        connect: Connect = _default_connect,
        sleep: Callable[[float], None] = time.sleep,
        read_line: Callable[[], str] = input,
    ) -> None:
        self.serverurl = serverurl
        self.username = username
        self.password = password
        self._out = out
        self._err = sys.stderr if err is None else err
        self._connect = connect
        self._sleep = sleep
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
            code = _errno_of(exc)
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
        handler: Callable[[str], None] | None = getattr(self, f"do_{command}", None)
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
        except (RPCError, _UnknownResult) as exc:
            self.output(f"error: {exc}")
            self.exitstatus = InitExit.GENERIC
        return int(self.exitstatus)

    # -- help and trivia

    def do_help(self, arg: str) -> None:
        if arg == "help":
            self._help("help")
        elif arg:
            if arg in HELP:
                self._help(arg)
            else:
                self.output(f"*** No help on {arg}")
        else:
            self.output("")
            header = "default commands (type help <topic>):"
            self.output(header)
            self.output("=" * len(header))
            topics = sorted(name for name in HELP if name != "help")
            cmd.Cmd(stdout=self._out).columnize(topics, 79)
            self.output("")

    def do_EOF(self, arg: str) -> None:
        self.output("")

    def do_quit(self, arg: str) -> None:
        self.do_EOF(arg)

    do_exit = do_quit

    def do_fg(self, arg: str) -> None:
        """supervisorctl's ``fg``: see :mod:`manager.ctl.foreground` for the session."""
        if not self.upcheck():
            return
        names = arg.split()
        if not names:
            self.output("ERROR: no process name supplied")
            self.exitstatus = InitExit.GENERIC
            self._help("fg")
            return
        if len(names) > 1:
            self.output("ERROR: too many process names supplied")
            self.exitstatus = InitExit.GENERIC
            return
        name = names[0]
        # imported here: threads and signal handlers only for fg (a lean start-up)
        from manager.ctl.foreground import RUNNING, Foreground, fault_repr

        try:
            info = self._rpc("getProcessInfo", name)
        except RPCFault as exc:
            if exc.code == Fault.BAD_NAME:
                self.output("ERROR: bad process name supplied")
                self.exitstatus = InitExit.GENERIC
            else:  # the exit status stays as it is, as in supervisorctl
                self.output(f"ERROR: {fault_repr(exc)}")
            return
        if info["state"] != RUNNING:
            self.output("ERROR: process not running")
            self.exitstatus = InitExit.GENERIC
            return
        self.output("==> Press Ctrl-C to exit <==")
        self._out.flush()
        Foreground(
            name,
            call=self._rpc,
            out=self._out,
            err=self._err,
            read_line=self._read_line,
            target=parse_server_url(_client_url(self.serverurl)),
            url=self.serverurl,
            username=self.username,
            password=self.password,
        ).run()

    # -- the shell

    def cmdloop(self, prompt: str, read: Callable[[str], str] = input) -> int:
        """supervisorctl's shell: ``status`` first, then a command per line read with
        ``read(prompt)`` until ``quit``, ``exit`` or end of input; always returns 0."""
        line = "status"
        while True:
            if line.strip().split(" ", 1)[0] in ("EOF", "quit", "exit"):
                self.onecmd(line)
                return 0
            self.onecmd(line)
            self._out.flush()
            try:
                line = read(prompt)
            except EOFError:
                line = "EOF"

    def do_open(self, arg: str) -> None:
        url = arg.strip()
        scheme = urllib.parse.urlparse(url).scheme
        if scheme not in ("unix", "http"):
            self.output("ERROR: url must be http:// or unix://")
            self.exitstatus = InitExit.GENERIC
            return
        try:
            parse_server_url(_client_url(url))
        except ValueError as exc:
            self.output(f"ERROR: {exc}")
            self.exitstatus = InitExit.GENERIC
            return
        self.serverurl = url
        self._client = None
        old = self.exitstatus
        self.do_status("")
        self.exitstatus = old

    def do_version(self, arg: str) -> None:
        if self._has_args(arg, "version"):
            return
        if not self.upcheck():
            return
        self.output(self._rpc("getSupervisorVersion"))

    # -- status and pids

    def _show_statuses(self, infos: Sequence[Mapping[str, Any]]) -> None:
        namespecs = [make_namespec(i["group"], i["name"]) for i in infos]
        width = max([30, *map(len, namespecs)]) + 3
        for namespec, info in zip(namespecs, infos, strict=True):
            self.output(f"{namespec:<{width}}{info['statename']:<10}{info['description']}")

    def do_status(self, arg: str) -> None:
        if not self.upcheck():
            self.exitstatus = StatusExit.UNKNOWN
            return
        all_infos: list[Mapping[str, Any]] = self._rpc("getAllProcessInfo")
        names = arg.split()
        if not names or "all" in names:
            matching = all_infos
        else:
            matching = []
            for name in names:
                group, process = split_namespec(name)
                found = [
                    info
                    for info in all_infos
                    if info["group"] == group and (process is None or info["name"] == process)
                ]
                if not found:
                    if process is None:
                        self.output(f"{group}: ERROR (no such group)")
                    else:
                        self.output(f"{name}: ERROR (no such process)")
                    self.exitstatus = StatusExit.UNKNOWN
                matching.extend(found)
        self._show_statuses(matching)
        if any(info["state"] in STOPPED_STATES for info in matching):
            self.exitstatus = StatusExit.NOT_RUNNING

    def do_pid(self, arg: str) -> None:
        if not self.upcheck():
            return
        names = arg.split()
        if not names:
            self.output(str(self._rpc("getPID")))
        elif "all" in names:
            for info in self._rpc("getAllProcessInfo"):
                self.output(str(info["pid"]))
        else:
            for name in names:
                try:
                    info = self._rpc("getProcessInfo", name)
                except RPCFault as exc:
                    self.exitstatus = InitExit.GENERIC
                    if exc.code != Fault.BAD_NAME:
                        raise
                    self.output(f"No such process {name}")
                else:
                    self.output(str(info["pid"]))
                    if info["pid"] == 0:
                        self.exitstatus = InitExit.NOT_RUNNING

    # -- start / stop / restart / signal

    @staticmethod
    def _fault_result(exc: RPCFault, group: str, process: str | None) -> dict[str, Any]:
        return {
            "status": exc.code,
            "group": group,
            "name": process,
            "description": exc.fault_string,
        }

    @staticmethod
    def _start_result(result: Mapping[str, Any]) -> str:
        name = make_namespec(result["group"], result["name"])
        code = result["status"]
        errors: dict[int, str] = {
            Fault.BAD_NAME: "no such process",
            Fault.NO_FILE: "no such file",
            Fault.NOT_EXECUTABLE: "file is not executable",
            Fault.ALREADY_STARTED: "already started",
            Fault.SPAWN_ERROR: "spawn error",
            Fault.ABNORMAL_TERMINATION: "abnormal termination",
        }
        if code == Fault.SUCCESS:
            return f"{name}: started"
        if code in errors:
            return f"{name}: ERROR ({errors[code]})"
        raise _UnknownResult(f"Unknown result code {code} for {name}")

    @staticmethod
    def _signal_result(result: Mapping[str, Any], success: str = "signalled") -> str:
        name = make_namespec(result["group"], result["name"])
        code = result["status"]
        errors: dict[int, str] = {
            Fault.BAD_NAME: "no such process",
            Fault.BAD_SIGNAL: "bad signal name",
            Fault.NOT_RUNNING: "not running",
        }
        if code == Fault.SUCCESS:
            return f"{name}: {success}"
        if code in errors:
            return f"{name}: ERROR ({errors[code]})"
        if code == Fault.FAILED:
            return str(result["description"])
        raise _UnknownResult(f"Unknown result code {code} for {name}")

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
                self.output(fmt(self._fault_result(exc, group_name, process)))
                self._exit_from_fault(exc.code, ignored)
            else:
                self.output(f"{make_namespec(group_name, process)}: {success}")

    def do_start(self, arg: str) -> None:
        names = self._names(arg, "start", InitExit.INVALID_ARGS)
        if names is None:
            return
        if "all" in names:
            results = self._rpc("startAllProcesses")
            self._results(results, self._start_result, Fault.ALREADY_STARTED)
            return
        self._per_name(
            names,
            one=lambda name: self._rpc("startProcess", name),
            group=lambda group: self._rpc("startProcessGroup", group),
            fmt=self._start_result,
            success="started",
            ignored=Fault.ALREADY_STARTED,
            bad_group_exit=InitExit.INVALID_ARGS,
        )

    def _stop_result(self, result: Mapping[str, Any]) -> str:
        return self._signal_result(result, success="stopped")

    def do_stop(self, arg: str) -> None:
        names = self._names(arg, "stop", InitExit.GENERIC)
        if names is None:
            return
        if "all" in names:
            self._results(self._rpc("stopAllProcesses"), self._stop_result, Fault.NOT_RUNNING)
            return
        self._per_name(
            names,
            one=lambda name: self._rpc("stopProcess", name),
            group=lambda group: self._rpc("stopProcessGroup", group),
            fmt=self._stop_result,
            success="stopped",
            ignored=Fault.NOT_RUNNING,
        )

    def do_restart(self, arg: str) -> None:
        if self._names(arg, "restart", InitExit.GENERIC) is not None:
            self.do_stop(arg)
            self.do_start(arg)

    def do_signal(self, arg: str) -> None:
        if not self.upcheck():
            return
        args = arg.split()
        if len(args) < 2:
            self.output("Error: signal requires a signal name and a process name")
            self._help("signal")
            self.exitstatus = InitExit.GENERIC
            return
        sig, names = args[0], args[1:]
        if "all" in names:
            self._results(self._rpc("signalAllProcesses", sig), self._signal_result, None)
            return
        self._per_name(
            names,
            one=lambda name: self._rpc("signalProcess", name, sig),
            group=lambda group: self._rpc("signalProcessGroup", group, sig),
            fmt=self._signal_result,
            success="signalled",
        )

    # -- logs

    def do_clear(self, arg: str) -> None:
        names = self._names(arg, "clear", InitExit.GENERIC)
        if names is None:
            return
        if "all" in names:
            self._results(self._rpc("clearAllProcessLogs"), self._clear_result, None)
            return
        self._per_name(
            names,
            one=lambda name: self._rpc("clearProcessLogs", name),
            group=None,  # "g:*" goes to clearProcessLogs as is (and is a bad name)
            fmt=self._clear_result,
            success="cleared",
        )

    @staticmethod
    def _clear_result(result: Mapping[str, Any]) -> str:
        name = make_namespec(result["group"], result["name"])
        code = result["status"]
        if code == Fault.SUCCESS:
            return f"{name}: cleared"
        if code == Fault.BAD_NAME:
            return f"{name}: ERROR (no such process)"
        if code == Fault.FAILED:
            return f"{name}: ERROR (failed)"
        raise _UnknownResult(f"Unknown result code {code} for {name}")

    def do_tail(self, arg: str) -> None:
        if not self.upcheck():
            return
        args = arg.split()
        if not args or len(args) > 3:
            self.output("Error: too few arguments" if not args else "Error: too many arguments")
            self.exitstatus = InitExit.GENERIC
            self._help("tail")
            return
        modifier = args.pop(0) if args[0].startswith("-") else None
        if len(args) == 1:
            name, channel = args[-1], "stdout"
        elif args:
            name, channel = args[0], args[-1].lower()
            if channel not in ("stderr", "stdout"):
                self.output(f"Error: bad channel {channel!r}")
                self.exitstatus = InitExit.GENERIC
                return
        else:
            self.output("Error: tail requires process name")
            self.exitstatus = InitExit.GENERIC
            return
        nbytes: int | None = TAIL_BYTES
        if modifier is not None:
            if modifier[1:] == "f":
                nbytes = None
            else:
                try:
                    nbytes = int(modifier[1:])
                except ValueError:
                    self.output(f"Error: bad argument {modifier}")
                    self.exitstatus = InitExit.GENERIC
                    return
        if nbytes is None:
            self._follow_process(name, channel)
            return
        self._check_encoding()
        method = "readProcessStdoutLog" if channel == "stdout" else "readProcessStderrLog"
        try:
            text = self._rpc(method, name, -nbytes, 0)
        except RPCFault as exc:
            self.exitstatus = InitExit.GENERIC
            reasons: dict[int, str] = {
                Fault.NO_FILE: "no log file",
                Fault.FAILED: "unknown error reading log",
                Fault.BAD_NAME: "no such process name",
            }
            why = reasons.get(exc.code)
            if why is None:
                raise
            self.output(f"{name}: ERROR ({why})")
        else:
            self.output(text)

    def do_maintail(self, arg: str) -> None:
        if not self.upcheck():
            return
        args = arg.split()
        if len(args) > 1:
            self.output("Error: too many arguments")
            self.exitstatus = InitExit.GENERIC
            self._help("maintail")
            return
        nbytes = TAIL_BYTES
        if args:
            if not args[0].startswith("-"):
                self.output(f"Error: bad argument {args[0]}")
                self.exitstatus = InitExit.GENERIC
                return
            if args[0][1:] == "f":
                self._follow_main()
                return
            try:
                nbytes = int(args[0][1:])
            except ValueError:
                self.output(f"Error: bad argument {args[0]}")
                self.exitstatus = InitExit.GENERIC
                return
        try:
            text = self._rpc("readLog", -nbytes, 0)
        except RPCFault as exc:
            self.exitstatus = InitExit.GENERIC
            if exc.code == Fault.NO_FILE:
                self.output("supervisord: ERROR (no log file)")
            elif exc.code == Fault.FAILED:
                self.output("supervisord: ERROR (unknown error reading log)")
            else:
                raise
        else:
            self.output(text)

    def _not_found(self, path: str) -> None:
        # what supervisorctl prints (to stderr) when /logtail or /mainlogtail answers 404;
        # the exit status stays 0
        self._err.write(f"{self.serverurl}{path} Cannot read, status code 404\n")

    def _tail_appended(self, method: str, name: str, offset: int) -> int:
        """Write what was appended to a log since ``offset``; return the new offset.

        ``tail*Log(name, offset, length)`` answers the *last* ``length`` bytes and the
        size, so a zero-length call probes the size and a second call asks for
        exactly ``size - offset`` bytes (again if the log grew in between).
        """
        _, probed, _ = self._rpc(method, name, offset, 0)
        size = int(probed)
        if size < offset:  # cleared or rotated: a new file, shown from its start
            offset = 0
        while size > offset:
            data, now, _ = self._rpc(method, name, offset, size - offset)
            if now == size:
                self._write(data)
                break
            size = int(now)
        return size

    def _log_exists(self, name: str, channel: str) -> bool:
        """Whether ``name`` has a ``channel`` log file (``/logtail`` answers 404 if not).

        Reading from far beyond the end returns ``''`` for an existing file without
        transferring (or decoding) any of it; no such process or file is a fault.
        """
        method = "readProcessStdoutLog" if channel == "stdout" else "readProcessStderrLog"
        try:
            self._rpc(method, name, MAX_XMLRPC_INT, 0)
        except RPCFault as exc:
            if exc.code in (Fault.BAD_NAME, Fault.NO_FILE):
                return False
            raise
        return True

    def _follow_process(self, name: str, channel: str) -> None:
        """``tail -f``: the last 1024 bytes, then whatever is appended, until Ctrl-C."""
        self._check_encoding()
        self.output("==> Press Ctrl-C to exit <==")
        method = "tailProcessStdoutLog" if channel == "stdout" else "tailProcessStderrLog"
        try:
            if not self._log_exists(name, channel):
                self._not_found(f"/logtail/{name}/{channel}")
                return
            data, offset, _ = self._rpc(method, name, 0, TAIL_F_HEAD)
            self._write(data)
            while True:
                self._sleep(POLL_INTERVAL)
                offset = self._tail_appended(method, name, offset)
        except KeyboardInterrupt:
            self.output("")

    def _main_log_has_byte(self, offset: int) -> bool:
        try:
            return bool(self._rpc("readLog", offset, 1))
        except (AuthenticationError, Unreachable):
            raise
        except RPCError:
            return True  # e.g. half a UTF-8 sequence: there is a byte there

    def _main_log_size(self) -> int:
        """The main log's size in bytes, found by bisecting ``readLog(offset, 1)``."""
        self._rpc("readLog", 0, 1)  # NO_FILE when there is no main log
        if not self._main_log_has_byte(0):
            return 0
        low, high = 0, TAIL_F_HEAD  # invariant: byte at low exists
        while self._main_log_has_byte(high):
            low, high = high, high * 2
        while high - low > 1:  # now: byte at high does not exist
            mid = (low + high) // 2
            if self._main_log_has_byte(mid):
                low = mid
            else:
                high = mid
        return high

    def _follow_main(self) -> None:
        """``maintail -f``: like :meth:`_follow_process` for the main log."""
        self._check_encoding()
        self.output("==> Press Ctrl-C to exit <==")
        try:
            try:
                offset = max(0, self._main_log_size() - TAIL_F_HEAD)
            except RPCFault as exc:
                if exc.code != Fault.NO_FILE:
                    raise
                self._not_found("/mainlogtail")
                return
            while True:
                data = self._rpc("readLog", offset, 0)
                if data:
                    self._write(data)
                    offset += len(data.encode("utf-8", "surrogateescape"))
                elif offset > 0 and not self._main_log_has_byte(offset - 1):
                    offset = 0  # cleared or rotated: a new file, shown from its start
                    continue
                self._sleep(POLL_INTERVAL)
        except KeyboardInterrupt:
            self.output("")

    # -- the daemon itself

    def do_shutdown(self, arg: str) -> None:
        if self._has_args(arg, "shutdown"):
            return
        try:
            self._rpc("shutdown")
        except RPCFault as exc:
            if exc.code != Fault.SHUTDOWN_STATE:
                self.exitstatus = InitExit.GENERIC
                raise
            self.output("ERROR: already shutting down")
        except Unreachable as exc:
            self.exitstatus = InitExit.GENERIC
            code = _errno_of(exc)
            if code == errno.ECONNREFUSED:
                self.output(f"ERROR: {self.serverurl} refused connection (already shut down?)")
            elif code == errno.ENOENT:
                self.output(f"ERROR: {self.serverurl} no such file (already shut down?)")
            else:
                raise
        else:
            self.output("Shut down")

    def do_reload(self, arg: str) -> None:
        if self._has_args(arg, "reload"):
            return
        try:
            self._rpc("restart")
        except RPCFault as exc:
            self.exitstatus = InitExit.GENERIC
            if exc.code != Fault.SHUTDOWN_STATE:
                raise
            self.output("ERROR: already shutting down")
        else:
            self.output("Restarted supervisord")

    # -- configuration

    @staticmethod
    def _config_line(info: Mapping[str, Any]) -> str:
        name = make_namespec(info["group"], info["name"])
        inuse = "in use" if info["inuse"] else "avail"
        autostart = "auto" if info["autostart"] else "manual"
        priority = f"{info['group_prio']}:{info['process_prio']}"
        return f"{name:<32} {inuse:<9} {autostart:<9} {priority}"

    def do_avail(self, arg: str) -> None:
        if self._has_args(arg, "avail"):
            return
        try:
            infos = self._rpc("getAllConfigInfo")
        except RPCFault as exc:
            self.exitstatus = InitExit.GENERIC
            if exc.code != Fault.SHUTDOWN_STATE:
                raise
            self.output("ERROR: supervisor shutting down")
        else:
            for info in infos:
                self.output(self._config_line(info))

    def do_reread(self, arg: str) -> None:
        if self._has_args(arg, "reread"):
            return
        try:
            result = self._rpc("reloadConfig")
        except RPCFault as exc:
            self.exitstatus = InitExit.GENERIC
            if exc.code == Fault.SHUTDOWN_STATE:
                self.output("ERROR: supervisor shutting down")
            elif exc.code == Fault.CANT_REREAD:
                self.output(f"ERROR: {exc.fault_string}")
            else:
                raise
        else:
            added, changed, removed = result[0]
            changes: dict[str, str] = {}
            for names, what in (
                (added, "available"),
                (changed, "changed"),
                (removed, "disappeared"),
            ):
                changes.update(dict.fromkeys(names, what))
            if not changes:
                self.output("No config updates to processes")
            for name in sorted(changes):
                self.output(f"{name}: {changes[name]}")

    def do_add(self, arg: str) -> None:
        for name in arg.split():
            try:
                self._rpc("addProcessGroup", name)
            except RPCFault as exc:
                if exc.code == Fault.SHUTDOWN_STATE:
                    self.output("ERROR: shutting down")
                    self.exitstatus = InitExit.GENERIC
                elif exc.code == Fault.ALREADY_ADDED:
                    self.output("ERROR: process group already active")
                elif exc.code == Fault.BAD_NAME:
                    self.output(f"ERROR: no such process/group: {name}")
                    self.exitstatus = InitExit.GENERIC
                else:
                    self.exitstatus = InitExit.GENERIC
                    raise
            else:
                self.output(f"{name}: added process group")

    def do_remove(self, arg: str) -> None:
        for name in arg.split():
            try:
                self._rpc("removeProcessGroup", name)
            except RPCFault as exc:
                self.exitstatus = InitExit.GENERIC
                if exc.code == Fault.STILL_RUNNING:
                    self.output(f"ERROR: process/group still running: {name}")
                elif exc.code == Fault.BAD_NAME:
                    self.output(f"ERROR: no such process/group: {name}")
                else:
                    raise
            else:
                self.output(f"{name}: removed process group")

    def do_update(self, arg: str) -> None:
        try:
            result = self._rpc("reloadConfig")
        except RPCFault as exc:
            self.exitstatus = InitExit.GENERIC
            if exc.code != Fault.SHUTDOWN_STATE:
                raise
            self.output("ERROR: already shutting down")
            return
        added, changed, removed = result[0]
        wanted = list(dict.fromkeys(arg.split()))
        if "all" in wanted:
            wanted = []
        if wanted:
            groups = {info["group"] for info in self._rpc("getAllProcessInfo")}
            groups.update(added)
            for name in wanted:
                if name not in groups:
                    self.output(f"ERROR: no such group: {name}")
                    self.exitstatus = InitExit.GENERIC

        def selected(name: str) -> bool:
            return not wanted or name in wanted

        for name in filter(selected, removed):
            results = self._rpc("stopProcessGroup", name)
            self.output(f"{name}: stopped")
            if any(r["status"] == Fault.FAILED for r in results):
                self.output(f"{name}: has problems; not removing")
                self.exitstatus = InitExit.GENERIC
                continue
            self._rpc("removeProcessGroup", name)
            self.output(f"{name}: removed process group")
        for name in filter(selected, changed):
            self._rpc("stopProcessGroup", name)
            self.output(f"{name}: stopped")
            self._rpc("removeProcessGroup", name)
            self._rpc("addProcessGroup", name)
            self.output(f"{name}: updated process group")
        for name in filter(selected, added):
            self._rpc("addProcessGroup", name)
            self.output(f"{name}: added process group")


# --- entry point ---------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``vigilctl`` and return its exit status (see the module docstring)."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        options = parse_args(args, argv0=sys.argv[0] if sys.argv and sys.argv[0] else PROG)
    except UsageError as exc:
        sys.stderr.write(f"Error: {exc}\nFor help, use {PROG} -h\n")
        return EXIT_USAGE
    if options.help:
        sys.stdout.write(USAGE)
        return 0
    controller = Controller(options.serverurl, options.username, options.password, out=sys.stdout)
    if options.command:
        status = controller.onecmd(" ".join(options.command))
        sys.stdout.flush()
        return status
    _readline(options.history_file)
    try:
        return controller.cmdloop(f"{options.prompt}> ")
    except KeyboardInterrupt:
        controller.output("")
        return 0


def _readline(history_file: str | None) -> None:
    """Line editing and history for the shell, as supervisorctl sets them up."""
    if not sys.stdin.isatty():
        return
    try:
        import readline
    except ImportError:
        return
    delims = readline.get_completer_delims()
    for c in ":*-":  # "group:process", "group:*" and "a-b" are one word
        delims = delims.replace(c, "")
    readline.set_completer_delims(delims)
    if history_file:
        with contextlib.suppress(OSError):
            readline.read_history_file(history_file)
        atexit.register(_save_history, readline.write_history_file, history_file)


def _save_history(write: Callable[[str], None], path: str) -> None:
    with contextlib.suppress(OSError):
        write(path)


if __name__ == "__main__":
    sys.exit(main())
