"""The value objects of a supervisord.conf: one frozen dataclass per kind of section.

They hold converted values (ints, signal numbers, :class:`~manager.datatypes.LogTarget`,
absolute paths) and supervisord 4.3's defaults; :mod:`manager.config` builds them and
checks them, nothing here reads a file. Equality is what ``reread``/``update`` compare
(:func:`manager.config.diff_groups`), so every field that changes a process's
behaviour takes part in ``==``; ``Config.ini`` and ``Config.warnings`` do not.
"""

from __future__ import annotations

import signal
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from manager import results
from manager.datatypes import AutoRestart, LogTarget
from manager.events import EventType
from manager.ini import IniFile

__all__ = [
    "DEFAULT_RESULT_HANDLER",
    "MAX_IDENTIFIER",
    "MAX_NUMPROCS",
    "MB",
    "Config",
    "GroupConfig",
    "InetHttpServerConfig",
    "InetSocketConfig",
    "LogConfig",
    "PoolConfig",
    "ProcessConfig",
    "SocketConfig",
    "SupervisorctlConfig",
    "SupervisordConfig",
    "UnixHttpServerConfig",
    "UnixSocketConfig",
]

#: one MiB, the unit of the ``*_maxbytes`` defaults
MB = 1024 * 1024
#: most processes one [program:x] / [eventlistener:x] section may ask for (``numprocs``)
MAX_NUMPROCS = 10_000
#: longest ``identifier``: it is part of every AUTO log file name (255 bytes at most)
MAX_IDENTIFIER = 100
#: supervisord's default ``result_handler``.
DEFAULT_RESULT_HANDLER = results.DEFAULT_RESULT_HANDLER


@dataclass(frozen=True)
class SupervisordConfig:
    """``[supervisord]`` (reference §4.4)."""

    #: absolute path, or ``"syslog"``
    logfile: str = "supervisord.log"
    logfile_maxbytes: int = 50 * MB
    logfile_backups: int = 10
    #: one of :data:`manager.datatypes.LOG_LEVELS`
    loglevel: str = "info"
    #: absolute path
    pidfile: str = "supervisord.pid"
    umask: int = 0o022
    nodaemon: bool = False
    silent: bool = False
    minfds: int = 1024
    minprocs: int = 200
    nocleanup: bool = False
    childlogdir: str = field(default_factory=tempfile.gettempdir)
    user: str | None = None
    directory: str | None = None
    strip_ansi: bool = False
    #: added to every child's environment and usable as ``%(ENV_X)s``
    environment: Mapping[str, str] = field(default_factory=dict, hash=False)
    identifier: str = "supervisor"


@dataclass(frozen=True)
class LogConfig:
    """One output channel (stdout or stderr) of one process."""

    target: LogTarget = LogTarget.AUTO
    #: rotate when the file exceeds this; 0 = never
    maxbytes: int = 50 * MB
    backups: int = 10
    #: > 0 enables capture mode (PROCESS_COMMUNICATION)
    capture_maxbytes: int = 0
    #: emit PROCESS_LOG_STDOUT / PROCESS_LOG_STDERR
    events_enabled: bool = False
    syslog: bool = False


@dataclass(frozen=True)
class InetSocketConfig:
    """An ``[fcgi-program:x]`` ``socket = tcp://host:port`` (reference §4.8)."""

    #: lower-cased, as written (a name is resolved when the socket is bound, IPv4 only)
    host: str
    port: int
    #: ``listen()`` backlog (``socket_backlog``)
    backlog: int = socket.SOMAXCONN

    @property
    def url(self) -> str:
        """supervisord's name for the socket, ``tcp://host:port``."""
        return f"tcp://{self.host}:{self.port}"


@dataclass(frozen=True)
class UnixSocketConfig:
    """An ``[fcgi-program:x]`` ``socket = unix:///abs/path`` (reference §4.8)."""

    #: absolute, normalized
    path: str
    #: ``socket_mode``
    mode: int = 0o700
    #: ``socket_owner`` as ``(uid, gid)`` (gid ``-1`` = unchanged); ``None`` = vigild's own
    owner: tuple[int, int] | None = None
    #: ``listen()`` backlog (``socket_backlog``)
    backlog: int = socket.SOMAXCONN

    @property
    def url(self) -> str:
        """supervisord's name for the socket, ``unix:///abs/path``."""
        return f"unix://{self.path}"


#: The socket of an ``[fcgi-program:x]``.
SocketConfig = InetSocketConfig | UnixSocketConfig


@dataclass(frozen=True)
class ProcessConfig:
    """One process instance, after ``numprocs`` expansion (reference §4.5)."""

    name: str
    group: str
    #: the section name after ``program:`` / ``eventlistener:`` / ``fcgi-program:``
    program: str
    #: ``command`` after expansion
    command: str
    #: ``command`` split like a POSIX shell (no shell involved)
    argv: tuple[str, ...]
    process_num: int = 0
    numprocs: int = 1
    priority: int = 999
    autostart: bool = True
    autorestart: AutoRestart = AutoRestart.UNEXPECTED
    startsecs: float = 1.0
    startretries: int = 3
    exitcodes: frozenset[int] = frozenset({0})
    stopsignal: int = int(signal.SIGTERM)
    stopwaitsecs: float = 10.0
    stopasgroup: bool = False
    killasgroup: bool = False
    user: str | None = None
    directory: str | None = None
    umask: int | None = None
    #: the program's own ``environment=`` (``[supervisord] environment`` is merged at spawn)
    environment: Mapping[str, str] = field(default_factory=dict, hash=False)
    #: ``SUPERVISOR_SERVER_URL`` for the child; ``None`` = AUTO (derived from the servers)
    serverurl: str | None = None
    redirect_stderr: bool = False
    stdout: LogConfig = LogConfig()
    stderr: LogConfig = LogConfig()
    is_listener: bool = False
    #: an ``[fcgi-program:x]``'s socket, the child's fd 0 (shared by the section's processes)
    socket: SocketConfig | None = None

    @property
    def namespec(self) -> str:
        """``group:name``, or just ``name`` when both are the same (supervisord's convention)."""
        return self.name if self.group == self.name else f"{self.group}:{self.name}"


@dataclass(frozen=True)
class GroupConfig:
    """A process group: one ``[program:x]`` or ``[fcgi-program:x]``, or a ``[group:x]`` of them."""

    name: str
    priority: int
    #: sorted by (priority, name)
    processes: tuple[ProcessConfig, ...]


@dataclass(frozen=True)
class PoolConfig:
    """An ``[eventlistener:x]`` pool (reference §4.6)."""

    name: str
    priority: int
    processes: tuple[ProcessConfig, ...]
    events: tuple[EventType, ...]
    buffer_size: int = 10
    result_handler: str = DEFAULT_RESULT_HANDLER


@dataclass(frozen=True)
class UnixHttpServerConfig:
    """``[unix_http_server]`` (reference §4.9)."""

    #: absolute socket path
    file: str
    chmod: int = 0o700
    #: ``(uid, gid)``; gid ``-1`` = unchanged; ``None`` = supervisord's own user
    chown: tuple[int, int] | None = None
    username: str | None = None
    password: str | None = None
    section: str = "unix_http_server"


@dataclass(frozen=True)
class InetHttpServerConfig:
    """One ``[inet_http_server*]`` section (reference §4.9)."""

    #: lower-cased; ``""`` = every interface (``*:port`` or ``:port``)
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    section: str = "inet_http_server"


@dataclass(frozen=True)
class SupervisorctlConfig:
    """``[supervisorctl]`` (reference §4.10); the defaults when the section is absent."""

    serverurl: str = "http://localhost:9001"
    username: str | None = None
    password: str | None = None
    prompt: str = "supervisor"
    history_file: str | None = None


@dataclass(frozen=True)
class Config:
    """A whole supervisord.conf."""

    path: Path
    supervisord: SupervisordConfig
    #: sorted by (priority, name)
    groups: tuple[GroupConfig, ...]
    #: sorted by (priority, name)
    pools: tuple[PoolConfig, ...] = ()
    unix_http_server: UnixHttpServerConfig | None = None
    inet_http_servers: tuple[InetHttpServerConfig, ...] = ()
    supervisorctl: SupervisorctlConfig = SupervisorctlConfig()
    ini: IniFile | None = field(default=None, compare=False, hash=False, repr=False)
    #: parse warnings (unmatched includes, deprecated values...), for the main log
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def group(self, name: str) -> GroupConfig | PoolConfig | None:
        """The group or pool called ``name``, if any."""
        for g in self.all_groups():
            if g.name == name:
                return g
        return None

    def all_groups(self) -> list[GroupConfig | PoolConfig]:
        """Pools and groups together, sorted by (priority, name)."""
        both: list[GroupConfig | PoolConfig] = [*self.pools, *self.groups]
        return sorted(both, key=lambda g: (g.priority, g.name))
