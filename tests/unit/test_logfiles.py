"""Child log files: rotation numbering, read/tail rules, AUTO names and cleanup."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from manager.faults import Fault
from manager.logfiles import (
    BadArguments,
    Failed,
    LogReadError,
    NoFile,
    RotatingFile,
    auto_log_path,
    cleanup_auto_logs,
    read_log,
    tail_log,
)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[RotatingFile]:
    with RotatingFile(tmp_path / "p.log", maxbytes=10, backups=2) as f:
        yield f


def files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


# -- RotatingFile -----------------------------------------------------------------------


def test_file_is_opened_lazily(tmp_path: Path) -> None:
    with RotatingFile(tmp_path / "p.log", 0, 0) as f:
        assert not f.path.exists()
        assert f.closed
        assert f.size == 0
        f.write(b"")
        assert f.path.exists()
        assert not f.closed
        assert f.size == 0


def test_open_creates_the_file(tmp_path: Path) -> None:
    with RotatingFile(tmp_path / "p.log") as f:
        f.open()
        assert f.path.read_bytes() == b""


def test_appends_to_an_existing_file(tmp_path: Path) -> None:
    (tmp_path / "p.log").write_bytes(b"old\n")
    with RotatingFile(tmp_path / "p.log", 0, 0) as f:
        f.write(b"new\n")
        assert f.size == 8
    assert (tmp_path / "p.log").read_bytes() == b"old\nnew\n"


def test_data_is_visible_before_close(log: RotatingFile) -> None:
    log.write(b"abc")
    assert log.path.read_bytes() == b"abc"
    assert read_log(log.path, 0, 0) == b"abc"


def test_rotation_numbering_drops_the_oldest(log: RotatingFile, tmp_path: Path) -> None:
    for ch in b"abcd":
        log.write(bytes([ch]) * 6)
    assert files(tmp_path) == {"p.log": b"dddddd", "p.log.1": b"cccccc", "p.log.2": b"bbbbbb"}


def test_rotation_happens_before_a_write_that_would_exceed_maxbytes(
    log: RotatingFile, tmp_path: Path
) -> None:
    log.write(b"12345")
    log.write(b"67890")  # exactly maxbytes: no rotation
    assert files(tmp_path) == {"p.log": b"1234567890"}
    log.write(b"x")
    assert files(tmp_path) == {"p.log": b"x", "p.log.1": b"1234567890"}


def test_a_write_larger_than_maxbytes_is_kept_whole(log: RotatingFile, tmp_path: Path) -> None:
    log.write(b"0123456789ABCDEF")  # empty file: no empty backup is made
    assert files(tmp_path) == {"p.log": b"0123456789ABCDEF"}
    log.write(b"z" * 20)
    assert files(tmp_path) == {"p.log": b"z" * 20, "p.log.1": b"0123456789ABCDEF"}


def test_backups_zero_truncates(tmp_path: Path) -> None:
    with RotatingFile(tmp_path / "p.log", maxbytes=4, backups=0) as f:
        f.write(b"abc")
        f.write(b"def")
        assert files(tmp_path) == {"p.log": b"def"}


def test_maxbytes_zero_never_rotates(tmp_path: Path) -> None:
    with RotatingFile(tmp_path / "p.log", maxbytes=0, backups=3) as f:
        for _ in range(100):
            f.write(b"0123456789")
    assert files(tmp_path) == {"p.log": b"0123456789" * 100}


def test_rotation_tolerates_missing_intermediate_backups(log: RotatingFile, tmp_path: Path) -> None:
    (tmp_path / "p.log.2").write_bytes(b"ancient")
    (tmp_path / "p.log.9").write_bytes(b"unrelated")  # beyond backups: left alone, as 4.3
    log.write(b"123456")
    log.write(b"789012")
    assert files(tmp_path) == {
        "p.log": b"789012",
        "p.log.1": b"123456",
        "p.log.2": b"ancient",
        "p.log.9": b"unrelated",
    }


def test_rotation_follows_external_truncation(log: RotatingFile, tmp_path: Path) -> None:
    log.write(b"123456")
    os.truncate(log.path, 0)  # logrotate copytruncate
    log.write(b"789012")
    assert files(tmp_path) == {"p.log": b"789012"}


def test_non_regular_files_never_rotate(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        with RotatingFile(fifo, maxbytes=2, backups=1) as f:
            f.write(b"abc")
            f.write(b"def")
            assert f.write_errors == 0
        assert os.read(reader, 100) == b"abcdef"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"]
    finally:
        os.close(reader)


def test_reopen_after_external_rotation(log: RotatingFile, tmp_path: Path) -> None:
    log.write(b"one")
    log.path.rename(tmp_path / "moved")
    log.write(b"two")  # still the old file until reopened
    log.reopen()
    assert log.path.read_bytes() == b""  # recreated at once, as 4.3
    log.write(b"three")
    assert files(tmp_path) == {"moved": b"onetwo", "p.log": b"three"}


def test_clear_removes_the_file_and_recreates_it_keeping_backups(
    log: RotatingFile, tmp_path: Path
) -> None:
    log.write(b"123456")
    log.write(b"789012")
    log.clear()
    assert files(tmp_path) == {"p.log": b"", "p.log.1": b"123456"}
    log.write(b"x")
    assert files(tmp_path) == {"p.log": b"x", "p.log.1": b"123456"}


def test_clear_with_backups(log: RotatingFile, tmp_path: Path) -> None:
    for ch in b"abc":
        log.write(bytes([ch]) * 6)
    log.clear(include_backups=True)
    assert files(tmp_path) == {"p.log": b""}


def test_clear_on_a_never_written_file(tmp_path: Path) -> None:
    with RotatingFile(tmp_path / "p.log", 10, 2) as f:
        f.clear()
        assert f.path.read_bytes() == b""


def test_close_is_idempotent_and_write_reopens(log: RotatingFile) -> None:
    log.write(b"a")
    log.close()
    log.close()
    assert log.closed
    assert log.size == 1
    log.write(b"b")
    assert log.path.read_bytes() == b"ab"


def test_write_errors_are_recorded_not_raised(tmp_path: Path) -> None:
    with RotatingFile(tmp_path / "missing" / "p.log", 0, 0) as f:
        f.write(b"lost")
        assert f.write_errors == 1
        assert isinstance(f.last_error, FileNotFoundError)
        with pytest.raises(FileNotFoundError):
            f.open()


# -- read_log ---------------------------------------------------------------------------

CONTENT = b"0123456789"


@pytest.fixture
def ten(tmp_path: Path) -> Path:
    path = tmp_path / "ten.log"
    path.write_bytes(CONTENT)
    return path


@pytest.mark.parametrize(
    ("offset", "length", "expected"),
    [
        (0, 0, CONTENT),
        (3, 0, b"3456789"),
        (3, 4, b"3456"),
        (8, 5, b"89"),
        (10, 0, b""),
        (100, 0, b""),
        (-4, 0, b"6789"),
        (-100, 0, CONTENT),
        (-1600, 0, CONTENT),  # supervisorctl tail
    ],
)
def test_read_log_rules(ten: Path, offset: int, length: int, expected: bytes) -> None:
    assert read_log(ten, offset, length) == expected


@pytest.mark.parametrize(("offset", "length"), [(-1, 1), (-1, -1), (0, -1), (5, -3)])
def test_read_log_bad_arguments(ten: Path, offset: int, length: int) -> None:
    with pytest.raises(BadArguments) as info:
        read_log(ten, offset, length)
    assert info.value.fault is Fault.BAD_ARGUMENTS


def test_read_log_missing_file_is_no_file_before_argument_checks(tmp_path: Path) -> None:
    with pytest.raises(NoFile) as info:
        read_log(tmp_path / "absent.log", -1, 1)
    assert info.value.fault is Fault.NO_FILE
    assert isinstance(info.value, LogReadError)


def test_read_log_unreadable_is_failed(tmp_path: Path) -> None:
    with pytest.raises(Failed) as info:
        read_log(tmp_path, 0, -1)  # a directory: open fails before the argument check
    assert info.value.fault is Fault.FAILED


# -- tail_log ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "length", "expected"),
    [
        (0, 100, (CONTENT, 10, False)),
        (0, 5, (b"56789", 10, True)),  # overflow: the last length bytes
        (4, 3, (b"789", 10, True)),
        (5, 5, (b"56789", 10, False)),
        (5, 10, (CONTENT, 10, False)),  # the last length bytes, from before offset (4.3)
        (10, 5, (b"", 10, False)),
        (12, 5, (b"", 10, False)),
        (0, 0, (b"", 10, True)),
    ],
)
def test_tail_log_rules(ten: Path, offset: int, length: int, expected: object) -> None:
    assert tail_log(ten, offset, length) == expected


def test_tail_log_missing_file(tmp_path: Path) -> None:
    assert tail_log(tmp_path / "absent.log", 7, 100) == (b"", 0, False)


def test_tail_log_unreadable_returns_the_offset(tmp_path: Path) -> None:
    assert tail_log(tmp_path, 7, 100) == (b"", 7, False)


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(0, 30),
    offset=st.integers(-40, 40),
    length=st.integers(-40, 40),
)
def test_read_and_tail_match_supervisord(
    tmp_path_factory: pytest.TempPathFactory, size: int, offset: int, length: int
) -> None:
    from supervisor.options import readFile, tailFile

    path = tmp_path_factory.mktemp("rt") / "f.log"
    path.write_bytes(bytes(range(65, 65 + size)))

    data, next_offset, overflow = tail_log(path, offset, length)
    assert [data.decode(), next_offset, overflow] == tailFile(str(path), offset, length)

    try:
        expected: bytes | str = readFile(str(path), offset, length)
    except ValueError as exc:
        expected = exc.args[0]
    try:
        got: bytes | str = read_log(path, offset, length)
    except LogReadError as exc:
        got = exc.fault.name
    assert got == expected


# -- AUTO logs --------------------------------------------------------------------------

AUTO_NAME = re.compile(r"^web-stdout---supervisor-[a-z0-9_]{8}\.log$")


def test_auto_log_path_names_and_creates_the_file(tmp_path: Path) -> None:
    a = auto_log_path(tmp_path, "web", "stdout", "supervisor")
    b = auto_log_path(tmp_path, "web", "stdout", "supervisor")
    assert a != b
    for p in (a, b):
        assert p.parent == tmp_path
        assert AUTO_NAME.match(p.name)
        assert p.read_bytes() == b""
    assert sorted(cleanup_auto_logs(tmp_path, "supervisor")) == sorted([a, b])


def test_cleanup_auto_logs_removes_only_matching_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    names = {
        "web-stdout---supervisor-ab12cd34.log": True,
        "web-stdout---supervisor-ab12cd34.log.1": True,
        "web-stderr---supervisor-zz.log.10": True,
        "web-stdout---supervisor-2-ab12cd34.log": True,  # 4.3's pattern: a prefix match
        "web-stdout---other-ab12cd34.log": False,
        "web-stdout---supervisor-.log": False,
        "---supervisor-x.log": False,
        "supervisor.log": False,
        "web-stdout---supervisorX-ab.log": False,
    }
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "dir---supervisor-x.log").mkdir()

    removed = cleanup_auto_logs(
        tmp_path, "supervisor", log=logging.getLogger("test.cleanup_auto_logs")
    )

    assert sorted(p.name for p in removed) == sorted(n for n, gone in names.items() if gone)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["dir---supervisor-x.log", *(n for n, gone in names.items() if not gone)]
    )
    assert [r.getMessage() for r in caplog.records] == [
        f"Failed to clean up {str(tmp_path / 'dir---supervisor-x.log')!r}"
    ]


def test_cleanup_pattern_agrees_with_supervisord(tmp_path: Path) -> None:
    names = [
        "a---ident-b.log",
        "a---ident-b.log.3",
        "a---ident-b.logx",
        "a---ident-.log",
        "a---ident-b c.log",
        "---ident-b.log",
        "a-stdout---ident-q-r.log",
        "a---identb.log",
        "a---ident-b.txt",
    ]
    supervisord = re.compile(r".+?---%s-\S+\.log\.{0,1}\d{0,4}" % "ident")  # noqa: UP031
    for name in names:
        (tmp_path / name).write_bytes(b"")
    removed = {p.name for p in cleanup_auto_logs(tmp_path, "ident")}
    assert removed == {n for n in names if supervisord.match(n)}


def test_cleanup_escapes_the_identifier(tmp_path: Path) -> None:
    (tmp_path / "a---sup-x-b.log").write_bytes(b"")
    assert cleanup_auto_logs(tmp_path, "sup.x") == []  # 4.3 would remove it ('.' is a regex)


def test_cleanup_missing_dir_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.cleanup_auto_logs")
    assert cleanup_auto_logs(tmp_path / "absent", "supervisor", log=log) == []
    assert [r.getMessage() for r in caplog.records] == ["Could not clear childlog dir"]
