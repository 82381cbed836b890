"""The commands about logs: ``clear``, ``tail`` and ``maintail`` (with ``-f``).

``tail -f`` and ``maintail -f`` follow over XML-RPC rather than streaming ``/logtail``
as supervisorctl does (see :mod:`manager.vigilctl` for why the output is the same):
``tail -f`` polls ``tailProcessStdoutLog``/``tailProcessStderrLog`` every
:data:`POLL_INTERVAL` seconds; ``maintail -f`` finds the main log's size by bisecting
``readLog(offset, 1)`` and then polls ``readLog``. A log that shrank is a new file
(cleared or rotated) and is followed again from its start.
"""

from __future__ import annotations

from manager.ctl.base import ControllerBase, InitExit
from manager.ctl.formatting import clear_result
from manager.faults import Fault
from manager.rpcclient import AuthenticationError, RPCError, RPCFault, Unreachable

__all__ = ["MAX_XMLRPC_INT", "POLL_INTERVAL", "TAIL_BYTES", "TAIL_F_HEAD", "LogCommands"]

#: bytes shown by ``tail``/``maintail`` without ``-N``
TAIL_BYTES = 1600
#: bytes shown first by ``tail -f``/``maintail -f`` (supervisord's ``/logtail`` head)
TAIL_F_HEAD = 1024
#: the largest XML-RPC ``int``
MAX_XMLRPC_INT = 2**31 - 1
#: seconds between polls while following
POLL_INTERVAL = 0.2


class LogCommands(ControllerBase):
    """``clear``, ``tail``, ``maintail``."""

    def do_clear(self, arg: str) -> None:
        names = self._names(arg, "clear", InitExit.GENERIC)
        if names is None:
            return
        if "all" in names:
            self._results(self._rpc("clearAllProcessLogs"), clear_result, None)
            return
        self._per_name(
            names,
            one=lambda name: self._rpc("clearProcessLogs", name),
            group=None,  # "g:*" goes to clearProcessLogs as is (and is a bad name)
            fmt=clear_result,
            success="cleared",
        )

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

    # -- following

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
