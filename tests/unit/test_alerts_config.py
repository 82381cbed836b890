"""[alert:x] sections: defaults per type, every key, errors (with secrets masked), filters."""

from __future__ import annotations

import socket
from pathlib import Path
from textwrap import dedent

import pytest

from listeners.alerting.config import (
    COMMON_KEYS,
    TYPE_KEYS,
    AlertConfig,
    ChannelType,
    CommandSettings,
    EmailSettings,
    Format,
    HttpSettings,
    ProgramFilter,
    RateLimit,
    SmtpSecurity,
    load_alerts,
)
from listeners.alerting.model import Trigger
from manager.ini import ConfigError, read_ini

SLACK = "https://hooks.slack.com/services/T0AAA/B0BBB/XyZsecretToken123"


def load_all(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[AlertConfig]:
    path = tmp_path / "supervisord.conf"
    path.write_text(dedent(text).lstrip())
    return load_alerts(read_ini(path, environ=env or {"HOOK_TOKEN": "tok-from-env"}))


def load(tmp_path: Path, body: str, name: str = "ops") -> AlertConfig:
    (cfg,) = load_all(tmp_path, f"[alert:{name}]\n{dedent(body)}")
    return cfg


def error(tmp_path: Path, body: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, body)
    return str(info.value)


def test_webhook_defaults(tmp_path: Path) -> None:
    cfg = load(tmp_path, "type = webhook\nurl = http://127.0.0.1:8080/hook\n")
    assert cfg.type is ChannelType.WEBHOOK
    assert cfg.transport == HttpSettings("http://127.0.0.1:8080/hook", Format.JSON)
    assert cfg.on == {Trigger.FATAL, Trigger.RECOVERED}
    assert cfg.programs == ProgramFilter()
    assert (cfg.repeat_interval, cfg.stable_for, cfg.batch_window) == (3600.0, 10.0, 0.0)
    assert cfg.rate_limit == RateLimit(10, 60.0)
    assert cfg.spool_dir == tmp_path / "vigil-alerts" / "ops"
    assert (cfg.spool_max, cfg.max_batch) == (1000, 50)
    assert (cfg.retry_initial, cfg.retry_max, cfg.timeout) == (1.0, 60.0, 10.0)
    assert cfg.host == socket.gethostname()
    assert (cfg.tail_bytes, cfg.tail_lines) == (2048, 20)


def test_every_common_key(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        """
        type = webhook
        url = http://h/x
        on = fatal, BACKOFF, breaker_open, BREAKER_CLOSED, HEALTH_RESTART, EXITED_UNEXPECTED
        programs = web, db:*, !db:replica
        repeat_interval = 0
        stable_for = 2.5
        rate_limit = 3/10
        batch_window = 60
        max_batch = 7
        spool_dir = spool
        spool_max = 5
        retry_initial = 0.5
        retry_max = 30
        timeout = 3
        host = web-01
        tail_bytes = 0
        tail_lines = 5
        """,
    )
    assert cfg.on == set(Trigger) - {Trigger.RECOVERED}
    assert cfg.programs.matches("web", "web") and cfg.programs.matches("db", "primary")
    assert not cfg.programs.matches("db", "replica") and not cfg.programs.matches("x", "x")
    assert (cfg.repeat_interval, cfg.stable_for, cfg.batch_window) == (0.0, 2.5, 60.0)
    assert cfg.rate_limit == RateLimit(3, 10.0)
    assert cfg.spool_dir == tmp_path / "spool"
    assert (cfg.spool_max, cfg.max_batch, cfg.retry_initial, cfg.retry_max) == (5, 7, 0.5, 30.0)
    assert (cfg.timeout, cfg.host, cfg.tail_bytes, cfg.tail_lines) == (3.0, "web-01", 0, 5)


def test_slack_and_alertmanager_types(tmp_path: Path) -> None:
    configs = load_all(
        tmp_path,
        f"""
        [alert:slack]
        type = slack
        url = {SLACK}
        [alert:am]
        type = alertmanager
        url = http://127.0.0.1:9093
        labels = team=ops, env=prod
        [alert:am2]
        type = webhook
        format = alertmanager
        url = http://127.0.0.1:9093/api/v2/alerts
        """,
    )
    slack, am, am2 = (c.transport for c in configs)
    assert isinstance(slack, HttpSettings) and slack.format is Format.SLACK
    assert isinstance(am, HttpSettings) and am.format is Format.ALERTMANAGER
    assert am.url == "http://127.0.0.1:9093/api/v2/alerts"
    assert am.labels == (("team", "ops"), ("env", "prod"))
    assert isinstance(am2, HttpSettings) and am2.url == "http://127.0.0.1:9093/api/v2/alerts"
    # Alertmanager re-posts firing alerts and throttles by itself
    assert (configs[1].repeat_interval, configs[1].rate_limit) == (60.0, RateLimit())
    assert configs[0].rate_limit == RateLimit(10, 60.0)


def test_email_defaults_and_ports(tmp_path: Path) -> None:
    cfg = load(tmp_path, "type = email\nto = a@x, b@x\nhost = h1\n")
    assert cfg.transport == EmailSettings(sender="vigil@h1", to=("a@x", "b@x"))
    ports = {}
    for tls in SmtpSecurity:
        t = load(tmp_path, f"type = email\nto = a@x\ntls = {tls.value}\n").transport
        assert isinstance(t, EmailSettings)
        ports[tls] = t.port
    assert ports == {SmtpSecurity.NONE: 25, SmtpSecurity.STARTTLS: 587, SmtpSecurity.SSL: 465}


def test_email_every_key_with_password_from_the_environment(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        """
        type = email
        to = ops@x
        from = alerts@x
        smtp_host = mail.x
        smtp_port = 2525
        tls = starttls
        username = vigil
        password = %(ENV_HOOK_TOKEN)s
        subject = Fatal start alert from supervisord
        tls_ca = ca.pem
        """,
    )
    assert cfg.transport == EmailSettings(
        sender="alerts@x",
        to=("ops@x",),
        host="mail.x",
        port=2525,
        security=SmtpSecurity.STARTTLS,
        username="vigil",
        password="tok-from-env",
        subject="Fatal start alert from supervisord",
        tls_ca=tmp_path / "ca.pem",
    )
    assert "tok-from-env" not in repr(cfg)


def test_command_type(tmp_path: Path) -> None:
    cfg = load(tmp_path, "type = command\ncommand = /usr/local/bin/page --date %s\n")
    assert cfg.transport == CommandSettings("/usr/local/bin/page --date %s")


def test_url_and_headers_are_expanded(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        """
        type = webhook
        url = https://h/hook?token=%(ENV_HOOK_TOKEN)s
        headers = Authorization: Bearer %(ENV_HOOK_TOKEN)s; X-Team: ops
        """,
    )
    t = cfg.transport
    assert isinstance(t, HttpSettings)
    assert t.url == "https://h/hook?token=tok-from-env"
    assert t.headers == (("Authorization", "Bearer tok-from-env"), ("X-Team", "ops"))
    assert "tok-from-env" not in repr(cfg) and "tok-from-env" not in cfg.describe()


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("url = http://h/\n", "[alert:ops] type: required: one of webhook, slack"),
        ("type = pager\n", "type = 'pager': unknown channel type"),
        ("type = webhook\n", "url: required for type webhook"),
        ("type = webhook\nurl = ftp://h/\n", "url = '***': not an http:// or https:// URL"),
        ("type = webhook\nurl = http://h/\nformat = xml\n", "format = 'xml': 'xml' is not"),
        ("type = webhook\nurl = http://h/\non = FATAL, CRASHED\n", "unknown trigger 'CRASHED'"),
        ("type = webhook\nurl = http://h/\non = FATL\n", "(did you mean FATAL?)"),
        ("type = webhook\nurl = http://h/\non = ,\n", "needs at least one of FATAL"),
        ("type = webhook\nurl = http://h/\nprograms = a:b:c\n", "'a:b:c': not a program"),
        ("type = webhook\nurl = http://h/\nprograms = !*\n", "'!*' would exclude every"),
        ("type = webhook\nurl = http://h/\nrate_limit = 10\n", "not N/SECONDS"),
        ("type = webhook\nurl = http://h/\nrate_limit = 0/5\n", "must be positive"),
        ("type = webhook\nurl = http://h/\nrepeat_interval = -1\n", "must not be negative"),
        ("type = webhook\nurl = http://h/\nretry_max = 0\n", "retry_max = '0': must be pos"),
        ("type = webhook\nurl = http://h/\nspool_max = 0\n", "must be at least 1"),
        ("type = webhook\nurl = http://h/\ntimeout = soon\n", "not a number"),
        ("type = webhook\nurl = http://h/\nlabels = a=b\n", "only for format alertmanager"),
        ("type = alertmanager\nurl = http://h/\nlabels = 1x=b\n", "not a label list"),
        ("type = webhook\nurl = http://h/\nheaders = broken\n", "headers = '***': not a header"),
        ("type = webhook\nurl = http://h/\nverify = no\ntls_ca = x\n", "drop one of them"),
        (
            "type = webhook\nurl = http://h/\nrepeat_intervall = 5\n",
            "(did you mean 'repeat_interval'?)",
        ),
        ("type = webhook\nurl = http://h/\nto = a@x\n", "does not apply to type webhook"),
        ("type = slack\nurl = http://h/\nformat = json\n", "does not apply to type slack"),
        ("type = email\n", "to: required for type email"),
        ("type = email\nto = a@x\ntls = tls13\n", "tls = 'tls13'"),
        ("type = email\nto = a@x\npassword = pw\n", "password = '***': given without user"),
        ("type = email\nto = a@x\ntls_ca = ca.pem\n", "needs tls = starttls or ssl"),
        ("type = email\nto = a@x\nsmtp_port = 70000\n", "must be at most 65535"),
        ("type = command\n", "command: required for type command"),
    ],
)
def test_errors_name_section_key_and_reason(tmp_path: Path, body: str, why: str) -> None:
    text = error(tmp_path, body)
    assert why in text, text
    assert text.startswith(f"{tmp_path / 'supervisord.conf'}: [alert:ops]")


def test_secret_values_are_masked_in_errors(tmp_path: Path) -> None:
    text = error(tmp_path, f"type = slack\nurl = {SLACK.replace('https', 'htps')}\n")
    assert "XyZsecretToken123" not in text and "url = '***'" in text
    text = error(tmp_path, "type = webhook\nurl = http://h/?t=%(ENV_NOPE)s\n")
    assert "cannot be expanded" in text and "url = '***'" in text


def test_two_channels_cannot_share_a_spool(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"\[alert:b\] spool_dir = .*same directory as \[alert:a\]"
    ):
        load_all(
            tmp_path,
            """
            [alert:a]
            type = command
            command = true
            spool_dir = /tmp/s
            [alert:b]
            type = command
            command = true
            spool_dir = /tmp/s
            """,
        )


def test_key_tables_cover_the_documented_keys() -> None:
    assert "spool_dir" in COMMON_KEYS and "repeat_interval" in COMMON_KEYS
    assert TYPE_KEYS[ChannelType.SLACK] < TYPE_KEYS[ChannelType.WEBHOOK]
    assert {"smtp_host", "tls", "password"} <= TYPE_KEYS[ChannelType.EMAIL]


@pytest.mark.parametrize(
    ("text", "matches", "rejects"),
    [
        ("", [("web", "web"), ("db", "x")], []),
        ("*", [("web", "web")], []),
        ("web", [("web", "web"), ("web", "web_01"), ("g", "web")], [("api", "api")]),
        ("db:*", [("db", "a"), ("db", "b")], [("web", "web"), ("dbx", "a")]),
        ("db:a", [("db", "a")], [("db", "b")]),
        ("!db:a", [("web", "web"), ("db", "b")], [("db", "a")]),
        ("db:*, !db:a", [("db", "b")], [("db", "a"), ("web", "web")]),
    ],
)
def test_program_filter(
    text: str, matches: list[tuple[str, str]], rejects: list[tuple[str, str]]
) -> None:
    f = ProgramFilter.parse(text)
    assert all(f.matches(g, n) for g, n in matches)
    assert not any(f.matches(g, n) for g, n in rejects)


def test_rate_limit_parse() -> None:
    assert RateLimit.parse("none") == RateLimit.parse("0") == RateLimit(0)
    assert RateLimit.parse(" 5 / 2.5 ") == RateLimit(5, 2.5)
    assert str(RateLimit(5, 60)) == "5/60" and str(RateLimit()) == "none"
