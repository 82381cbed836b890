"""``supervisor.*`` about the configuration: ``reloadConfig``, ``addProcessGroup``,
``removeProcessGroup`` and ``getAllConfigInfo``.

Theory of operation
-------------------
``reloadConfig`` reads the file again (the supervisor's config loader) and keeps the
result as the namespace's configuration; it changes nothing that runs, it only
reports which groups were added, changed or removed relative to the groups that are
active. ``addProcessGroup`` then creates and starts a group of that configuration,
and ``getAllConfigInfo`` describes it, so both see what was read last, as in
supervisord. A group can only be removed once all its processes are stopped.
"""

from __future__ import annotations

import pwd
from dataclasses import replace

from manager.api.answers import RPCError
from manager.api.base import NamespaceBase
from manager.config import GroupConfig, PoolConfig, ProcessConfig, diff_groups
from manager.datatypes import LogKind
from manager.faults import Fault
from manager.ini import ConfigError
from manager.states import STOPPED_STATES

__all__ = ["ConfigurationMethods", "supervisord_wording"]


class ConfigurationMethods(NamespaceBase):
    """Reading the configuration again, adding and removing groups, describing the config."""

    def reloadConfig(self) -> list[list[list[str]]]:
        """
        Reload the configuration.

        The result contains three arrays containing names of process
        groups:

        * `added` gives the process groups that have been added
        * `changed` gives the process groups whose contents have
          changed
        * `removed` gives the process groups that are no longer
          in the configuration

        @return array result  [[added, changed, removed]]

        """
        self._require_running()
        sup = self._sup
        loader = sup._config_loader
        if loader is None:
            raise RPCError(Fault.CANT_REREAD, "no configuration file to read")
        try:
            new = loader()
        except ConfigError as exc:
            raise RPCError(Fault.CANT_REREAD, supervisord_wording(exc)) from None
        except (ValueError, OSError) as exc:
            raise RPCError(Fault.CANT_REREAD, exc) from None
        self._config = new
        groups = [g.config for g in sup.ordered_groups()]
        active = replace(
            sup.config,
            groups=tuple(g for g in groups if isinstance(g, GroupConfig)),
            pools=tuple(g for g in groups if isinstance(g, PoolConfig)),
        )
        added, changed, removed = diff_groups(active, new)
        return [[added, changed, removed]]

    def addProcessGroup(self, name: str) -> bool:
        """Update the config for a running process from config file.

        @param string name         name of process group to add
        @return boolean result     true if successful
        """
        self._require_running()
        cfg = self._config.group(name)
        if cfg is None:
            raise RPCError(Fault.BAD_NAME, name)
        sup = self._sup
        if name in sup.groups:
            raise RPCError(Fault.ALREADY_ADDED, name)
        try:
            group = sup.add_group(cfg)
        except OSError as exc:
            raise RPCError(Fault.FAILED, exc) from None
        sup.start_group(group)
        return True

    def removeProcessGroup(self, name: str) -> bool:
        """Remove a stopped process from the active configuration.

        @param string name         name of process group to remove
        @return boolean result     Indicates whether the removal was successful
        """
        self._require_running()
        group = self._sup.groups.get(name)
        if group is None:
            raise RPCError(Fault.BAD_NAME, name)
        if any(p.state not in STOPPED_STATES for p in group.processes.values()):
            raise RPCError(Fault.STILL_RUNNING, name)
        self._sup.remove_group(name)
        return True

    def getAllConfigInfo(self) -> list[dict[str, object]]:
        """Get info about all available process configurations. Each struct
        represents a single process (i.e. groups get flattened).

        @return array result  An array of process config info structs
        """
        self._require_running()
        infos = [
            self._config_info(gcfg, pcfg)
            for gcfg in self._config.all_groups()
            for pcfg in gcfg.processes
        ]
        infos.sort(key=lambda info: str(info["name"]))
        return infos

    def _config_info(
        self, gcfg: GroupConfig | PoolConfig, pcfg: ProcessConfig
    ) -> dict[str, object]:
        group = self._sup.groups.get(gcfg.name)
        live = group.processes.get(pcfg.name) if group is not None else None
        info: dict[str, object] = {
            "autostart": pcfg.autostart,
            "directory": pcfg.directory if pcfg.directory is not None else "none",
            "uid": _uid(pcfg.user),
            "command": pcfg.command,
            "exitcodes": sorted(pcfg.exitcodes),
            "group": gcfg.name,
            "group_prio": gcfg.priority,
            "inuse": group is not None,
            "killasgroup": pcfg.killasgroup,
            "name": pcfg.name,
            "process_prio": pcfg.priority,
            "redirect_stderr": pcfg.redirect_stderr,
            "startretries": pcfg.startretries,
            "startsecs": _number(pcfg.startsecs),
            "stopsignal": int(pcfg.stopsignal),
            "stopwaitsecs": _number(pcfg.stopwaitsecs),
            "serverurl": pcfg.serverurl if pcfg.serverurl is not None else "auto",
        }
        for channel, lc in (("stdout", pcfg.stdout), ("stderr", pcfg.stderr)):
            path = self._sup.log_path(live, channel) if live is not None else None
            if path is not None:
                logfile = str(path)
            elif lc.target.kind is LogKind.FILE and lc.target.path is not None:
                logfile = lc.target.path
            else:
                logfile = "auto" if lc.target.is_auto else "none"
            info[f"{channel}_capture_maxbytes"] = lc.capture_maxbytes
            info[f"{channel}_events_enabled"] = lc.events_enabled
            info[f"{channel}_logfile"] = logfile
            info[f"{channel}_logfile_backups"] = lc.backups
            info[f"{channel}_logfile_maxbytes"] = lc.maxbytes
            info[f"{channel}_syslog"] = lc.syslog
        return info


def _number(value: float) -> int | float:
    return int(value) if value == int(value) else value


def _uid(user: str | None) -> int | str:
    if user is None:
        return "none"
    try:
        return int(user) if user.isdigit() else pwd.getpwnam(user).pw_uid
    except KeyError:
        return "none"


def supervisord_wording(exc: ConfigError) -> str:
    """A config error as supervisord words it in CANT_REREAD faults (``supervisorctl reread``).

    ``why in section 'program:x' (file: '/path')`` — vigild's own one-line form names the
    key and value too, but clients that parse reread output expect supervisord's.
    """
    if exc.section is None or exc.file is None:
        return str(exc)
    return f"{exc.why} in section {exc.section!r} (file: {str(exc.file)!r})"
