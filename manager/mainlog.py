"""vigild's own log, in supervisord's format, on the stdlib :mod:`logging` package.

Theory of operation
-------------------
:func:`make_logger` configures one named logger (``"vigild"``) and nothing else:
it does not touch the root logger, and the logger does not propagate to it.
Modules may log to children such as ``logging.getLogger("vigild.rpc")``; their
records end up here. The only global change is that the level numbers 5 and 3
get the names ``TRAC`` and ``BLAT``; the 4-letter names of the standard levels
(``CRIT`` … ``DEBG``) are applied by our formatter, never registered globally.

A line is ``YYYY-MM-DD HH:MM:SS,mmm LEVL message`` in local time, as
supervisord's ``'%(asctime)s %(levelname)s %(message)s\\n'``; multi-line
messages (child output at DEBG) are written as they are.

Handlers, in supervisord's order: stdout when ``stdout`` (``nodaemon`` and not
``silent``), then the file — or syslog when the file name is exactly ``syslog``.
Differences from 4.3, on purpose:

* the file rotates before a line that would take it past ``maxbytes`` (4.3:
  after a line once it has reached ``maxbytes``); ``backups=0`` truncates, as 4.3
  does and unlike the stdlib handler, which never rotates then;
* text that cannot be encoded is backslash-escaped instead of losing the line;
* syslog records carry the matching syslog priority (4.3 sends everything at
  ``LOG_INFO``); as in 4.3 each line of a message is its own record, prefixed
  with the time and level.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path
from typing import Any, ClassVar

from manager.logfiles import LOG_FILE_MODE

__all__ = [
    "BLATHER",
    "LEVELS",
    "LEVEL_TAGS",
    "TRACE",
    "SupervisorFormatter",
    "close_logger",
    "make_logger",
    "parse_level",
    "reopen",
]

TRACE = 5
BLATHER = 3

#: ``loglevel`` values (supervisord's ``LevelsByDescription``); ``warning`` is not one
LEVELS: dict[str, int] = {
    "critical": 50,
    "error": 40,
    "warn": 30,
    "info": 20,
    "debug": 10,
    "trace": TRACE,
    "blather": BLATHER,
}

#: the level as written in a log line (supervisord's ``LevelsByName``)
LEVEL_TAGS: dict[int, str] = {
    50: "CRIT",
    40: "ERRO",
    30: "WARN",
    20: "INFO",
    10: "DEBG",
    TRACE: "TRAC",
    BLATHER: "BLAT",
}

_SYSLOG_SOCKETS = ("/dev/log", "/var/run/syslog")


def parse_level(value: str | int) -> int:
    """A ``loglevel`` value as a number; names are case-insensitive, as in supervisord.

    Raises:
        ValueError: ``bad logging level name 'warning'`` for anything else.
    """
    if isinstance(value, int) and value in LEVEL_TAGS:
        return value
    level = LEVELS.get(str(value).lower())
    if level is None:
        raise ValueError(f"bad logging level name {value!r}")
    return level


class SupervisorFormatter(logging.Formatter):
    """``YYYY-MM-DD HH:MM:SS,mmm LEVL message`` (local time, milliseconds truncated)."""

    default_time_format = "%Y-%m-%d %H:%M:%S"
    default_msec_format = "%s,%03d"

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        tag = LEVEL_TAGS.get(record.levelno, record.levelname)
        return f"{record.asctime} {tag} {record.message}"


class _RotatingFileHandler(logging.handlers.RotatingFileHandler):
    """The stdlib handler with supervisord's ``backups=0`` rule; never rotates empty files.

    The file is created never world-writable, whatever the umask (as child logs).
    """

    def _open(self) -> Any:
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
        flags |= os.O_APPEND if self.mode == "a" else os.O_TRUNC
        fd = os.open(self.baseFilename, flags, LOG_FILE_MODE)
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)

    def shouldRollover(self, record: logging.LogRecord) -> int:
        if self.maxBytes <= 0:
            return False
        if os.path.exists(self.baseFilename) and not os.path.isfile(self.baseFilename):
            return False
        if self.stream is None:
            self.stream = self._open()
        size = self.stream.seek(0, os.SEEK_END)
        if size == 0:
            return False
        line = self.format(record) + self.terminator
        encoded = line.encode(self.encoding or "utf-8", self.errors or "strict")
        return size + len(encoded) > self.maxBytes

    def doRollover(self) -> None:
        if self.backupCount > 0:
            super().doRollover()
            return
        if self.stream is not None:
            self.stream.close()
        self.mode = "w"
        try:
            self.stream = self._open()
        finally:
            self.mode = "a"


class _SyslogHandler(logging.handlers.SysLogHandler):
    """One syslog record per line, each with supervisord's time and level prefix."""

    priority_map: ClassVar[dict[str, str]] = {
        **logging.handlers.SysLogHandler.priority_map,
        "TRAC": "debug",
        "BLAT": "debug",
    }

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                formatter = self.formatter or logging.Formatter()
                text += "\n" + formatter.formatException(record.exc_info)
        except Exception:
            self.handleError(record)
            return
        for line in text.rstrip("\n").split("\n"):
            clone = logging.makeLogRecord(
                {
                    **record.__dict__,
                    "msg": line,
                    "args": None,
                    "exc_info": None,
                    "exc_text": None,
                    "stack_info": None,
                }
            )
            super().emit(clone)


def _syslog_handler(ident: str) -> logging.Handler:
    handler: logging.handlers.SysLogHandler | None = None
    for address in _SYSLOG_SOCKETS:
        if os.path.exists(address):
            try:
                handler = _SyslogHandler(address=address)
            except OSError:
                continue
            break
    if handler is None:  # no local socket: the stdlib default, UDP to localhost:514
        handler = _SyslogHandler()
    handler.ident = f"{ident}: "
    return handler


def make_logger(
    logfile: str | Path | None,
    *,
    level: str | int,
    maxbytes: int,
    backups: int,
    stdout: bool,
    name: str = "vigild",
) -> logging.Logger:
    """Configure and return the daemon's logger (``logging.getLogger(name)``).

    Args:
        logfile: ``[supervisord] logfile``; exactly ``"syslog"`` means syslog (as in
            supervisord, the check is case-sensitive); None means no file.
        level: ``loglevel`` (``critical error warn info debug trace blather``).
        maxbytes: ``logfile_maxbytes``; 0 never rotates.
        backups: ``logfile_backups``; 0 truncates at rotation.
        stdout: also write to stdout (``nodaemon`` and not ``silent``).
        name: the logger's name.

    Calling it again for the same name (a reload) first closes the handlers of the
    previous call.

    Raises:
        ValueError: an unknown level name.
        OSError: the log file cannot be opened.
    """
    levelno = parse_level(level)
    logging.addLevelName(TRACE, "TRAC")
    logging.addLevelName(BLATHER, "BLAT")
    logger = logging.getLogger(name)
    close_logger(logger)
    logger.setLevel(levelno)
    logger.propagate = False
    formatter = SupervisorFormatter()
    handlers: list[logging.Handler] = []
    if stdout:
        handlers.append(logging.StreamHandler(sys.stdout))
    if logfile is not None:
        if str(logfile) == "syslog":
            handlers.append(_syslog_handler(name))
        else:
            handlers.append(
                _RotatingFileHandler(
                    logfile,
                    mode="a",
                    maxBytes=max(maxbytes, 0),
                    backupCount=max(backups, 0),
                    encoding="utf-8",
                    errors="backslashreplace",
                )
            )
    if not handlers:
        handlers.append(logging.NullHandler())
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    return logger


def reopen(logger: logging.Logger) -> None:
    """Reopen every log file of ``logger`` by name (SIGUSR2, after an external rotation).

    supervisord logs ``supervisord logreopen`` at INFO just before doing this; the
    caller logs what it wants. Syslog and stdout handlers are left alone.

    Raises:
        OSError: a file cannot be opened again.
    """
    for handler in logger.handlers:
        if not isinstance(handler, logging.FileHandler):
            continue
        handler.acquire()
        try:
            old = handler.stream
            handler.stream = handler._open()
            if old is not None:
                old.close()
        finally:
            handler.release()


def close_logger(logger: logging.Logger) -> None:
    """Remove and close every handler of ``logger`` (shutdown, reload, tests)."""
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
