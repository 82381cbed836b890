"""``supervisor.*`` that read and clear logs: the main log and each process's
stdout/stderr logs.

Theory of operation
-------------------
``read*`` return up to ``length`` bytes from ``offset`` (supervisord's rules for a
negative offset, a zero length and the faults are :func:`manager.logfiles.read_log`'s);
``tail*`` return ``[bytes, next offset, overflow]`` (:func:`manager.logfiles.tail_log`).
A process channel without a log file (``none``, ``syslog``) is NO_FILE for a read
and an empty tail. Clearing a process log empties and reopens its files; clearing
the main log removes it and reopens it.

Difference from supervisord 4.3, on purpose: log text that is not valid UTF-8 is
decoded with replacement characters instead of failing the call (rpcserver also
replaces characters XML cannot carry).
"""

from __future__ import annotations

import os

from manager import mainlog
from manager.api.answers import Deferred, RPCError
from manager.api.base import NamespaceBase, Result
from manager.faults import Fault
from manager.logfiles import LogReadError, read_log, tail_log

__all__ = ["LogMethods"]


class LogMethods(NamespaceBase):
    """Reading, tailing and clearing the main log and the process logs."""

    # -- the main log

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
