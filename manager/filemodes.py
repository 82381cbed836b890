"""File-mode checks: vigild refuses a config that anyone on the host could rewrite.

A world-writable supervisord.conf (or included file) lets any local user make the
daemon run any command as its user -- root, often. supervisord reads such files
without a word; vigild refuses them, as sshd's ``StrictModes`` does.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from manager.config import Config
from manager.ini import ConfigError


def config_files(config: Config) -> list[Path]:
    """The main file and every file a section was read from, main first, no repeats."""
    files = [config.path]
    if config.ini is not None:
        for section in config.ini.sections.values():
            if section.file not in files:
                files.append(section.file)
    return files


def check_not_world_writable(paths: Iterable[Path]) -> None:
    """Raise :class:`ConfigError` naming the first world-writable file of ``paths``.

    A file that is no longer there is skipped (the reader reported it already).
    """
    for path in paths:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue
        if mode & stat.S_IWOTH:
            raise ConfigError(
                f"config file is world-writable (mode {stat.S_IMODE(mode):04o}): any local"
                f" user could make vigild run any command; fix it with: chmod o-w {path}",
                file=path,
            )
