"""[healthcheck:x] sections: every key, the defaults, every error message, and building."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from healthchecks.breaker import Breaker, BreakerSpec
from healthchecks.config import (
    COMMON_KEYS,
    TYPE_KEYS,
    Action,
    ActionKind,
    CheckType,
    ExecSettings,
    HealthCheckConfig,
    HeartbeatSettings,
    HttpSettings,
    MemorySettings,
    ProgramSelector,
    TcpSettings,
    build_breaker,
    build_check,
    build_probe,
    load_healthchecks,
    signal_name,
    unescape_bytes,
)
from healthchecks.execcheck import ExecCheck
from healthchecks.heartbeat import HeartbeatCheck
from healthchecks.http import HttpCheck, parse_expect_status
from healthchecks.memory import MemoryCheck
from healthchecks.probe import ProbeSpec
from healthchecks.tcp import TcpCheck
from manager.ini import ConfigError, read_ini


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "supervisord.conf"
    path.write_text(dedent(text).lstrip())
    return path


def load_all(tmp_path: Path, text: str) -> list[HealthCheckConfig]:
    return load_healthchecks(read_ini(write(tmp_path, text), environ={"TOKEN_DIR": "/run/t"}))


def load(tmp_path: Path, body: str, name: str = "web") -> HealthCheckConfig:
    """The one healthcheck ``[healthcheck:name]`` with ``body`` as its lines."""
    (cfg,) = load_all(tmp_path, f"[healthcheck:{name}]\n{dedent(body)}")
    return cfg


def error(tmp_path: Path, body: str, name: str = "web") -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, body, name)
    return str(info.value)


HTTP = "program = web\ntype = http\nurl = http://127.0.0.1:8080/healthz\n"


# --- loading and defaults --------------------------------------------------------------------


def test_load_healthchecks_reads_every_section_in_file_order(tmp_path: Path) -> None:
    configs = load_all(
        tmp_path,
        """
        [supervisord]
        [program:web]
        command = /bin/true
        [healthcheck:b]
        program = web
        type = exec
        command = true
        [healthcheck:a]
        program = web
        type = tcp
        port = 80
        [alert:x]
        type = webhook
        """,
    )
    assert [(c.name, c.section, c.type) for c in configs] == [
        ("b", "healthcheck:b", CheckType.EXEC),
        ("a", "healthcheck:a", CheckType.TCP),
    ]


def test_no_healthcheck_sections_is_an_empty_list(tmp_path: Path) -> None:
    assert load_all(tmp_path, "[supervisord]\n") == []


def test_defaults(tmp_path: Path) -> None:
    cfg = load(tmp_path, HTTP)
    assert cfg.name == "web"
    assert cfg.program == ProgramSelector(None, "web")
    assert cfg.probe == ProbeSpec(
        period=10.0, timeout=1.0, initial_delay=0.0, failure_threshold=3, success_threshold=1
    )
    assert cfg.action == Action(ActionKind.RESTART)
    assert cfg.breaker == BreakerSpec(max_restarts=3, restart_window=300.0, cooldown=600.0)
    assert (cfg.fatal_recovery, cfg.fatal_backoff_max) == (False, 300.0)
    assert cfg.file == tmp_path / "supervisord.conf"
    assert cfg.warnings == ()
    assert cfg.check == HttpSettings(url="http://127.0.0.1:8080/healthz")
    assert isinstance(cfg.check, HttpSettings)
    assert (cfg.check.method, cfg.check.headers, str(cfg.check.expect_status)) == (
        "GET",
        (),
        "200-399",
    )
    assert (cfg.check.body_regex, cfg.check.verify, cfg.check.tls_ca) == (None, True, None)


def test_every_common_key(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        """
        program = backend:*
        type = TCP
        port = 6379
        timeout = 0.5
        period = 0.75
        initial_delay = 5
        failure_threshold = 4
        success_threshold = 2
        action = signal:hup
        max_restarts = 5
        restart_window = 60
        breaker_cooldown = 120.5
        fatal_recovery = yes
        fatal_backoff_max = 90
        """,
    )
    assert cfg.program == ProgramSelector("backend", None)
    assert cfg.type is CheckType.TCP
    assert cfg.probe == ProbeSpec(0.75, 0.5, 5.0, 4, 2)
    assert cfg.action == Action(ActionKind.SIGNAL, signal="HUP")
    assert cfg.breaker == BreakerSpec(5, 60.0, 120.5)
    assert (cfg.fatal_recovery, cfg.fatal_backoff_max) == (True, 90.0)


def test_every_key_is_known() -> None:
    documented = {
        "program", "type", "url", "method", "headers", "expect_status", "body_regex", "host",
        "port", "send", "expect", "file", "max_age", "command", "limit", "include_children",
        "consecutive", "timeout", "period", "initial_delay", "failure_threshold",
        "success_threshold", "action", "max_restarts", "restart_window", "breaker_cooldown",
        "fatal_recovery", "fatal_backoff_max", "tls_ca", "tls_cert", "tls_key", "verify",
    }  # fmt: skip
    known = set(COMMON_KEYS).union(*TYPE_KEYS.values())
    assert known == documented


# --- per type ---------------------------------------------------------------------------------


def test_http_every_key(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    cfg = load(
        tmp_path,
        """
        program = web
        type = http
        url = https://127.0.0.1:8443/healthz?deep=1%20x
        method = head
        headers = Authorization: Bearer abc; X-Probe: vigil;
        expect_status = 200,204,300-399
        body_regex = ^ok\\b
        tls_ca = certs/ca.pem
        tls_cert = %(here)s/certs/client.pem
        tls_key = /etc/vigil/client.key
        verify = true
        """,
    )
    assert cfg.check == HttpSettings(
        url="https://127.0.0.1:8443/healthz?deep=1%20x",
        method="HEAD",
        headers=(("Authorization", "Bearer abc"), ("X-Probe", "vigil")),
        expect_status=parse_expect_status("200,204,300-399"),
        body_regex="^ok\\b",
        verify=True,
        tls_ca=tmp_path / "certs" / "ca.pem",
        tls_cert=tmp_path / "certs" / "client.pem",
        tls_key=Path("/etc/vigil/client.key"),
    )


def test_http_verify_false(tmp_path: Path) -> None:
    cfg = load(tmp_path, HTTP + "verify = off\n")
    assert isinstance(cfg.check, HttpSettings) and cfg.check.verify is False


def test_tcp_every_key(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        """
        program = redis
        type = tcp
        host = ::1
        port = 6379
        send = PING\\r\\n
        expect = +PONG
        """,
    )
    assert cfg.check == TcpSettings(port=6379, host="::1", send=b"PING\r\n", expect=b"+PONG")


def test_tcp_defaults(tmp_path: Path) -> None:
    cfg = load(tmp_path, "program = x\ntype = tcp\nport = 1\n")
    assert cfg.check == TcpSettings(port=1, host="127.0.0.1", send=None, expect=None)


def test_heartbeat_every_key(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        "program = worker\ntype = heartbeat\nmax_age = 30\nfile = %(ENV_TOKEN_DIR)s/beat\n",
    )
    assert cfg.check == HeartbeatSettings(max_age=30.0, file=Path("/run/t/beat"))


def test_heartbeat_file_relative_to_the_config_file(tmp_path: Path) -> None:
    cfg = load(tmp_path, "program = w\ntype = heartbeat\nmax_age = 1.5\nfile = run/beat\n")
    assert cfg.check == HeartbeatSettings(max_age=1.5, file=tmp_path / "run" / "beat")


def test_exec_every_key(tmp_path: Path) -> None:
    cfg = load(tmp_path, "program = w\ntype = exec\ncommand = curl -fs http://x/%s || exit 1\n")
    assert cfg.check == ExecSettings(command="curl -fs http://x/%s || exit 1")


def test_memory_every_key(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        """
        program = w
        type = memory
        limit = 200MB
        include_children = true
        consecutive = 3
        """,
    )
    assert cfg.check == MemorySettings(limit=200 * 1024**2, include_children=True, consecutive=3)


def test_memory_defaults(tmp_path: Path) -> None:
    cfg = load(tmp_path, "program = w\ntype = memory\nlimit = 1024\n")
    assert cfg.check == MemorySettings(limit=1024, include_children=False, consecutive=1)


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("restart", Action(ActionKind.RESTART)),
        ("STOP", Action(ActionKind.STOP)),
        ("none", Action(ActionKind.NONE)),
        ("signal:USR1", Action(ActionKind.SIGNAL, signal="USR1")),
        ("signal:SIGTERM", Action(ActionKind.SIGNAL, signal="TERM")),
        ("signal:9", Action(ActionKind.SIGNAL, signal="KILL")),
        ("exec:/bin/notify --who %s", Action(ActionKind.EXEC, command="/bin/notify --who %s")),
    ],
)  # fmt: skip
def test_action_values(tmp_path: Path, text: str, action: Action) -> None:
    assert load(tmp_path, HTTP + f"action = {text}\n").action == action


def test_action_str_round_trips() -> None:
    for text in ("restart", "stop", "none", "signal:HUP", "exec:echo hi"):
        assert str(Action.parse(text)) == text


def test_warning_when_timeout_is_not_shorter_than_period(tmp_path: Path) -> None:
    cfg = load(tmp_path, HTTP + "timeout = 2\nperiod = 2\n")
    conf = tmp_path / "supervisord.conf"
    assert cfg.warnings == (
        f"{conf}: [healthcheck:web] timeout = 2 is not shorter than period = 2: "
        "a hanging check delays the next probe",
    )
    assert load(tmp_path, HTTP + "timeout = 1.9\nperiod = 2\n").warnings == ()


# --- errors: every message ------------------------------------------------------------------


def test_error_names_file_section_key_and_value(tmp_path: Path) -> None:
    conf = tmp_path / "supervisord.conf"
    assert error(tmp_path, HTTP + "period = soon\n") == (
        f"{conf}: [healthcheck:web] period = 'soon': not a number"
    )


def test_error_section_without_a_name(tmp_path: Path) -> None:
    msg = error(tmp_path, HTTP, name="")
    assert msg.endswith("[healthcheck:]: a healthcheck section needs a name")


E = "[healthcheck:web] "

ERRORS = [
    # (body, message after "<file>: ")
    ("type = http\nurl = http://x/\n",
     E + "program: required: the program to probe (name, group:name or group:*)"),
    ("program = web\n", E + "type: required: one of http, tcp, heartbeat, exec, memory"),
    ("program = web\ntype = ftp\n",
     E + "type = 'ftp': unknown check type; one of http, tcp, heartbeat, exec, memory"),
    ("program =\ntype = http\n", E + "program = '': must not be empty"),
    ("program = a:b:c\ntype = exec\ncommand = x\n",
     E + "program = 'a:b:c': not a program name (name, group:name or group:*)"),
    ("program = web app\ntype = exec\ncommand = x\n",
     E + "program = 'web app': not a program name (name, group:name or group:*)"),
    ("program = :web\ntype = exec\ncommand = x\n",
     E + "program = ':web': not a program name (name, group:name or group:*)"),
    ("program = *\ntype = exec\ncommand = x\n",
     E + "program = '*': not a program name (name, group:name or group:*)"),
    ("program = g:web*\ntype = exec\ncommand = x\n",
     E + "program = 'g:web*': not a program name (name, group:name or group:*)"),
    (HTTP + "peroid = 5\n",
     E + "peroid = '5': unknown key for a http healthcheck (did you mean 'period'?)"),
    (HTTP + "colour = red\n", E + "colour = 'red': unknown key for a http healthcheck"),
    ("program = w\ntype = tcp\nport = 1\nurl = http://x/\n",
     E + "url = 'http://x/': does not apply to type tcp (a key of http checks)"),
    (HTTP + "action = reboot\n",
     E + "action = 'reboot': unknown action; one of restart, stop, signal:NAME, "
     "exec:COMMAND, none"),
    (HTTP + "action = restart:now\n",
     E + "action = 'restart:now': unknown action; one of restart, stop, signal:NAME, "
     "exec:COMMAND, none"),
    (HTTP + "action = signal:WAKE\n", E + "action = 'signal:WAKE': unknown signal 'WAKE'"),
    (HTTP + "action = exec:\n",
     E + "action = 'exec:': exec: needs a command, as in exec:/usr/local/bin/notify"),
    # http
    ("program = w\ntype = http\n", E + "url: required for type http"),
    ("program = w\ntype = http\nurl = 127.0.0.1:80/x\n",
     E + "url = '127.0.0.1:80/x': not an http:// or https:// URL"),
    (HTTP + "method = GET /\n", E + "method = 'GET /': not an HTTP method"),
    (HTTP + "headers = X-Probe 1\n",
     E + "headers = 'X-Probe 1': not a 'Name: value' header: 'X-Probe 1'"),
    (HTTP + "expect_status = 2xx\n",
     E + "expect_status = '2xx': not a status code or range: '2xx'"),
    (HTTP + "body_regex = (\n",
     E + "body_regex = '(': not a valid regular expression: missing ), unterminated subpattern "
     "at position 0"),
    (HTTP + "verify = sometimes\n",
     E + "verify = 'sometimes': not a valid boolean value: 'sometimes'"),
    (HTTP + "verify = false\ntls_ca = ca.pem\n",
     E + "tls_ca = 'ca.pem': given but verify = false; drop one of them"),
    (HTTP + "tls_key = k.pem\n", E + "tls_key = 'k.pem': needs tls_cert (the client certificate)"),
    # tcp
    ("program = w\ntype = tcp\n", E + "port: required for type tcp"),
    ("program = w\ntype = tcp\nport = http\n", E + "port = 'http': not an integer"),
    ("program = w\ntype = tcp\nport = 70000\n", E + "port = '70000': must be within 1-65535"),
    ("program = w\ntype = tcp\nport = 0\n", E + "port = '0': must be within 1-65535"),
    ("program = w\ntype = tcp\nport = 1\nsend = \\q\n",
     E + "send = '\\\\q': bad escape '\\\\q'; use \\r, \\n, \\t, \\0, \\\\ or \\xHH"),
    ("program = w\ntype = tcp\nport = 1\nexpect = \\x4\n",
     E + "expect = '\\\\x4': bad escape '\\\\x'; use \\r, \\n, \\t, \\0, \\\\ or \\xHH"),
    # heartbeat
    ("program = w\ntype = heartbeat\n", E + "max_age: required for type heartbeat"),
    ("program = w\ntype = heartbeat\nmax_age = 0\n", E + "max_age = '0': must be positive"),
    # exec
    ("program = w\ntype = exec\n", E + "command: required for type exec"),
    # memory
    ("program = w\ntype = memory\n", E + "limit: required for type memory"),
    ("program = w\ntype = memory\nlimit = 10M\n",
     E + "limit = '10M': not a byte size (an integer with optional KB, MB or GB suffix)"),
    ("program = w\ntype = memory\nlimit = 0MB\n", E + "limit = '0MB': must be positive"),
    ("program = w\ntype = memory\nlimit = 1\nconsecutive = 0\n",
     E + "consecutive = '0': must be at least 1"),
    ("program = w\ntype = memory\nlimit = 1\ninclude_children = all\n",
     E + "include_children = 'all': not a valid boolean value: 'all'"),
    # numbers shared by all types
    (HTTP + "timeout = 0\n", E + "timeout = '0': must be positive"),
    (HTTP + "period = -1\n", E + "period = '-1': must be positive"),
    (HTTP + "period = inf\n", E + "period = 'inf': not a number"),
    (HTTP + "initial_delay = -1\n", E + "initial_delay = '-1': must be zero or more"),
    (HTTP + "failure_threshold = 0\n", E + "failure_threshold = '0': must be at least 1"),
    (HTTP + "success_threshold = 1.5\n", E + "success_threshold = '1.5': not an integer"),
    (HTTP + "max_restarts = 0\n", E + "max_restarts = '0': must be at least 1"),
    (HTTP + "restart_window = 0\n", E + "restart_window = '0': must be positive"),
    (HTTP + "breaker_cooldown = -5\n", E + "breaker_cooldown = '-5': must be positive"),
    (HTTP + "fatal_recovery = maybe\n",
     E + "fatal_recovery = 'maybe': not a valid boolean value: 'maybe'"),
    (HTTP + "fatal_backoff_max = 0\n", E + "fatal_backoff_max = '0': must be positive"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "message"), ERRORS, ids=[m for _, m in ERRORS])
def test_error_message(tmp_path: Path, body: str, message: str) -> None:
    assert error(tmp_path, body) == f"{tmp_path / 'supervisord.conf'}: {message}"


def test_default_section_keys_count_as_keys(tmp_path: Path) -> None:
    msg = error(tmp_path, HTTP.replace("[", "") + "\n[DEFAULT]\nenvironment = A=1\n")
    assert msg.endswith("environment = 'A=1': unknown key for a http healthcheck")


# --- value helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "group", "process", "matches", "misses"),
    [
        ("web", None, "web", [("web", "web_00"), ("web", "web"), ("g", "web")], [("g", "api")]),
        ("g:web", "g", "web", [("g", "web")], [("web", "web"), ("g", "api")]),
        ("g:*", "g", None, [("g", "web"), ("g", "api")], [("h", "web")]),
    ],
)
def test_program_selector(
    text: str,
    group: str | None,
    process: str | None,
    matches: list[tuple[str, str]],
    misses: list[tuple[str, str]],
) -> None:
    selector = ProgramSelector.parse(text)
    assert (selector.group, selector.name, str(selector)) == (group, process, text)
    assert all(selector.matches(g, n) for g, n in matches)
    assert not any(selector.matches(g, n) for g, n in misses)


def test_unescape_bytes() -> None:
    assert unescape_bytes(r"a\r\n\t\0\\\x41é") == b"a\r\n\t\0\\A" + "é".encode()


@pytest.mark.parametrize(("text", "name"), [("hup", "HUP"), ("SIGUSR2", "USR2"), ("15", "TERM")])
def test_signal_name(text: str, name: str) -> None:
    assert signal_name(text) == name


# --- building ---------------------------------------------------------------------------------


def test_build_http_check(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        HTTP + "timeout = 0.5\nmethod = post\nheaders = A: 1\nexpect_status = 204\n"
        "body_regex = ok\ntls_ca = ca.pem\ntls_cert = c.pem\ntls_key = k.pem\n",
    )
    check = build_check(cfg)
    assert isinstance(check, HttpCheck)
    try:
        assert (check.url, check.method, check.timeout) == (
            "http://127.0.0.1:8080/healthz",
            "POST",
            0.5,
        )
        assert check.headers["A"] == "1"
        assert str(check.expect_status) == "204"
        assert check.body_regex is not None and check.body_regex.pattern == b"ok"
        assert check.verify == str(tmp_path / "ca.pem")
        assert check.cert == (str(tmp_path / "c.pem"), str(tmp_path / "k.pem"))
    finally:
        check.close()


def test_build_http_check_verify_flag(tmp_path: Path) -> None:
    check = build_check(load(tmp_path, HTTP + "verify = false\n"))
    assert isinstance(check, HttpCheck)
    check.close()
    assert check.verify is False


def test_build_tcp_check(tmp_path: Path) -> None:
    cfg = load(
        tmp_path, "program = r\ntype = tcp\nport = 6379\nsend = P\nexpect = Q\ntimeout = 2\n"
    )
    check = build_check(cfg)
    assert isinstance(check, TcpCheck)
    assert (check.host, check.port, check.send, check.expect, check.timeout) == (
        "127.0.0.1",
        6379,
        b"P",
        b"Q",
        2.0,
    )


def test_build_heartbeat_check(tmp_path: Path) -> None:
    cfg = load(tmp_path, "program = w\ntype = heartbeat\nmax_age = 7\nfile = beat\n")
    check = build_check(cfg, clock=lambda: 5.0, wall_clock=lambda: 0.0)
    assert isinstance(check, HeartbeatCheck)
    assert (check.max_age, check.file) == (7.0, tmp_path / "beat")


def test_build_exec_check(tmp_path: Path) -> None:
    check = build_check(load(tmp_path, "program = w\ntype = exec\ncommand = exit 0\ntimeout = 3\n"))
    assert isinstance(check, ExecCheck)
    assert (check.argv, check.timeout) == (("/bin/sh", "-c", "exit 0"), 3.0)


def test_build_memory_check(tmp_path: Path) -> None:
    cfg = load(tmp_path, "program = w\ntype = memory\nlimit = 1KB\nconsecutive = 2\n")
    check = build_check(cfg, pid_source=lambda: 1, proc=tmp_path)
    assert isinstance(check, MemoryCheck)
    assert (check.limit_bytes, check.consecutive, check.proc) == (1024, 2, tmp_path)


def test_build_memory_check_needs_a_pid_source(tmp_path: Path) -> None:
    cfg = load(tmp_path, "program = w\ntype = memory\nlimit = 1KB\n")
    with pytest.raises(ValueError, match=r"\[healthcheck:web\] a memory check needs a pid_source"):
        build_check(cfg)


def test_build_probe_and_breaker(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        HTTP + "period = 3\nmax_restarts = 1\nrestart_window = 9\nbreaker_cooldown = 4\n"
        "fatal_backoff_max = 25\n",
    )
    probe = build_probe(cfg, clock=lambda: 0.0)
    assert probe.spec == cfg.probe
    seen: list[object] = []
    breaker = build_breaker(cfg, clock=lambda: 0.0, on_transition=seen.append)
    assert isinstance(breaker, Breaker)
    assert breaker.spec == BreakerSpec(1, 9.0, 4.0)
    assert breaker.backoff.maximum == 25.0
    breaker.record_restart(0.0)
    assert not breaker.allow_restart(1.0)
    assert len(seen) == 1
