"""supervisord.conf as frozen value objects.

Theory of operation
-------------------
:func:`load_config` reads the file with :func:`manager.ini.read_ini` (syntax,
includes, raw strings) and gives every section supervisord 4.3's meaning
(reference §4): defaults, ``%``-expansion, conversion with
:mod:`manager.datatypes`, cross-section checks. The result is a :class:`Config`
made of frozen dataclasses. Loading has no side effects: nothing is created,
opened for writing or spawned; like supervisord it only *reads* the system
(does a log file's directory exist, does a user exist).

Every problem is a :class:`manager.ini.ConfigError`, one line naming the file,
section, key, raw value and why, e.g.
``/etc/s.conf: [program:web] stopsignal = 'FOO': value 'FOO' is not a valid signal name``.

Expansion names per key follow supervisord 4.3 (reference §4.3):

* ``[supervisord]`` keys: ``ENV_*``, ``here`` (``environment`` also ``host_node_name``);
  the keys of ``[supervisord] environment`` then become ``ENV_*`` names for
  every later section;
* once-per-section program keys: plus ``program_name``, ``group_name``, ``host_node_name``;
* per-process keys (``process_name environment command directory *_logfile*
  *_syslog``): plus ``process_num``, ``numprocs`` and, after ``environment``,
  the program's own variables as ``ENV_*``;
* ``[fcgi-program:x] socket``: ``ENV_*``, ``here``, ``program_name``; the other
  ``socket_*`` keys ``ENV_*`` and ``here``.

``[fcgi-program:x]`` is a ``[program:x]`` plus a socket (:class:`InetSocketConfig`
or :class:`UnixSocketConfig`, reference §4.8) that every one of its processes
gets as fd 0 (see :mod:`manager.fcgisocket`); its group is a :class:`GroupConfig`
like any program's, and a ``[group:x]`` may list it.

Sections Vigil does not know (``[rpcinterface:x]``, ``[healthcheck:x]``,
``[metrics]``...) are ignored, as supervisord ignores unknown sections.

Differences from supervisord 4.3, on purpose:

* ``startsecs`` and ``stopwaitsecs`` also accept fractions (``0.5``); every
  value supervisord accepts means the same here.
* Values are expanded once. supervisord expands ``[supervisord] environment``
  and ``*_logfile`` twice, so a ``%%`` there fails (fixed upstream in 4.4.0.dev0).
* A command that does not split (unbalanced quotes) or is empty is a config
  error, not a spawn error at every start.
* A process name is checked after expansion too, not only the template.
* Two process groups with the same name (``[program:x]`` and
  ``[eventlistener:x]``, or ``[group:x]``), and two processes with the same
  name in one group, are errors; supervisord silently keeps one of them.
* Only the first ``[unix_http_server*]`` section is used (with a warning).
* ``result_handler`` is imported to check it (see manager/results.py).
* An ``[fcgi-program:x]`` listed in a ``[group:x]`` keeps its socket (supervisord
  4.3 spawns it as a plain program with a pipe as fd 0, and ignores its socket
  keys), so there too ``socket`` is required.
* Two ``[fcgi-program:x]`` sections with the same ``socket`` are an error
  (supervisord: the second one's spawns crash it, or steal the unix socket).
* A relative unix socket path or a bad ``socket`` is reported in a sentence
  (supervisord prints a tuple: ``('Bad socket format %s', 'x')``).
* A change of ``socket_backlog``, ``socket_mode`` or ``socket_owner`` changes the
  group for :func:`diff_groups` (supervisord compares only the socket's URL, so
  ``update`` keeps the old mode until a restart).
* A group's processes are sorted by (priority, name), so reordering
  ``programs=`` is not a change for :func:`diff_groups`; and a switch between
  ``AUTO`` and a file name *is* one (supervisord ignores AUTO when comparing).
"""

from __future__ import annotations

import os
import platform
import pwd
import re
import shlex
import signal
import socket
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from manager import datatypes as dt
from manager import results
from manager.datatypes import AutoRestart, LogKind, LogTarget
from manager.events import EventType, parse_event_names
from manager.ini import (
    ConfigError,
    IniFile,
    Section,
    parse_bool,
    parse_byte_size,
    parse_float,
    read_ini,
)

__all__ = [
    "DEFAULT_RESULT_HANDLER",
    "MAX_IDENTIFIER",
    "MAX_NUMPROCS",
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
    "diff_groups",
    "load_config",
]

_T = TypeVar("_T")

MB = 1024 * 1024
#: most processes one [program:x] / [eventlistener:x] section may ask for (``numprocs``)
MAX_NUMPROCS = 10_000
#: longest ``identifier``: it is part of every AUTO log file name (255 bytes at most)
MAX_IDENTIFIER = 100
#: supervisord's default ``result_handler``.
DEFAULT_RESULT_HANDLER = results.DEFAULT_RESULT_HANDLER


# --- value objects -------------------------------------------------------------------


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


# --- loading -------------------------------------------------------------------------


def load_config(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    host_node_name: str | None = None,
    cwd: Path | None = None,
) -> Config:
    """Read and check a supervisord.conf.

    Args:
        path: the main config file.
        environ: supervisord's environment, for ``%(ENV_X)s`` (``os.environ`` if ``None``).
        host_node_name: for ``%(host_node_name)s`` (``platform.node()`` if ``None``).
        cwd: the directory relative paths are checked against, and against which
            ``logfile``, ``pidfile`` and the unix socket are made absolute
            (the current directory if ``None``).

    Returns:
        The configuration; ``warnings`` holds supervisord's parse warnings.

    Raises:
        ConfigError: the first problem found, as one line.
    """
    env = dict(os.environ if environ is None else environ)
    ini = read_ini(path, environ=env)
    loader = _Loader(
        ini,
        env,
        platform.node() if host_node_name is None else host_node_name,
        Path.cwd() if cwd is None else Path(os.path.abspath(cwd)),
    )
    return loader.load()


class _Loader:
    """One load: the file, the expansion environment and the warnings so far."""

    def __init__(self, ini: IniFile, environ: dict[str, str], host: str, cwd: Path) -> None:
        self.ini = ini
        #: os environment plus ``[supervisord] environment`` once that is read
        self.environ = environ
        self.host = host
        self.cwd = cwd
        self.warnings: list[str] = list(ini.warnings)
        #: fcgi socket URL -> the section that uses it (two sections may not share one)
        self.sockets: dict[str, Section] = {}

    # -- conversions

    def value(
        self,
        section: Section,
        key: str,
        parse: Callable[[str], _T],
        default: _T,
        names: Mapping[str, object],
        environ: Mapping[str, str] | None = None,
    ) -> _T:
        """``key`` expanded and parsed, or ``default`` (not parsed) if absent."""
        result = self.optional(section, key, parse, names, environ)
        return default if result is None else result

    def optional(
        self,
        section: Section,
        key: str,
        parse: Callable[[str], _T],
        names: Mapping[str, object],
        environ: Mapping[str, str] | None = None,
    ) -> _T | None:
        """``key`` expanded and parsed, or ``None`` if absent."""
        text = section.expand(key, names, environ=self.environ if environ is None else environ)
        if text is None:
            return None
        try:
            return parse(text)
        except ValueError as exc:
            raise section.error(key, str(exc)) from None

    def absolute(self, text: str) -> str:
        return os.path.normpath(os.path.join(self.cwd, os.path.expanduser(text)))

    # -- the whole file

    def load(self) -> Config:
        main = self.ini.section("supervisord")
        if main is None:
            raise ConfigError(".ini file does not include supervisord section", file=self.ini.path)
        supervisord = self.supervisord(main)
        self.environ = {**self.environ, **supervisord.environment}
        groups, pools = self.process_groups()
        return Config(
            path=self.ini.path,
            supervisord=supervisord,
            groups=groups,
            pools=pools,
            unix_http_server=self.unix_http_server(),
            inet_http_servers=self.inet_http_servers(),
            supervisorctl=self.supervisorctl(),
            ini=self.ini,
            warnings=tuple(self.warnings),
        )

    def supervisord(self, s: Section) -> SupervisordConfig:
        names: dict[str, object] = {}
        cwd = self.cwd

        def dirpath(text: str) -> str:
            return self.absolute(dt.existing_dirpath(text, cwd=cwd))

        def logfile(text: str) -> str:
            return text if text == "syslog" else dirpath(text)

        def directory(text: str) -> str:
            return dt.existing_directory(text, cwd=cwd)

        return SupervisordConfig(
            logfile=self.value(s, "logfile", logfile, self.absolute("supervisord.log"), names),
            logfile_maxbytes=self.value(s, "logfile_maxbytes", parse_byte_size, 50 * MB, names),
            logfile_backups=self.value(s, "logfile_backups", _int, 10, names),
            loglevel=self.value(s, "loglevel", dt.logging_level, "info", names),
            pidfile=self.value(s, "pidfile", dirpath, self.absolute("supervisord.pid"), names),
            umask=self.value(s, "umask", dt.octal, 0o022, names),
            nodaemon=self.value(s, "nodaemon", parse_bool, False, names),
            silent=self.value(s, "silent", parse_bool, False, names),
            minfds=self.value(s, "minfds", _int, 1024, names),
            minprocs=self.value(s, "minprocs", _int, 200, names),
            nocleanup=self.value(s, "nocleanup", parse_bool, False, names),
            childlogdir=self.value(s, "childlogdir", directory, tempfile.gettempdir(), names),
            user=self.optional(s, "user", dt.user_name, names),
            directory=self.optional(s, "directory", directory, names),
            strip_ansi=self.value(s, "strip_ansi", parse_bool, False, names),
            environment=self.value(
                s, "environment", dt.environment, {}, {"host_node_name": self.host}
            ),
            identifier=self.value(s, "identifier", parse_identifier, "supervisor", names),
        )

    # -- groups and pools

    def process_groups(self) -> tuple[tuple[GroupConfig, ...], tuple[PoolConfig, ...]]:
        owners: dict[str, Section] = {}  # group name -> the section that defined it

        def claim(name: str, section: Section) -> None:
            if name in owners:
                raise ConfigError(
                    f"group name {name!r} is already used by [{owners[name].name}]",
                    file=section.file,
                    section=section.name,
                )
            owners[name] = section

        groups: list[GroupConfig] = []
        grouped: set[str] = set()  # program sections that belong to a [group:x]
        for s in self.ini.sections_with_prefix("group:"):
            name = _section_name(s)
            claim(name, s)
            programs: list[str] = self.value(s, "programs", _list, [], {})
            processes: list[ProcessConfig] = []
            for program in programs:
                plain = self.ini.section(f"program:{program}")
                fcgi = self.ini.section(f"fcgi-program:{program}")
                if plain is not None and fcgi is not None:
                    raise s.error(
                        "programs",
                        f"[{s.name}] name {program} is ambiguous "
                        "(exists as program and fcgi-program)",
                    )
                member = plain or fcgi
                if member is None:
                    raise s.error(
                        "programs", f"[{s.name}] names unknown program or fcgi-program {program}"
                    )
                grouped.add(member.name)
                processes.extend(self.processes(member, name, listener=False, fcgi=member is fcgi))
            priority = self.value(s, "priority", _int, 999, {})
            groups.append(GroupConfig(name, priority, _checked(processes, s)))

        for prefix in ("program:", "fcgi-program:"):
            for s in self.ini.sections_with_prefix(prefix):
                if s.name in grouped:
                    continue
                name = _section_name(s)
                claim(name, s)
                priority = self.value(s, "priority", _int, 999, {})
                processes = self.processes(s, name, listener=False, fcgi=prefix != "program:")
                groups.append(GroupConfig(name, priority, _checked(processes, s)))

        pools: list[PoolConfig] = []
        for s in self.ini.sections_with_prefix("eventlistener:"):
            name = _section_name(s)
            claim(name, s)
            pools.append(self.pool(s, name))

        groups.sort(key=lambda g: (g.priority, g.name))
        pools.sort(key=lambda p: (p.priority, p.name))
        return tuple(groups), tuple(pools)

    def pool(self, s: Section, name: str) -> PoolConfig:
        priority = self.value(s, "priority", _int, -1, {})
        buffer_size = self.value(s, "buffer_size", _int, 10, {})
        if buffer_size < 1:
            raise s.error(
                "buffer_size", f"[{s.name}] section sets invalid buffer_size ({buffer_size})"
            )
        result_handler = self.value(s, "result_handler", str, DEFAULT_RESULT_HANDLER, {})
        try:
            results.resolve(result_handler)
        except ValueError as exc:
            raise s.error(
                "result_handler", f"{result_handler} cannot be resolved within [{s.name}]: {exc}"
            ) from None
        events: tuple[EventType, ...] = self.value(
            s, "events", lambda text: _events(text, s.name), (), {}
        )
        if not events:
            raise s.error("events", f'[{s.name}] section requires an "events" line')
        if self.value(s, "redirect_stderr", parse_bool, False, {}):
            raise s.error(
                "redirect_stderr",
                f"[{s.name}] section sets redirect_stderr=true but this is not allowed "
                "because it will interfere with the eventlistener protocol",
            )
        processes = self.processes(s, name, listener=True)
        return PoolConfig(
            name, priority, _checked(processes, s), events, buffer_size, result_handler
        )

    # -- processes

    def processes(
        self, s: Section, group: str, *, listener: bool, fcgi: bool = False
    ) -> list[ProcessConfig]:
        """Every process of one ``[program:x]`` / ``[eventlistener:x]`` / ``[fcgi-program:x]``."""
        program = _section_name(s)
        once: dict[str, object] = {
            "program_name": program,
            "group_name": group,
            "host_node_name": self.host,
        }

        def get(key: str, parse: Callable[[str], _T], default: _T) -> _T:
            return self.value(s, key, parse, default, once)

        stopasgroup = get("stopasgroup", parse_bool, False)
        serverurl = self.optional(s, "serverurl", str, once)
        numprocs = get("numprocs", _int, 1)
        if numprocs > MAX_NUMPROCS:
            # each one is a process; without a bound, numprocs = 2147483648 hangs the load
            raise s.error("numprocs", f"at most {MAX_NUMPROCS:,} processes per section")
        numprocs_start = get("numprocs_start", _int, 0)
        user = self.optional(s, "user", dt.user_name, once)
        # The keys supervisord evaluates once per section; per-process ones are placeholders.
        template = ProcessConfig(
            name=program,
            group=group,
            program=program,
            command="",
            argv=(),
            numprocs=numprocs,
            priority=get("priority", _int, 999),
            autostart=get("autostart", parse_bool, True),
            autorestart=get("autorestart", dt.auto_restart, AutoRestart.UNEXPECTED),
            startsecs=get("startsecs", parse_float, 1.0),
            startretries=get("startretries", _int, 3),
            exitcodes=get("exitcodes", dt.exit_codes, frozenset({0})),
            stopsignal=get("stopsignal", dt.signal_number, int(signal.SIGTERM)),
            stopwaitsecs=get("stopwaitsecs", parse_float, 10.0),
            stopasgroup=stopasgroup,
            killasgroup=get("killasgroup", parse_bool, stopasgroup),
            user=user,
            umask=self.optional(s, "umask", dt.octal, once),
            serverurl=None if (serverurl or "").strip().upper() in ("AUTO", "") else serverurl,
            redirect_stderr=get("redirect_stderr", parse_bool, False),
            stdout=LogConfig(
                capture_maxbytes=get("stdout_capture_maxbytes", parse_byte_size, 0),
                events_enabled=get("stdout_events_enabled", parse_bool, False),
            ),
            stderr=LogConfig(
                capture_maxbytes=get("stderr_capture_maxbytes", parse_byte_size, 0),
                events_enabled=get("stderr_events_enabled", parse_bool, False),
            ),
            is_listener=listener,
            socket=self.fcgi_socket(s, program, user) if fcgi else None,
        )

        name_template = s.get("process_name", "%(program_name)s")
        assert name_template is not None
        try:
            dt.process_name_ok(name_template)
        except ValueError as exc:
            raise s.error("process_name", str(exc), value=name_template) from None
        if numprocs > 1 and "%(process_num)" not in name_template:
            raise s.error(
                "process_name",
                "%(process_num) must be present within process_name when numprocs > 1",
                value=name_template,
            )
        if template.stopasgroup and not template.killasgroup:
            raise s.error("killasgroup", "Cannot set stopasgroup=true and killasgroup=false")
        return [
            self.process(s, template, num, {**once, "process_num": num, "numprocs": numprocs})
            for num in range(numprocs_start, numprocs_start + numprocs)
        ]

    def process(
        self, s: Section, template: ProcessConfig, process_num: int, names: dict[str, object]
    ) -> ProcessConfig:
        """One process: ``template`` plus the keys supervisord evaluates per process."""
        own_env: dict[str, str] = self.value(s, "environment", dt.environment, {}, names)
        environ = {**self.environ, **own_env}

        def get(key: str, parse: Callable[[str], _T], default: _T) -> _T:
            return self.value(s, key, parse, default, names, environ)

        name = get("process_name", dt.process_name_ok, template.program)
        command = self.optional(s, "command", str, names, environ)
        if command is None:
            raise s.error("command", f"program section {s.name} does not specify a command")
        try:
            argv = _argv(command)
        except ValueError as exc:
            raise s.error("command", str(exc)) from None
        logs = {
            ch: self.log_warnings(
                s,
                ch,
                replace(
                    base,
                    target=get(f"{ch}_logfile", self.log_target, LogTarget.AUTO),
                    maxbytes=get(f"{ch}_logfile_maxbytes", parse_byte_size, 50 * MB),
                    backups=get(f"{ch}_logfile_backups", _int, 10),
                    syslog=get(f"{ch}_syslog", parse_bool, False),
                ),
            )
            for ch, base in (("stdout", template.stdout), ("stderr", template.stderr))
        }
        if template.redirect_stderr:
            if logs["stderr"].target.kind is LogKind.FILE:
                self.warn(
                    f"For [{s.name}], redirect_stderr=true but stderr_logfile has also been "
                    "set to a filename, the filename has been ignored"
                )
            logs["stderr"] = replace(logs["stderr"], target=LogTarget.NONE)
        return replace(
            template,
            name=name,
            command=command,
            argv=argv,
            process_num=process_num,
            directory=self.optional(s, "directory", str, names, environ),
            environment=own_env,
            stdout=logs["stdout"],
            stderr=logs["stderr"],
        )

    def fcgi_socket(self, s: Section, program: str, user: str | None) -> SocketConfig:
        """The ``socket*`` keys of an ``[fcgi-program:x]``, with supervisord's messages.

        ``socket`` expands ``ENV_*``, ``here`` and ``program_name``; the other keys
        ``ENV_*`` and ``here``. A unix socket of a program run as another ``user`` is
        owned by that user unless ``socket_owner`` says otherwise, as in supervisord.
        """

        def backlog(text: str) -> int:
            value = _int(text)
            if not 1 <= value <= 65535:
                raise ValueError(f"Invalid socket_backlog value {value}")
            return value

        def owner(text: str) -> tuple[int, int]:
            try:
                return dt.user_group(text)
            except ValueError:
                raise ValueError(f"Invalid socket_owner value {text}") from None

        def mode(text: str) -> int:
            try:
                return dt.octal(text)
            except ValueError:
                raise ValueError(f"Invalid socket_mode value {text}") from None

        socket_backlog = self.value(s, "socket_backlog", backlog, socket.SOMAXCONN, {})
        socket_owner = self.optional(s, "socket_owner", owner, {})
        socket_mode = self.optional(s, "socket_mode", mode, {})
        text = self.optional(s, "socket", str, {"program_name": program})
        if not text:
            raise s.error("socket", f'[{s.name}] section requires a "socket" line')

        def bad(why: str, key: str = "socket") -> ConfigError:
            return s.error(key, f"{why} in [{s.name}] socket")

        config: SocketConfig
        if text.startswith("unix://"):
            path = text[len("unix://") :]
            if not os.path.isabs(path):
                raise bad(f"Unix socket path {path} is not an absolute path")
            if socket_owner is None and user is not None:
                pw = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
                if pw.pw_uid != os.getuid():
                    socket_owner = (pw.pw_uid, pw.pw_gid)
            config = UnixSocketConfig(
                os.path.normpath(path),
                mode=0o700 if socket_mode is None else socket_mode,
                owner=socket_owner,
                backlog=socket_backlog,
            )
        elif socket_owner is not None or socket_mode is not None:
            raise bad(
                "socket_owner and socket_mode params should only be used with a Unix domain socket",
                "socket_owner" if socket_owner is not None else "socket_mode",
            )
        else:
            m = re.match(r"tcp://([^\s:]+):(\d+)$", text)
            if m is None:
                raise bad(f"Bad socket format {text}")
            port = int(m.group(2))
            if port < 1:
                raise bad(f"{port!r} is below lower bound (1)")
            if port > 0xFFFF:
                raise bad(f"{port!r} is above upper bound (65535)")
            config = InetSocketConfig(m.group(1).lower(), port, backlog=socket_backlog)
        other = self.sockets.setdefault(config.url, s)
        if other is not s:
            raise s.error("socket", f"{config.url} is already the socket of [{other.name}]")
        return config

    def log_target(self, text: str) -> LogTarget:
        target = dt.log_target(text)
        if target.path is not None:
            dt.existing_dirpath(target.path, cwd=self.cwd)
        return target

    def log_warnings(self, s: Section, channel: str, log: LogConfig) -> LogConfig:
        """supervisord's parse warnings for one channel; ``syslog`` becomes ``*_syslog=true``."""
        key = f"{channel}_logfile"
        if log.target.kind is LogKind.SYSLOG:
            self.warn(
                f"For [{s.name}], {key}=syslog but this is deprecated and will be removed.  "
                f"Use {channel}_syslog=true to enable syslog instead."
            )
            log = replace(log, target=LogTarget.NONE, syslog=True)
        if log.target.is_auto and not log.maxbytes:
            self.warn(
                f"For [{s.name}], AUTO logging used for {key} without rollover, "
                "set maxbytes > 0 to avoid filling up filesystem unintentionally"
            )
        return log

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    # -- servers and supervisorctl

    def unix_http_server(self) -> UnixHttpServerConfig | None:
        sections = self.ini.sections_with_prefix("unix_http_server")
        if not sections:
            return None
        s, *others = sections
        for other in others:
            self.warn(f"[{other.name}] ignored: only [{s.name}] is used")
        file = self.optional(s, "file", str, {})
        if file is None:
            raise s.error("file", f"section [{s.name}] has no file value")

        def chmod(text: str) -> int:
            try:
                return dt.octal(text)
            except ValueError:
                raise ValueError(f"Invalid chmod value {text}") from None

        def chown(text: str) -> tuple[int, int]:
            try:
                return dt.user_group(text)
            except ValueError:
                raise ValueError(f"Invalid sockchown value {text}") from None

        username, password = self.credentials(s)
        return UnixHttpServerConfig(
            file=self.absolute(file.strip()),
            chmod=self.value(s, "chmod", chmod, 0o700, {}),
            chown=self.optional(s, "chown", chown, {}),
            username=username,
            password=password,
            section=s.name,
        )

    def inet_http_servers(self) -> tuple[InetHttpServerConfig, ...]:
        servers: list[InetHttpServerConfig] = []
        for s in self.ini.sections_with_prefix("inet_http_server"):
            address = self.optional(s, "port", dt.port, {})
            if address is None:
                raise s.error("port", f"section [{s.name}] has no port value")
            username, password = self.credentials(s)
            servers.append(InetHttpServerConfig(*address, username, password, s.name))
        return tuple(servers)

    def credentials(self, s: Section) -> tuple[str | None, str | None]:
        username = self.optional(s, "username", str, {})
        password = self.optional(s, "password", str, {})
        if (username is None) != (password is None):
            raise s.error(
                "password" if password is None else "username",
                f"Section [{s.name}] contains incomplete authentication: If a username or a "
                "password is specified, both the username and password must be specified",
            )
        return username, password

    def supervisorctl(self) -> SupervisorctlConfig:
        s = self.ini.section("supervisorctl")
        if s is None:
            return SupervisorctlConfig()
        # supervisorctl reads the file on its own: no [supervisord] environment names.
        env = s.environ if s.environ is not None else self.environ
        serverurl = self.value(s, "serverurl", str, "http://localhost:9001", {}, env)
        if serverurl.startswith("unix://"):
            serverurl = "unix://" + self.absolute(serverurl.removeprefix("unix://"))
        history = self.optional(s, "history_file", str, {}, env)
        return SupervisorctlConfig(
            serverurl=serverurl,
            username=self.optional(s, "username", str, {}, env),
            password=self.optional(s, "password", str, {}, env),
            prompt=self.value(s, "prompt", str, "supervisor", {}, env),
            history_file=self.absolute(history) if history else None,
        )


# --- helpers ---------------------------------------------------------------------------


def parse_identifier(text: str) -> str:
    """``[supervisord] identifier``: one header token, and part of AUTO log file names.

    supervisord accepts anything; then a space breaks every event header (``server:my box``
    is two tokens: listeners fail on the first event) and a ``/`` or a long name makes the
    AUTO log files impossible to create.
    """
    if any(c.isspace() for c in text):
        raise ValueError(
            "must not contain whitespace: it is the server: token of every event header"
        )
    if "/" in text:
        raise ValueError("must not contain '/': it is part of AUTO log file names")
    if len(text.encode("utf-8", "surrogateescape")) > MAX_IDENTIFIER:
        raise ValueError(f"longer than {MAX_IDENTIFIER} bytes: it is part of AUTO log file names")
    return text


def _int(text: str) -> int:
    return int(text)


def _list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _argv(command: str) -> tuple[str, ...]:
    try:
        argv = tuple(shlex.split(command))
    except ValueError as exc:
        raise ValueError(f"command cannot be split: {exc}") from None
    if not argv:
        raise ValueError("command is empty")
    return argv


def _events(text: str, section: str) -> tuple[EventType, ...]:
    try:
        return parse_event_names(text)
    except ValueError:
        pass
    for item in text.split(","):
        if item.strip():
            try:
                EventType.from_name(item)
            except ValueError:
                raise ValueError(
                    f"Unknown event type {item.strip().upper()} in [{section}] events"
                ) from None
    return ()


def _section_name(s: Section) -> str:
    """The name after ``program:`` (etc.), checked; a bad name is a ConfigError."""
    try:
        return dt.process_name_ok(s.name.split(":", 1)[1])
    except ValueError as exc:
        raise ConfigError(str(exc), file=s.file, section=s.name) from None


def _checked(processes: list[ProcessConfig], s: Section) -> tuple[ProcessConfig, ...]:
    """Sort a group's processes by (priority, name); two with one name is an error."""
    seen: set[str] = set()
    for p in processes:
        if p.name in seen:
            raise ConfigError(
                f"duplicate process name {p.name!r} in group {p.group!r}",
                file=s.file,
                section=s.name,
            )
        seen.add(p.name)
    return tuple(sorted(processes, key=lambda p: (p.priority, p.name)))


# --- reload ------------------------------------------------------------------------------


def _same(
    old: GroupConfig | PoolConfig,
    old_env: Mapping[str, str],
    new: GroupConfig | PoolConfig,
    new_env: Mapping[str, str],
) -> bool:
    """supervisord compares each process with ``[supervisord] environment`` merged in."""
    if old != new:
        return False
    return all(
        {**old_env, **a.environment} == {**new_env, **b.environment}
        for a, b in zip(old.processes, new.processes, strict=True)
    )


def diff_groups(old: Config, new: Config) -> tuple[list[str], list[str], list[str]]:
    """Group names added, changed and removed between two configs (``reloadConfig``).

    "changed" means the group's configuration differs, including any of its
    processes' effective environment. Added and changed are in ``new``'s
    (priority, name) order, removed in ``old``'s.
    """
    before = {g.name: g for g in old.all_groups()}
    after = {g.name: g for g in new.all_groups()}
    old_env = old.supervisord.environment
    new_env = new.supervisord.environment
    added = [name for name in after if name not in before]
    changed = [
        name
        for name, g in after.items()
        if name in before and not _same(before[name], old_env, g, new_env)
    ]
    removed = [name for name in before if name not in after]
    return added, changed, removed
