"""supervisord.conf -> Config: defaults, one-line errors, expansions, groups, pools, reload diff.

The last tests load the same files with supervisord 4.3's own parser and compare.
"""

from __future__ import annotations

import os
import platform
import pwd
import signal
import socket
import tempfile
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from manager.config import (
    DEFAULT_RESULT_HANDLER,
    MAX_IDENTIFIER,
    MAX_NUMPROCS,
    Config,
    GroupConfig,
    InetHttpServerConfig,
    InetSocketConfig,
    LogConfig,
    PoolConfig,
    ProcessConfig,
    SupervisorctlConfig,
    SupervisordConfig,
    UnixHttpServerConfig,
    UnixSocketConfig,
    diff_groups,
    load_config,
)
from manager.datatypes import AutoRestart, LogKind, LogTarget
from manager.events import EventType
from manager.ini import ConfigError

MB = 1024 * 1024
HOST = "node1"
INCOMPLETE = (
    "Section [{}] contains incomplete authentication: If a username or a password is "
    "specified, both the username and password must be specified"
)


def write(tmp_path: Path, text: str, name: str = "supervisord.conf") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def load(tmp_path: Path, text: str, *, environ: dict[str, str] | None = None) -> Config:
    path = write(tmp_path, text)
    return load_config(path, environ=environ or {}, host_node_name=HOST, cwd=tmp_path)


def error(tmp_path: Path, text: str, *, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, environ=environ)
    message = str(info.value)
    assert "\n" not in message
    return message


def only_process(config: Config) -> ProcessConfig:
    (group,) = config.groups
    (process,) = group.processes
    return process


# --- [supervisord] ----------------------------------------------------------------------------


def test_supervisord_defaults_for_every_key(tmp_path: Path) -> None:
    config = load(tmp_path, "[supervisord]\n")
    assert config.supervisord == SupervisordConfig(
        logfile=str(tmp_path / "supervisord.log"),
        logfile_maxbytes=50 * MB,
        logfile_backups=10,
        loglevel="info",
        pidfile=str(tmp_path / "supervisord.pid"),
        umask=0o022,
        nodaemon=False,
        silent=False,
        minfds=1024,
        minprocs=200,
        nocleanup=False,
        childlogdir=tempfile.gettempdir(),
        user=None,
        directory=None,
        strip_ansi=False,
        environment={},
        identifier="supervisor",
    )
    assert config.groups == () and config.pools == ()
    assert config.unix_http_server is None and config.inet_http_servers == ()
    assert config.supervisorctl == SupervisorctlConfig(
        "http://localhost:9001", None, None, "supervisor", None
    )
    assert config.path == tmp_path / "supervisord.conf"
    assert config.warnings == ()


def test_supervisord_every_key_set(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    config = load(
        tmp_path,
        """
        [supervisord]
        logfile = logs/main.log
        logfile_maxbytes = 1 KB
        logfile_backups = 3
        loglevel = BLATHER
        pidfile = %(here)s/logs/s.pid
        umask = 077
        nodaemon = true
        silent = yes
        minfds = 4096
        minprocs = 10
        nocleanup = on
        childlogdir = logs
        user = root
        directory = %(here)s
        strip_ansi = 1
        environment = A="1 2",HOST=%(host_node_name)s
        identifier = vigil-%(ENV_X)s
        """,
        environ={"X": "x"},
    )
    assert config.supervisord == SupervisordConfig(
        logfile=str(tmp_path / "logs" / "main.log"),
        logfile_maxbytes=1024,
        logfile_backups=3,
        loglevel="blather",
        pidfile=str(tmp_path / "logs" / "s.pid"),
        umask=0o077,
        nodaemon=True,
        silent=True,
        minfds=4096,
        minprocs=10,
        nocleanup=True,
        childlogdir="logs",
        user="root",
        directory=str(tmp_path),
        strip_ansi=True,
        environment={"A": "1 2", "HOST": HOST},
        identifier="vigil-x",
    )


def test_supervisord_logfile_syslog_is_kept_as_is(tmp_path: Path) -> None:
    config = load(tmp_path, "[supervisord]\nlogfile = syslog\n")
    assert config.supervisord.logfile == "syslog"


@pytest.mark.parametrize(
    "level", ["critical", "error", "warn", "info", "debug", "trace", "blather"]
)
def test_supervisord_loglevel_accepts_supervisord_names(tmp_path: Path, level: str) -> None:
    assert load(tmp_path, f"[supervisord]\nloglevel={level}\n").supervisord.loglevel == level


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("loglevel", "warning", "bad logging level name 'warning'"),
        ("nodaemon", "maybe", "not a valid boolean value: 'maybe'"),
        ("minfds", "10k", "invalid literal for int() with base 10: '10k'"),
        ("umask", "9", "9 can not be converted to an octal type"),
        (
            "logfile",
            "/nonexistent-vigil/s.log",
            "The directory named as part of the path /nonexistent-vigil/s.log does not exist",
        ),
        (
            "pidfile",
            "nope/s.pid",
            "The directory named as part of the path nope/s.pid does not exist",
        ),
        ("childlogdir", "nope", "nope is not an existing directory"),
        ("directory", "nope", "nope is not an existing directory"),
        ("user", "no-such-user-vigil", "Invalid user name no-such-user-vigil"),
        ("environment", "A=", "Unexpected end of key/value pairs in value 'A='"),
    ],
)
def test_supervisord_rejects_with_one_line_naming_file_section_key_value(
    tmp_path: Path, key: str, value: str, why: str
) -> None:
    message = error(tmp_path, f"[supervisord]\n{key} = {value}\n")
    assert message == f"{tmp_path / 'supervisord.conf'}: [supervisord] {key} = {value!r}: {why}"


def test_a_file_without_supervisord_section_is_rejected(tmp_path: Path) -> None:
    message = error(tmp_path, "[program:a]\ncommand=/bin/true\n")
    assert message == (
        f"{tmp_path / 'supervisord.conf'}: .ini file does not include supervisord section"
    )


def test_unknown_sections_and_keys_are_ignored(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        [supervisord]
        no_such_key = 1
        [healthcheck:web]
        url = http://localhost/
        [alert:mail]
        to = ops@example.com
        [metrics]
        port = 9100
        [rpcinterface:supervisor]
        supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
        [program:a]
        command = /bin/true
        favourite_colour = blue
        """,
    )
    assert [g.name for g in config.all_groups()] == ["a"]


def test_loading_creates_nothing(tmp_path: Path) -> None:
    before = sorted(tmp_path.rglob("*"))
    load(
        tmp_path,
        """
        [unix_http_server]
        file = %(here)s/s.sock
        [supervisord]
        logfile = %(here)s/s.log
        childlogdir = %(here)s
        [program:a]
        command = /bin/true
        stdout_logfile = %(here)s/a.log
        """,
    )
    assert sorted(tmp_path.rglob("*")) == [*before, tmp_path / "supervisord.conf"]


# --- [program:x] ------------------------------------------------------------------------------


def test_program_defaults_for_every_key(tmp_path: Path) -> None:
    process = only_process(load(tmp_path, "[supervisord]\n[program:web]\ncommand = /bin/cat\n"))
    assert process == ProcessConfig(
        name="web",
        group="web",
        program="web",
        command="/bin/cat",
        argv=("/bin/cat",),
        process_num=0,
        numprocs=1,
        priority=999,
        autostart=True,
        autorestart=AutoRestart.UNEXPECTED,
        startsecs=1.0,
        startretries=3,
        exitcodes=frozenset({0}),
        stopsignal=signal.SIGTERM,
        stopwaitsecs=10.0,
        stopasgroup=False,
        killasgroup=False,
        user=None,
        directory=None,
        umask=None,
        environment={},
        serverurl=None,
        redirect_stderr=False,
        stdout=LogConfig(LogTarget.AUTO, 50 * MB, 10, 0, False, False),
        stderr=LogConfig(LogTarget.AUTO, 50 * MB, 10, 0, False, False),
        is_listener=False,
    )
    assert process.namespec == "web"
    assert load(tmp_path, "[supervisord]\n[program:web]\ncommand=x\n").groups[0].priority == 999


def test_program_every_key_set(tmp_path: Path) -> None:
    process = only_process(
        load(
            tmp_path,
            """
            [supervisord]
            [program:web]
            command = /usr/bin/env "a b" c
            priority = 5
            autostart = false
            autorestart = true
            startsecs = 0.5
            startretries = 7
            exitcodes = 0,2
            stopsignal = int
            stopwaitsecs = 3
            stopasgroup = true
            user = root
            directory = /tmp
            umask = 002
            environment = A=1,B="two words"
            serverurl = http://127.0.0.1:9001
            stdout_logfile = %(here)s/out.log
            stdout_logfile_maxbytes = 1MB
            stdout_logfile_backups = 2
            stdout_capture_maxbytes = 1KB
            stdout_events_enabled = true
            stdout_syslog = true
            stderr_logfile = NONE
            stderr_logfile_maxbytes = 0
            stderr_logfile_backups = 0
            stderr_capture_maxbytes = 2KB
            stderr_events_enabled = yes
            stderr_syslog = no
            """,
        )
    )
    assert process == ProcessConfig(
        name="web",
        group="web",
        program="web",
        command='/usr/bin/env "a b" c',
        argv=("/usr/bin/env", "a b", "c"),
        priority=5,
        autostart=False,
        autorestart=AutoRestart.TRUE,
        startsecs=0.5,
        startretries=7,
        exitcodes=frozenset({0, 2}),
        stopsignal=signal.SIGINT,
        stopwaitsecs=3.0,
        stopasgroup=True,
        killasgroup=True,
        user="root",
        directory="/tmp",
        umask=0o002,
        environment={"A": "1", "B": "two words"},
        serverurl="http://127.0.0.1:9001",
        stdout=LogConfig(
            LogTarget(LogKind.FILE, str(tmp_path / "out.log")), MB, 2, 1024, True, True
        ),
        stderr=LogConfig(LogTarget.NONE, 0, 0, 2048, True, False),
    )


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("autorestart", "x", "invalid 'autorestart' value 'x'"),
        ("stopsignal", "FOO", "value 'FOO' is not a valid signal name"),
        ("exitcodes", "0,256", "not a valid list of exit codes: '0,256'"),
        ("autostart", "maybe", "not a valid boolean value: 'maybe'"),
        ("startretries", "10k", "invalid literal for int() with base 10: '10k'"),
        ("numprocs", "two", "invalid literal for int() with base 10: 'two'"),
        ("startsecs", "soon", "not a number"),
        ("stopwaitsecs", "inf", "not a number"),
        (
            "stdout_logfile_maxbytes",
            "10k",
            "not a byte size (an integer with optional KB, MB or GB suffix)",
        ),
        ("umask", "8", "8 can not be converted to an octal type"),
        ("user", "no-such-user-vigil", "Invalid user name no-such-user-vigil"),
        ("environment", "A=", "Unexpected end of key/value pairs in value 'A='"),
        ("command", '/bin/echo "oops', "command cannot be split: No closing quotation"),
        ("command", "  ", "command is empty"),
        ("process_name", "a b", "Invalid name: 'a b' because of character: ' '"),
        ("process_name", "%(ENV_X)s", "Invalid name: 'x/y' because of character: '/'"),
        (
            "stderr_logfile",
            "/nonexistent-vigil/e.log",
            "The directory named as part of the path /nonexistent-vigil/e.log does not exist",
        ),
    ],
)
def test_program_rejects_with_one_line_naming_file_section_key_value(
    tmp_path: Path, key: str, value: str, why: str
) -> None:
    extra = "" if key == "command" else "command = /bin/cat\n"
    message = error(
        tmp_path, f"[supervisord]\n[program:x]\n{extra}{key} = {value}\n", environ={"X": "x/y"}
    )
    shown = value.strip()
    assert message == f"{tmp_path / 'supervisord.conf'}: [program:x] {key} = {shown!r}: {why}"


def test_program_without_command_is_rejected(tmp_path: Path) -> None:
    message = error(tmp_path, "[supervisord]\n[program:x]\npriority = 1\n")
    assert message == (
        f"{tmp_path / 'supervisord.conf'}: [program:x] command: "
        "program section program:x does not specify a command"
    )


@pytest.mark.parametrize(("name", "char"), [("a b", " "), ("a/b", "/")])
def test_program_with_invalid_section_name_is_rejected(
    tmp_path: Path, name: str, char: str
) -> None:
    message = error(tmp_path, f"[supervisord]\n[program:{name}]\ncommand = /bin/cat\n")
    assert message == (
        f"{tmp_path / 'supervisord.conf'}: [program:{name}]: "
        f"Invalid name: {name!r} because of character: {char!r}"
    )


def test_stopasgroup_implies_killasgroup_and_cannot_be_contradicted(tmp_path: Path) -> None:
    base = "[supervisord]\n[program:x]\ncommand = /bin/cat\nstopasgroup = true\n"
    assert only_process(load(tmp_path, base)).killasgroup is True
    message = error(tmp_path, base + "killasgroup = false\n")
    assert message == (
        f"{tmp_path / 'supervisord.conf'}: [program:x] killasgroup = 'false': "
        "Cannot set stopasgroup=true and killasgroup=false"
    )
    process = only_process(load(tmp_path, "[supervisord]\n[program:x]\ncommand=c\nkillasgroup=1\n"))
    assert (process.stopasgroup, process.killasgroup) == (False, True)


def test_serverurl_auto_means_derive_it(tmp_path: Path) -> None:
    config = load(tmp_path, "[supervisord]\n[program:x]\ncommand = c\nserverurl = auto\n")
    assert only_process(config).serverurl is None


# --- numprocs ---------------------------------------------------------------------------------


def test_numprocs_names_processes_from_numprocs_start(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        [supervisord]
        [program:w]
        command = /bin/worker --id %(process_num)d --of %(numprocs)d
        numprocs = 3
        numprocs_start = 5
        process_name = %(program_name)s_%(process_num)02d
        """,
    )
    (group,) = config.groups
    assert group.name == "w"
    assert [p.name for p in group.processes] == ["w_05", "w_06", "w_07"]
    assert [p.process_num for p in group.processes] == [5, 6, 7]
    assert {p.numprocs for p in group.processes} == {3}
    assert [p.argv for p in group.processes] == [
        ("/bin/worker", "--id", str(n), "--of", "3") for n in (5, 6, 7)
    ]
    assert group.processes[0].namespec == "w:w_05"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("my box", "must not contain whitespace: it is the server: token of every event header"),
        ("a/b", "must not contain '/': it is part of AUTO log file names"),
        ("x" * 101, "longer than 100 bytes: it is part of AUTO log file names"),
    ],
)
def test_identifier_that_would_break_event_headers_or_log_names_is_an_error(
    tmp_path: Path, value: str, why: str
) -> None:
    """supervisord accepts these; then ``server:my box`` breaks every listener's first event."""
    message = error(tmp_path, f"[supervisord]\nidentifier = {value}\n")
    assert message.endswith(f"[supervisord] identifier = {value!r}: {why}")


def test_identifier_of_exactly_the_limit_is_accepted(tmp_path: Path) -> None:
    value = "é" * (MAX_IDENTIFIER // 2)
    assert load(tmp_path, f"[supervisord]\nidentifier = {value}\n").supervisord.identifier == value


@pytest.mark.parametrize("section", ["program", "eventlistener"])
def test_numprocs_over_the_limit_is_a_config_error_not_a_hang(tmp_path: Path, section: str) -> None:
    """Found by fuzzing: numprocs = 2147483648 made the load build processes for ever."""
    message = error(
        tmp_path,
        f"""
        [supervisord]
        [{section}:w]
        command = /bin/cat
        events = TICK_5
        numprocs = 2147483648
        process_name = %(process_num)d
        """,
    )
    assert message.endswith(
        f"[{section}:w] numprocs = '2147483648': at most {MAX_NUMPROCS:,} processes per section"
    )


def test_numprocs_of_exactly_the_limit_is_accepted(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        f"""
        [supervisord]
        [program:w]
        command = /bin/true
        numprocs = {MAX_NUMPROCS}
        process_name = %(process_num)d
        """,
    )
    assert len(config.groups[0].processes) == MAX_NUMPROCS


def test_numprocs_above_one_needs_process_num_in_process_name(tmp_path: Path) -> None:
    path = tmp_path / "supervisord.conf"
    message = error(tmp_path, "[supervisord]\n[program:w]\ncommand = c\nnumprocs = 2\n")
    assert message == (
        f"{path}: [program:w] process_name = '%(program_name)s': "
        "%(process_num) must be present within process_name when numprocs > 1"
    )
    message = error(
        tmp_path, "[supervisord]\n[program:w]\ncommand = c\nnumprocs = 2\nprocess_name = w\n"
    )
    assert message.startswith(f"{path}: [program:w] process_name = 'w': %(process_num) must")


# --- expansions -------------------------------------------------------------------------------


def test_expansions_available_to_per_process_keys(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        [supervisord]
        environment = GLOBAL=g
        [program:p]
        command = /bin/x %(here)s %(program_name)s %(group_name)s %(host_node_name)s
            %(ENV_HOME)s %(ENV_GLOBAL)s %(ENV_OWN)s %(process_num)d %(numprocs)d 100%%
        environment = OWN=o%(process_num)d,FROM_GLOBAL=%(ENV_GLOBAL)s
        directory = /tmp/%(ENV_OWN)s
        stdout_logfile = %(here)s/%(program_name)s-%(ENV_OWN)s.log
        """,
        environ={"HOME": "/home/me"},
    )
    process = only_process(config)
    assert process.argv[1:] == (
        str(tmp_path), "p", "p", HOST, "/home/me", "g", "o0", "0", "1", "100%",
    )  # fmt: skip
    assert process.environment == {"OWN": "o0", "FROM_GLOBAL": "g"}
    assert process.directory == "/tmp/o0"
    assert process.stdout.target.path == str(tmp_path / "p-o0.log")


def test_process_num_is_not_available_to_once_per_section_keys(tmp_path: Path) -> None:
    message = error(
        tmp_path, "[supervisord]\n[program:p]\ncommand = c\nstartretries = %(process_num)d\n"
    )
    assert message == (
        f"{tmp_path / 'supervisord.conf'}: [program:p] startretries = '%(process_num)d': "
        "contains names ('process_num') which cannot be expanded. "
        "Available names: group_name, here, host_node_name, program_name"
    )


def test_unknown_expansion_names_the_available_ones(tmp_path: Path) -> None:
    message = error(tmp_path, "[supervisord]\n[program:a]\ncommand = /bin/cat %(foo)s\n")
    assert message == (
        f"{tmp_path / 'supervisord.conf'}: [program:a] command = '/bin/cat %(foo)s': "
        "contains names ('foo') which cannot be expanded. Available names: group_name, here, "
        "host_node_name, numprocs, process_num, program_name"
    )


def test_here_in_an_included_file_is_the_included_files_directory(tmp_path: Path) -> None:
    write(tmp_path, "[program:inc]\ncommand = %(here)s/run\n", "conf.d/inc.conf")
    config = load(
        tmp_path,
        """
        [supervisord]
        [include]
        files = conf.d/*.conf
        [program:main]
        command = %(here)s/run
        """,
    )
    by_name = {p.name: p for g in config.groups for p in g.processes}
    assert by_name["main"].argv == (str(tmp_path / "run"),)
    assert by_name["inc"].argv == (str(tmp_path / "conf.d" / "run"),)


def test_supervisord_environment_names_reach_servers(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        [supervisord]
        environment = SOCK=s.sock
        [unix_http_server]
        file = %(here)s/%(ENV_SOCK)s
        """,
    )
    assert config.unix_http_server is not None
    assert config.unix_http_server.file == str(tmp_path / "s.sock")


# --- log targets ------------------------------------------------------------------------------


def test_syslog_logfile_becomes_syslog_flag_with_warning(tmp_path: Path) -> None:
    config = load(tmp_path, "[supervisord]\n[program:a]\ncommand = c\nstdout_logfile = syslog\n")
    assert only_process(config).stdout == LogConfig(LogTarget.NONE, syslog=True)
    assert config.warnings == (
        "For [program:a], stdout_logfile=syslog but this is deprecated and will be removed.  "
        "Use stdout_syslog=true to enable syslog instead.",
    )


def test_auto_log_without_rotation_warns(tmp_path: Path) -> None:
    config = load(
        tmp_path, "[supervisord]\n[program:a]\ncommand = c\nstderr_logfile_maxbytes = 0\n"
    )
    assert config.warnings == (
        "For [program:a], AUTO logging used for stderr_logfile without rollover, "
        "set maxbytes > 0 to avoid filling up filesystem unintentionally",
    )


@pytest.mark.parametrize("value", ["NONE", "none", "OFF", "off"])
def test_none_and_off_mean_no_log_file(tmp_path: Path, value: str) -> None:
    config = load(tmp_path, f"[supervisord]\n[program:a]\ncommand = c\nstdout_logfile={value}\n")
    assert only_process(config).stdout.target == LogTarget.NONE


def test_redirect_stderr_drops_the_stderr_log_file_with_warning(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        [supervisord]
        [program:a]
        command = c
        redirect_stderr = true
        stderr_logfile = %(here)s/err.log
        """,
    )
    process = only_process(config)
    assert process.redirect_stderr is True
    assert process.stderr.target == LogTarget.NONE
    assert config.warnings == (
        "For [program:a], redirect_stderr=true but stderr_logfile has also been set to a "
        "filename, the filename has been ignored",
    )


def test_include_without_match_is_a_warning(tmp_path: Path) -> None:
    config = load(tmp_path, "[supervisord]\n[include]\nfiles = nope/*.conf\n")
    assert config.warnings == (f'No file matches via include "{tmp_path}/nope/*.conf"',)


# --- groups -----------------------------------------------------------------------------------


HETEROGENEOUS = """
    [supervisord]
    [program:web]
    command = /bin/web
    priority = 300
    [program:worker]
    command = /bin/worker %(group_name)s
    priority = 100
    [program:alone]
    command = /bin/alone
    [group:site]
    programs = web, worker
    priority = 20
"""


def test_heterogeneous_group_takes_its_programs(tmp_path: Path) -> None:
    config = load(tmp_path, HETEROGENEOUS)
    assert [(g.name, g.priority) for g in config.groups] == [("site", 20), ("alone", 999)]
    site = config.group("site")
    assert isinstance(site, GroupConfig)
    assert [(p.name, p.group, p.program, p.priority) for p in site.processes] == [
        ("worker", "site", "worker", 100),
        ("web", "site", "web", 300),
    ]
    assert site.processes[0].argv == ("/bin/worker", "site")
    assert site.processes[0].namespec == "site:worker"
    assert config.group("web") is None


def test_group_priority_defaults_to_999(tmp_path: Path) -> None:
    config = load(tmp_path, "[supervisord]\n[program:a]\ncommand=c\n[group:g]\nprograms=a\n")
    assert [(g.name, g.priority) for g in config.groups] == [("g", 999)]


@pytest.mark.parametrize("member", ["nope", "listener"])
def test_group_naming_an_unknown_program_is_rejected(tmp_path: Path, member: str) -> None:
    message = error(
        tmp_path,
        f"""
        [supervisord]
        [eventlistener:listener]
        command = c
        events = TICK_5
        [group:g]
        programs = {member}
        """,
    )
    assert message == (
        f"{tmp_path / 'supervisord.conf'}: [group:g] programs = {member!r}: "
        f"[group:g] names unknown program or fcgi-program {member}"
    )


def test_duplicate_process_names_in_a_group_are_rejected(tmp_path: Path) -> None:
    message = error(
        tmp_path,
        """
        [supervisord]
        [program:a]
        command = c
        process_name = same
        [program:b]
        command = c
        process_name = same
        [group:g]
        programs = a,b
        """,
    )
    assert message == (
        f"{tmp_path / 'supervisord.conf'}: [group:g]: duplicate process name 'same' in group 'g'"
    )


def test_two_groups_with_one_name_are_rejected(tmp_path: Path) -> None:
    message = error(
        tmp_path,
        """
        [supervisord]
        [program:x]
        command = c
        [eventlistener:x]
        command = c
        events = TICK_5
        """,
    )
    assert message == (
        f"{tmp_path / 'supervisord.conf'}: [eventlistener:x]: "
        "group name 'x' is already used by [program:x]"
    )


def test_groups_and_pools_sorted_by_priority_then_name(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        [supervisord]
        [program:c]
        command = c
        priority = 5
        [program:b]
        command = c
        priority = 5
        [program:a]
        command = c
        priority = 10
        [program:z]
        command = c
        priority = -5
        [eventlistener:l2]
        command = c
        events = TICK_5
        [eventlistener:l1]
        command = c
        events = TICK_5
        priority = 7
        """,
    )
    assert [g.name for g in config.groups] == ["z", "b", "c", "a"]
    assert [p.name for p in config.pools] == ["l2", "l1"]
    assert [g.name for g in config.all_groups()] == ["z", "l2", "b", "c", "l1", "a"]


# --- pools ------------------------------------------------------------------------------------


def test_eventlistener_pool_defaults(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "[supervisord]\n[eventlistener:crash]\ncommand = /bin/listener\nevents = PROCESS_STATE\n",
    )
    (pool,) = config.pools
    assert (pool.name, pool.priority, pool.buffer_size, pool.result_handler) == (
        "crash",
        -1,
        10,
        DEFAULT_RESULT_HANDLER,
    )
    assert pool.events == (EventType.PROCESS_STATE,)
    (process,) = pool.processes
    assert process.is_listener and process.group == "crash"
    assert process.priority == 999  # supervisord: -1 is the pool's default, not the process's
    assert config.groups == ()
    assert config.group("crash") is pool


def test_eventlistener_pool_every_key_set(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        [supervisord]
        [eventlistener:mon]
        command = /bin/listener %(process_num)d
        events = process_state_exited, TICK_60,PROCESS_STATE_EXITED
        buffer_size = 50
        priority = 3
        numprocs = 2
        process_name = mon%(process_num)d
        result_handler = manager.results:default_handler
        """,
    )
    assert config.pools == (
        PoolConfig(
            name="mon",
            priority=3,
            processes=config.pools[0].processes,
            events=(EventType.PROCESS_STATE_EXITED, EventType.TICK_60),
            buffer_size=50,
            result_handler="manager.results:default_handler",
        ),
    )
    assert [p.name for p in config.pools[0].processes] == ["mon0", "mon1"]


@pytest.mark.parametrize(
    ("lines", "key", "why"),
    [
        ("events = TICK, FOO", "events", "Unknown event type FOO in [eventlistener:x] events"),
        ("priority = 1", None, '[eventlistener:x] section requires an "events" line'),
        ("events = ,", "events", '[eventlistener:x] section requires an "events" line'),
        (
            "events = TICK\nbuffer_size = 0",
            "buffer_size",
            "[eventlistener:x] section sets invalid buffer_size (0)",
        ),
        (
            "events = TICK_5\nredirect_stderr = true",
            "redirect_stderr",
            "[eventlistener:x] section sets redirect_stderr=true but this is not allowed "
            "because it will interfere with the eventlistener protocol",
        ),
    ],
)  # fmt: skip
def test_eventlistener_rejects(tmp_path: Path, lines: str, key: str | None, why: str) -> None:
    message = error(tmp_path, f"[supervisord]\n[eventlistener:x]\ncommand = c\n{lines}\n")
    path = tmp_path / "supervisord.conf"
    if key is None:
        assert message == f"{path}: [eventlistener:x] events: {why}"
    else:
        value = dict(line.split(" = ") for line in lines.splitlines())[key]
        assert message == f"{path}: [eventlistener:x] {key} = {value!r}: {why}"


# --- [fcgi-program:x] ------------------------------------------------------------------------


def test_fcgi_program_is_a_program_group_with_a_tcp_socket(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        [supervisord]
        [fcgi-program:web]
        command = /bin/web
        socket = tcp://LocalHost:9000
        priority = 5
        """,
    )
    (group,) = config.groups
    assert (group.name, group.priority) == ("web", 5)
    (process,) = group.processes
    assert process.socket == InetSocketConfig("localhost", 9000, backlog=socket.SOMAXCONN)
    assert process.socket.url == "tcp://localhost:9000"
    assert (process.name, process.group, process.program, process.argv) == (
        "web",
        "web",
        "web",
        ("/bin/web",),
    )
    assert replace(process, socket=None) == only_process(
        load(tmp_path, "[supervisord]\n[program:web]\ncommand = /bin/web\npriority = 5\n")
    )


def test_fcgi_program_unix_socket_keys_are_shared_by_its_processes(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        [supervisord]
        [fcgi-program:web]
        command = /bin/web
        socket = unix://%(here)s/run/../%(program_name)s-%(ENV_SUFFIX)s.sock
        socket_backlog = 128
        socket_mode = 0660
        socket_owner = 0:0
        numprocs = 2
        process_name = %(program_name)s_%(process_num)d
        """,
        environ={"SUFFIX": "a"},
    )
    (group,) = config.groups
    assert [p.name for p in group.processes] == ["web_0", "web_1"]
    expected = UnixSocketConfig(str(tmp_path / "web-a.sock"), 0o660, (0, 0), 128)
    assert [p.socket for p in group.processes] == [expected, expected]
    assert expected.url == f"unix://{tmp_path / 'web-a.sock'}"


def test_fcgi_unix_socket_defaults(tmp_path: Path) -> None:
    config = load(
        tmp_path, "[supervisord]\n[fcgi-program:web]\ncommand = c\nsocket = unix:///run/w.sock\n"
    )
    assert only_process(config).socket == UnixSocketConfig("/run/w.sock", 0o700, None)


def test_fcgi_unix_socket_belongs_to_the_programs_user_by_default(tmp_path: Path) -> None:
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody'")
    if nobody.pw_uid == os.getuid():
        pytest.skip("running as 'nobody'")
    body = (
        "[supervisord]\n[fcgi-program:web]\ncommand = c\nsocket = unix:///w.sock\nuser = nobody\n"
    )
    sock = only_process(load(tmp_path, body)).socket
    assert isinstance(sock, UnixSocketConfig)
    assert sock.owner == (nobody.pw_uid, nobody.pw_gid)
    sock = only_process(load(tmp_path, body + "socket_owner = 0\n")).socket
    assert isinstance(sock, UnixSocketConfig)
    assert sock.owner == (0, -1)


def test_fcgi_socket_expands_only_program_name_here_and_env(tmp_path: Path) -> None:
    message = error(
        tmp_path,
        "[supervisord]\n[fcgi-program:web]\ncommand = c\nsocket = unix:///%(group_name)s.sock\n",
    )
    assert message.startswith(
        f"{tmp_path / 'supervisord.conf'}: [fcgi-program:web] socket = "
        "'unix:///%(group_name)s.sock': contains names ('group_name') which cannot be expanded"
    )


FCGI_IN = "in [fcgi-program:x] socket"
UNIX_ONLY = "socket_owner and socket_mode params should only be used with a Unix domain socket"


@pytest.mark.parametrize(
    ("lines", "key", "why"),
    [
        ("", "socket", '[fcgi-program:x] section requires a "socket" line'),
        ("socket = ", "socket", '[fcgi-program:x] section requires a "socket" line'),
        (
            "socket = unix://run/x.sock",
            "socket",
            f"Unix socket path run/x.sock is not an absolute path {FCGI_IN}",
        ),
        ("socket = tcp://h", "socket", f"Bad socket format tcp://h {FCGI_IN}"),
        ("socket = udp://h:1", "socket", f"Bad socket format udp://h:1 {FCGI_IN}"),
        ("socket = tcp://h:0", "socket", f"0 is below lower bound (1) {FCGI_IN}"),
        ("socket = tcp://h:65536", "socket", f"65536 is above upper bound (65535) {FCGI_IN}"),
        (
            "socket = tcp://h:1\nsocket_backlog = 0",
            "socket_backlog",
            "Invalid socket_backlog value 0",
        ),
        (
            "socket = tcp://h:1\nsocket_backlog = 65536",
            "socket_backlog",
            "Invalid socket_backlog value 65536",
        ),
        (
            "socket = tcp://h:1\nsocket_backlog = many",
            "socket_backlog",
            "invalid literal for int() with base 10: 'many'",
        ),
        ("socket = unix:///s\nsocket_mode = rw", "socket_mode", "Invalid socket_mode value rw"),
        (
            "socket = unix:///x.sock\nsocket_owner = nobody-vigil",
            "socket_owner",
            "Invalid socket_owner value nobody-vigil",
        ),
        ("socket = tcp://h:1\nsocket_mode = 0600", "socket_mode", f"{UNIX_ONLY} {FCGI_IN}"),
        ("socket = tcp://h:1\nsocket_owner = 0", "socket_owner", f"{UNIX_ONLY} {FCGI_IN}"),
    ],
)  # fmt: skip
def test_fcgi_program_rejects_with_one_line_naming_file_section_key_value(
    tmp_path: Path, lines: str, key: str, why: str
) -> None:
    message = error(tmp_path, f"[supervisord]\n[fcgi-program:x]\ncommand = c\n{lines}\n")
    values = dict(line.split(" = ") for line in lines.splitlines())
    shown = f" = {values[key]!r}" if key in values else ""
    assert message == f"{tmp_path / 'supervisord.conf'}: [fcgi-program:x] {key}{shown}: {why}"


def test_fcgi_program_without_command_is_rejected(tmp_path: Path) -> None:
    message = error(tmp_path, "[supervisord]\n[fcgi-program:x]\nsocket = tcp://h:1\n")
    assert message == (
        f"{tmp_path / 'supervisord.conf'}: [fcgi-program:x] command: "
        "program section fcgi-program:x does not specify a command"
    )


def test_group_may_list_fcgi_programs_which_keep_their_socket(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        [supervisord]
        [fcgi-program:web]
        command = /bin/web
        socket = tcp://127.0.0.1:9000
        [program:worker]
        command = /bin/worker
        [group:site]
        programs = web,worker
        """,
    )
    (site,) = config.groups
    assert site.name == "site"
    assert [(p.namespec, p.socket) for p in site.processes] == [
        ("site:web", InetSocketConfig("127.0.0.1", 9000)),
        ("site:worker", None),
    ]


def test_group_naming_both_a_program_and_an_fcgi_program_is_ambiguous(tmp_path: Path) -> None:
    message = error(
        tmp_path,
        """
        [supervisord]
        [program:x]
        command = c
        [fcgi-program:x]
        command = c
        socket = tcp://h:1
        [group:g]
        programs = x
        """,
    )
    assert message == (
        f"{tmp_path / 'supervisord.conf'}: [group:g] programs = 'x': "
        "[group:g] name x is ambiguous (exists as program and fcgi-program)"
    )


def test_program_and_fcgi_program_with_one_name_are_rejected(tmp_path: Path) -> None:
    message = error(
        tmp_path,
        "[supervisord]\n[program:x]\ncommand = c\n[fcgi-program:x]\ncommand = c\nsocket = tcp://h:1\n",
    )
    assert message == (
        f"{tmp_path / 'supervisord.conf'}: [fcgi-program:x]: "
        "group name 'x' is already used by [program:x]"
    )


def test_two_fcgi_programs_with_one_socket_are_rejected(tmp_path: Path) -> None:
    message = error(
        tmp_path,
        """
        [supervisord]
        [fcgi-program:a]
        command = c
        socket = tcp://LOCALHOST:9000
        [fcgi-program:b]
        command = c
        socket = tcp://localhost:9000
        """,
    )
    assert message == (
        f"{tmp_path / 'supervisord.conf'}: [fcgi-program:b] socket = 'tcp://localhost:9000': "
        "tcp://localhost:9000 is already the socket of [fcgi-program:a]"
    )


# --- servers and supervisorctl ----------------------------------------------------------------


def test_unix_http_server_defaults_and_keys(tmp_path: Path) -> None:
    config = load(tmp_path, "[supervisord]\n[unix_http_server]\nfile = run/s.sock\n")
    assert config.unix_http_server == UnixHttpServerConfig(str(tmp_path / "run" / "s.sock"))
    assert config.unix_http_server.chmod == 0o700 and config.unix_http_server.chown is None
    config = load(
        tmp_path,
        """
        [supervisord]
        [unix_http_server]
        file = /tmp/s.sock
        chmod = 0770
        chown = root:root
        username = u
        password = {SHA}82ab876d1387bfafe46cc1c8a2ef074eae50cb1d
        """,
    )
    assert config.unix_http_server == UnixHttpServerConfig(
        "/tmp/s.sock", 0o770, (0, 0), "u", "{SHA}82ab876d1387bfafe46cc1c8a2ef074eae50cb1d"
    )


@pytest.mark.parametrize(
    ("lines", "key", "why"),
    [
        ("file = s.sock\nusername = u", "password", INCOMPLETE.format("unix_http_server")),
        ("file = s.sock\npassword = p", "username", INCOMPLETE.format("unix_http_server")),
        ("chmod = 0700", "file", "section [unix_http_server] has no file value"),
        ("file = s.sock\nchmod = rw", "chmod", "Invalid chmod value rw"),
        ("file = s.sock\nchown = nobody-vigil", "chown", "Invalid sockchown value nobody-vigil"),
    ],
)  # fmt: skip
def test_unix_http_server_rejects(tmp_path: Path, lines: str, key: str, why: str) -> None:
    message = error(tmp_path, f"[supervisord]\n[unix_http_server]\n{lines}\n")
    values = dict(line.split(" = ") for line in lines.splitlines())
    shown = f" = {values[key]!r}" if key in values else ""
    assert message == f"{tmp_path / 'supervisord.conf'}: [unix_http_server] {key}{shown}: {why}"


def test_inet_http_servers_are_matched_by_prefix(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        [supervisord]
        [inet_http_server]
        port = *:9001
        username = u
        password = p
        [inet_http_server:local]
        port = LOCALHOST:9002
        """,
    )
    assert config.inet_http_servers == (
        InetHttpServerConfig("", 9001, "u", "p", "inet_http_server"),
        InetHttpServerConfig("localhost", 9002, None, None, "inet_http_server:local"),
    )


@pytest.mark.parametrize(
    ("lines", "key", "why"),
    [
        ("port = abc", "port", "not a valid port number: 'abc'"),
        ("username = u", "port", "section [inet_http_server] has no port value"),
        ("port = 9001\nusername = u", "password", INCOMPLETE.format("inet_http_server")),
    ],
)  # fmt: skip
def test_inet_http_server_rejects(tmp_path: Path, lines: str, key: str, why: str) -> None:
    message = error(tmp_path, f"[supervisord]\n[inet_http_server]\n{lines}\n")
    values = dict(line.split(" = ") for line in lines.splitlines())
    shown = f" = {values[key]!r}" if key in values else ""
    assert message == f"{tmp_path / 'supervisord.conf'}: [inet_http_server] {key}{shown}: {why}"


def test_supervisorctl_keys(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        [supervisord]
        [supervisorctl]
        serverurl = unix://%(here)s/run/../s.sock
        username = u
        password = p
        prompt = vigil
        history_file = %(here)s/.history
        """,
    )
    assert config.supervisorctl == SupervisorctlConfig(
        f"unix://{tmp_path / 's.sock'}", "u", "p", "vigil", str(tmp_path / ".history")
    )


# --- diff_groups ------------------------------------------------------------------------------


BEFORE = """
    [supervisord]
    environment = A=1
    [program:same]
    command = /bin/same
    [program:changed]
    command = /bin/old
    [program:gone]
    command = /bin/gone
    [eventlistener:pool]
    command = /bin/l
    events = TICK_5
"""


def test_diff_groups_reports_added_changed_removed(tmp_path: Path) -> None:
    old = load(tmp_path, BEFORE)
    new = load(
        tmp_path,
        BEFORE.replace("/bin/old", "/bin/new")
        .replace("[program:gone]\n    command = /bin/gone", "[program:new]\n    command = /bin/n")
        .replace("TICK_5", "TICK_5,TICK_60"),
    )
    assert diff_groups(old, new) == (["new"], ["pool", "changed"], ["gone"])
    assert diff_groups(old, load(tmp_path, BEFORE)) == ([], [], [])


def test_diff_groups_counts_a_supervisord_environment_change_for_every_group(
    tmp_path: Path,
) -> None:
    old = load(tmp_path, BEFORE)
    new = load(tmp_path, BEFORE.replace("A=1", "A=2"))
    assert diff_groups(old, new) == ([], ["pool", "changed", "gone", "same"], [])


@pytest.mark.parametrize(
    ("after", "changed"),
    [
        ("socket = tcp://127.0.0.1:9000", []),
        ("socket = tcp://127.0.0.1:9001", ["web"]),
        ("socket = unix:///tmp/web.sock", ["web"]),
        ("socket = tcp://127.0.0.1:9000\nsocket_backlog = 7", ["web"]),
    ],
)
def test_diff_groups_counts_a_changed_socket_as_a_changed_group(
    tmp_path: Path, after: str, changed: list[str]
) -> None:
    body = "[supervisord]\n[fcgi-program:web]\ncommand = /bin/web\n"
    old = load(tmp_path, body + "socket = tcp://127.0.0.1:9000\n")
    assert diff_groups(old, load(tmp_path, body + after + "\n")) == ([], changed, [])


def test_diff_groups_counts_a_changed_socket_mode_as_a_changed_group(tmp_path: Path) -> None:
    """supervisord compares only the URL; vigild restarts the group to apply the new mode."""
    body = "[supervisord]\n[fcgi-program:web]\ncommand = c\nsocket = unix:///tmp/w.sock\n"
    old = load(tmp_path, body)
    assert diff_groups(old, load(tmp_path, body + "socket_mode = 0770\n")) == ([], ["web"], [])


def test_diff_groups_sees_a_program_moving_into_a_group(tmp_path: Path) -> None:
    old = load(tmp_path, BEFORE)
    new = load(tmp_path, BEFORE + "    [group:g]\n    programs = same\n")
    assert diff_groups(old, new) == (["g"], [], ["same"])


# --- compatibility with supervisord's own parser ----------------------------------------------


COMPAT_MAIN = """
    [unix_http_server]
    file = %(here)s/supervisor.sock

    [inet_http_server]
    port = 127.0.0.1:9001

    [supervisord]
    logfile = %(here)s/logs/supervisord.log
    pidfile = %(here)s/supervisord.pid
    childlogdir = %(here)s/logs
    environment = GLOBAL="g 1",LANG=C

    [supervisorctl]
    serverurl = unix://%(here)s/supervisor.sock

    [rpcinterface:supervisor]
    supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

    [program:web]
    command = /usr/bin/python3 -m http.server %(ENV_PORT)s --bind "127.0.0.1"
    numprocs = 3
    numprocs_start = 5
    process_name = %(program_name)s_%(process_num)02d
    priority = 10
    autorestart = true
    exitcodes = 0,2
    startsecs = 5
    stopsignal = INT
    stopwaitsecs = 3
    stdout_logfile = %(here)s/logs/%(program_name)s-%(process_num)d.log
    environment = PORT=80%(process_num)02d,HOME="/tmp/x y"
    directory = %(ENV_HOME)s

    [program:worker]
    command = /bin/sleep %(ENV_GLOBAL)s
    autorestart = unexpected
    stopsignal = sigkill
    priority = 200

    [program:cron]
    command = /bin/cat %(group_name)s %(host_node_name)s
    autostart = false
    exitcodes =
    stopasgroup = true
    redirect_stderr = true

    [group:back]
    programs = worker,cron
    priority = 50

    [eventlistener:crash]
    command = /bin/cat
    events = PROCESS_STATE_EXITED,TICK_60
    buffer_size = 20

    [eventlistener:ticks]
    command = /bin/ticker %(process_num)d
    process_name = tick%(process_num)d
    numprocs = 2
    priority = 5
    events = TICK

    [include]
    files = conf.d/*.conf
"""

COMPAT_INCLUDED = """
    [program:extra]
    command = %(here)s/run.sh --flag
    startsecs = 0
    autorestart = false
    stopsignal = 15
    stdout_logfile = NONE
    stderr_logfile = %(here)s/extra.err
"""


def _supervisord_view(path: Path) -> list[tuple[object, ...]]:
    from supervisor.datatypes import (
        Automatic,
        RestartUnconditionally,
        RestartWhenExitUnexpected,
    )
    from supervisor.options import EventListenerPoolConfig, ServerOptions

    options = ServerOptions()
    options.configfile = str(path)
    options.process_config(do_usage=False)
    restart = {
        RestartUnconditionally: AutoRestart.TRUE,
        RestartWhenExitUnexpected: AutoRestart.UNEXPECTED,
        False: AutoRestart.FALSE,
    }
    view: list[tuple[object, ...]] = []
    for group in options.process_group_configs:
        events: tuple[str, ...] = ()
        if isinstance(group, EventListenerPoolConfig):
            events = tuple(sorted(e.__name__ for e in group.pool_events))
        view.append(
            (
                group.name,
                group.priority,
                events,
                sorted(
                    (
                        p.name,
                        p.priority,
                        p.command,
                        restart[p.autorestart],
                        frozenset(p.exitcodes),
                        float(p.startsecs),
                        int(p.stopsignal),
                        float(p.stopwaitsecs),
                        p.killasgroup,
                        p.directory,
                        "AUTO" if p.stdout_logfile is Automatic else p.stdout_logfile,
                        "AUTO" if p.stderr_logfile is Automatic else p.stderr_logfile,
                        dict(p.environment),
                    )
                    for p in group.process_configs
                ),
            )
        )
    return view


def _vigil_view(config: Config) -> list[tuple[object, ...]]:
    names = {t: t.name for t in EventType}
    sd_env = dict(config.supervisord.environment)
    view: list[tuple[object, ...]] = []
    for group in config.all_groups():
        events: tuple[str, ...] = ()
        if isinstance(group, PoolConfig):
            events = tuple(sorted(_event_class_name(names[e]) for e in group.events))
        view.append(
            (
                group.name,
                group.priority,
                events,
                sorted(
                    (
                        p.name,
                        p.priority,
                        p.command,
                        p.autorestart,
                        p.exitcodes,
                        p.startsecs,
                        p.stopsignal,
                        p.stopwaitsecs,
                        p.killasgroup,
                        p.directory,
                        _log_view(p.stdout),
                        _log_view(p.stderr),
                        {**sd_env, **p.environment},
                    )
                    for p in group.processes
                ),
            )
        )
    return view


def _log_view(log: LogConfig) -> str | None:
    """A log target as supervisord stores it: a path, ``AUTO`` or ``None``."""
    target = log.target
    if target.kind is LogKind.NONE:
        return None
    return target.path if target.path else str(target)


def _event_class_name(name: str) -> str:
    from supervisor.events import EventTypes

    return str(getattr(EventTypes, name).__name__)


def test_same_processes_groups_and_settings_as_supervisord(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "logs").mkdir()
    write(tmp_path, COMPAT_INCLUDED, "conf.d/extra.conf")
    path = write(tmp_path, COMPAT_MAIN)
    monkeypatch.setenv("PORT", "1234")
    monkeypatch.chdir(tmp_path)

    ours = load_config(path, environ=dict(os.environ), host_node_name=platform.node())
    theirs = _supervisord_view(path)

    assert _vigil_view(ours) == theirs
    assert [g.name for g in ours.all_groups()] == ["crash", "ticks", "web", "back", "extra"]


def test_same_supervisord_and_server_settings_as_supervisord(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from supervisor.loggers import LevelsByDescription
    from supervisor.options import ServerOptions

    (tmp_path / "logs").mkdir()
    path = write(
        tmp_path,
        """
        [supervisord]
        logfile = logs/main.log
        logfile_maxbytes = 5 MB
        logfile_backups = 2
        loglevel = debug
        umask = 027
        minfds = 2048
        nodaemon = true
        childlogdir = %(here)s/logs
        identifier = vig
        environment = A="x y",B=2
        [unix_http_server]
        file = run.sock
        chmod = 0770
        [inet_http_server]
        port = *:9001
        username = u
        password = p
        """,
    )
    monkeypatch.chdir(tmp_path)
    ours = load_config(path, environ=dict(os.environ), host_node_name=platform.node())
    options = ServerOptions()
    options.configfile = str(path)
    options.process_config(do_usage=False)
    theirs = options.configroot.supervisord

    sd = ours.supervisord
    assert os.path.abspath(theirs.logfile) == sd.logfile
    assert os.path.abspath(theirs.pidfile) == sd.pidfile
    assert getattr(LevelsByDescription, sd.loglevel) == theirs.loglevel
    for key in (
        "logfile_maxbytes", "logfile_backups", "umask", "minfds", "minprocs", "nodaemon",
        "silent", "nocleanup", "strip_ansi", "childlogdir", "identifier", "environment",
    ):  # fmt: skip
        assert getattr(sd, key) == getattr(theirs, key), key
    inet, unix = sorted(theirs.server_configs, key=lambda c: str(c["section"]))
    assert ours.inet_http_servers == (
        InetHttpServerConfig(inet["host"], inet["port"], inet["username"], inet["password"]),
    )
    assert ours.unix_http_server == UnixHttpServerConfig(unix["file"], unix["chmod"])
    assert unix["chown"] == (-1, -1)


@pytest.mark.parametrize(
    "text",
    [
        "[supervisord]\n[program:a]\ncommand = /bin/cat\n",
        "[supervisord]\n[program:a]\ncommand = c\nnumprocs = 4\nprocess_name = a-%(process_num)d\n",
        "[supervisord]\n[program:a]\ncommand = c\nstopsignal = usr1\nexitcodes = 1,2,3\n"
        "[program:b]\ncommand = d\npriority = 1\n[group:g]\nprograms = a\npriority = 2\n",
        "[supervisord]\n[eventlistener:e]\ncommand = c\nevents = EVENT\npriority = 100\n",
        "[supervisord]\n[fcgi-program:f]\ncommand = c\nsocket = tcp://h:9\nnumprocs = 2\n"
        "process_name = f%(process_num)d\npriority = 3\n",
        "[supervisord]\n[fcgi-program:f]\ncommand = c\nsocket = tcp://h:9\n"
        "[program:p]\ncommand = d\n[group:g]\nprograms = f,p\n",
    ],
)
def test_small_files_load_as_supervisord_loads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    path = write(tmp_path, text)
    monkeypatch.chdir(tmp_path)
    ours = load_config(path, environ=dict(os.environ), host_node_name=platform.node())
    assert _vigil_view(ours) == _supervisord_view(path)


@pytest.mark.parametrize(
    "text",
    [
        "[program:a]\ncommand = c\n",
        "[supervisord]\n[program:a]\n",
        "[supervisord]\n[program:a]\ncommand = c\nautorestart = sometimes\n",
        "[supervisord]\n[program:a]\ncommand = c\nstopsignal = NOPE\n",
        "[supervisord]\n[program:a]\ncommand = c\nexitcodes = 300\n",
        "[supervisord]\n[program:a]\ncommand = c\nnumprocs = 2\n",
        "[supervisord]\n[program:a]\ncommand = c\nstopasgroup = true\nkillasgroup = false\n",
        "[supervisord]\n[program:a b]\ncommand = c\n",
        "[supervisord]\n[group:g]\nprograms = nope\n",
        "[supervisord]\n[eventlistener:e]\ncommand = c\n",
        "[supervisord]\n[eventlistener:e]\ncommand = c\nevents = NOPE\n",
        "[supervisord]\nloglevel = warning\n",
        "[supervisord]\n[inet_http_server]\nport = abc\n",
        "[supervisord]\n[unix_http_server]\nfile = s.sock\nusername = u\n",
        "[supervisord]\n[fcgi-program:f]\ncommand = c\n",
        "[supervisord]\n[fcgi-program:f]\ncommand = c\nsocket = unix://rel.sock\n",
        "[supervisord]\n[fcgi-program:f]\ncommand = c\nsocket = tcp://h\n",
        "[supervisord]\n[fcgi-program:f]\ncommand = c\nsocket = tcp://h:0\n",
        "[supervisord]\n[fcgi-program:f]\ncommand = c\nsocket = tcp://h:1\nsocket_mode = 0600\n",
        "[supervisord]\n[fcgi-program:f]\ncommand = c\nsocket = tcp://h:1\nsocket_backlog = 0\n",
        "[supervisord]\n[fcgi-program:f]\ncommand = c\nsocket = unix:///s\nsocket_mode = x\n",
        "[supervisord]\n[fcgi-program:f]\ncommand = c\nsocket = unix:///s\nsocket_owner = no-one\n",
        "[supervisord]\n[fcgi-program:f]\nsocket = tcp://h:1\n",
        "[supervisord]\n[program:f]\ncommand = c\n[fcgi-program:f]\ncommand = c\n"
        "socket = tcp://h:1\n[group:g]\nprograms = f\n",
    ],
)
def test_files_supervisord_rejects_are_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    path = write(tmp_path, text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError):
        _supervisord_view(path)
    with pytest.raises(ConfigError):
        load_config(path, environ=dict(os.environ), host_node_name=platform.node())


def test_same_fcgi_sockets_as_supervisord(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from supervisor.options import FastCGIGroupConfig, ServerOptions

    path = write(
        tmp_path,
        """
        [supervisord]
        [fcgi-program:tcp]
        command = c
        socket = tcp://LocalHost:%(ENV_PORT)s
        socket_backlog = 64
        [fcgi-program:unix]
        command = c
        socket = unix://%(here)s/x/../%(program_name)s.sock
        socket_mode = 0660
        socket_owner = 0:0
        [fcgi-program:plain]
        command = c
        socket = unix:///tmp/plain.sock
        """,
    )
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.chdir(tmp_path)
    ours = load_config(path, environ=dict(os.environ), host_node_name=platform.node())
    options = ServerOptions()
    options.configfile = str(path)
    options.process_config(do_usage=False)
    theirs = {
        g.name: g.socket_config
        for g in options.process_group_configs
        if isinstance(g, FastCGIGroupConfig)
    }
    assert sorted(theirs) == ["plain", "tcp", "unix"]
    for group in ours.groups:
        sock = group.processes[0].socket
        assert sock is not None
        their = theirs[group.name]
        assert sock.url == their.url
        assert sock.backlog == (their.get_backlog() or socket.SOMAXCONN)
        if isinstance(sock, UnixSocketConfig):
            assert (sock.mode, sock.owner) == (their.get_mode(), their.get_owner())


def test_unresolvable_result_handler_is_a_config_error(tmp_path: Path) -> None:
    conf = tmp_path / "s.conf"
    conf.write_text(
        "[supervisord]\n[eventlistener:mon]\ncommand = /bin/cat\nevents = TICK\n"
        "result_handler = nosuchpkg.mod:handle\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(conf)
    assert str(info.value) == (
        f"{conf}: [eventlistener:mon] result_handler = 'nosuchpkg.mod:handle': "
        "nosuchpkg.mod:handle cannot be resolved within [eventlistener:mon]: "
        "No module named 'nosuchpkg'"
    )
