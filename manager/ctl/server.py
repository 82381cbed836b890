"""The commands about supervisord itself and its configuration: ``version``,
``shutdown``, ``reload``, ``avail``, ``reread``, ``add``, ``remove``, ``update``."""

from __future__ import annotations

import errno

from manager.ctl.base import ControllerBase, InitExit, errno_of
from manager.ctl.formatting import config_line
from manager.faults import Fault
from manager.rpcclient import RPCFault, Unreachable

__all__ = ["ServerCommands"]


class ServerCommands(ControllerBase):
    """``version``, ``shutdown``, ``reload``, ``avail``, ``reread``, ``add``, ``remove``,
    ``update``."""

    # -- the daemon itself

    def do_version(self, arg: str) -> None:
        if self._has_args(arg, "version"):
            return
        if not self.upcheck():
            return
        self.output(self._rpc("getSupervisorVersion"))

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
            code = errno_of(exc)
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
                self.output(config_line(info))

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
