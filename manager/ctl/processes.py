"""The commands about processes: ``status``, ``pid``, ``start``, ``stop``, ``restart``,
``signal`` and ``fg``, with supervisorctl 4.3's output and exit statuses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from manager.ctl.base import ControllerBase, InitExit, StatusExit
from manager.ctl.formatting import (
    fault_repr,
    signal_result,
    split_namespec,
    start_result,
    status_lines,
    stop_result,
)
from manager.ctl.options import client_url
from manager.faults import Fault
from manager.rpcclient import RPCFault, parse_server_url

__all__ = ["STOPPED_STATES", "ProcessCommands"]

#: codes of manager.states.STOPPED_STATES (STOPPED, EXITED, FATAL, UNKNOWN), kept here so
#: that vigilctl starts without importing the state tables (a test holds them equal)
STOPPED_STATES = frozenset({0, 100, 200, 1000})


class ProcessCommands(ControllerBase):
    """``status``, ``pid``, ``start``, ``stop``, ``restart``, ``signal``, ``fg``."""

    # -- status and pids

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
        for line in status_lines(matching):
            self.output(line)
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

    def do_start(self, arg: str) -> None:
        names = self._names(arg, "start", InitExit.INVALID_ARGS)
        if names is None:
            return
        if "all" in names:
            results = self._rpc("startAllProcesses")
            self._results(results, start_result, Fault.ALREADY_STARTED)
            return
        self._per_name(
            names,
            one=lambda name: self._rpc("startProcess", name),
            group=lambda group: self._rpc("startProcessGroup", group),
            fmt=start_result,
            success="started",
            ignored=Fault.ALREADY_STARTED,
            bad_group_exit=InitExit.INVALID_ARGS,
        )

    def do_stop(self, arg: str) -> None:
        names = self._names(arg, "stop", InitExit.GENERIC)
        if names is None:
            return
        if "all" in names:
            self._results(self._rpc("stopAllProcesses"), stop_result, Fault.NOT_RUNNING)
            return
        self._per_name(
            names,
            one=lambda name: self._rpc("stopProcess", name),
            group=lambda group: self._rpc("stopProcessGroup", group),
            fmt=stop_result,
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
            self._results(self._rpc("signalAllProcesses", sig), signal_result, None)
            return
        self._per_name(
            names,
            one=lambda name: self._rpc("signalProcess", name, sig),
            group=lambda group: self._rpc("signalProcessGroup", group, sig),
            fmt=signal_result,
            success="signalled",
        )

    # -- fg

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
        from manager.ctl.foreground import RUNNING, Foreground

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
            target=parse_server_url(client_url(self.serverurl)),
            url=self.serverurl,
            username=self.username,
            password=self.password,
        ).run()
