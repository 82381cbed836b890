"""Value parsers for supervisord.conf: one string in, one typed value out.

Theory of operation
-------------------
Each function here turns the (already ``%``-expanded) text of one config value
into a Python value, or raises :class:`ValueError` whose message is the *why*
part of the error, worded as supervisord 4.3 words it (reference §4.2, §4.14),
e.g. ``value 'FOO' is not a valid signal name``. :mod:`manager.config` adds the
file, section, key and raw value around it.

Nothing here writes anything. A few functions *read* the system, as
supervisord does at parse time: :func:`user_name` and :func:`user_group` look
the account up, :func:`existing_directory` and :func:`existing_dirpath` check
that a directory exists.

Differences from supervisord 4.3, on purpose:

* :func:`signal_number` accepts only real signals: ``0``, ``SIG_DFL``,
  ``SIG_IGN`` and friends (accepted by supervisord because they are ``SIG*``
  attributes of the :mod:`signal` module) are rejected.
* :func:`port` words every bad port the same way (``not a valid port number:
  'abc'``), with or without a host part, and names the value when the port
  after ``host:`` is missing.
"""

from __future__ import annotations

import enum
import grp
import os
import pwd
import signal
import stat
import string
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

__all__ = [
    "LOG_LEVELS",
    "AutoRestart",
    "LogKind",
    "LogTarget",
    "auto_restart",
    "environment",
    "existing_directory",
    "existing_dirpath",
    "exit_codes",
    "log_target",
    "logging_level",
    "octal",
    "port",
    "process_name_ok",
    "signal_number",
    "user_group",
    "user_name",
]

#: supervisord's boolean spellings, compared lower-cased (``datatypes.boolean``).
_TRUTHY = frozenset({"true", "yes", "on", "1"})
_FALSY = frozenset({"false", "no", "off", "0"})

#: ``[supervisord] loglevel`` names, most to least severe. ``warning`` is not one.
LOG_LEVELS = ("critical", "error", "warn", "info", "debug", "trace", "blather")


# --- signals, exit codes, octal ------------------------------------------------------

#: Every signal the platform names, by number (aliases such as SIGIOT included).
_SIGNAL_NUMBERS = frozenset(int(s) for s in signal.Signals)


def signal_number(text: str) -> int:
    """Parse ``stopsignal``: ``TERM``, ``sigterm``, `` SIGTERM ``, or a number such as ``15``.

    Raises:
        ValueError: ``value 'FOO' is not a valid signal name`` or
            ``value '99' is not a valid signal number``.
    """
    try:
        number = int(text)
    except ValueError:
        name = text.strip().upper()
        if not name.startswith("SIG"):
            name = "SIG" + name
        member = signal.Signals.__members__.get(name)
        if member is None:
            raise ValueError(f"value {text!r} is not a valid signal name") from None
        return int(member)
    if number not in _SIGNAL_NUMBERS:
        raise ValueError(f"value {text!r} is not a valid signal number")
    return number


def exit_codes(text: str) -> frozenset[int]:
    """Parse ``exitcodes``: comma-separated integers 0-255; an empty text is no code at all.

    Raises:
        ValueError: ``not a valid list of exit codes: '0,256'``.
    """
    if not text:
        return frozenset()
    codes: set[int] = set()
    for item in text.split(","):
        try:
            code = int(item)
        except ValueError:
            code = -1
        if not 0 <= code <= 255:
            raise ValueError(f"not a valid list of exit codes: {text!r}")
        codes.add(code)
    return frozenset(codes)


def octal(text: str) -> int:
    """Parse an octal mode such as ``022``, ``0700`` or ``700``.

    Raises:
        ValueError: ``abc can not be converted to an octal type``.
    """
    try:
        return int(text, 8)
    except ValueError:
        raise ValueError(f"{text} can not be converted to an octal type") from None


# --- autorestart -----------------------------------------------------------------------


class AutoRestart(enum.Enum):
    """``autorestart``: never, only after an unexpected exit, or always."""

    FALSE = "false"
    UNEXPECTED = "unexpected"
    TRUE = "true"


def auto_restart(text: str) -> AutoRestart:
    """Parse ``autorestart``: ``unexpected`` or any boolean spelling, case-insensitive.

    Raises:
        ValueError: ``invalid 'autorestart' value 'x'`` (lower-cased, as supervisord says it).
    """
    lowered = text.lower()
    if lowered in _TRUTHY:
        return AutoRestart.TRUE
    if lowered in _FALSY:
        return AutoRestart.FALSE
    if lowered == "unexpected":
        return AutoRestart.UNEXPECTED
    raise ValueError(f"invalid 'autorestart' value {lowered!r}")


# --- environment= ----------------------------------------------------------------------

#: Characters an unquoted key or value may contain (supervisord's shlex word characters).
_WORD = frozenset(string.ascii_letters + string.digits + "_/.+-():")
_SPACE = frozenset(" \t\r\n")
_QUOTES = frozenset("'\"")


def _end_of_line(text: str, i: int) -> int:
    """Index just past the newline at or after ``i`` (``#`` comments run to end of line)."""
    newline = text.find("\n", i)
    return len(text) if newline < 0 else newline + 1


def _env_tokens(text: str) -> list[str]:
    """Split ``environment=`` text into tokens the way supervisord's (non-POSIX) lexer does.

    A token is a word (runs of :data:`_WORD` characters, quote characters inside
    a word included), a quoted string (quotes kept; it ends at its closing
    quote), or any other single character (``=``, ``,``, ``@``...). ``#`` skips
    to the end of the line, also in the middle of a word.
    """
    tokens: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _SPACE:
            i += 1
        elif c == "#":
            i = _end_of_line(text, i)
        elif c in _WORD:
            word: list[str] = []
            while i < n:
                d = text[i]
                if d in _WORD or d in _QUOTES:
                    word.append(d)
                    i += 1
                elif d == "#":
                    i = _end_of_line(text, i)
                else:
                    break
            tokens.append("".join(word))
        elif c in _QUOTES:
            close = text.find(c, i + 1)
            if close < 0:
                raise ValueError("No closing quotation")
            tokens.append(text[i : close + 1])
            i = close + 1
        else:
            tokens.append(c)
            i += 1
    return tokens


def environment(text: str) -> dict[str, str]:
    """Parse ``environment=``: ``KEY=val,KEY2="val 2"``.

    Quirks kept from supervisord 4.3 (reference §4.2): unquoted values are
    limited to letters, digits and ``_ / . + - ( ) :``; quotes around a value are
    stripped (all leading and trailing ``'``/``"``); the token after each
    ``KEY=val`` is skipped whatever it is, so ``A=x y`` silently yields
    ``{"A": "x"}``; ``A=`` is an error.

    Raises:
        ValueError: ``Unexpected end of key/value pairs in value 'A='`` or
            ``No closing quotation``.
    """
    tokens = _env_tokens(text)
    result: dict[str, str] = {}
    for i in range(0, len(tokens), 4):
        triple = tokens[i : i + 3]
        if len(triple) != 3 or triple[1] != "=":
            raise ValueError(f"Unexpected end of key/value pairs in value '{text}'")
        result[triple[0]] = triple[2].strip("'\"")
    return result


# --- names, ports, users ---------------------------------------------------------------


def process_name_ok(name: str) -> str:
    """Check a program, group or process name; return it without surrounding spaces.

    Raises:
        ValueError: ``Invalid name: 'a b' because of character: ' '`` (space, ``:`` or ``/``).
    """
    stripped = name.strip()
    for character in " :/":
        if character in stripped:
            raise ValueError(f"Invalid name: {name!r} because of character: {character!r}")
    return stripped


def _port_number(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if not 1 <= number <= 0xFFFF:
        raise ValueError(f"not a valid port number: {text!r}")
    return number


def port(text: str) -> tuple[str, int]:
    """Parse ``[inet_http_server] port``: ``host:port``, ``:port``, ``*:port`` or ``port``.

    Returns:
        ``(host, port)``; the host is lower-cased and ``""`` means every interface.

    Raises:
        ValueError: ``not a valid port number: 'abc'`` (also outside 1-65535) or
            ``no port number specified in 'host:'``.
    """
    host, sep, number = text.rpartition(":")
    if sep and not number:
        raise ValueError(f"no port number specified in {text!r}")
    host = host.lower()
    return ("" if host == "*" else host), _port_number(number)


def user_name(text: str) -> str:
    """Check that ``text`` names an existing user (a name or a numeric uid); return it.

    Raises:
        ValueError: ``Invalid user name x`` or ``Invalid user id 12345``.
    """
    try:
        uid = int(text)
    except ValueError:
        try:
            pwd.getpwnam(text)
        except KeyError:
            raise ValueError(f"Invalid user name {text}") from None
        return text
    try:
        pwd.getpwuid(uid)
    except (KeyError, OverflowError):
        raise ValueError(f"Invalid user id {text}") from None
    return text


def _uid(text: str) -> int:
    try:
        uid = int(text)
    except ValueError:
        return pwd.getpwnam(text).pw_uid
    pwd.getpwuid(uid)
    return uid


def _gid(text: str) -> int:
    try:
        gid = int(text)
    except ValueError:
        return grp.getgrnam(text).gr_gid
    grp.getgrgid(gid)
    return gid


def user_group(text: str) -> tuple[int, int]:
    """Parse ``chown``: ``user`` or ``user:group`` (names or ids) into ``(uid, gid)``.

    The gid is ``-1`` ("leave unchanged") when no group is given.

    Raises:
        ValueError: ``Invalid user:group definition x`` if either part is unknown.
    """
    user, sep, group = text.partition(":")
    try:
        return _uid(user), (_gid(group) if sep else -1)
    except (KeyError, ValueError, OverflowError):
        raise ValueError(f"Invalid user:group definition {text}") from None


# --- paths -------------------------------------------------------------------------------


def existing_directory(text: str, *, cwd: Path) -> str:
    """Check that ``text`` (``~`` expanded, relative to ``cwd``) is a directory.

    Returns:
        ``text`` with ``~`` expanded, otherwise as written.

    Raises:
        ValueError: ``/nope is not an existing directory``.
    """
    expanded = os.path.expanduser(text)
    if _is_dir(cwd / expanded, text):
        return expanded
    raise ValueError(f"{text} is not an existing directory")


def existing_dirpath(text: str, *, cwd: Path) -> str:
    """Check that the directory part of the file path ``text`` exists (relative to ``cwd``).

    A bare file name (no directory part) is always accepted.

    Returns:
        ``text`` with ``~`` expanded, otherwise as written.

    Raises:
        ValueError: ``The directory named as part of the path /nope/x.log does not exist``.
    """
    expanded = os.path.expanduser(text)
    parent = os.path.dirname(expanded)
    if not parent or _is_dir(cwd / parent, text):
        return expanded
    raise ValueError(f"The directory named as part of the path {text} does not exist")


def _is_dir(path: Path, text: str) -> bool:
    """Whether ``path`` is a directory; a path the OS cannot even look up is a ValueError.

    ``Path.is_dir`` answers False for a missing path but raises for others (a name
    longer than NAME_MAX, a permission problem), which must not escape a config load.
    """
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise ValueError(f"{exc.strerror or exc}: cannot check the path {text}") from None


def logging_level(text: str) -> str:
    """Parse ``loglevel`` into one of :data:`LOG_LEVELS` (case-insensitive).

    Raises:
        ValueError: ``bad logging level name 'warning'``.
    """
    lowered = text.lower()
    if lowered not in LOG_LEVELS:
        raise ValueError(f"bad logging level name {text!r}")
    return lowered


# --- log targets -------------------------------------------------------------------------


class LogKind(enum.Enum):
    """Where a child's output channel is logged."""

    #: a file named ``<process>-<channel>---<identifier>-<random>.log`` in ``childlogdir``
    AUTO = "auto"
    #: no log file (``NONE``, ``OFF`` or an empty value)
    NONE = "none"
    #: the file at :attr:`LogTarget.path`
    FILE = "file"
    #: the deprecated ``syslog`` file name; the config turns it into ``*_syslog=true``
    SYSLOG = "syslog"


@dataclass(frozen=True)
class LogTarget:
    """The parsed value of ``stdout_logfile`` / ``stderr_logfile``."""

    kind: LogKind
    #: the file, ``~`` expanded, for :attr:`LogKind.FILE`; ``None`` otherwise
    path: str | None = None

    AUTO: ClassVar[LogTarget]
    NONE: ClassVar[LogTarget]

    @property
    def is_auto(self) -> bool:
        return self.kind is LogKind.AUTO

    def __str__(self) -> str:
        return self.path if self.path is not None else self.kind.name


LogTarget.AUTO = LogTarget(LogKind.AUTO)
LogTarget.NONE = LogTarget(LogKind.NONE)


def log_target(text: str) -> LogTarget:
    """Parse a child log file value: ``AUTO``, ``NONE``/``OFF``, ``syslog`` or a path.

    The keywords are case-insensitive. An empty value means no file, as it does
    for supervisord (which then never opens one). A path is not checked here;
    see :func:`existing_dirpath`.
    """
    lowered = text.lower()
    if lowered in ("none", "off", ""):
        return LogTarget.NONE
    if lowered == "auto":
        return LogTarget.AUTO
    if lowered == "syslog":
        return LogTarget(LogKind.SYSLOG)
    return LogTarget(LogKind.FILE, os.path.expanduser(text))
