"""The processes of one ``[program:x]``, ``[eventlistener:x]`` or ``[fcgi-program:x]``.

:meth:`ProgramSections.processes` reads the keys supervisord 4.3 evaluates once per
section into a template :class:`~manager.config_model.ProcessConfig`, then
:meth:`~ProgramSections.process` fills in, for each ``process_num``, the keys it
evaluates per process (``process_name environment command directory *_logfile*
*_syslog``), with ``process_num``, ``numprocs`` and the program's own environment
as extra names. An ``[fcgi-program:x]``'s ``socket*`` keys become one
:class:`~manager.config_model.InetSocketConfig` or
:class:`~manager.config_model.UnixSocketConfig` that all its processes share
(:meth:`~ProgramSections.fcgi_socket`). Which sections make which groups is
:mod:`manager.config_groups`'s business.

Differences from supervisord 4.3, on purpose:

* ``startsecs`` and ``stopwaitsecs`` also accept fractions (``0.5``); every
  value supervisord accepts means the same here.
* A command that does not split (unbalanced quotes) or is empty is a config
  error, not a spawn error at every start.
* A process name is checked after expansion too, not only the template.
* ``numprocs`` is at most :data:`~manager.config_model.MAX_NUMPROCS`.
* Two ``[fcgi-program:x]`` sections with the same ``socket`` are an error
  (supervisord: the second one's spawns crash it, or steal the unix socket).
* A relative unix socket path or a bad ``socket`` is reported in a sentence
  (supervisord prints a tuple: ``('Bad socket format %s', 'x')``).
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import signal
import socket
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from manager import datatypes as dt
from manager.config_model import (
    MAX_NUMPROCS,
    MB,
    InetSocketConfig,
    LogConfig,
    ProcessConfig,
    SocketConfig,
    UnixSocketConfig,
)
from manager.config_reader import SectionReader, parse_int
from manager.datatypes import AutoRestart, LogKind, LogTarget
from manager.ini import ConfigError, Section, parse_bool, parse_byte_size, parse_float

__all__ = ["ProgramSections", "section_name"]

_T = TypeVar("_T")


class ProgramSections(SectionReader):
    """The parsers of the keys of the sections that define processes."""

    def processes(
        self, s: Section, group: str, *, listener: bool, fcgi: bool = False
    ) -> list[ProcessConfig]:
        """Every process of one ``[program:x]`` / ``[eventlistener:x]`` / ``[fcgi-program:x]``."""
        program = section_name(s)
        once: dict[str, object] = {
            "program_name": program,
            "group_name": group,
            "host_node_name": self.host,
        }

        def get(key: str, parse: Callable[[str], _T], default: _T) -> _T:
            return self.value(s, key, parse, default, once)

        stopasgroup = get("stopasgroup", parse_bool, False)
        serverurl = self.optional(s, "serverurl", str, once)
        numprocs = get("numprocs", parse_int, 1)
        if numprocs > MAX_NUMPROCS:
            # each one is a process; without a bound, numprocs = 2147483648 hangs the load
            raise s.error("numprocs", f"at most {MAX_NUMPROCS:,} processes per section")
        numprocs_start = get("numprocs_start", parse_int, 0)
        user = self.optional(s, "user", dt.user_name, once)
        # The keys supervisord evaluates once per section; per-process ones are placeholders.
        template = ProcessConfig(
            name=program,
            group=group,
            program=program,
            command="",
            argv=(),
            numprocs=numprocs,
            priority=get("priority", parse_int, 999),
            autostart=get("autostart", parse_bool, True),
            autorestart=get("autorestart", dt.auto_restart, AutoRestart.UNEXPECTED),
            startsecs=get("startsecs", parse_float, 1.0),
            startretries=get("startretries", parse_int, 3),
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
                    backups=get(f"{ch}_logfile_backups", parse_int, 10),
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
            value = parse_int(text)
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
        """A ``*_logfile`` value; a file's directory must exist."""
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


def _argv(command: str) -> tuple[str, ...]:
    """``command`` split like a POSIX shell; unsplittable or empty is a ``ValueError``."""
    try:
        argv = tuple(shlex.split(command))
    except ValueError as exc:
        raise ValueError(f"command cannot be split: {exc}") from None
    if not argv:
        raise ValueError("command is empty")
    return argv


def section_name(s: Section) -> str:
    """The name after ``program:`` (etc.), checked; a bad name is a ConfigError."""
    try:
        return dt.process_name_ok(s.name.split(":", 1)[1])
    except ValueError as exc:
        raise ConfigError(str(exc), file=s.file, section=s.name) from None
