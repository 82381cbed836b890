"""``[healthcheck:x]`` sections → :class:`HealthCheckConfig`, and configs → checks.

Theory of operation
-------------------
:func:`load_healthchecks` reads every ``[healthcheck:NAME]`` section of an
:class:`~manager.ini.IniFile` into a frozen :class:`HealthCheckConfig`, or raises
:class:`~manager.ini.ConfigError` naming file, section, key and value. Nothing
is opened, resolved or started here; :func:`build_check`, :func:`build_probe`
and :func:`build_breaker` turn a config into the live objects.

Keys (all times are seconds, floats allowed)::

    program            required  name | group:name | group:*
    type               required  http | tcp | heartbeat | exec | memory
    timeout            1         per-check timeout (> 0)
    period             10        seconds between probes (> 0; Kubernetes' default)
    initial_delay      0         after the process's own RUNNING (>= 0)
    failure_threshold  3         consecutive failures → unhealthy (>= 1)
    success_threshold  1         consecutive successes → healthy again (>= 1)
    action             restart   restart | stop | signal:NAME | exec:COMMAND | none
    max_restarts       3         breaker: restarts allowed within restart_window (>= 1)
    restart_window     300       breaker: the window (> 0)
    breaker_cooldown   600       breaker: OPEN → HALF_OPEN after this (> 0)
    fatal_recovery     false     restart the program when it reaches FATAL, with backoff
    fatal_backoff_max  300       cap of that backoff (10, 20, 40 … s) (> 0)

    type = http:       url (required, http:// or https://), method (GET),
                       headers (``Name: value; Name2: value``), expect_status
                       (200-399; e.g. ``200,204,300-399``), body_regex (searched
                       in the body as bytes), verify (true), tls_ca, tls_cert, tls_key
    type = tcp:        port (required, 1-65535), host (127.0.0.1), send, expect
                       (bytes; escapes ``\\r \\n \\t \\0 \\\\ \\xHH``)
    type = heartbeat:  max_age (required, > 0), file (its mtime also counts)
    type = exec:       command (required; run by ``/bin/sh -c``, exit 0 passes)
    type = memory:     limit (required, byte size: ``200MB``), include_children
                       (false), consecutive (1)

Rules: a key that is unknown, or belongs to another type, is an error (a typo
must not silently disable a check; note that ``[DEFAULT]`` keys reach these
sections too). Path keys (``file``, ``tls_*``) get supervisord's ``%(here)s`` /
``%(ENV_X)s`` expansion and are relative to the file's directory; other values
are taken literally (URLs and shell commands contain ``%``). ``timeout`` not
shorter than ``period`` is allowed but warned about (``warnings``).
"""

from __future__ import annotations

import difflib
import enum
import re
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from healthchecks.breaker import Breaker, BreakerSpec, BreakerTransition, FatalBackoff
from healthchecks.execcheck import ExecCheck
from healthchecks.heartbeat import HeartbeatCheck
from healthchecks.http import HttpCheck, StatusSet, parse_expect_status
from healthchecks.memory import MemoryCheck
from healthchecks.probe import Probe, ProbeSpec
from healthchecks.result import Check, Clock
from healthchecks.tcp import TcpCheck
from manager.ini import ConfigError, IniFile, Section

__all__ = [
    "COMMON_KEYS",
    "DEFAULT_EXPECT_STATUS",
    "SECTION_PREFIX",
    "TYPE_KEYS",
    "Action",
    "ActionKind",
    "CheckSettings",
    "CheckType",
    "ExecSettings",
    "HealthCheckConfig",
    "HeartbeatSettings",
    "HttpSettings",
    "MemorySettings",
    "ProgramSelector",
    "TcpSettings",
    "build_breaker",
    "build_check",
    "build_probe",
    "load_healthchecks",
    "parse_healthcheck",
    "signal_name",
    "unescape_bytes",
]

SECTION_PREFIX = "healthcheck:"
DEFAULT_EXPECT_STATUS = parse_expect_status("200-399")
_T = TypeVar("_T")


class CheckType(enum.StrEnum):
    HTTP = "http"
    TCP = "tcp"
    HEARTBEAT = "heartbeat"
    EXEC = "exec"
    MEMORY = "memory"


class ActionKind(enum.StrEnum):
    RESTART = "restart"
    STOP = "stop"
    SIGNAL = "signal"
    EXEC = "exec"
    NONE = "none"


#: keys every healthcheck may have
COMMON_KEYS = frozenset(
    {
        "program",
        "type",
        "timeout",
        "period",
        "initial_delay",
        "failure_threshold",
        "success_threshold",
        "action",
        "max_restarts",
        "restart_window",
        "breaker_cooldown",
        "fatal_recovery",
        "fatal_backoff_max",
    }
)
#: keys of one type only; the first ones listed are required
TYPE_KEYS: Mapping[CheckType, tuple[str, ...]] = {
    CheckType.HTTP: (
        "url",
        "method",
        "headers",
        "expect_status",
        "body_regex",
        "verify",
        "tls_ca",
        "tls_cert",
        "tls_key",
    ),
    CheckType.TCP: ("port", "host", "send", "expect"),
    CheckType.HEARTBEAT: ("max_age", "file"),
    CheckType.EXEC: ("command",),
    CheckType.MEMORY: ("limit", "include_children", "consecutive"),
}
REQUIRED_KEYS: Mapping[CheckType, str] = {
    CheckType.HTTP: "url",
    CheckType.TCP: "port",
    CheckType.HEARTBEAT: "max_age",
    CheckType.EXEC: "command",
    CheckType.MEMORY: "limit",
}
_TYPES = ", ".join(t.value for t in CheckType)
_ACTIONS = "restart, stop, signal:NAME, exec:COMMAND, none"
_NAME = re.compile(r"[^\s:*]+")
_METHOD = re.compile(r"[A-Za-z]+")


# --- value objects ---------------------------------------------------------------


@dataclass(frozen=True)
class ProgramSelector:
    """Which processes a healthcheck probes: ``name``, ``group:name`` or ``group:*``."""

    #: the group, or ``None`` for a bare ``name``
    group: str | None
    #: the process name, or ``None`` for ``group:*``
    name: str | None

    @classmethod
    def parse(cls, text: str) -> ProgramSelector:
        """Parse a selector.

        Raises:
            ValueError: not ``name``, ``group:name`` or ``group:*``.
        """
        group, sep, name = text.strip().partition(":")
        if not sep:
            if not _NAME.fullmatch(group):
                raise ValueError("not a program name (name, group:name or group:*)")
            return cls(None, group)
        if not _NAME.fullmatch(group) or not (name == "*" or _NAME.fullmatch(name)):
            raise ValueError("not a program name (name, group:name or group:*)")
        return cls(group, None if name == "*" else name)

    def matches(self, group: str, name: str) -> bool:
        """Does the process ``group:name`` fall under this selector?

        A bare ``web`` selects the group ``web`` (every ``numprocs`` instance of
        ``[program:web]``) and any process named ``web`` (a program in a
        ``[group:x]``).
        """
        if self.group is None:
            return group == self.name or name == self.name
        return group == self.group and (self.name is None or name == self.name)

    def __str__(self) -> str:
        if self.group is None:
            return str(self.name)
        return f"{self.group}:{'*' if self.name is None else self.name}"


@dataclass(frozen=True)
class Action:
    """What to do when the probe says UNHEALTHY."""

    kind: ActionKind
    #: for ``signal:NAME``: the signal name without ``SIG`` (``HUP``)
    signal: str | None = None
    #: for ``exec:COMMAND``: the command (for ``/bin/sh -c``)
    command: str | None = None

    @classmethod
    def parse(cls, text: str) -> Action:
        """Parse ``restart``, ``stop``, ``none``, ``signal:NAME`` or ``exec:COMMAND``.

        Raises:
            ValueError: unknown action, unknown signal, or ``exec:`` without a command.
        """
        head, sep, arg = text.strip().partition(":")
        kind = head.strip().lower()
        if not sep and kind in ("restart", "stop", "none"):
            return cls(ActionKind(kind))
        if sep and kind == "signal":
            return cls(ActionKind.SIGNAL, signal=signal_name(arg))
        if sep and kind == "exec":
            if not arg.strip():
                raise ValueError("exec: needs a command, as in exec:/usr/local/bin/notify")
            return cls(ActionKind.EXEC, command=arg.strip())
        raise ValueError(f"unknown action; one of {_ACTIONS}")

    def __str__(self) -> str:
        if self.kind is ActionKind.SIGNAL:
            return f"signal:{self.signal}"
        if self.kind is ActionKind.EXEC:
            return f"exec:{self.command}"
        return self.kind.value


def signal_name(text: str) -> str:
    """``hup``, ``SIGHUP`` or ``1`` → ``HUP``.

    Raises:
        ValueError: not a signal of this platform.
    """
    word = text.strip().upper()
    try:
        sig = (
            signal.Signals(int(word))
            if word.isdigit()
            else signal.Signals[word if word.startswith("SIG") else f"SIG{word}"]
        )
    except (KeyError, ValueError):
        raise ValueError(f"unknown signal {text.strip()!r}") from None
    return sig.name.removeprefix("SIG")


@dataclass(frozen=True)
class HttpSettings:
    url: str
    method: str = "GET"
    #: ``(name, value)`` pairs in file order
    headers: tuple[tuple[str, str], ...] = ()
    expect_status: StatusSet = DEFAULT_EXPECT_STATUS
    body_regex: str | None = None
    verify: bool = True
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None


@dataclass(frozen=True)
class TcpSettings:
    port: int
    host: str = "127.0.0.1"
    send: bytes | None = None
    expect: bytes | None = None


@dataclass(frozen=True)
class HeartbeatSettings:
    max_age: float
    file: Path | None = None


@dataclass(frozen=True)
class ExecSettings:
    command: str


@dataclass(frozen=True)
class MemorySettings:
    limit: int
    include_children: bool = False
    consecutive: int = 1


CheckSettings = HttpSettings | TcpSettings | HeartbeatSettings | ExecSettings | MemorySettings


@dataclass(frozen=True)
class HealthCheckConfig:
    """One ``[healthcheck:NAME]`` section, validated."""

    #: NAME of the section
    name: str
    program: ProgramSelector
    type: CheckType
    #: the type's own settings (``HttpSettings`` for ``type = http``, …)
    check: CheckSettings
    #: period, timeout, initial_delay and thresholds
    probe: ProbeSpec
    action: Action
    #: max_restarts, restart_window and breaker_cooldown
    breaker: BreakerSpec
    fatal_recovery: bool = False
    fatal_backoff_max: float = 300.0
    #: the file that defined the section
    file: Path | None = None
    #: non-fatal remarks, one line each
    warnings: tuple[str, ...] = ()

    @property
    def section(self) -> str:
        return f"{SECTION_PREFIX}{self.name}"


# --- parsing -----------------------------------------------------------------------


def unescape_bytes(text: str) -> bytes:
    r"""UTF-8 bytes of ``text`` with ``\r \n \t \0 \\ \xHH`` escapes decoded.

    Raises:
        ValueError: any other backslash sequence.
    """
    out = bytearray()
    simple = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "\\": b"\\"}
    i = 0
    while i < len(text):
        char = text[i]
        if char != "\\":
            out += char.encode()
            i += 1
            continue
        code = text[i + 1 : i + 2]
        if code in simple:
            out += simple[code]
            i += 2
        elif code == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", text[i + 2 : i + 4]):
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        else:
            raise ValueError(
                f"bad escape {text[i : i + 2]!r}; use \\r, \\n, \\t, \\0, \\\\ or \\xHH"
            )
    return bytes(out)


def _parse_headers(text: str) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    for item in text.split(";"):
        if not item.strip():
            continue
        name, sep, value = item.partition(":")
        if not sep or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name.strip()):
            raise ValueError(f"not a 'Name: value' header: {item.strip()!r}")
        pairs.append((name.strip(), value.strip()))
    return tuple(pairs)


class _Reader:
    """Typed, validated reads from one section, every error located at its key."""

    def __init__(self, section: Section) -> None:
        self.section = section

    def has(self, key: str) -> bool:
        return key in self.section

    def error(self, key: str, why: str) -> ConfigError:
        return self.section.error(key, why)

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self.section.get(key)
        if value is None:
            return default
        value = value.strip()
        if not value:
            raise self.error(key, "must not be empty")
        return value

    def required(self, key: str, why: str) -> str:
        value = self.text(key)
        if value is None:
            raise self.error(key, why)
        return value

    def seconds(self, key: str, default: float, *, zero_ok: bool = False) -> float:
        value = self.section.get_float(key, default)
        if value < 0 or (value == 0 and not zero_ok):
            raise self.error(key, "must be zero or more" if zero_ok else "must be positive")
        return value

    def count(self, key: str, default: int, *, low: int = 1, high: int | None = None) -> int:
        value = self.section.get_int(key, default)
        if high is not None and not low <= value <= high:
            raise self.error(key, f"must be within {low}-{high}")
        if value < low:
            raise self.error(key, f"must be at least {low}")
        return value

    def convert(self, key: str, parse: Callable[[str], _T]) -> _T | None:
        value = self.text(key)
        try:
            return None if value is None else parse(value)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None

    def path(self, key: str) -> Path | None:
        if self.text(key) is None:
            return None
        expanded = self.section.expand(key, {})
        assert expanded is not None
        return self.section.here / expanded  # an absolute path replaces here


def _check_keys(reader: _Reader, kind: CheckType) -> None:
    allowed = COMMON_KEYS | set(TYPE_KEYS[kind])
    for key in reader.section.values:
        if key in allowed:
            continue
        owners = [t.value for t, keys in TYPE_KEYS.items() if key in keys]
        if owners:
            why = f"does not apply to type {kind.value} (a key of {', '.join(owners)} checks)"
        else:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            why = f"unknown key for a {kind.value} healthcheck{hint}"
        raise reader.error(key, why)


def _http(r: _Reader) -> HttpSettings:
    url = r.required("url", "required for type http")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise r.error("url", "not an http:// or https:// URL")
    method = r.text("method", "GET")
    assert method is not None
    if not _METHOD.fullmatch(method):
        raise r.error("method", "not an HTTP method")
    headers = r.convert("headers", _parse_headers)
    status = r.convert("expect_status", parse_expect_status)
    body_regex = r.text("body_regex")
    if body_regex is not None:
        try:
            re.compile(body_regex.encode())
        except re.error as exc:
            raise r.error("body_regex", f"not a valid regular expression: {exc}") from None
    verify = r.section.get_bool("verify", True)
    tls_ca, tls_cert, tls_key = r.path("tls_ca"), r.path("tls_cert"), r.path("tls_key")
    if tls_ca is not None and not verify:
        raise r.error("tls_ca", "given but verify = false; drop one of them")
    if tls_key is not None and tls_cert is None:
        raise r.error("tls_key", "needs tls_cert (the client certificate)")
    return HttpSettings(
        url=url,
        method=method.upper(),
        headers=headers or (),
        expect_status=status or DEFAULT_EXPECT_STATUS,
        body_regex=body_regex,
        verify=verify,
        tls_ca=tls_ca,
        tls_cert=tls_cert,
        tls_key=tls_key,
    )


def _tcp(r: _Reader) -> TcpSettings:
    if not r.has("port"):
        raise r.error("port", "required for type tcp")
    port = r.count("port", 0, low=1, high=65535)
    host = r.text("host", "127.0.0.1")
    assert host is not None
    return TcpSettings(
        port=port,
        host=host,
        send=r.convert("send", unescape_bytes),
        expect=r.convert("expect", unescape_bytes),
    )


def _heartbeat(r: _Reader) -> HeartbeatSettings:
    if not r.has("max_age"):
        raise r.error("max_age", "required for type heartbeat")
    return HeartbeatSettings(max_age=r.seconds("max_age", 0.0), file=r.path("file"))


def _exec(r: _Reader) -> ExecSettings:
    return ExecSettings(command=r.required("command", "required for type exec"))


def _memory(r: _Reader) -> MemorySettings:
    if not r.has("limit"):
        raise r.error("limit", "required for type memory")
    limit = r.section.get_byte_size("limit", 0)
    if limit <= 0:
        raise r.error("limit", "must be positive")
    return MemorySettings(
        limit=limit,
        include_children=r.section.get_bool("include_children", False),
        consecutive=r.count("consecutive", 1),
    )


_SETTINGS: Mapping[CheckType, Callable[[_Reader], CheckSettings]] = {
    CheckType.HTTP: _http,
    CheckType.TCP: _tcp,
    CheckType.HEARTBEAT: _heartbeat,
    CheckType.EXEC: _exec,
    CheckType.MEMORY: _memory,
}


def parse_healthcheck(section: Section) -> HealthCheckConfig:
    """Validate one ``[healthcheck:NAME]`` section.

    Raises:
        ConfigError: the first problem found, naming file, section, key and value.
    """
    name = section.name.removeprefix(SECTION_PREFIX).strip()
    if not name:
        raise ConfigError(
            "a healthcheck section needs a name", file=section.file, section=section.name
        )
    r = _Reader(section)
    r.required("program", "required: the program to probe (name, group:name or group:*)")
    type_text = r.required("type", f"required: one of {_TYPES}")
    try:
        kind = CheckType(type_text.lower())
    except ValueError:
        raise r.error("type", f"unknown check type; one of {_TYPES}") from None
    _check_keys(r, kind)
    program = r.convert("program", ProgramSelector.parse)
    action = r.convert("action", Action.parse)
    settings = _SETTINGS[kind](r)
    timeout = r.seconds("timeout", 1.0)
    period = r.seconds("period", 10.0)
    probe = ProbeSpec(
        period=period,
        timeout=timeout,
        initial_delay=r.seconds("initial_delay", 0.0, zero_ok=True),
        failure_threshold=r.count("failure_threshold", 3),
        success_threshold=r.count("success_threshold", 1),
    )
    breaker = BreakerSpec(
        max_restarts=r.count("max_restarts", 3),
        restart_window=r.seconds("restart_window", 300.0),
        cooldown=r.seconds("breaker_cooldown", 600.0),
    )
    warnings: list[str] = []
    if timeout >= period:
        warnings.append(
            f"{section.file}: [{section.name}] timeout = {timeout:g} is not shorter than "
            f"period = {period:g}: a hanging check delays the next probe"
        )
    assert program is not None
    return HealthCheckConfig(
        name=name,
        program=program,
        type=kind,
        check=settings,
        probe=probe,
        action=action or Action(ActionKind.RESTART),
        breaker=breaker,
        fatal_recovery=section.get_bool("fatal_recovery", False),
        fatal_backoff_max=r.seconds("fatal_backoff_max", 300.0),
        file=section.file,
        warnings=tuple(warnings),
    )


def load_healthchecks(ini: IniFile) -> list[HealthCheckConfig]:
    """Every ``[healthcheck:NAME]`` section of ``ini``, in file order.

    Raises:
        ConfigError: the first invalid section (see :func:`parse_healthcheck`).
    """
    return [parse_healthcheck(s) for s in ini.sections_with_prefix(SECTION_PREFIX)]


# --- building the live objects -----------------------------------------------------


def build_check(
    cfg: HealthCheckConfig,
    *,
    pid_source: Callable[[], int | None] | None = None,
    clock: Clock = time.monotonic,
    wall_clock: Clock = time.time,
    proc: Path = Path("/proc"),
) -> Check:
    """The check ``cfg`` describes, with ``cfg.probe.timeout`` as its timeout.

    Args:
        pid_source: the probed process's current pid; required for ``memory``.
        clock: monotonic clock for durations (and heartbeats).
        wall_clock: the wall clock a heartbeat file's mtime is compared with.
        proc: procfs mount point for ``memory``.

    Raises:
        ValueError: a ``memory`` check without ``pid_source``.
    """
    timeout = cfg.probe.timeout
    s = cfg.check
    if isinstance(s, HttpSettings):
        verify: bool | Path = s.tls_ca if s.tls_ca is not None else s.verify
        return HttpCheck(
            s.url,
            method=s.method,
            headers=dict(s.headers),
            expect_status=str(s.expect_status),
            body_regex=s.body_regex,
            timeout=timeout,
            verify=verify,
            cert=s.tls_cert,
            key=s.tls_key,
            clock=clock,
        )
    if isinstance(s, TcpSettings):
        return TcpCheck(s.host, s.port, send=s.send, expect=s.expect, timeout=timeout, clock=clock)
    if isinstance(s, HeartbeatSettings):
        return HeartbeatCheck(s.max_age, file=s.file, clock=clock, wall_clock=wall_clock)
    if isinstance(s, ExecSettings):
        return ExecCheck(s.command, timeout=timeout, clock=clock)
    if pid_source is None:
        raise ValueError(f"[{cfg.section}] a memory check needs a pid_source")
    return MemoryCheck(
        s.limit,
        pid_source=pid_source,
        include_children=s.include_children,
        consecutive=s.consecutive,
        proc=proc,
        clock=clock,
    )


def build_probe(cfg: HealthCheckConfig, clock: Clock = time.monotonic) -> Probe:
    """A fresh :class:`Probe` for one process under ``cfg``."""
    return Probe(cfg.probe, clock)


def build_breaker(
    cfg: HealthCheckConfig,
    clock: Clock = time.monotonic,
    *,
    on_transition: Callable[[BreakerTransition], None] | None = None,
) -> Breaker:
    """A fresh :class:`Breaker` for one process under ``cfg`` (FATAL backoff capped by it)."""
    backoff = FatalBackoff(initial=10.0, maximum=cfg.fatal_backoff_max)
    return Breaker.from_spec(cfg.breaker, clock, backoff=backoff, on_transition=on_transition)
