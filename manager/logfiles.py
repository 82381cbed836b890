"""Child log files: size rotation, reading and tailing, AUTO names and their cleanup.

Theory of operation
-------------------
A :class:`RotatingFile` is one child log (``stdout_logfile`` / ``stderr_logfile``).
It writes raw bytes with ``os.write`` on an ``O_APPEND`` descriptor — no Python
buffer — so ``readProcessStdoutLog`` / ``tailProcessStdoutLog`` and ``tail -f`` see
output as soon as it has been read from the child. :func:`read_log` and
:func:`tail_log` are the file side of those RPC methods (and of ``readLog`` for the
main log), with supervisord 4.3's argument rules (``options.readFile`` /
``options.tailFile``). :func:`auto_log_path` and :func:`cleanup_auto_logs` are the
``AUTO`` log names in ``childlogdir`` (``get_autochildlog_name`` /
``clear_autochildlogdir``).

Rotation keeps 4.3's numbering: ``path`` → ``path.1`` → … → ``path.<backups>``,
the oldest dropped; ``backups=0`` truncates in place; ``maxbytes=0`` never rotates;
only regular files rotate (``/dev/stdout`` never does). It differs in *when*:
4.3 rotates after a write once the file has reached ``maxbytes``; we rotate before
a write that would take a non-empty file past ``maxbytes``, so a file is never
larger than ``maxbytes`` unless one write alone is.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import stat
import tempfile
from pathlib import Path
from types import TracebackType
from typing import ClassVar

from manager.faults import Fault

__all__ = [
    "BadArguments",
    "Failed",
    "LogReadError",
    "NoFile",
    "RotatingFile",
    "auto_log_path",
    "cleanup_auto_logs",
    "read_log",
    "tail_log",
]

#: new log files: 0o666 less the umask as in supervisord, but never world-writable
LOG_FILE_MODE = 0o664
_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


class RotatingFile:
    """An append-only, size-rotated child log file.

    Args:
        path: the log file.
        maxbytes: ``*_logfile_maxbytes``; 0 never rotates.
        backups: ``*_logfile_backups``; 0 truncates instead of keeping a backup.

    The file is opened on the first :meth:`write` (``write(b"")`` just opens it,
    creating it if needed) or by :meth:`open`. Like supervisord's log handlers,
    :meth:`write` never raises: an ``OSError`` (disk full, directory removed…) is
    recorded in :attr:`last_error` and :attr:`write_errors`, and the data is lost.
    """

    def __init__(self, path: Path | str, maxbytes: int = 0, backups: int = 0) -> None:
        self.path = Path(path)
        self.maxbytes = maxbytes
        self.backups = backups
        #: the last OSError a write swallowed, if any
        self.last_error: OSError | None = None
        #: how many writes failed
        self.write_errors = 0
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"<RotatingFile {str(self.path)!r} maxbytes={self.maxbytes} backups={self.backups}>"

    def __enter__(self) -> RotatingFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """True while no descriptor is open (before the first write, after close)."""
        return self._fd is None

    @property
    def size(self) -> int:
        """The current size of the file in bytes; 0 if it does not exist."""
        if self._fd is not None:
            return os.fstat(self._fd).st_size
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def open(self) -> None:
        """Open (and create) the file now, if not open yet.

        supervisord opens child logs when it makes a process's dispatchers, so the
        file exists from the first spawn on; call this then to do the same.

        Raises:
            OSError: the file cannot be opened (4.3 turns that into a spawn error).
        """
        if self._fd is None:
            self._fd = os.open(self.path, _OPEN_FLAGS, LOG_FILE_MODE)

    def write(self, data: bytes) -> None:
        """Append ``data``, rotating first if it would take the file past ``maxbytes``."""
        try:
            self.open()
            assert self._fd is not None
            if data and self.maxbytes > 0:
                st = os.fstat(self._fd)
                if (
                    stat.S_ISREG(st.st_mode)
                    and st.st_size > 0
                    and st.st_size + len(data) > self.maxbytes
                ):
                    self._rotate()
            view = memoryview(data)
            while view:
                assert self._fd is not None
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as exc:
            self.last_error = exc
            self.write_errors += 1

    def reopen(self) -> None:
        """Close and open again by name: SIGUSR2, after an external rotation.

        Raises:
            OSError: the file cannot be opened.
        """
        self.close()
        self.open()

    def clear(self, *, include_backups: bool = False) -> None:
        """Empty the log, as ``clearProcessLogs`` does: remove the file, then reopen it.

        supervisord 4.3 removes only the file itself and keeps ``path.1`` …;
        ``include_backups=True`` also removes the backups up to ``path.<backups>``.

        Raises:
            OSError: removing or reopening failed (``clearProcessLogs`` answers FAILED).
        """
        self.close()
        victims = [self.path]
        if include_backups:
            victims += [self._backup(i) for i in range(1, self.backups + 1)]
        for victim in victims:
            with contextlib.suppress(FileNotFoundError):
                victim.unlink()
        self.open()

    def close(self) -> None:
        """Close the descriptor; a later write opens it again. Idempotent."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _backup(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")

    def _rotate(self) -> None:
        self.close()
        if self.backups <= 0:
            self._fd = os.open(self.path, _OPEN_FLAGS | os.O_TRUNC, LOG_FILE_MODE)
            return
        for i in range(self.backups - 1, 0, -1):
            _replace(self._backup(i), self._backup(i + 1))
        _replace(self.path, self._backup(1))
        self.open()


def _replace(src: Path, dst: Path) -> None:
    """Rename, tolerating a vanished source (a cleanup script removed it), as 4.3."""
    with contextlib.suppress(FileNotFoundError):
        os.replace(src, dst)


# -- reading -----------------------------------------------------------------------------


class LogReadError(Exception):
    """A log read that supervisord answers with a fault; ``fault`` is its code."""

    fault: ClassVar[Fault]


class NoFile(LogReadError):
    """The log file does not exist (NO_FILE)."""

    fault = Fault.NO_FILE


class BadArguments(LogReadError):
    """Offset and length do not make sense together (BAD_ARGUMENTS)."""

    fault = Fault.BAD_ARGUMENTS


class Failed(LogReadError):
    """The file exists but could not be read (FAILED)."""

    fault = Fault.FAILED


def read_log(path: Path | str, offset: int, length: int) -> bytes:
    """``readLog`` / ``readProcessStdoutLog``: bytes of a log file.

    Args:
        path: the log file.
        offset: ``>= 0``: where to start; ``< 0``: return the last ``-offset`` bytes
            (``supervisorctl tail`` sends ``-1600``).
        length: ``0``: up to EOF; ``> 0``: at most that many bytes. Must be 0 when
            ``offset < 0`` and must not be negative.

    Raises:
        NoFile: ``path`` does not exist.
        BadArguments: ``offset < 0`` with ``length != 0``, or ``length < 0``.
        Failed: the file could not be opened or read.

    The checks come in supervisord's order: NO_FILE, then FAILED to open, then
    BAD_ARGUMENTS.
    """
    if not os.path.exists(path):
        raise NoFile(str(path))
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below; opening comes before the checks
    except OSError as exc:
        raise Failed(str(path)) from exc
    with f:
        if (offset < 0 and length != 0) or (offset >= 0 and length < 0):
            raise BadArguments(f"offset={offset} length={length}")
        try:
            if offset < 0:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size + offset))
                return f.read(-offset)
            f.seek(offset)
            return f.read() if length == 0 else f.read(length)
        except OSError as exc:
            raise Failed(str(path)) from exc


def tail_log(path: Path | str, offset: int, length: int) -> tuple[bytes, int, bool]:
    """``tailProcessStdoutLog``: ``(data, next_offset, overflow)``, supervisord's arithmetic.

    ``next_offset`` is the file size. If the file is larger than ``offset + length``,
    ``overflow`` is True and ``data`` is the last ``length`` bytes. Otherwise
    ``data`` is empty when ``offset`` is at or past EOF, and else the last
    ``min(length, size)`` bytes — which, as in 4.3, may start before ``offset``.

    A missing file gives ``(b"", 0, False)`` (the RPC method's check); a file that
    exists but cannot be read gives ``(b"", offset, False)`` (``tailFile``'s).
    """
    if not os.path.exists(path):
        return b"", 0, False
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            overflow = False
            if size > offset + length:
                overflow = True
                offset = size - 1
            if offset + length > size:
                if offset > size - 1:
                    length = 0
                offset = size - length
            offset = max(offset, 0)
            length = max(length, 0)
            data = b""
            if length:
                f.seek(offset)
                data = f.read(length)
            return data, size, overflow
    except OSError:
        return b"", offset, False


# -- AUTO logs ---------------------------------------------------------------------------


def auto_log_path(
    childlogdir: Path | str, process_name: str, channel: str, identifier: str
) -> Path:
    """Create and name an AUTO log: ``<name>-<channel>---<identifier>-<8 random>.log``.

    As supervisord, the name comes from :func:`tempfile.mkstemp`, which also creates
    the (empty, mode 0600) file, so two processes never get the same name.

    Raises:
        OSError: ``childlogdir`` is missing or not writable.
    """
    fd, name = tempfile.mkstemp(
        suffix=".log", prefix=f"{process_name}-{channel}---{identifier}-", dir=childlogdir
    )
    os.close(fd)
    return Path(name)


def _auto_log_pattern(identifier: str) -> re.Pattern[str]:
    # supervisord's pattern, used with re.match (anchored at the start only), so
    # anything after ".log" matches too (backups, and more). 4.3 does not escape
    # the identifier; we do.
    return re.compile(r".+?---" + re.escape(identifier) + r"-\S+\.log\.{0,1}\d{0,4}")


def cleanup_auto_logs(
    childlogdir: Path | str, identifier: str, *, log: logging.Logger | None = None
) -> list[Path]:
    """Remove the AUTO logs of ``identifier`` (``nocleanup=false``, at start and reload).

    Matches supervisord's ``clear_autochildlogdir``: every entry of ``childlogdir``
    whose name matches ``.+?---<identifier>-\\S+\\.log`` *at its start* — so backups
    (``….log.3``) go too, and so do the logs of an identifier that begins with
    ``<identifier>-``. Failures are logged as warnings with 4.3's messages and
    skipped.

    Returns:
        The paths removed.
    """
    pattern = _auto_log_pattern(identifier)
    try:
        names = sorted(os.listdir(childlogdir))
    except OSError:
        if log is not None:
            log.warning("Could not clear childlog dir")
        return []
    removed: list[Path] = []
    for name in names:
        if not pattern.match(name):
            continue
        path = Path(childlogdir, name)
        try:
            os.remove(path)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                continue
            if log is not None:
                log.warning("Failed to clean up %r", str(path))
        else:
            removed.append(path)
    return removed
