"""The state of one config load and the one way a key becomes a value.

:class:`SectionReader` holds what every section's parsing shares: the
:class:`~manager.ini.IniFile`, the expansion environment, the directory relative
paths are taken from, the warnings so far. Its :meth:`~SectionReader.value` and
:meth:`~SectionReader.optional` expand a key's ``%(name)s`` references once, parse
the result, and turn a parser's ``ValueError`` into the one-line
:class:`~manager.ini.ConfigError` that names the file, section, key and raw value.
The parsers of each kind of section are its subclasses (mixins of
``manager.config._Loader``): :mod:`manager.config_daemon`,
:mod:`manager.config_programs`, :mod:`manager.config_groups`.

Difference from supervisord 4.3, on purpose:

* Values are expanded once. supervisord expands ``[supervisord] environment``
  and ``*_logfile`` twice, so a ``%%`` there fails (fixed upstream in 4.4.0.dev0).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from manager.ini import IniFile, Section

__all__ = ["SectionReader", "parse_int"]

_T = TypeVar("_T")


class SectionReader:
    """One load: the file, the expansion environment and the warnings so far.

    Args:
        ini: the file, as read by :func:`manager.ini.read_ini`.
        environ: supervisord's environment (for ``%(ENV_X)s``); the loader adds
            ``[supervisord] environment`` to it once that is read.
        host: ``%(host_node_name)s``.
        cwd: the directory relative paths are checked against and made absolute from.
    """

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
        """``text`` (``~`` expanded) as a normalized absolute path, relative to ``cwd``."""
        return os.path.normpath(os.path.join(self.cwd, os.path.expanduser(text)))

    def warn(self, message: str) -> None:
        """Add a warning for the main log, once."""
        if message not in self.warnings:
            self.warnings.append(message)


def parse_int(text: str) -> int:
    """``int(text)``, as a one-argument parser for :meth:`SectionReader.value`."""
    return int(text)
