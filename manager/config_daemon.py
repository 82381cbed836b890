"""``[supervisord]``, the HTTP servers and ``[supervisorctl]``: the sections that are
not about processes.

:class:`DaemonSections` turns ``[supervisord]`` into a
:class:`~manager.config_model.SupervisordConfig` (paths made absolute against the
load's directory, ``environment`` expanded with ``host_node_name`` only),
``[unix_http_server]`` and every ``[inet_http_server*]`` into the server configs
(both need a username *and* a password, or neither), and ``[supervisorctl]`` into a
:class:`~manager.config_model.SupervisorctlConfig` (expanded without
``[supervisord] environment``: supervisorctl reads the file on its own).

Differences from supervisord 4.3, on purpose:

* Only the first ``[unix_http_server*]`` section is used (with a warning).
* ``identifier`` must be one token of at most :data:`MAX_IDENTIFIER` bytes without
  ``/`` (:func:`parse_identifier`).
"""

from __future__ import annotations

import tempfile

from manager import datatypes as dt
from manager.config_model import (
    MAX_IDENTIFIER,
    MB,
    InetHttpServerConfig,
    SupervisorctlConfig,
    SupervisordConfig,
    UnixHttpServerConfig,
)
from manager.config_reader import SectionReader, parse_int
from manager.ini import Section, parse_bool, parse_byte_size

__all__ = ["DaemonSections", "parse_identifier"]


class DaemonSections(SectionReader):
    """The parsers of ``[supervisord]``, the HTTP server sections and ``[supervisorctl]``."""

    def supervisord(self, s: Section) -> SupervisordConfig:
        """``[supervisord]``; ``logfile`` and ``pidfile`` made absolute, in existing dirs."""
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
            logfile_backups=self.value(s, "logfile_backups", parse_int, 10, names),
            loglevel=self.value(s, "loglevel", dt.logging_level, "info", names),
            pidfile=self.value(s, "pidfile", dirpath, self.absolute("supervisord.pid"), names),
            umask=self.value(s, "umask", dt.octal, 0o022, names),
            nodaemon=self.value(s, "nodaemon", parse_bool, False, names),
            silent=self.value(s, "silent", parse_bool, False, names),
            minfds=self.value(s, "minfds", parse_int, 1024, names),
            minprocs=self.value(s, "minprocs", parse_int, 200, names),
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

    def unix_http_server(self) -> UnixHttpServerConfig | None:
        """The first ``[unix_http_server*]`` (the others are warned about), if any."""
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
        """Every ``[inet_http_server*]``, in file order."""
        servers: list[InetHttpServerConfig] = []
        for s in self.ini.sections_with_prefix("inet_http_server"):
            address = self.optional(s, "port", dt.port, {})
            if address is None:
                raise s.error("port", f"section [{s.name}] has no port value")
            username, password = self.credentials(s)
            servers.append(InetHttpServerConfig(*address, username, password, s.name))
        return tuple(servers)

    def credentials(self, s: Section) -> tuple[str | None, str | None]:
        """A server section's ``(username, password)``: both or neither."""
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
        """``[supervisorctl]``, or its defaults when the section is absent."""
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
