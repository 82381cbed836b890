"""What vigilctl prints, as supervisorctl 4.3 prints it: help texts, names, result lines.

Pure functions from XML-RPC answers to text; the commands (:mod:`manager.ctl.processes`,
:mod:`manager.ctl.logs`, :mod:`manager.ctl.server`) decide *when* to print them and
which exit status goes with them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from manager.faults import Fault
from manager.rpcclient import RPCFault

__all__ = [
    "HELP",
    "UnknownResult",
    "clear_result",
    "config_line",
    "fault_repr",
    "fault_result",
    "make_namespec",
    "signal_result",
    "split_namespec",
    "start_result",
    "status_lines",
    "stop_result",
]

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


# --- names and the status table --------------------------------------------------------


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


def status_lines(infos: Sequence[Mapping[str, Any]]) -> list[str]:
    """The ``status`` table: namespec in max(30, longest) + 3 columns, state in 10."""
    namespecs = [make_namespec(i["group"], i["name"]) for i in infos]
    width = max([30, *map(len, namespecs)]) + 3
    return [
        f"{namespec:<{width}}{info['statename']:<10}{info['description']}"
        for namespec, info in zip(namespecs, infos, strict=True)
    ]


# --- results --------------------------------------------------------------------------


class UnknownResult(Exception):
    """A result code supervisorctl has no message for (it raises ``ValueError`` too)."""


def fault_repr(exc: RPCFault) -> str:
    """``<Fault 70: 'NOT_RUNNING'>``: how supervisorctl prints an ``xmlrpclib.Fault``."""
    return f"<Fault {exc.code}: {exc.fault_string!r}>"


def fault_result(exc: RPCFault, group: str, process: str | None) -> dict[str, Any]:
    """A fault for one name, shaped like one result of ``startProcessGroup`` & co."""
    return {
        "status": exc.code,
        "group": group,
        "name": process,
        "description": exc.fault_string,
    }


def start_result(result: Mapping[str, Any]) -> str:
    """``<name>: started`` or ``<name>: ERROR (<why>)``.

    Raises:
        UnknownResult: a status ``start`` has no message for.
    """
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
    raise UnknownResult(f"Unknown result code {code} for {name}")


def signal_result(result: Mapping[str, Any], success: str = "signalled") -> str:
    """``<name>: signalled`` (or ``success``), ``<name>: ERROR (<why>)``, or the description
    of a FAILED result.

    Raises:
        UnknownResult: a status ``signal``/``stop`` has no message for.
    """
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
    raise UnknownResult(f"Unknown result code {code} for {name}")


def stop_result(result: Mapping[str, Any]) -> str:
    """:func:`signal_result` with ``stopped`` for success."""
    return signal_result(result, success="stopped")


def clear_result(result: Mapping[str, Any]) -> str:
    """``<name>: cleared`` or ``<name>: ERROR (<why>)``.

    Raises:
        UnknownResult: a status ``clear`` has no message for.
    """
    name = make_namespec(result["group"], result["name"])
    code = result["status"]
    if code == Fault.SUCCESS:
        return f"{name}: cleared"
    if code == Fault.BAD_NAME:
        return f"{name}: ERROR (no such process)"
    if code == Fault.FAILED:
        return f"{name}: ERROR (failed)"
    raise UnknownResult(f"Unknown result code {code} for {name}")


def config_line(info: Mapping[str, Any]) -> str:
    """One line of ``avail``: name, in use or not, auto or manual, priorities."""
    name = make_namespec(info["group"], info["name"])
    inuse = "in use" if info["inuse"] else "avail"
    autostart = "auto" if info["autostart"] else "manual"
    priority = f"{info['group_prio']}:{info['process_prio']}"
    return f"{name:<32} {inuse:<9} {autostart:<9} {priority}"
