"""vigild's own log: supervisord's line format, levels, rotation, reopen, syslog."""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from manager.mainlog import (
    BLATHER,
    LEVEL_TAGS,
    LEVELS,
    TRACE,
    close_logger,
    make_logger,
    parse_level,
    reopen,
)

LINE = re.compile(
    r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} (CRIT|ERRO|WARN|INFO|DEBG|TRAC|BLAT) (.*)$"
)


@pytest.fixture
def name(request: pytest.FixtureRequest) -> Iterator[str]:
    """A logger name of its own for each test; its handlers are closed afterwards."""
    logger_name = f"vigild-test.{request.node.name}"
    yield logger_name
    close_logger(logging.getLogger(logger_name))


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_levels_are_supervisords() -> None:
    assert LEVELS == {
        "critical": 50,
        "error": 40,
        "warn": 30,
        "info": 20,
        "debug": 10,
        "trace": 5,
        "blather": 3,
    }
    assert {LEVEL_TAGS[n] for n in LEVELS.values()} == {
        "CRIT",
        "ERRO",
        "WARN",
        "INFO",
        "DEBG",
        "TRAC",
        "BLAT",
    }


@pytest.mark.parametrize(("value", "level"), [("info", 20), ("BLATHER", 3), ("Warn", 30), (10, 10)])
def test_parse_level(value: str | int, level: int) -> None:
    assert parse_level(value) == level


@pytest.mark.parametrize("value", ["warning", "", "verbose", 25])
def test_parse_level_rejects_what_supervisord_rejects(value: str | int) -> None:
    with pytest.raises(ValueError, match=re.escape(f"bad logging level name {value!r}")):
        parse_level(value)


def test_line_format_for_every_level(tmp_path: Path, name: str) -> None:
    path = tmp_path / "vigild.log"
    log = make_logger(path, level="blather", maxbytes=0, backups=0, stdout=False, name=name)
    for levelno in (50, 40, 30, 20, 10, TRACE, BLATHER):
        log.log(levelno, "message %d", levelno)
    got = [LINE.match(line) for line in lines(path)]
    assert [(m.group(1), m.group(2)) for m in got if m] == [
        ("CRIT", "message 50"),
        ("ERRO", "message 40"),
        ("WARN", "message 30"),
        ("INFO", "message 20"),
        ("DEBG", "message 10"),
        ("TRAC", "message 5"),
        ("BLAT", "message 3"),
    ]


def test_level_filters(tmp_path: Path, name: str) -> None:
    path = tmp_path / "vigild.log"
    log = make_logger(path, level="info", maxbytes=0, backups=0, stdout=False, name=name)
    log.debug("hidden")
    log.log(TRACE, "hidden")
    log.info("shown")
    assert [line.split(" ", 3)[3] for line in lines(path)] == ["shown"]


def test_multi_line_messages_are_written_as_they_are(tmp_path: Path, name: str) -> None:
    path = tmp_path / "vigild.log"
    log = make_logger(path, level="debug", maxbytes=0, backups=0, stdout=False, name=name)
    log.debug("'web' stdout output:\nline 1\nline 2")
    text = lines(path)
    assert LINE.match(text[0])
    assert text[0].endswith(" DEBG 'web' stdout output:")
    assert text[1:] == ["line 1", "line 2"]


def test_exceptions_are_appended(tmp_path: Path, name: str) -> None:
    path = tmp_path / "vigild.log"
    log = make_logger(path, level="info", maxbytes=0, backups=0, stdout=False, name=name)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("it failed")
    text = path.read_text()
    assert " ERRO it failed\nTraceback (most recent call last):" in text
    assert text.rstrip().endswith("RuntimeError: boom")


def test_stdout_handler(capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str) -> None:
    log = make_logger(
        tmp_path / "vigild.log", level="info", maxbytes=0, backups=0, stdout=True, name=name
    )
    log.warning("to both")
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1
    assert LINE.match(out[0])
    assert out[0].endswith(" WARN to both")
    assert lines(tmp_path / "vigild.log") == out


def test_no_file_no_stdout_is_silent(capsys: pytest.CaptureFixture[str], name: str) -> None:
    log = make_logger(None, level="info", maxbytes=0, backups=0, stdout=False, name=name)
    log.critical("nowhere")
    assert capsys.readouterr() == ("", "")


def test_rotation_keeps_backups(tmp_path: Path, name: str) -> None:
    path = tmp_path / "vigild.log"
    log = make_logger(path, level="info", maxbytes=200, backups=2, stdout=False, name=name)
    for i in range(40):
        log.info("line %03d", i)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["vigild.log", "vigild.log.1", "vigild.log.2"]
    for p in tmp_path.iterdir():
        assert 0 < p.stat().st_size <= 200
    assert lines(path)[-1].endswith("INFO line 039")


def test_backups_zero_truncates(tmp_path: Path, name: str) -> None:
    path = tmp_path / "vigild.log"
    log = make_logger(path, level="info", maxbytes=100, backups=0, stdout=False, name=name)
    for i in range(20):
        log.info("line %03d", i)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vigild.log"]
    assert path.stat().st_size <= 100
    assert lines(path)[-1].endswith("INFO line 019")


def test_special_files_never_rotate(tmp_path: Path, name: str) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        log = make_logger(fifo, level="info", maxbytes=10, backups=1, stdout=False, name=name)
        log.info("first line")
        log.info("second line")
        text = os.read(reader, 1000).decode().splitlines()
        assert [t.split(" ", 3)[3] for t in text] == ["first line", "second line"]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"]
    finally:
        close_logger(logging.getLogger(name))
        os.close(reader)


def test_reopen_after_external_rotation(tmp_path: Path, name: str) -> None:
    path = tmp_path / "vigild.log"
    log = make_logger(path, level="info", maxbytes=0, backups=0, stdout=False, name=name)
    log.info("before")
    path.rename(tmp_path / "vigild.log.old")
    reopen(log)
    log.info("after")
    assert [line.split(" ", 3)[3] for line in lines(tmp_path / "vigild.log.old")] == ["before"]
    assert [line.split(" ", 3)[3] for line in lines(path)] == ["after"]


def test_make_logger_again_replaces_the_handlers(tmp_path: Path, name: str) -> None:
    first = make_logger(
        tmp_path / "one.log", level="info", maxbytes=0, backups=0, stdout=False, name=name
    )
    old = first.handlers[0]
    assert isinstance(old, logging.FileHandler)
    second = make_logger(
        tmp_path / "two.log", level="debug", maxbytes=0, backups=0, stdout=False, name=name
    )
    assert second is first
    assert old.stream is None  # closed
    assert len(second.handlers) == 1
    second.debug("x")
    assert (tmp_path / "one.log").read_text() == ""
    assert lines(tmp_path / "two.log")[0].endswith(" DEBG x")


def test_global_logging_is_left_alone(tmp_path: Path, name: str) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    log = make_logger(
        tmp_path / "vigild.log", level="debug", maxbytes=0, backups=0, stdout=False, name=name
    )
    assert root.handlers == handlers
    assert root.level == level
    assert log.propagate is False
    assert logging.getLevelName(logging.CRITICAL) == "CRITICAL"
    assert logging.getLevelName(logging.DEBUG) == "DEBUG"
    assert logging.getLevelName(TRACE) == "TRAC"
    assert logging.getLevelName(BLATHER) == "BLAT"


def test_child_loggers_end_up_in_the_main_log(tmp_path: Path, name: str) -> None:
    path = tmp_path / "vigild.log"
    make_logger(path, level="info", maxbytes=0, backups=0, stdout=False, name=name)
    logging.getLogger(f"{name}.rpc").info("from a module")
    assert lines(path)[0].endswith(" INFO from a module")


def test_syslog_one_record_per_line(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    sent: list[tuple[str, int]] = []

    def fake_emit(self: logging.handlers.SysLogHandler, record: logging.LogRecord) -> None:
        prio = self.mapPriority(record.levelname)
        sent.append((self.ident + self.format(record), self.priority_names[prio]))

    monkeypatch.setattr(logging.handlers.SysLogHandler, "emit", fake_emit)
    log = make_logger("syslog", level="blather", maxbytes=0, backups=0, stdout=False, name=name)
    assert isinstance(log.handlers[0], logging.handlers.SysLogHandler)
    log.error("two\nlines")
    log.log(BLATHER, "noise")
    assert [LINE.match(m.removeprefix(f"{name}: ")) is not None for m, _ in sent] == [True] * 3
    assert [(m.rsplit(" ", 2)[-2:], p) for m, p in sent] == [
        (["ERRO", "two"], 3),
        (["ERRO", "lines"], 3),
        (["BLAT", "noise"], 7),
    ]
