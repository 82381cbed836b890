"""manager.ini: supervisord's INI syntax, includes, typed getters and expansion."""

from __future__ import annotations

import platform
from pathlib import Path
from textwrap import dedent

import pytest

from manager.ini import (
    MAX_LINE,
    ConfigError,
    IniFile,
    Section,
    config_search_path,
    find_config_file,
    read_ini,
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dedent(text).lstrip())
    return path


def read(path: Path, *, follow_includes: bool = True) -> IniFile:
    return read_ini(path, environ={"HOME": "/home/u"}, follow_includes=follow_includes)


def sect(ini: IniFile, name: str) -> Section:
    section = ini.section(name)
    assert section is not None, name
    return section


def one(tmp_path: Path, body: str, name: str = "program:web") -> Section:
    """A section ``name`` with ``body`` as its lines, read from x.conf."""
    ini = read(write(tmp_path / "x.conf", f"[{name}]\n{dedent(body)}"))
    return sect(ini, name)


# --- syntax --------------------------------------------------------------------------


def test_inline_comment_needs_whitespace_before_it(tmp_path: Path) -> None:
    s = one(
        tmp_path,
        """
        a=b;c
        b=b ;c
        c = x#y
        d = x #y
        e = cat file ; ignored "quoted ; too"
        """,
    )
    assert dict(s.values) == {"a": "b;c", "b": "b", "c": "x#y", "d": "x", "e": "cat file"}


def test_comment_lines_start_with_semicolon_or_hash(tmp_path: Path) -> None:
    path = write(
        tmp_path / "x.conf",
        """
        ; a comment
        # another
        [a]
        ;key = 1
        #key = 2
        key = 3
        """,
    )
    assert dict(sect(read(path), "a").values) == {"key": "3"}


def test_keys_are_lowercased_and_looked_up_case_insensitively(tmp_path: Path) -> None:
    s = one(tmp_path, "StartSecs = 5\n")
    assert dict(s.values) == {"startsecs": "5"}
    assert s.get("STARTSECS") == "5"
    assert "startSecs" in s
    assert "nope" not in s
    assert 5 not in s
    assert s.get("nope") is None
    assert s.get("nope", "d") == "d"


def test_section_names_are_case_sensitive_and_kept_verbatim(tmp_path: Path) -> None:
    ini = read(write(tmp_path / "x.conf", "[Program:Web]\na=1\n"))
    assert ini.names() == ["Program:Web"]
    assert ini.section("program:web") is None


def test_duplicate_sections_merge_and_the_last_value_wins(tmp_path: Path) -> None:
    path = write(
        tmp_path / "x.conf",
        """
        [program:web]
        command = one
        startsecs = 1
        startsecs = 2
        [program:api]
        command = api
        [program:web]
        command = two
        autostart = false
        """,
    )
    ini = read(path)
    assert ini.names() == ["program:web", "program:api"]
    assert dict(sect(ini, "program:web").values) == {
        "command": "two",
        "startsecs": "2",
        "autostart": "false",
    }


def test_continuation_lines_join_with_newlines(tmp_path: Path) -> None:
    s = one(tmp_path, "environment = A=1,\n    B=2\n")
    assert s.get("environment") == "A=1,\nB=2"


def test_default_section_applies_to_every_section(tmp_path: Path) -> None:
    path = write(
        tmp_path / "x.conf",
        """
        [DEFAULT]
        autostart = false
        [program:a]
        command = a
        [program:b]
        autostart = true
        """,
    )
    ini = read(path)
    assert ini.names() == ["program:a", "program:b"]
    assert sect(ini, "program:a").get("autostart") == "false"
    assert sect(ini, "program:b").get("autostart") == "true"


def test_sections_with_prefix_keeps_file_order(tmp_path: Path) -> None:
    path = write(
        tmp_path / "x.conf",
        """
        [program:b]
        [supervisord]
        [program:a]
        [programx]
        [eventlistener:e]
        """,
    )
    ini = read(path)
    assert [s.name for s in ini.sections_with_prefix("program:")] == ["program:b", "program:a"]
    assert [s.name for s in ini.sections_with_prefix("eventlistener:")] == ["eventlistener:e"]
    assert ini.sections_with_prefix("group:") == []


def test_section_records_its_file_and_here(tmp_path: Path) -> None:
    path = write(tmp_path / "x.conf", "[supervisord]\nlogfile = %(here)s/log\n")
    s = sect(read(path), "supervisord")
    assert s.file == path
    assert s.here == tmp_path
    assert s.expand("logfile", {}) == f"{tmp_path}/log"


def test_relative_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "x.conf", "[a]\n")
    monkeypatch.chdir(tmp_path)
    ini = read(Path("x.conf"))
    assert ini.path == tmp_path / "x.conf"
    assert sect(ini, "a").file == tmp_path / "x.conf"


# --- file errors -----------------------------------------------------------------------


def test_missing_main_file_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.conf"
    with pytest.raises(ConfigError) as info:
        read(path)
    assert str(info.value) == f"{path}: could not find config file"
    assert info.value.file == str(path)


def test_unreadable_main_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        read(tmp_path)
    assert str(info.value) == f"{tmp_path}: could not read config file: Is a directory"


def test_unparsable_line_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "x.conf", "[a]\nkey = 1\ngarbage\n")
    with pytest.raises(ConfigError) as info:
        read(path)
    assert str(info.value) == f"{path}:3: unparsable line: 'garbage'"
    assert info.value.line == 3


def test_missing_section_header_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "x.conf", "key = 1\n")
    with pytest.raises(ConfigError) as info:
        read(path)
    assert str(info.value) == f"{path}:1: file contains no section header: 'key = 1'"


def test_nul_character_is_a_config_error_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "x.conf"
    path.write_text("[supervisord]\nlogfile = /tmp/a\x00b\n")
    with pytest.raises(ConfigError) as info:
        read(path)
    assert str(info.value) == f"{path}:2: contains a NUL character (\\x00)"


def test_nul_character_in_an_included_file_names_that_file(tmp_path: Path) -> None:
    main = write(tmp_path / "x.conf", "[include]\nfiles = bad.conf\n")
    bad = tmp_path / "bad.conf"
    bad.write_text("[a]\n\nb = \x00\n")
    with pytest.raises(ConfigError) as info:
        read(main)
    assert str(info.value) == f"{bad}:3: contains a NUL character (\\x00)"


def test_line_longer_than_max_line_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "x.conf"
    path.write_text("[supervisord]\nidentifier = " + "x" * MAX_LINE + "\n")
    with pytest.raises(ConfigError) as info:
        read(path)
    length = len("identifier = ") + MAX_LINE
    assert str(info.value) == (
        f"{path}:2: line is {length:,} characters long; at most {MAX_LINE:,} are accepted"
    )


def test_line_of_exactly_max_line_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "x.conf"
    value = "x" * (MAX_LINE - len("identifier = "))
    path.write_text(f"[supervisord]\nidentifier = {value}\n")
    assert sect(read(path), "supervisord").get("identifier") == value


def test_syntax_error_in_an_included_file_names_that_file(tmp_path: Path) -> None:
    main = write(tmp_path / "x.conf", "[include]\nfiles = bad.conf\n")
    bad = write(tmp_path / "bad.conf", "[a]\n\n oops\nnope\n")
    with pytest.raises(ConfigError) as info:
        read(main)
    assert str(info.value).startswith(f"{bad}:")


# --- includes ------------------------------------------------------------------------


def test_include_reads_each_glob_in_sorted_order(tmp_path: Path) -> None:
    main = write(
        tmp_path / "supervisord.conf",
        """
        [program:web]
        command = main
        [include]
        files = z.conf conf.d/*.conf
        """,
    )
    write(tmp_path / "z.conf", "[program:z]\norigin = z\n[program:web]\norder = z\n")
    write(tmp_path / "conf.d" / "b.conf", "[program:web]\norder = b\n[program:b]\n")
    write(tmp_path / "conf.d" / "a.conf", "[program:web]\norder = a\n[program:a]\n")
    ini = read(main)
    # z.conf first (glob order), then a.conf and b.conf (sorted within the glob)
    assert sect(ini, "program:web").get("order") == "b"
    assert ini.names() == ["program:web", "include", "program:z", "program:a", "program:b"]
    assert ini.warnings == ()


def test_included_sections_record_their_own_file_and_here(tmp_path: Path) -> None:
    main = write(tmp_path / "main.conf", "[include]\nfiles = conf.d/*.conf\n[program:m]\n")
    inc = write(tmp_path / "conf.d" / "a.conf", "[program:a]\nstdout_logfile = %(here)s/a.log\n")
    ini = read(main)
    a = sect(ini, "program:a")
    assert a.file == inc
    assert a.here == tmp_path / "conf.d"
    assert a.expand("stdout_logfile", {}) == f"{tmp_path}/conf.d/a.log"
    assert sect(ini, "program:m").file == main


def test_merged_duplicate_section_records_the_last_file(tmp_path: Path) -> None:
    main = write(tmp_path / "main.conf", "[program:a]\nx = 1\n[include]\nfiles = more.conf\n")
    more = write(tmp_path / "more.conf", "[program:a]\ny = 2\n")
    a = sect(read(main), "program:a")
    assert a.file == more
    assert dict(a.values) == {"x": "1", "y": "2"}


def test_include_glob_without_match_adds_a_warning(tmp_path: Path) -> None:
    main = write(tmp_path / "main.conf", "[include]\nfiles = conf.d/*.conf\n")
    ini = read(main)
    assert ini.warnings == (f'No file matches via include "{tmp_path}/conf.d/*.conf"',)


def test_includes_are_not_recursive(tmp_path: Path) -> None:
    main = write(tmp_path / "main.conf", "[include]\nfiles = one.conf\n")
    write(tmp_path / "one.conf", "[program:one]\n[include]\nfiles = two.conf\n")
    write(tmp_path / "two.conf", "[program:two]\n")
    ini = read(main)
    assert ini.section("program:one") is not None
    assert ini.section("program:two") is None


def test_follow_includes_false_reads_only_the_main_file(tmp_path: Path) -> None:
    main = write(tmp_path / "main.conf", "[include]\nfiles = one.conf\n")
    write(tmp_path / "one.conf", "[program:one]\n")
    ini = read(main, follow_includes=False)
    assert ini.names() == ["include"]


def test_include_files_expand_here_env_and_host_node_name(tmp_path: Path) -> None:
    node = platform.node()
    main = write(
        tmp_path / "main.conf",
        "[include]\nfiles = %(here)s/a.conf %(ENV_EXTRA)s/b.conf %(host_node_name)s.conf\n",
    )
    write(tmp_path / "a.conf", "[program:a]\n")
    write(tmp_path / "extra" / "b.conf", "[program:b]\n")
    write(tmp_path / f"{node}.conf", "[program:host]\n")
    ini = read_ini(main, environ={"EXTRA": str(tmp_path / "extra")})
    assert ini.names() == ["include", "program:a", "program:b", "program:host"]


def test_include_without_files_is_an_error(tmp_path: Path) -> None:
    main = write(tmp_path / "main.conf", "[include]\nfile = a.conf\n")
    with pytest.raises(ConfigError) as info:
        read(main)
    assert str(info.value) == f"{main}: [include] files: an [include] section needs a files setting"


def test_include_files_with_unknown_name_is_an_error(tmp_path: Path) -> None:
    main = write(tmp_path / "main.conf", "[include]\nfiles = %(nope)s.conf\n")
    with pytest.raises(ConfigError, match=r"contains names \('nope'\)"):
        read(main)


# --- typed getters -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("YES", True),
        ("On", True),
        ("1", True),
        ("false", False),
        ("No", False),
        ("OFF", False),
        ("0", False),
    ],
)
def test_get_bool_accepts_supervisord_spellings(tmp_path: Path, raw: str, expected: bool) -> None:
    assert one(tmp_path, f"autostart = {raw}\n").get_bool("autostart", not expected) is expected


@pytest.mark.parametrize("raw", ["maybe", "2", "y", "t"])
def test_get_bool_rejects_other_words_with_one_line_error(tmp_path: Path, raw: str) -> None:
    s = one(tmp_path, f"autostart = {raw}\n")
    with pytest.raises(ConfigError) as info:
        s.get_bool("autostart", True)
    assert str(info.value) == (
        f"{tmp_path}/x.conf: [program:web] autostart = {raw!r}: not a valid boolean value: {raw!r}"
    )
    err = info.value
    assert (err.file, err.section, err.key, err.value) == (
        f"{tmp_path}/x.conf",
        "program:web",
        "autostart",
        raw,
    )


@pytest.mark.parametrize(("raw", "expected"), [("10", 10), ("-1", -1), ("0", 0), ("007", 7)])
def test_get_int_accepts_decimal_integers(tmp_path: Path, raw: str, expected: int) -> None:
    assert one(tmp_path, f"startsecs = {raw}\n").get_int("startsecs", 1) == expected


@pytest.mark.parametrize("raw", ["abc", "10k", "1.5", "0x10"])
def test_get_int_rejects_non_integers(tmp_path: Path, raw: str) -> None:
    s = one(tmp_path, f"startsecs = {raw}\n")
    with pytest.raises(ConfigError) as info:
        s.get_int("startsecs", 1)
    assert (
        str(info.value) == f"{tmp_path}/x.conf: [program:web] startsecs = {raw!r}: not an integer"
    )


@pytest.mark.parametrize(("raw", "expected"), [("10", 10.0), ("0.5", 0.5), ("1e-3", 0.001)])
def test_get_float_accepts_seconds_with_fractions(
    tmp_path: Path, raw: str, expected: float
) -> None:
    assert one(tmp_path, f"interval = {raw}\n").get_float("interval", 1.0) == expected


@pytest.mark.parametrize("raw", ["abc", "1s", "nan", "inf"])
def test_get_float_rejects_non_numbers(tmp_path: Path, raw: str) -> None:
    s = one(tmp_path, f"interval = {raw}\n")
    with pytest.raises(ConfigError) as info:
        s.get_float("interval", 1.0)
    assert str(info.value) == f"{tmp_path}/x.conf: [program:web] interval = {raw!r}: not a number"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0", 0),
        ("1024", 1024),
        ("1KB", 1024),
        ("2kb", 2048),
        ("1 MB", 1024**2),
        ("50MB", 50 * 1024**2),
        ("1Gb", 1024**3),
    ],
)
def test_get_byte_size_accepts_kb_mb_gb_suffixes(tmp_path: Path, raw: str, expected: int) -> None:
    s = one(tmp_path, f"stdout_logfile_maxbytes = {raw}\n")
    assert s.get_byte_size("stdout_logfile_maxbytes", 0) == expected


@pytest.mark.parametrize("raw", ["10k", "1M", "5B", "MB", "1.5MB", "1 TB"])
def test_get_byte_size_rejects_other_suffixes(tmp_path: Path, raw: str) -> None:
    s = one(tmp_path, f"stdout_logfile_maxbytes = {raw}\n")
    with pytest.raises(ConfigError) as info:
        s.get_byte_size("stdout_logfile_maxbytes", 0)
    assert str(info.value) == (
        f"{tmp_path}/x.conf: [program:web] stdout_logfile_maxbytes = {raw!r}: "
        "not a byte size (an integer with optional KB, MB or GB suffix)"
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("a", ["a"]), ("a, b ,c", ["a", "b", "c"]), ("a,,b,", ["a", "b"]), ("", [])],
)
def test_get_list_splits_on_commas_and_drops_empties(
    tmp_path: Path, raw: str, expected: list[str]
) -> None:
    assert one(tmp_path, f"programs = {raw}\n").get_list("programs", ["x"]) == expected


def test_typed_getters_return_the_default_when_the_key_is_absent(tmp_path: Path) -> None:
    s = one(tmp_path, "command = x\n")
    assert s.get_bool("autostart", True) is True
    assert s.get_int("startsecs", 1) == 1
    assert s.get_float("interval", 0.5) == 0.5
    assert s.get_byte_size("maxbytes", 7) == 7
    assert s.get_list("programs", ["a"]) == ["a"]
    assert s.get_bool("autostart") is None
    assert s.get_int("startsecs") is None
    assert s.get_float("interval") is None
    assert s.get_byte_size("maxbytes") is None
    assert s.get_list("programs") is None


def test_typed_getter_with_names_expands_first(tmp_path: Path) -> None:
    s = one(tmp_path, "startsecs = %(ENV_SECS)s\nnumprocs = %(n)d\n")
    env_s = Section(s.name, s.file, s.values, {"SECS": "3"})
    assert env_s.get_int("startsecs", 1, names={}) == 3
    assert env_s.get_int("numprocs", 1, names={"n": 4}) == 4
    with pytest.raises(ConfigError, match="not an integer"):  # without names: raw, unexpanded
        env_s.get_int("startsecs", 1)


# --- errors and expansion ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        (
            {"file": "/x.conf", "section": "program:web", "key": "startsecs", "value": "abc"},
            "/x.conf: [program:web] startsecs = 'abc': not an integer",
        ),
        ({"file": "/x.conf", "section": "program:web"}, "/x.conf: [program:web]: not an integer"),
        ({"section": "program:web", "key": "k"}, "[program:web] k: not an integer"),
        ({"file": "/x.conf", "line": 3}, "/x.conf:3: not an integer"),
        ({}, "not an integer"),
    ],
)
def test_config_error_renders_one_line_without_none_parts(
    kw: dict[str, str], expected: str
) -> None:
    assert str(ConfigError("not an integer", **kw)) == expected  # type: ignore[arg-type]


def test_config_error_is_one_line_even_for_multiline_values() -> None:
    err = ConfigError("bad\nthing", file="/x", section="a", key="k", value="1\n2")
    assert str(err) == "/x: [a] k = '1\\n2': bad thing"


def test_config_error_cuts_a_huge_value_and_reason_to_a_readable_line() -> None:
    exc = ConfigError("why " * 1000, file="/x.conf", section="a", key="k", value="%(" * 100_000)
    text = str(exc)
    assert text.startswith("/x.conf: [a] k = '" + "%(" * 100 + "'... (200,000 characters): why")
    assert text.endswith("... (4,000 characters)")
    assert len(text) < 1000
    assert exc.value == "%(" * 100_000  # the attribute keeps all of it


def test_section_error_fills_location_and_raw_value(tmp_path: Path) -> None:
    s = one(tmp_path, "command = /bin/cat\n")
    err = s.error("COMMAND", "is a directory")
    assert str(err) == f"{tmp_path}/x.conf: [program:web] command = '/bin/cat': is a directory"
    assert str(s.error("missing", "is required")) == (
        f"{tmp_path}/x.conf: [program:web] missing: is required"
    )


def test_expand_substitutes_names_here_and_environment(tmp_path: Path) -> None:
    s = one(tmp_path, "command = %(here)s/bin %(ENV_HOME)s %(program_name)s %(process_num)02d\n")
    assert s.expand("command", {"program_name": "web", "process_num": 3}) == (
        f"{tmp_path}/bin /home/u web 03"
    )


def test_expand_uses_an_injected_environment(tmp_path: Path) -> None:
    s = one(tmp_path, "command = %(ENV_X)s\n")
    assert s.expand("command", {}, environ={"X": "injected"}) == "injected"


def test_expand_of_missing_key_gives_the_expanded_default_or_none(tmp_path: Path) -> None:
    s = one(tmp_path, "command = x\n")
    assert s.expand("process_name", {"program_name": "web"}) is None
    assert s.expand("process_name", {"program_name": "web"}, "%(program_name)s") == "web"


def test_expand_unknown_name_lists_the_available_names(tmp_path: Path) -> None:
    s = one(tmp_path, "command = /bin/cat %(foo)s\n")
    with pytest.raises(ConfigError) as info:
        s.expand("command", {"program_name": "web"})
    assert str(info.value) == (
        f"{tmp_path}/x.conf: [program:web] command = '/bin/cat %(foo)s': contains names ('foo') "
        "which cannot be expanded. Available names: ENV_HOME, here, program_name"
    )


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("100%", "badly formatted: incomplete format"),
        ("%(here)d", "badly formatted: %d format: a real number is required, not str"),
    ],
)
def test_expand_badly_formatted_value_is_a_config_error(tmp_path: Path, raw: str, why: str) -> None:
    s = one(tmp_path, f"command = {raw}\n")
    with pytest.raises(ConfigError) as info:
        s.expand("command", {})
    assert str(info.value) == f"{tmp_path}/x.conf: [program:web] command = {raw!r}: {why}"


def test_expand_percent_percent_is_a_literal_percent(tmp_path: Path) -> None:
    assert one(tmp_path, "command = 100%%\n").expand("command", {}) == "100%"


# --- default config locations --------------------------------------------------------


def test_find_config_file_search_order() -> None:
    tried: list[Path] = []

    def exists(p: Path) -> bool:
        tried.append(p)
        return False

    assert find_config_file(argv0="/opt/sv/bin/supervisord", cwd=Path("/w"), exists=exists) is None
    assert tried == [
        Path("/opt/sv/etc/supervisord.conf"),
        Path("/opt/sv/supervisord.conf"),
        Path("/w/supervisord.conf"),
        Path("/w/etc/supervisord.conf"),
        Path("/etc/supervisord.conf"),
        Path("/etc/supervisor/supervisord.conf"),
    ]


def test_find_config_file_returns_the_first_existing_candidate() -> None:
    present = {Path("/w/etc/supervisord.conf"), Path("/etc/supervisord.conf")}
    found = find_config_file(
        argv0="/opt/sv/bin/supervisord", cwd=Path("/w"), exists=present.__contains__
    )
    assert found == Path("/w/etc/supervisord.conf")


def test_find_config_file_relative_argv0_is_relative_to_cwd() -> None:
    paths = config_search_path(argv0="venv/bin/supervisord", cwd=Path("/w"))
    assert paths[:2] == [Path("/w/venv/etc/supervisord.conf"), Path("/w/venv/supervisord.conf")]
    # like supervisord's dirname(dirname(argv0)): a bare name searches the cwd
    bare = config_search_path(argv0="supervisord", cwd=Path("/w"))
    assert bare[:2] == [Path("/w/etc/supervisord.conf"), Path("/w/supervisord.conf")]
