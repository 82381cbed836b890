"""``[alert:NAME]`` sections → frozen :class:`AlertConfig` values (one per channel).

Nothing is opened or started here; :func:`load_alerts` validates every section
or raises :class:`~manager.ini.ConfigError` naming file, section, key and value
(secret values are shown as ``***``). The key list and defaults are documented
in :mod:`listeners.plugins.alerts`.

Expansion: ``url``, ``headers``, ``username``, ``password``, ``spool_dir`` and
``tls_ca`` get supervisord's ``%(ENV_X)s`` / ``%(here)s`` expansion (write a
literal ``%`` as ``%%``), so secrets can come from the environment; other values,
``command`` included, are literal.
"""

from __future__ import annotations

import difflib
import enum
import re
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from healthchecks.config import ProgramSelector
from listeners.alerting.model import Trigger
from listeners.alerting.redact import MASK, Redactor, mask_url
from manager.ini import ConfigError, IniFile, Section, parse_float, parse_int, parse_list

__all__ = [
    "SECTION_PREFIX",
    "AlertConfig",
    "ChannelType",
    "CommandSettings",
    "EmailSettings",
    "Format",
    "HttpSettings",
    "ProgramFilter",
    "RateLimit",
    "SmtpSecurity",
    "load_alerts",
    "parse_alert",
]

SECTION_PREFIX = "alert:"
_T = TypeVar("_T")


class ChannelType(enum.Enum):
    WEBHOOK = "webhook"
    SLACK = "slack"
    ALERTMANAGER = "alertmanager"
    EMAIL = "email"
    COMMAND = "command"


class Format(enum.Enum):
    """What an HTTP channel POSTs."""

    JSON = "json"
    SLACK = "slack"
    ALERTMANAGER = "alertmanager"


class SmtpSecurity(enum.Enum):
    NONE = "none"
    STARTTLS = "starttls"
    SSL = "ssl"


@dataclass(frozen=True)
class ProgramFilter:
    """``programs = web, db:*, !db:replica``: includes (none = all) minus excludes."""

    include: tuple[ProgramSelector, ...] = ()
    exclude: tuple[ProgramSelector, ...] = ()

    @classmethod
    def parse(cls, text: str) -> ProgramFilter:
        """Raises: ValueError naming the bad item."""
        include: list[ProgramSelector] = []
        exclude: list[ProgramSelector] = []
        for item in parse_list(text):
            negate = item.startswith("!")
            body = item[1:].strip() if negate else item
            if body == "*":
                if negate:
                    raise ValueError("'!*' would exclude every program")
                continue
            try:
                selector = ProgramSelector.parse(body)
            except ValueError as exc:
                raise ValueError(f"{item!r}: {exc}") from None
            (exclude if negate else include).append(selector)
        return cls(tuple(include), tuple(exclude))

    def matches(self, group: str, name: str) -> bool:
        if any(s.matches(group, name) for s in self.exclude):
            return False
        return not self.include or any(s.matches(group, name) for s in self.include)


@dataclass(frozen=True)
class RateLimit:
    """At most ``count`` messages per ``per`` seconds (a token bucket); ``count`` 0 = none."""

    count: int = 0
    per: float = 60.0

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """``10/60`` (10 per 60 s), ``1/1``, or ``0`` / ``none`` for no limit.

        Raises: ValueError.
        """
        text = text.strip().lower()
        if text in ("0", "none", "off"):
            return cls(0)
        count_text, sep, per_text = text.partition("/")
        if not sep:
            raise ValueError("not N/SECONDS (e.g. 10/60) or 0")
        count = parse_int(count_text.strip())
        per = parse_float(per_text.strip())
        if count < 1 or per <= 0:
            raise ValueError("N and SECONDS must be positive")
        return cls(count, per)

    @property
    def enabled(self) -> bool:
        return self.count > 0

    def __str__(self) -> str:
        return f"{self.count}/{self.per:g}" if self.enabled else "none"


@dataclass(frozen=True)
class HttpSettings:
    url: str = field(repr=False)
    format: Format
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    verify: bool = True
    tls_ca: Path | None = None
    #: Alertmanager only: extra labels on every alert
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)


@dataclass(frozen=True)
class EmailSettings:
    sender: str
    to: tuple[str, ...]
    host: str = "localhost"
    port: int = 25
    security: SmtpSecurity = SmtpSecurity.NONE
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    #: fixed subject (superlance's ``-s``); None = one made from the alert(s)
    subject: str | None = None
    verify: bool = True
    tls_ca: Path | None = None


@dataclass(frozen=True)
class CommandSettings:
    command: str


Transport = HttpSettings | EmailSettings | CommandSettings


@dataclass(frozen=True)
class AlertConfig:
    """One ``[alert:NAME]`` channel."""

    name: str
    type: ChannelType
    transport: Transport
    on: frozenset[Trigger] = frozenset({Trigger.FATAL, Trigger.RECOVERED})
    programs: ProgramFilter = ProgramFilter()
    repeat_interval: float = 3600.0
    stable_for: float = 10.0
    rate_limit: RateLimit = RateLimit(10, 60.0)
    batch_window: float = 0.0
    max_batch: int = 50
    spool_dir: Path = Path("vigil-alerts")
    spool_max: int = 1000
    retry_initial: float = 1.0
    retry_max: float = 60.0
    timeout: float = 10.0
    host: str = field(default_factory=socket.gethostname)
    tail_bytes: int = 2048
    tail_lines: int = 20
    file: Path | None = None

    @property
    def section(self) -> str:
        return f"{SECTION_PREFIX}{self.name}"

    @property
    def format(self) -> Format | None:
        return self.transport.format if isinstance(self.transport, HttpSettings) else None

    def redactor(self) -> Redactor:
        """Masks this channel's secrets (URL tokens, header values, password)."""
        t = self.transport
        if isinstance(t, HttpSettings):
            return Redactor((v for _, v in t.headers), urls=[t.url])
        if isinstance(t, EmailSettings):
            return Redactor([t.password or ""])
        return Redactor()

    def describe(self) -> str:
        """One line for the start-up log, secrets masked."""
        t = self.transport
        if isinstance(t, HttpSettings):
            target = f"{t.format.value} to {t.masked_url}"
        elif isinstance(t, EmailSettings):
            target = f"mail to {', '.join(t.to)} via {t.host}:{t.port} ({t.security.value})"
        else:
            target = f"command {t.command!r}"
        on = ", ".join(sorted(t.value for t in self.on))
        return (
            f"{self.type.value} ({target}), on {on}; repeat {self.repeat_interval:g}s, "
            f"rate {self.rate_limit}, batch {self.batch_window:g}s, spool {self.spool_dir}"
        )


# --- reading --------------------------------------------------------------------------

COMMON_KEYS = frozenset(
    {
        "type",
        "on",
        "programs",
        "repeat_interval",
        "stable_for",
        "rate_limit",
        "batch_window",
        "max_batch",
        "spool_dir",
        "spool_max",
        "retry_initial",
        "retry_max",
        "timeout",
        "host",
        "tail_bytes",
        "tail_lines",
    }
)
_HTTP_KEYS = frozenset({"url", "headers", "verify", "tls_ca"})
TYPE_KEYS: Mapping[ChannelType, frozenset[str]] = {
    ChannelType.WEBHOOK: _HTTP_KEYS | {"format", "labels"},
    ChannelType.SLACK: _HTTP_KEYS,
    ChannelType.ALERTMANAGER: _HTTP_KEYS | {"labels"},
    ChannelType.EMAIL: frozenset(
        {
            "smtp_host",
            "smtp_port",
            "tls",
            "username",
            "password",
            "from",
            "to",
            "subject",
            "verify",
            "tls_ca",
        }
    ),
    ChannelType.COMMAND: frozenset({"command"}),
}
SECRET_KEYS = frozenset({"url", "headers", "password"})
_TYPES = ", ".join(t.value for t in ChannelType)
_TRIGGERS = ", ".join(t.value for t in Trigger)
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEADER = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class _Reader:
    def __init__(self, section: Section) -> None:
        self.section = section

    def error(self, key: str, why: str) -> ConfigError:
        value = MASK if key in SECRET_KEYS and key in self.section else None
        return self.section.error(key, why, value=value)

    def has(self, key: str) -> bool:
        return key in self.section

    def text(self, key: str, default: str | None = None, *, expand: bool = False) -> str | None:
        if expand:
            try:
                return self.section.expand(key, {}, default)
            except ConfigError as exc:
                if key in SECRET_KEYS:
                    raise self.error(key, exc.why) from None
                raise
        value = self.section.get(key, default)
        return None if value is None else value.strip()

    def required(self, key: str, why: str, *, expand: bool = False) -> str:
        value = self.text(key, expand=expand)
        if value is None or not value.strip():
            raise self.error(key, why)
        return value.strip()

    def convert(self, key: str, parse: Callable[[str], _T], default: _T) -> _T:
        value = self.text(key)
        if value is None:
            return default
        try:
            return parse(value)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None

    def seconds(self, key: str, default: float, *, zero_ok: bool = False) -> float:
        value = self.convert(key, parse_float, default)
        if value < 0 or (value == 0 and not zero_ok):
            raise self.error(key, "must be positive" if not zero_ok else "must not be negative")
        return value

    def count(self, key: str, default: int, *, low: int = 1) -> int:
        value = self.convert(key, parse_int, default)
        if value < low:
            raise self.error(key, f"must be at least {low}")
        return value

    def path(self, key: str, default: str | None = None) -> Path | None:
        text = self.text(key, default, expand=True)
        if text is None or not text.strip():
            return None
        p = Path(text.strip()).expanduser()
        return p if p.is_absolute() else self.section.here / p


def _check_keys(r: _Reader, kind: ChannelType) -> None:
    allowed = COMMON_KEYS | TYPE_KEYS[kind]
    for key in r.section.values:
        if key in allowed:
            continue
        owners = [t.value for t, keys in TYPE_KEYS.items() if key in keys]
        if owners:
            why = f"does not apply to type {kind.value} (a key of {', '.join(owners)} channels)"
        else:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            why = f"unknown key for a {kind.value} alert channel{hint}"
        raise r.error(key, why)


def _parse_on(text: str) -> frozenset[Trigger]:
    items = parse_list(text)
    if not items:
        raise ValueError(f"needs at least one of {_TRIGGERS}")
    out: set[Trigger] = set()
    for item in items:
        try:
            out.add(Trigger(item.upper()))
        except ValueError:
            close = difflib.get_close_matches(item.upper(), [t.value for t in Trigger], n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"unknown trigger {item!r}{hint}; one of {_TRIGGERS}") from None
    return frozenset(out)


def _parse_pairs(
    text: str, sep: str, name: re.Pattern[str], what: str
) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    for item in (i.strip() for i in re.split(r"[;,]" if sep == "=" else ";", text)):
        if not item:
            continue
        key, found, value = item.partition(sep)
        key = key.strip()
        if not found or not name.fullmatch(key):
            raise ValueError(f"not {what} (NAME{sep}value, separated by ';')")
        pairs.append((key, value.strip()))
    return tuple(pairs)


def _http_url(r: _Reader, kind: ChannelType) -> str:
    url = r.required("url", f"required for type {kind.value}", expand=True)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise r.error("url", "not an http:// or https:// URL")
    return url


def _http(r: _Reader, kind: ChannelType) -> HttpSettings:
    url = _http_url(r, kind)
    if kind is ChannelType.WEBHOOK:
        fmt = r.convert("format", lambda t: Format(t.lower()), Format.JSON)
    else:
        fmt = Format.SLACK if kind is ChannelType.SLACK else Format.ALERTMANAGER
    if fmt is Format.ALERTMANAGER and not urlsplit(url).path.rstrip("/").endswith("/api/v2/alerts"):
        url = url.rstrip("/") + "/api/v2/alerts"
    headers_text = r.text("headers", expand=True)
    headers: tuple[tuple[str, str], ...] = ()
    if headers_text is not None:
        try:
            headers = _parse_pairs(headers_text, ":", _HEADER, "a header list")
        except ValueError as exc:
            raise r.error("headers", str(exc)) from None
    no_labels: tuple[tuple[str, str], ...] = ()
    labels = r.convert("labels", lambda t: _parse_pairs(t, "=", _LABEL, "a label list"), no_labels)
    if labels and fmt is not Format.ALERTMANAGER:
        raise r.error("labels", "only for format alertmanager")
    verify = r.section.get_bool("verify", True)
    tls_ca = r.path("tls_ca")
    if tls_ca is not None and not verify:
        raise r.error("tls_ca", "given but verify = false; drop one of them")
    return HttpSettings(url, fmt, headers, verify, tls_ca, labels)


def _email(r: _Reader, host_name: str) -> EmailSettings:
    to: list[str] = r.convert("to", parse_list, [])
    if not to:
        raise r.error("to", "required for type email: one or more addresses")
    security = r.convert("tls", lambda t: SmtpSecurity(t.lower()), SmtpSecurity.NONE)
    default_port = {SmtpSecurity.NONE: 25, SmtpSecurity.STARTTLS: 587, SmtpSecurity.SSL: 465}
    port = r.count("smtp_port", default_port[security])
    if port > 65535:
        raise r.error("smtp_port", "must be at most 65535")
    username = r.text("username", expand=True)
    password = r.text("password", expand=True)
    if password is not None and username is None:
        raise r.error("password", "given without username")
    verify = r.section.get_bool("verify", True)
    tls_ca = r.path("tls_ca")
    if tls_ca is not None and not verify:
        raise r.error("tls_ca", "given but verify = false; drop one of them")
    if (tls_ca is not None or not verify) and security is SmtpSecurity.NONE:
        raise r.error("tls_ca" if tls_ca is not None else "verify", "needs tls = starttls or ssl")
    return EmailSettings(
        sender=r.text("from") or f"vigil@{host_name}",
        to=tuple(to),
        host=r.text("smtp_host", "localhost") or "localhost",
        port=port,
        security=security,
        username=username,
        password=password,
        subject=r.text("subject"),
        verify=verify,
        tls_ca=tls_ca,
    )


def parse_alert(section: Section) -> AlertConfig:
    """Validate one ``[alert:NAME]`` section.

    Raises:
        ConfigError: the first problem found (secret values masked).
    """
    name = section.name.removeprefix(SECTION_PREFIX).strip()
    if not name or "/" in name:
        raise ConfigError(
            "an alert section needs a name without '/'", file=section.file, section=section.name
        )
    r = _Reader(section)
    type_text = r.required("type", f"required: one of {_TYPES}")
    try:
        kind = ChannelType(type_text.lower())
    except ValueError:
        raise r.error("type", f"unknown channel type; one of {_TYPES}") from None
    _check_keys(r, kind)
    host = r.text("host") or socket.gethostname()
    transport: Transport
    if kind is ChannelType.EMAIL:
        transport = _email(r, host)
    elif kind is ChannelType.COMMAND:
        transport = CommandSettings(r.required("command", "required for type command"))
    else:
        transport = _http(r, kind)
    am = isinstance(transport, HttpSettings) and transport.format is Format.ALERTMANAGER
    spool_dir = r.path("spool_dir", f"%(here)s/vigil-alerts/{name.replace('%', '%%')}")
    assert spool_dir is not None
    return AlertConfig(
        name=name,
        type=kind,
        transport=transport,
        on=r.convert("on", _parse_on, AlertConfig.on),
        programs=r.convert("programs", ProgramFilter.parse, ProgramFilter()),
        repeat_interval=r.seconds("repeat_interval", 60.0 if am else 3600.0, zero_ok=True),
        stable_for=r.seconds("stable_for", 10.0, zero_ok=True),
        rate_limit=r.convert("rate_limit", RateLimit.parse, RateLimit() if am else RateLimit(10)),
        batch_window=r.seconds("batch_window", 0.0, zero_ok=True),
        max_batch=r.count("max_batch", 50),
        spool_dir=spool_dir,
        spool_max=r.count("spool_max", 1000),
        retry_initial=r.seconds("retry_initial", 1.0),
        retry_max=r.seconds("retry_max", 60.0),
        timeout=r.seconds("timeout", 10.0),
        host=host,
        tail_bytes=r.count("tail_bytes", 2048, low=0),
        tail_lines=r.count("tail_lines", 20, low=0),
        file=section.file,
    )


def load_alerts(ini: IniFile) -> list[AlertConfig]:
    """Every ``[alert:NAME]`` section of ``ini``, in file order.

    Raises:
        ConfigError: the first invalid section, or two channels sharing a spool_dir.
    """
    configs = [parse_alert(s) for s in ini.sections_with_prefix(SECTION_PREFIX)]
    _unique_spools(configs, ini)
    return configs


def _unique_spools(configs: Iterable[AlertConfig], ini: IniFile) -> None:
    seen: dict[Path, str] = {}
    for cfg in configs:
        other = seen.get(cfg.spool_dir)
        if other is not None:
            section = ini.section(cfg.section)
            assert section is not None
            raise section.error(
                "spool_dir",
                f"the same directory as [{SECTION_PREFIX}{other}]: each channel needs its own",
                value=str(cfg.spool_dir),
            )
        seen[cfg.spool_dir] = cfg.name
