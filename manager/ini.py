"""Reading supervisord.conf-style INI files: syntax, includes and raw values only.

Theory of operation
-------------------
:func:`read_ini` turns a main file plus its ``[include]`` files into an
:class:`IniFile`: an ordered map of :class:`Section` objects holding *raw*
strings. Meaning (which keys a ``[program:x]`` has, their defaults) belongs to
the typed-config module; this one only knows supervisord's syntax (reference
§4.2, §4.3, §4.11):

* configparser's ``RawConfigParser`` rules, non-strict: duplicate sections and
  keys merge and the last value wins; keys are lower-cased; ``;``/``#`` start a
  comment line, and start an inline comment only after whitespace (``a=b;c``
  keeps ``;c``); ``[DEFAULT]`` keys apply to every section.
* ``[include] files`` of the main file (globs, relative to the main file's
  directory) are read in sorted order per glob; includes are not recursive.
* Every section remembers the file that (last) defined it, because ``%(here)s``
  is that file's directory.

Values are read raw; :meth:`Section.expand` applies supervisord's ``%``-format
expansion and the typed getters convert, both raising :class:`ConfigError`,
whose ``str()`` is one line naming file, section, key and value.
"""

from __future__ import annotations

import ast
import configparser
import glob
import math
import os
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar, overload

__all__ = [
    "MAX_LINE",
    "ConfigError",
    "IniFile",
    "Section",
    "config_search_path",
    "find_config_file",
    "parse_bool",
    "parse_byte_size",
    "parse_float",
    "parse_int",
    "parse_list",
    "read_ini",
]

#: supervisord's spellings of booleans (``datatypes.boolean``), compared lower-cased.
TRUTHY = frozenset({"true", "yes", "on", "1"})
FALSY = frozenset({"false", "no", "off", "0"})
#: byte-size suffixes (``datatypes.byte_size``); K, M, B alone are not accepted.
BYTE_SUFFIXES = {"kb": 1024, "mb": 1024**2, "gb": 1024**3}
#: the name configparser must never treat as special: we handle [DEFAULT] ourselves.
_NO_DEFAULT_SECTION = "\x00"
DEFAULT_SECTION = "DEFAULT"
#: longest line accepted in a config file, in characters (see ``_check_text``)
MAX_LINE = 1024 * 1024
#: a ConfigError shows at most this many characters of the value, and of the reason
MAX_VALUE = 200
MAX_WHY = 500

_T = TypeVar("_T")


class ConfigError(Exception):
    """A configuration problem, rendered as one line.

    ``str()`` is ``<file>[:<line>]: [<section>] <key> = <value!r>: <why>`` with the
    parts that are ``None`` left out.
    """

    def __init__(
        self,
        why: str,
        *,
        file: str | os.PathLike[str] | None = None,
        section: str | None = None,
        key: str | None = None,
        value: str | None = None,
        line: int | None = None,
    ) -> None:
        #: path of the offending file, if known
        self.file: str | None = os.fspath(file) if file is not None else None
        #: section name such as ``program:web``
        self.section = section
        #: key inside the section (lower-cased)
        self.key = key
        #: the raw value that was rejected
        self.value = value
        #: 1-based line number, for syntax errors
        self.line = line
        #: the reason, without location
        self.why = why
        super().__init__(self._render())

    def _render(self) -> str:
        prefix = ""
        if self.file is not None:
            prefix = self.file if self.line is None else f"{self.file}:{self.line}"
            prefix += ": "
        elif self.line is not None:
            prefix = f"line {self.line}: "
        where: list[str] = []
        if self.section is not None:
            where.append(f"[{self.section}]")
        if self.key is not None:
            where.append(self.key if self.value is None else f"{self.key} = {_shorten(self.value)}")
        if where:
            prefix += " ".join(where) + ": "
        why = self.why
        if len(why) > MAX_WHY:
            why = f"{why[:MAX_WHY]}... ({len(why):,} characters)"
        return " ".join((prefix + why).splitlines())

    def __str__(self) -> str:
        return self._render()


def _shorten(value: str) -> str:
    """``repr(value)``, cut to :data:`MAX_VALUE` characters of the value, saying how long it was."""
    if len(value) <= MAX_VALUE:
        return repr(value)
    return f"{value[:MAX_VALUE]!r}... ({len(value):,} characters)"


# --- value converters (pure; raise ValueError with the "why" text) -----------------


def parse_bool(text: str) -> bool:
    """Parse a supervisord boolean (``true/yes/on/1``, ``false/no/off/0``, any case).

    Raises:
        ValueError: ``not a valid boolean value: 'maybe'``.
    """
    lowered = text.lower()
    if lowered in TRUTHY:
        return True
    if lowered in FALSY:
        return False
    raise ValueError(f"not a valid boolean value: {text!r}")


def parse_int(text: str) -> int:
    """Parse a decimal integer as supervisord's ``integer`` does (``int()``).

    Raises:
        ValueError: ``not an integer``.
    """
    try:
        return int(text)
    except ValueError:
        raise ValueError("not an integer") from None


def parse_float(text: str) -> float:
    """Parse a finite number of seconds (``1``, ``0.5``, ``1e-3``).

    Raises:
        ValueError: ``not a number`` (also for ``nan``/``inf``).
    """
    try:
        value = float(text)
    except ValueError:
        raise ValueError("not a number") from None
    if not math.isfinite(value):
        raise ValueError("not a number")
    return value


def parse_byte_size(text: str) -> int:
    """Parse a supervisord byte size: an integer with optional ``KB``/``MB``/``GB`` suffix.

    The suffix is case-insensitive and may follow a space (``1 MB``); ``10k``,
    ``1M`` and ``5B`` are invalid, exactly as in supervisord.

    Raises:
        ValueError: ``not a byte size (...)``.
    """
    lowered = text.strip().lower()
    multiplier = 1
    for suffix, factor in BYTE_SUFFIXES.items():
        if lowered.endswith(suffix):
            lowered, multiplier = lowered[: -len(suffix)], factor
            break
    try:
        return int(lowered) * multiplier
    except ValueError:
        raise ValueError("not a byte size (an integer with optional KB, MB or GB suffix)") from None


def parse_list(text: str) -> list[str]:
    """Split a comma-separated list, trimming items and dropping empty ones."""
    return [item.strip() for item in text.split(",") if item.strip()]


# --- sections ----------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """One ``[name]`` section with raw string values.

    ``values`` keys are lower-cased. ``file`` is the absolute path of the file
    that (last) defined the section; ``%(here)s`` expands to its directory.
    ``environ`` is the environment ``ENV_*`` expansions read (``os.environ`` if
    ``None``).
    """

    name: str
    file: Path
    values: Mapping[str, str]
    environ: Mapping[str, str] | None = field(default=None, repr=False, compare=False)

    @property
    def here(self) -> Path:
        """Directory of the file that defined this section."""
        return self.file.parent

    def get(self, key: str, default: str | None = None) -> str | None:
        """Return the raw value of ``key`` (case-insensitive), or ``default``."""
        return self.values.get(key.lower(), default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self.values

    def error(self, key: str, why: str, *, value: str | None = None) -> ConfigError:
        """Build a :class:`ConfigError` located at ``key`` of this section.

        ``value`` defaults to the key's raw value.
        """
        key = key.lower()
        return ConfigError(
            why,
            file=str(self.file),
            section=self.name,
            key=key,
            value=self.values.get(key) if value is None else value,
        )

    # -- expansion

    def expansions(
        self,
        names: Mapping[str, object] = MappingProxyType({}),
        *,
        environ: Mapping[str, str] | None = None,
    ) -> dict[str, object]:
        """The names ``%``-expansion sees: ``ENV_<X>`` per variable, ``here``, then ``names``."""
        env = environ if environ is not None else self.environ
        if env is None:
            env = os.environ
        mapping: dict[str, object] = {f"ENV_{k}": v for k, v in env.items()}
        mapping["here"] = str(self.here)
        mapping.update(names)
        return mapping

    def expand(
        self,
        key: str,
        names: Mapping[str, object],
        default: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> str | None:
        """Return the value of ``key`` (or ``default``) after ``%``-format expansion.

        The expansion names are ``ENV_<X>`` for every environment variable,
        ``here`` and ``names`` (later ones win). A missing key with no default
        gives ``None``; a default is expanded too, as supervisord does.

        Raises:
            ConfigError: unknown name (``contains names ('foo') which cannot be
                expanded. Available names: ...``) or a malformed format string.
        """
        raw = self.get(key)
        if raw is None:
            if default is None:
                return None
            raw = default
        return self._expand_text(key, raw, self.expansions(names, environ=environ))

    def _expand_text(self, key: str, raw: str, mapping: Mapping[str, object]) -> str:
        try:
            return raw % mapping
        except KeyError as exc:
            why = (
                f"contains names ({exc}) which cannot be expanded. "
                f"Available names: {', '.join(sorted(mapping))}"
            )
        except (ValueError, TypeError) as exc:
            why = f"badly formatted: {exc}"
        raise self.error(key, why, value=raw)

    def _text(self, key: str, names: Mapping[str, object] | None) -> str | None:
        if names is None:
            return self.get(key)
        return self.expand(key, names)

    def _convert(
        self, key: str, names: Mapping[str, object] | None, parse: Callable[[str], _T]
    ) -> _T | None:
        text = self._text(key, names)
        if text is None:
            return None
        try:
            return parse(text)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None

    # -- typed getters: the key's value, or ``default`` when absent; ``names``
    # -- given means "expand first". All raise ConfigError via :meth:`error`.

    @overload
    def get_bool(
        self, key: str, default: bool, *, names: Mapping[str, object] | None = None
    ) -> bool: ...
    @overload
    def get_bool(
        self, key: str, default: None = None, *, names: Mapping[str, object] | None = None
    ) -> bool | None: ...
    def get_bool(
        self, key: str, default: bool | None = None, *, names: Mapping[str, object] | None = None
    ) -> bool | None:
        """Boolean value of ``key``; raises ConfigError ``not a valid boolean value: 'x'``."""
        value = self._convert(key, names, parse_bool)
        return default if value is None else value

    @overload
    def get_int(
        self, key: str, default: int, *, names: Mapping[str, object] | None = None
    ) -> int: ...
    @overload
    def get_int(
        self, key: str, default: None = None, *, names: Mapping[str, object] | None = None
    ) -> int | None: ...
    def get_int(
        self, key: str, default: int | None = None, *, names: Mapping[str, object] | None = None
    ) -> int | None:
        """Integer value of ``key``; raises ConfigError ``not an integer``."""
        value = self._convert(key, names, parse_int)
        return default if value is None else value

    @overload
    def get_float(
        self, key: str, default: float, *, names: Mapping[str, object] | None = None
    ) -> float: ...
    @overload
    def get_float(
        self, key: str, default: None = None, *, names: Mapping[str, object] | None = None
    ) -> float | None: ...
    def get_float(
        self, key: str, default: float | None = None, *, names: Mapping[str, object] | None = None
    ) -> float | None:
        """Seconds (int or float) of ``key``; raises ConfigError ``not a number``."""
        value = self._convert(key, names, parse_float)
        return default if value is None else value

    @overload
    def get_byte_size(
        self, key: str, default: int, *, names: Mapping[str, object] | None = None
    ) -> int: ...
    @overload
    def get_byte_size(
        self, key: str, default: None = None, *, names: Mapping[str, object] | None = None
    ) -> int | None: ...
    def get_byte_size(
        self, key: str, default: int | None = None, *, names: Mapping[str, object] | None = None
    ) -> int | None:
        """Byte size of ``key`` (``50MB``, ``1 kb``); raises ConfigError ``not a byte size``."""
        value = self._convert(key, names, parse_byte_size)
        return default if value is None else value

    @overload
    def get_list(
        self, key: str, default: list[str], *, names: Mapping[str, object] | None = None
    ) -> list[str]: ...
    @overload
    def get_list(
        self, key: str, default: None = None, *, names: Mapping[str, object] | None = None
    ) -> list[str] | None: ...
    def get_list(
        self,
        key: str,
        default: list[str] | None = None,
        *,
        names: Mapping[str, object] | None = None,
    ) -> list[str] | None:
        """Comma-separated items of ``key``, trimmed, empties dropped."""
        value = self._convert(key, names, parse_list)
        return default if value is None else value


# --- files -------------------------------------------------------------------------


@dataclass(frozen=True)
class IniFile:
    """A parsed main file with its includes: sections in first-appearance order."""

    path: Path
    sections: Mapping[str, Section]
    warnings: tuple[str, ...] = ()

    def section(self, name: str) -> Section | None:
        """The section called exactly ``name`` (section names are case-sensitive)."""
        return self.sections.get(name)

    def sections_with_prefix(self, prefix: str) -> list[Section]:
        """Sections whose name starts with ``prefix`` (e.g. ``program:``), in file order."""
        return [s for name, s in self.sections.items() if name.startswith(prefix)]

    def names(self) -> list[str]:
        """Every section name, in file order."""
        return list(self.sections)


class _Accumulator:
    """Merges files the way one shared RawConfigParser would, remembering files."""

    def __init__(self) -> None:
        self.sections: dict[str, dict[str, str]] = {}
        self.files: dict[str, Path] = {}
        self.defaults: dict[str, str] = {}

    def add(self, parser: configparser.RawConfigParser, file: Path) -> None:
        for name in parser.sections():
            own = dict(parser.items(name))
            if name == DEFAULT_SECTION:
                self.defaults.update(own)
                continue
            self.sections.setdefault(name, {}).update(own)
            self.files[name] = file

    def has_section(self, name: str) -> bool:
        return name in self.sections

    def build(self, name: str, environ: Mapping[str, str]) -> Section:
        values = {**self.defaults, **self.sections[name]}
        return Section(name, self.files[name], MappingProxyType(values), environ)


def _parse(file: Path) -> configparser.RawConfigParser:
    """Parse one file with supervisord's configparser settings.

    Raises:
        OSError: the file cannot be opened or read.
        ConfigError: syntax error or undecodable text.
    """
    parser = configparser.RawConfigParser(
        inline_comment_prefixes=(";", "#"),
        strict=False,
        interpolation=None,
        default_section=_NO_DEFAULT_SECTION,
    )
    try:
        with open(file, encoding="utf-8") as fp:
            text = fp.read()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not valid UTF-8 text: {exc.reason}", file=file) from None
    _check_text(text, file)
    try:
        parser.read_string(text, source=str(file))
    except configparser.MissingSectionHeaderError as exc:
        raise ConfigError(
            f"file contains no section header: {exc.line.strip()!r}", file=file, line=exc.lineno
        ) from None
    except configparser.ParsingError as exc:
        lineno, text = exc.errors[0]
        more = f" (and {len(exc.errors) - 1} more)" if len(exc.errors) > 1 else ""
        raise ConfigError(
            f"unparsable line: {_unrepr(text).strip()!r}{more}", file=file, line=lineno
        ) from None
    except configparser.Error as exc:
        raise ConfigError(" ".join(str(exc).split()), file=file) from None
    return parser


def _check_text(text: str, file: Path) -> None:
    """Refuse what no config file holds: NUL characters and lines over :data:`MAX_LINE`.

    A NUL cannot reach a path, an argument or the environment (the OS refuses it), and
    a line longer than ``MAX_LINE`` is longer than any argument or environment string
    Linux accepts (128 KiB) — refusing them here gives one clear line instead of a
    failure far from the config.

    Raises:
        ConfigError: naming the file and the line.
    """
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise ConfigError("contains a NUL character (\\x00)", file=file, line=line)
    if len(text) <= MAX_LINE:
        return
    for number, length in enumerate(map(len, text.split("\n")), 1):
        if length > MAX_LINE:
            raise ConfigError(
                f"line is {length:,} characters long; at most {MAX_LINE:,} are accepted",
                file=file,
                line=number,
            )


def _unrepr(text: str) -> str:
    """configparser stores ``repr(line)`` in ParsingError.errors; undo that."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return value if isinstance(value, str) else text


def _include_patterns(section: Section) -> list[str]:
    if "files" not in section:
        raise ConfigError(
            "an [include] section needs a files setting",
            file=str(section.file),
            section=section.name,
            key="files",
        )
    files = section.expand("files", {"host_node_name": platform.node()})
    assert files is not None
    return files.split()


def _read_includes(include: Section, acc: _Accumulator, warnings: list[str]) -> None:
    for pattern in _include_patterns(include):
        full = os.path.join(include.here, pattern)
        matches = glob.glob(full)
        if not matches:
            warnings.append(f'No file matches via include "{full}"')
            continue
        for match in sorted(matches):
            file = Path(os.path.abspath(match))
            try:
                acc.add(_parse(file), file)
            except OSError as exc:
                warnings.append(f'Could not read included file "{file}": {exc.strerror or exc}')


def read_ini(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    follow_includes: bool = True,
) -> IniFile:
    """Read a supervisord-style config file and (optionally) its ``[include]`` files.

    Args:
        path: the main file; made absolute (symlinks are not resolved).
        environ: the environment for ``ENV_*`` expansion; a snapshot of
            ``os.environ`` when ``None``. Stored on every section.
        follow_includes: read the files named by the main file's ``[include]``.
            An ``[include]`` inside an included file is merged as a section but
            never followed (supervisord's includes are not recursive).

    Returns:
        The merged sections (first-appearance order) and warnings such as
        ``No file matches via include "<glob>"``.

    Raises:
        ConfigError: the main file is missing or unreadable, any file has a
            syntax error, or ``[include] files`` is missing or cannot be expanded.
    """
    main = Path(os.path.abspath(path))
    env: Mapping[str, str] = MappingProxyType(dict(os.environ if environ is None else environ))
    try:
        parser = _parse(main)
    except FileNotFoundError:
        raise ConfigError("could not find config file", file=main) from None
    except OSError as exc:
        raise ConfigError(f"could not read config file: {exc.strerror or exc}", file=main) from None
    acc = _Accumulator()
    acc.add(parser, main)
    warnings: list[str] = []
    if follow_includes and acc.has_section("include"):
        _read_includes(acc.build("include", env), acc, warnings)
    sections = {name: acc.build(name, env) for name in acc.sections}
    return IniFile(main, MappingProxyType(sections), tuple(warnings))


def config_search_path(*, argv0: str, cwd: Path) -> list[Path]:
    """supervisord's default config locations, in search order (reference §4.1).

    ``<dir of argv0>/..`` is computed as supervisord does
    (``dirname(dirname(argv0))``), relative to ``cwd`` when not absolute.
    """
    here = cwd / os.path.dirname(os.path.dirname(argv0))
    return [
        here / "etc" / "supervisord.conf",
        here / "supervisord.conf",
        cwd / "supervisord.conf",
        cwd / "etc" / "supervisord.conf",
        Path("/etc/supervisord.conf"),
        Path("/etc/supervisor/supervisord.conf"),
    ]


def find_config_file(
    *, argv0: str, cwd: Path, exists: Callable[[Path], bool] = Path.exists
) -> Path | None:
    """The first existing file of :func:`config_search_path`, or ``None``."""
    for candidate in config_search_path(argv0=argv0, cwd=cwd):
        if exists(candidate):
            return candidate
    return None
