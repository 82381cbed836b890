"""``[metrics]`` section → a frozen :class:`MetricsConfig`.

Nothing is opened or bound here; :func:`load_metrics_config` validates the section or raises
:class:`~manager.ini.ConfigError` naming file, section, key and value. Values get supervisord's
``%(ENV_X)s`` / ``%(here)s`` expansion; TLS files are relative to the config file and must
exist. The key list and defaults are documented in :mod:`listeners.plugins.metrics`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from manager.ini import IniFile, Section

__all__ = [
    "DEFAULT_LISTEN",
    "KEYS",
    "SECTION",
    "MetricsConfig",
    "load_metrics_config",
    "parse_listen",
]

SECTION = "metrics"
DEFAULT_LISTEN = "127.0.0.1:9876"
KEYS = (
    "listen",
    "username",
    "password",
    "tls_cert",
    "tls_key",
    "reconcile",
    "node_exporter_compat",
)


@dataclass(frozen=True)
class MetricsConfig:
    """The ``[metrics]`` section, validated (the defaults are what no section means)."""

    host: str = "127.0.0.1"
    port: int = 9876
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: seconds between getAllProcessInfo reconciles
    reconcile: float = 15.0
    node_exporter_compat: bool = False

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or ``:PORT`` (all interfaces) → (host, port).

    Raises:
        ValueError: with the reason.
    """
    host, sep, port_text = text.strip().rpartition(":")
    if not sep:
        raise ValueError("not HOST:PORT (e.g. 127.0.0.1:9876, [::1]:9876, :9876)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("an IPv6 address needs brackets, e.g. [::1]:9876")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"port {port_text!r} is not a number") from None
    if not 0 <= port < 65536:
        raise ValueError("port must be 0-65535 (0: any free port)")
    return host or "0.0.0.0", port


def load_metrics_config(ini: IniFile | None) -> MetricsConfig:
    """Read ``[metrics]`` (defaults when there is no file or no section).

    Raises:
        ConfigError: the first problem, naming file, section, key and value.
    """
    section = ini.section(SECTION) if ini is not None else None
    if section is None:
        return MetricsConfig()
    for key in section.values:
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise section.error(key, f"unknown key{hint}; known: {', '.join(KEYS)}")
    listen = section.expand("listen", {}, DEFAULT_LISTEN)
    assert listen is not None
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        raise section.error("listen", str(exc), value=listen) from None
    username, password = _pair(section, "username", "password")
    tls_cert, tls_key = _pair(section, "tls_cert", "tls_key")
    reconcile = section.get_float("reconcile", 15.0, names={})
    if reconcile <= 0:
        raise section.error("reconcile", "must be positive")
    return MetricsConfig(
        host=host,
        port=port,
        username=username,
        password=password,
        tls_cert=_file(section, "tls_cert", tls_cert),
        tls_key=_file(section, "tls_key", tls_key),
        reconcile=reconcile,
        node_exporter_compat=section.get_bool("node_exporter_compat", False, names={}),
    )


def _pair(section: Section, a: str, b: str) -> tuple[str | None, str | None]:
    first, second = section.expand(a, {}), section.expand(b, {})
    for key, value, other, other_value in ((a, first, b, second), (b, second, a, first)):
        if value == "":
            raise section.error(key, "must not be empty")
        if value is not None and other_value is None:
            raise section.error(other, f"required when {key} is set")
    return first, second


def _file(section: Section, key: str, value: str | None) -> Path | None:
    if value is None:
        return None
    path = section.here / value  # an absolute value replaces here
    if not path.is_file():
        raise section.error(key, f"no such file: {path}", value=value)
    return path
