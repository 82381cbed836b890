"""Config value parsers: accepted spellings, supervisord's wording, parity with supervisord."""

from __future__ import annotations

import os
import pwd
import signal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from supervisor import datatypes as sd

from manager.datatypes import (
    LOG_LEVELS,
    AutoRestart,
    LogKind,
    LogTarget,
    auto_restart,
    environment,
    existing_directory,
    existing_dirpath,
    exit_codes,
    log_target,
    logging_level,
    octal,
    port,
    process_name_ok,
    signal_number,
    user_group,
    user_name,
)

# --- signal_number ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("TERM", signal.SIGTERM),
        ("term", signal.SIGTERM),
        ("SIGTERM", signal.SIGTERM),
        ("sigTerm", signal.SIGTERM),
        ("  SIGINT ", signal.SIGINT),
        ("KILL", signal.SIGKILL),
        ("hup", signal.SIGHUP),
        ("USR2", signal.SIGUSR2),
        ("9", 9),
        (" 15 ", 15),
        ("SIGIOT", signal.SIGABRT),
    ],
)
def test_signal_number_accepts_names_with_or_without_sig_any_case_and_numbers(
    text: str, number: int
) -> None:
    assert signal_number(text) == number


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("FOO", "value 'FOO' is not a valid signal name"),
        ("SIG TERM", "value 'SIG TERM' is not a valid signal name"),
        ("", "value '' is not a valid signal name"),
        ("99", "value '99' is not a valid signal number"),
        ("-15", "value '-15' is not a valid signal number"),
    ],
)
def test_signal_number_rejects_with_supervisord_wording(text: str, why: str) -> None:
    with pytest.raises(ValueError) as info:
        signal_number(text)
    assert str(info.value) == why


@pytest.mark.parametrize("text", ["0", "SIG_DFL", "_IGN", "SIG_BLOCK"])
def test_signal_number_rejects_non_signals_that_supervisord_lets_through(text: str) -> None:
    with pytest.raises(ValueError):
        signal_number(text)


@pytest.mark.parametrize("sig", list(signal.Signals))
def test_signal_number_agrees_with_supervisord_on_every_signal(sig: signal.Signals) -> None:
    for text in (sig.name, sig.name.removeprefix("SIG").lower(), str(int(sig))):
        assert signal_number(text) == int(sd.signal_number(text))


# --- exit_codes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("0", {0}),
        ("0,2", {0, 2}),
        ("1, 2 ,255", {1, 2, 255}),
        ("3,3", {3}),
        ("", set()),
    ],
)
def test_exit_codes_accepts_comma_separated_0_to_255(text: str, codes: set[int]) -> None:
    assert exit_codes(text) == frozenset(codes)
    assert exit_codes(text) == frozenset(sd.list_of_exitcodes(text))


@pytest.mark.parametrize("text", ["0,256", "-1", "a", "0,,1", "1.0", "0;1"])
def test_exit_codes_rejects_with_supervisord_wording(text: str) -> None:
    with pytest.raises(ValueError) as info:
        exit_codes(text)
    assert str(info.value) == f"not a valid list of exit codes: {text!r}"
    with pytest.raises(ValueError):
        sd.list_of_exitcodes(text)


# --- octal ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [("022", 0o22), ("0700", 0o700), ("700", 0o700)])
def test_octal_parses_base_8(text: str, value: int) -> None:
    assert octal(text) == value == sd.octal_type(text)


@pytest.mark.parametrize("text", ["abc", "8", "0x10", ""])
def test_octal_rejects_with_supervisord_wording(text: str) -> None:
    with pytest.raises(ValueError) as info:
        octal(text)
    assert str(info.value) == f"{text} can not be converted to an octal type"


# --- auto_restart -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", AutoRestart.TRUE),
        ("YES", AutoRestart.TRUE),
        ("on", AutoRestart.TRUE),
        ("1", AutoRestart.TRUE),
        ("false", AutoRestart.FALSE),
        ("No", AutoRestart.FALSE),
        ("off", AutoRestart.FALSE),
        ("0", AutoRestart.FALSE),
        ("unexpected", AutoRestart.UNEXPECTED),
        ("UNEXPECTED", AutoRestart.UNEXPECTED),
    ],
)
def test_auto_restart_accepts_unexpected_and_boolean_spellings(
    text: str, value: AutoRestart
) -> None:
    assert auto_restart(text) is value
    theirs = {
        sd.RestartUnconditionally: AutoRestart.TRUE,
        sd.RestartWhenExitUnexpected: AutoRestart.UNEXPECTED,
        False: AutoRestart.FALSE,
    }
    assert theirs[sd.auto_restart(text)] is value


@pytest.mark.parametrize(("text", "shown"), [("x", "x"), ("Maybe", "maybe"), ("", "")])
def test_auto_restart_rejects_naming_the_lowercased_value(text: str, shown: str) -> None:
    with pytest.raises(ValueError) as info:
        auto_restart(text)
    assert str(info.value) == f"invalid 'autorestart' value {shown!r}"


# --- environment ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "env"),
    [
        ("", {}),
        ("A=1", {"A": "1"}),
        ('KEY=val,KEY2="val 2"', {"KEY": "val", "KEY2": "val 2"}),
        ("A='x,y',B=2", {"A": "x,y", "B": "2"}),
        ("PATH=/usr/bin:/bin,PY=python3.11", {"PATH": "/usr/bin:/bin", "PY": "python3.11"}),
        ("A=(x)+-./:_", {"A": "(x)+-./:_"}),
        ("A=x y", {"A": "x"}),
        ("A=1,", {"A": "1"}),
        ("A=x#comment", {"A": "x"}),
        ("A=1 , B=2", {"A": "1", "B": "2"}),
        ("""A="'quoted'\"""", {"A": "quoted"}),
        ('A="x"y', {"A": "x"}),
    ],
)
def test_environment_parses_supervisord_syntax_and_quirks(text: str, env: dict[str, str]) -> None:
    assert environment(text) == env
    assert sd.dict_of_key_value_pairs(text) == env


@pytest.mark.parametrize("text", ["A=", "A", "A=1,B", "A=a@b", "=1", "A=1 B=2"])
def test_environment_rejects_incomplete_pairs(text: str) -> None:
    with pytest.raises(ValueError) as info:
        environment(text)
    assert str(info.value) == f"Unexpected end of key/value pairs in value '{text}'"


def test_environment_rejects_an_unclosed_quote() -> None:
    with pytest.raises(ValueError) as info:
        environment('A="x')
    assert str(info.value) == "No closing quotation"


@given(st.text(alphabet="AB1_=,'\" \t\n#@:/.x%-", max_size=30))
def test_environment_agrees_with_supervisord_on_any_text(text: str) -> None:
    try:
        theirs: dict[str, str] | None = sd.dict_of_key_value_pairs(text)
    except ValueError:
        theirs = None
    try:
        ours: dict[str, str] | None = environment(text)
    except ValueError:
        ours = None
    assert ours == theirs


# --- names ------------------------------------------------------------------------------------


def test_process_name_ok_returns_the_stripped_name() -> None:
    assert process_name_ok(" web_1 ") == "web_1"


@pytest.mark.parametrize(("name", "char"), [("a b", " "), ("a:b", ":"), ("a/b", "/")])
def test_process_name_ok_rejects_space_colon_slash(name: str, char: str) -> None:
    with pytest.raises(ValueError) as info:
        process_name_ok(name)
    assert str(info.value) == f"Invalid name: {name!r} because of character: {char!r}"


# --- port -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("9001", ("", 9001)),
        ("127.0.0.1:9001", ("127.0.0.1", 9001)),
        (":9001", ("", 9001)),
        ("*:9001", ("", 9001)),
        ("LocalHost:1", ("localhost", 1)),
        ("[::1]:65535", ("[::1]", 65535)),
    ],
)
def test_port_accepts_host_port_forms(text: str, address: tuple[str, int]) -> None:
    assert port(text) == address == sd.inet_address(text)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("abc", "not a valid port number: 'abc'"),
        ("host:abc", "not a valid port number: 'abc'"),
        ("0", "not a valid port number: '0'"),
        ("65536", "not a valid port number: '65536'"),
        ("host:", "no port number specified in 'host:'"),
    ],
)
def test_port_rejects_bad_ports(text: str, why: str) -> None:
    with pytest.raises(ValueError) as info:
        port(text)
    assert str(info.value) == why


# --- users ------------------------------------------------------------------------------------


def _unused_uid() -> int:
    used = {p.pw_uid for p in pwd.getpwall()}
    return next(uid for uid in range(54321, 65000) if uid not in used)


def test_user_name_accepts_existing_names_and_uids() -> None:
    assert user_name("root") == "root"
    assert user_name("0") == "0"


def test_user_name_rejects_unknown_users() -> None:
    with pytest.raises(ValueError) as info:
        user_name("no-such-user-vigil")
    assert str(info.value) == "Invalid user name no-such-user-vigil"
    uid = str(_unused_uid())
    with pytest.raises(ValueError) as info:
        user_name(uid)
    assert str(info.value) == f"Invalid user id {uid}"


def test_user_group_resolves_user_and_optional_group() -> None:
    assert user_group("root") == (0, -1)
    assert user_group("root:root") == (0, 0)
    assert user_group("0:0") == (0, 0)


@pytest.mark.parametrize("text", ["no-such-user-vigil", "root:no-such-group-vigil", ""])
def test_user_group_rejects_unknown_parts(text: str) -> None:
    with pytest.raises(ValueError) as info:
        user_group(text)
    assert str(info.value) == f"Invalid user:group definition {text}"


# --- paths and levels -------------------------------------------------------------------------


def test_existing_directory_is_checked_relative_to_cwd(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    assert existing_directory("logs", cwd=tmp_path) == "logs"
    assert existing_directory(str(tmp_path), cwd=Path("/")) == str(tmp_path)
    with pytest.raises(ValueError) as info:
        existing_directory("nope", cwd=tmp_path)
    assert str(info.value) == "nope is not an existing directory"


def test_existing_dirpath_checks_only_the_directory_part(tmp_path: Path) -> None:
    assert existing_dirpath("x.log", cwd=tmp_path) == "x.log"
    assert existing_dirpath(f"{tmp_path}/x.log", cwd=Path("/")) == f"{tmp_path}/x.log"
    assert existing_dirpath("~/x.log", cwd=tmp_path) == os.path.expanduser("~/x.log")
    with pytest.raises(ValueError) as info:
        existing_dirpath("nope/x.log", cwd=tmp_path)
    assert str(info.value) == "The directory named as part of the path nope/x.log does not exist"


def test_path_too_long_to_look_up_is_a_value_error_not_an_oserror(tmp_path: Path) -> None:
    """Found by fuzzing: ``logfile = %(here)999s/x`` made ``Path.is_dir`` raise ENAMETOOLONG."""
    long_name = " " * 1000 + "/logs"
    with pytest.raises(ValueError, match="File name too long: cannot check the path  "):
        existing_directory(long_name, cwd=tmp_path)
    with pytest.raises(ValueError, match="File name too long: cannot check the path  "):
        existing_dirpath(long_name + "/x.log", cwd=tmp_path)


def test_a_file_where_a_directory_is_expected_is_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match="f/sub is not an existing directory"):
        existing_directory("f/sub", cwd=tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        existing_dirpath("f/x.log", cwd=tmp_path)


@pytest.mark.parametrize("level", LOG_LEVELS)
def test_logging_level_accepts_supervisord_names_any_case(level: str) -> None:
    assert logging_level(level.upper()) == level
    sd.logging_level(level)


def test_logging_level_rejects_warning_as_supervisord_does() -> None:
    with pytest.raises(ValueError) as info:
        logging_level("warning")
    assert str(info.value) == "bad logging level name 'warning'"


# --- log targets ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("AUTO", LogTarget.AUTO),
        ("auto", LogTarget.AUTO),
        ("NONE", LogTarget.NONE),
        ("off", LogTarget.NONE),
        ("OFF", LogTarget.NONE),
        ("", LogTarget.NONE),
        ("syslog", LogTarget(LogKind.SYSLOG)),
        ("SYSLOG", LogTarget(LogKind.SYSLOG)),
        ("/var/log/a.log", LogTarget(LogKind.FILE, "/var/log/a.log")),
        ("~/a.log", LogTarget(LogKind.FILE, os.path.expanduser("~/a.log"))),
    ],
)
def test_log_target_keywords_and_paths(text: str, target: LogTarget) -> None:
    assert log_target(text) == target


def test_log_target_helpers() -> None:
    assert LogTarget.AUTO.is_auto and not LogTarget.NONE.is_auto
    assert LogTarget.NONE.path is None
    assert str(LogTarget.AUTO) == "AUTO"
    assert str(log_target("/x.log")) == "/x.log"
