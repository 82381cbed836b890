"""The child-output splitter, fed all at once, byte at a time, and against supervisord 4.3."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from manager.capture import (
    BEGIN_TOKEN,
    END_TOKEN,
    Captured,
    Chunk,
    LogData,
    OutputChannel,
    decode_output,
    strip_escapes,
)

B, E = BEGIN_TOKEN, END_TOKEN


def run(channel: OutputChannel, reads: Iterable[bytes]) -> list[Chunk]:
    out: list[Chunk] = []
    for data in reads:
        out += channel.feed(data)
    out += channel.flush()
    return out


def bytewise(data: bytes) -> Iterator[bytes]:
    return (data[i : i + 1] for i in range(len(data)))


def cut(data: bytes, points: Sequence[int]) -> list[bytes]:
    edges = [0, *sorted({p % (len(data) + 1) for p in points}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def merged(chunks: Sequence[Chunk]) -> list[Chunk]:
    """Join neighbouring LogData of the same mode: how the chunks would look for one read."""
    out: list[Chunk] = []
    for c in chunks:
        last = out[-1] if out else None
        if isinstance(c, LogData) and isinstance(last, LogData) and last.in_capture == c.in_capture:
            out[-1] = LogData(last.data + c.data, c.in_capture)
        else:
            out.append(c)
    return out


def both_ways(data: bytes, capture_maxbytes: int = 100, strip_ansi: bool = False) -> list[Chunk]:
    """The chunks for ``data`` in one read; asserts byte-at-a-time gives the same."""
    whole = run(OutputChannel(capture_maxbytes, strip_ansi), [data])
    single = run(OutputChannel(capture_maxbytes, strip_ansi), bytewise(data))
    assert merged(single) == merged(whole)
    assert all(c.data for c in whole + single if isinstance(c, LogData))
    return merged(whole)


# -- capture mode off -------------------------------------------------------------------


def test_capture_off_passes_tokens_through_as_log_data() -> None:
    data = b"a" + B + b"b" + E + b"c"
    assert both_ways(data, capture_maxbytes=0) == [LogData(data)]


def test_capture_off_keeps_nothing_back() -> None:
    channel = OutputChannel(0, False)
    assert channel.feed(b"<!--XSUPERVISOR:BEG") == [LogData(b"<!--XSUPERVISOR:BEG")]
    assert channel.flush() == []


def test_empty_read_gives_no_chunks() -> None:
    assert OutputChannel(100).feed(b"") == []
    assert OutputChannel(0).feed(b"") == []


# -- capture mode on --------------------------------------------------------------------


def test_capture_block_is_log_data_in_capture_then_captured() -> None:
    assert both_ways(b"before\n" + B + b"comm data" + E + b"after\n") == [
        LogData(b"before\n"),
        LogData(b"comm data", in_capture=True),
        Captured(b"comm data"),
        LogData(b"after\n"),
    ]


def test_empty_capture_block_still_gives_captured() -> None:
    assert both_ways(b"x" + B + E + b"y") == [LogData(b"x"), Captured(b""), LogData(b"y")]


def test_two_blocks_in_one_read() -> None:
    assert both_ways(B + b"1" + E + B + b"2" + E) == [
        LogData(b"1", in_capture=True),
        Captured(b"1"),
        LogData(b"2", in_capture=True),
        Captured(b"2"),
    ]


def test_begin_token_inside_a_block_is_plain_text() -> None:
    assert both_ways(B + b"a" + B + b"b" + E) == [
        LogData(b"a" + B + b"b", in_capture=True),
        Captured(b"a" + B + b"b"),
    ]


def test_end_token_outside_a_block_is_plain_text() -> None:
    assert both_ways(b"a" + E + b"b") == [LogData(b"a" + E + b"b")]


def test_token_split_across_reads() -> None:
    channel = OutputChannel(100)
    assert channel.feed(b"x<!--XSUPER") == [LogData(b"x")]
    assert channel.feed(b"VISOR:BEGIN-->in<!--XSUPERVISOR:") == [LogData(b"in", in_capture=True)]
    assert channel.feed(b"END-->out") == [Captured(b"in"), LogData(b"out")]
    assert channel.flush() == []


def test_false_token_prefix_is_released_with_the_next_feed() -> None:
    channel = OutputChannel(100)
    assert channel.feed(b"abc<!--") == [LogData(b"abc")]
    assert channel.feed(b"zz") == [LogData(b"<!--zz")]


def test_short_reads_are_not_held_back() -> None:
    # supervisord 4.3 holds a buffer no longer than the token; we only hold token prefixes
    assert OutputChannel(100).feed(b"ok\n") == [LogData(b"ok\n")]


def test_flush_releases_a_held_token_prefix() -> None:
    channel = OutputChannel(100)
    assert channel.feed(b"abc<!--X") == [LogData(b"abc")]
    assert channel.flush() == [LogData(b"<!--X")]


def test_flush_in_capture_mode_gives_no_captured_and_resets() -> None:
    channel = OutputChannel(100)
    assert channel.feed(B + b"open block<!--") == [LogData(b"open block", in_capture=True)]
    assert channel.flush() == [LogData(b"<!--", in_capture=True)]
    assert not channel.capturing
    assert channel.feed(b"later" + E) == [LogData(b"later" + E)]


def test_capture_buffer_keeps_the_most_recent_bytes() -> None:
    assert both_ways(B + b"0123456789" + E, capture_maxbytes=4) == [
        LogData(b"0123456789", in_capture=True),
        Captured(b"6789"),
    ]


def test_capture_buffer_is_emptied_between_blocks() -> None:
    assert both_ways(B + b"first" + E + B + b"2nd" + E, capture_maxbytes=4)[-1] == Captured(b"2nd")


# -- ANSI escapes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (b"\x1b[31mred\x1b[0m plain", b"red plain"),
        (b"\x1b[2J\x1b[1;1Hhome", b"home"),
        (b"a\x1bb", b"a\x1bb"),  # ESC without [ is kept
        (b"tail\x1b", b"tail\x1b"),
        (b"abc\x1b[12", b"abc"),  # unterminated: swallows the rest
        (b"\x1b[ hello", b"ello"),  # 4.3's rule: up to the first of HfABCDRsuJKhlpm
        (b"\x1b\x1b[1mx", b"\x1bx"),
        (b"", b""),
    ],
)
def test_strip_escapes_follows_supervisord(raw: bytes, clean: bytes) -> None:
    assert strip_escapes(raw) == clean
    assert both_ways(raw, capture_maxbytes=0, strip_ansi=True) == (
        [LogData(clean)] if clean else []
    )


def test_escapes_are_stripped_inside_capture_blocks() -> None:
    assert both_ways(b"\x1b[1m" + B + b"\x1b[32mok\x1b[0m" + E, strip_ansi=True) == [
        LogData(b"ok", in_capture=True),
        Captured(b"ok"),
    ]


def test_escape_state_ends_at_a_token() -> None:
    # "ESC[" just before the token is stripped alone, as 4.3 strips each piece
    assert both_ways(b"a\x1b[" + B + b"mx" + E, strip_ansi=True) == [
        LogData(b"a"),
        LogData(b"mx", in_capture=True),
        Captured(b"mx"),
    ]
    assert both_ways(b"a\x1b" + B + b"x" + E, strip_ansi=True)[0] == LogData(b"a\x1b")


def test_strip_ansi_off_keeps_escapes() -> None:
    assert both_ways(b"\x1b[31mred") == [LogData(b"\x1b[31mred")]


# -- decode_output ----------------------------------------------------------------------


def test_decode_output_utf8() -> None:
    assert decode_output("héllo\n".encode()) == "héllo\n"


def test_decode_output_undecodable_is_the_bytes_repr() -> None:
    assert decode_output(b"\xff\xfeab") == "Undecodable: b'\\xff\\xfeab'"
    assert decode_output("é".encode()[:1]) == "Undecodable: b'\\xc3'"


# -- properties -------------------------------------------------------------------------

PIECES = st.one_of(
    st.sampled_from(
        [B, E, B[:5], B[:-1], E[:7], E[1:], b"<", b"<!--", b"\n", b"\x1b[31m", b"\x1b", b"["]
    ),
    st.binary(max_size=12),
)
STREAMS = st.lists(PIECES, max_size=14).map(b"".join)
CUTS = st.lists(st.integers(min_value=0, max_value=400), max_size=12)


def reference(data: bytes) -> tuple[bytes, bytes]:
    """Whole-input model: (input minus tokens, text outside blocks + closed blocks' text)."""
    everything, delivered = bytearray(), bytearray()
    capturing, pos = False, 0
    while True:
        token = E if capturing else B
        at = data.find(token, pos)
        if at < 0:
            everything += data[pos:]
            if not capturing:
                delivered += data[pos:]
            return bytes(everything), bytes(delivered)
        everything += data[pos:at]
        delivered += data[pos:at]
        pos = at + len(token)
        capturing = not capturing


@settings(max_examples=400)
@given(data=STREAMS, points=CUTS)
def test_any_cutting_gives_the_same_chunks(data: bytes, points: list[int]) -> None:
    for strip in (False, True):
        for maxbytes in (0, 7, 1000):
            whole = run(OutputChannel(maxbytes, strip), [data])
            pieces = run(OutputChannel(maxbytes, strip), cut(data, points))
            single = run(OutputChannel(maxbytes, strip), bytewise(data))
            assert merged(pieces) == merged(whole) == merged(single)


@settings(max_examples=400)
@given(data=STREAMS, points=CUTS)
def test_no_bytes_lost_or_invented_but_the_tokens(data: bytes, points: list[int]) -> None:
    chunks = run(OutputChannel(10**6), cut(data, points))
    everything, delivered = reference(data)
    assert b"".join(c.data for c in chunks if isinstance(c, LogData)) == everything
    to_file_and_comm = b"".join(
        c.data for c in chunks if isinstance(c, Captured) or not c.in_capture
    )
    assert to_file_and_comm == delivered


@settings(max_examples=300)
@given(data=st.binary(max_size=40), points=CUTS)
def test_streamed_stripping_equals_stripping_the_whole(data: bytes, points: list[int]) -> None:
    chunks = run(OutputChannel(0, True), cut(data, points))
    assert b"".join(c.data for c in chunks) == strip_escapes(data)


# -- against supervisord 4.3 itself -----------------------------------------------------


@settings(max_examples=300)
@given(data=st.binary(max_size=60) | STREAMS)
def test_strip_escapes_matches_supervisord(data: bytes) -> None:
    from supervisor.dispatchers import stripEscapes

    assert strip_escapes(data) == stripEscapes(data)


class _Supervisord43:
    """supervisord 4.3's real POutputDispatcher on minimal stand-ins for its collaborators."""

    def __init__(self, logfile: Path, capture_maxbytes: int, strip_ansi: bool = False) -> None:
        from supervisor import events, loggers
        from supervisor.dispatchers import POutputDispatcher

        options = SimpleNamespace(
            getLogger=loggers.getLogger,
            logger=loggers.getLogger(loggers.LevelsByName.INFO),
            loglevel=loggers.LevelsByName.INFO,
            strip_ansi=strip_ansi,
        )
        config = SimpleNamespace(
            name="p",
            options=options,
            stdout_logfile=str(logfile),
            stdout_logfile_maxbytes=0,
            stdout_logfile_backups=0,
            stdout_syslog=False,
            stdout_capture_maxbytes=capture_maxbytes,
            stdout_events_enabled=True,
            stderr_events_enabled=False,
        )
        self.process = SimpleNamespace(config=config, pid=42, group=None)
        self.log_events: list[bytes] = []
        self.comm_events: list[bytes] = []
        events.clear()
        events.subscribe(events.ProcessLogEvent, lambda e: self.log_events.append(e.data))
        events.subscribe(
            events.ProcessCommunicationEvent, lambda e: self.comm_events.append(e.data)
        )
        self.dispatcher = POutputDispatcher(self.process, events.ProcessCommunicationStdoutEvent, 0)

    def feed(self, data: bytes) -> None:
        self.dispatcher.output_buffer += data
        self.dispatcher.record_output()

    def close(self) -> None:
        from supervisor import events

        events.clear()
        self.dispatcher.normallog.close()


@settings(max_examples=200, deadline=None)
@given(data=STREAMS, points=CUTS, maxbytes=st.sampled_from([0, 1000]))
def test_matches_supervisord_dispatcher(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, points: list[int], maxbytes: int
) -> None:
    logfile = tmp_path_factory.mktemp("sv") / "p.log"
    # 4.3 holds back up to a token's length of output until more comes (and loses it
    # at EOF): end with a long, token-free read so that it writes everything out
    reads = [*cut(data, points), b"\n" * 30]
    sv = _Supervisord43(logfile, maxbytes)
    try:
        for r in reads:
            sv.feed(r)
        assert sv.dispatcher.output_buffer == b""
    finally:
        sv.close()
    chunks = run(OutputChannel(maxbytes), reads)

    assert b"".join(c.data for c in chunks if isinstance(c, LogData)) == b"".join(sv.log_events)
    ours_file = b"".join(c.data for c in chunks if isinstance(c, LogData) and not c.in_capture)
    assert ours_file == logfile.read_bytes()
    assert [c.data for c in chunks if isinstance(c, Captured)] == sv.comm_events


@settings(max_examples=200, deadline=None)
@given(data=STREAMS, maxbytes=st.sampled_from([0, 1000]))
def test_matches_supervisord_stripping_when_each_piece_comes_in_one_read(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, maxbytes: int
) -> None:
    logfile = tmp_path_factory.mktemp("sv") / "p.log"
    reads = [data + b"\n" * 30]
    sv = _Supervisord43(logfile, maxbytes, strip_ansi=True)
    try:
        for r in reads:
            sv.feed(r)
    finally:
        sv.close()
    chunks = run(OutputChannel(maxbytes, strip_ansi=True), reads)

    assert [c.data for c in chunks if isinstance(c, LogData)] == [d for d in sv.log_events if d]
    ours_file = b"".join(c.data for c in chunks if isinstance(c, LogData) and not c.in_capture)
    assert ours_file == logfile.read_bytes()
    assert [c.data for c in chunks if isinstance(c, Captured)] == sv.comm_events
