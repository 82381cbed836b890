"""supervisord.conf as frozen value objects: :func:`load_config` and :func:`diff_groups`.

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

Where things are
----------------
This module keeps the load as a whole (``[supervisord]`` first, then its
``environment`` for every later section) and :func:`diff_groups`, and re-exports
the public names of the others, so ``from manager.config import X`` is the way in.

* :mod:`manager.config_model`: the value objects (:class:`Config` and its parts)
  and the limits (:data:`MAX_NUMPROCS`, :data:`MAX_IDENTIFIER`).
* :mod:`manager.config_reader`: one load's state; expanding, parsing and
  reporting one key.
* :mod:`manager.config_daemon`: ``[supervisord]``, ``[unix_http_server]``,
  ``[inet_http_server*]``, ``[supervisorctl]``.
* :mod:`manager.config_programs`: the processes of a ``[program:x]``,
  ``[eventlistener:x]`` or ``[fcgi-program:x]``, and an fcgi socket.
* :mod:`manager.config_groups`: ``[group:x]``, the groups of the other program
  sections, and the pools of ``[eventlistener:x]``.

Each of those lists its own differences from supervisord 4.3. Those of reloading,
on purpose:

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
from collections.abc import Mapping
from pathlib import Path

from manager.config_daemon import DaemonSections, parse_identifier
from manager.config_groups import GroupSections
from manager.config_model import (
    DEFAULT_RESULT_HANDLER,
    MAX_IDENTIFIER,
    MAX_NUMPROCS,
    Config,
    GroupConfig,
    InetHttpServerConfig,
    InetSocketConfig,
    LogConfig,
    PoolConfig,
    ProcessConfig,
    SocketConfig,
    SupervisorctlConfig,
    SupervisordConfig,
    UnixHttpServerConfig,
    UnixSocketConfig,
)
from manager.ini import ConfigError, read_ini

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
    "parse_identifier",
]


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


class _Loader(GroupSections, DaemonSections):
    """One load: every section's parser (see :class:`~manager.config_reader.SectionReader`)."""

    def load(self) -> Config:
        """The whole file: ``[supervisord]`` first, as its ``environment`` names
        ``ENV_*`` for every later section; then groups, pools, servers, ``[supervisorctl]``."""
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
