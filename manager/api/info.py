"""``supervisor.getProcessInfo`` and ``getAllProcessInfo``: the process info struct.

Theory of operation
-------------------
:meth:`ProcessInfoMethods._info` builds supervisord's struct for one process: its
times are whole wall-clock seconds capped to XML-RPC's 32-bit ints, and
``description`` is :func:`description`, supervisord's ``_interpretProcessInfo`` (the
text ``supervisorctl status`` prints after the state). ``getAllProcessInfo`` lists
the processes by group name, then process name, with one ``now`` for all.
:mod:`manager.api.wire` renders the same structs straight to XML for HTTP clients.
"""

from __future__ import annotations

import datetime
import time

from manager.api.base import NamespaceBase
from manager.process import Process
from manager.states import ProcessState

__all__ = ["ProcessInfoMethods", "capped", "description"]

P = ProcessState


def capped(value: float) -> int:
    """``value`` in whole numbers, clamped to XML-RPC's signed 32-bit ``<int>``."""
    return max(-(2**31), min(2**31 - 1, int(value)))


def description(
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


class ProcessInfoMethods(NamespaceBase):
    """The process info struct of one process or of all."""

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
        start = capped(process.laststart)
        stop = capped(process.laststop)
        if now is None:
            now = capped(sup.wallclock())
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
            "description": description(
                process.state, process.name, start, stop, now, process.pid, spawnerr
            ),
        }

    def getAllProcessInfo(self) -> list[dict[str, object]]:
        """Get info about all processes

        @return array result  An array of process status results
        """
        self._require_running()
        groups = self._sup.groups
        now = capped(self._sup.wallclock())
        return [
            self._info(groups[g].processes[p], now)
            for g in sorted(groups)
            for p in sorted(groups[g].processes)
        ]
