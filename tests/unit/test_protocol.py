"""Both halves of the event-listener protocol, fed all at once and byte at a time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from manager.events import Event, EventType, ProcessStateChange, RemoteCommunication, Tick
from manager.protocol import (
    MAX_HEADER_BYTES,
    NEED_DATA,
    Closed,
    Header,
    ListenerConnection,
    ListenerState,
    LocalProtocolError,
    Notification,
    Ready,
    RemoteProtocolError,
    Result,
    SupervisorConnection,
    encode_envelope,
)

E = EventType
# The header shape captured from supervisord 4.3.0 (reference §1.3) with a captured payload.
CAPTURED = (
    b"ver:3.0 server:sv1ident serial:15 pool:allev poolserial:15 "
    b"eventname:PROCESS_STATE_EXITED len:72\n"
    b"processname:quick groupname:quick from_state:RUNNING expected:1 pid:6230"
)
# supervisord 4.3 sends len in code points: 13 here although the payload is 14 bytes.
NON_ASCII = (
    b"ver:3.0 server:s serial:1 pool:p poolserial:1 eventname:REMOTE_COMMUNICATION len:13\n"
    + "type:t2\nhéllo".encode()
)


def feed(conn: ListenerConnection, data: bytes, *, byte_at_a_time: bool) -> list[object]:
    """Feed data, collecting everything next_event yields (NEED_DATA excluded)."""
    out: list[object] = []
    chunks: Iterator[bytes] = (
        (data[i : i + 1] for i in range(len(data))) if byte_at_a_time else iter([data])
    )
    for chunk in chunks:
        conn.receive_data(chunk)
        while True:
            item = conn.next_event()
            if item is NEED_DATA:
                break
            out.append(item)
            if isinstance(item, Notification):
                conn.ok()
                conn.ready()
    return out


@pytest.fixture(params=[False, True], ids=["all-at-once", "byte-at-a-time"])
def byte_at_a_time(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def test_listener_parses_captured_supervisord_event(byte_at_a_time: bool) -> None:
    conn = ListenerConnection()
    assert conn.ready() == b"READY\n"
    (n,) = feed(conn, CAPTURED, byte_at_a_time=byte_at_a_time)
    assert isinstance(n, Notification)
    assert n.header == Header("sv1ident", 15, "allev", 15, "PROCESS_STATE_EXITED", 72)
    assert n.event == ProcessStateChange(
        E.PROCESS_STATE_EXITED, "quick", "quick", "RUNNING", pid=6230, expected=True
    )


def test_listener_reads_len_as_code_points_like_supervisord_43(byte_at_a_time: bool) -> None:
    conn = ListenerConnection()
    conn.ready()
    first, second = feed(conn, NON_ASCII + CAPTURED, byte_at_a_time=byte_at_a_time)
    assert isinstance(first, Notification) and isinstance(second, Notification)
    assert first.event == RemoteCommunication("t2", "héllo")
    # The next event starts exactly after the 14 bytes: nothing left over, nothing eaten.
    assert second.header.serial == 15
    assert conn.buffered == 0


def test_listener_handles_many_events_and_four_byte_characters(byte_at_a_time: bool) -> None:
    events = [RemoteCommunication("x", "🙂 日本 ü" * i) for i in range(5)]
    events.append(RemoteCommunication("e", ""))
    wire = b"".join(
        encode_envelope(ev, server="s", serial=i, pool="p", poolserial=i)
        for i, ev in enumerate(events)
    )
    conn = ListenerConnection()
    conn.ready()
    got = feed(conn, wire, byte_at_a_time=byte_at_a_time)
    assert [n.event for n in got if isinstance(n, Notification)] == events


def test_listener_header_tokens_in_any_order_and_extra_tokens_ignored() -> None:
    conn = ListenerConnection()
    conn.ready()
    conn.receive_data(
        b"len:9 eventname:TICK_5 future:1 poolserial:2 pool:p serial:3 server:s ver:3.0\nwhen:1234"
    )
    n = conn.next_event()
    assert isinstance(n, Notification)
    assert n.event == Tick(E.TICK_5, 1234)
    assert (n.header.serial, n.header.poolserial) == (3, 2)


def test_listener_clean_eof_between_events_is_closed() -> None:
    conn = ListenerConnection()
    conn.ready()
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), Closed)


@pytest.mark.parametrize(
    ("wire", "fragment"),
    [
        (b"ver:3.0 server:s serial:1 pool:p", "ended inside a header"),
        (CAPTURED[:-5], "ended inside the payload"),
    ],
)
def test_listener_truncated_input_at_eof_is_an_error(wire: bytes, fragment: str) -> None:
    conn = ListenerConnection()
    conn.ready()
    conn.receive_data(wire)
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match=fragment) as info:
        conn.next_event()
    assert info.value.offending
    assert conn.state is ListenerState.UNKNOWN


@pytest.mark.parametrize(
    ("wire", "fragment"),
    [
        (b"hello world\n", "not key:value"),
        (b"ver:3.0 server:s serial:1 pool:p poolserial:1 eventname:TICK_5\n", "lacks len"),
        (b"ver:3.0 server:s serial:1 pool:p poolserial:1 eventname:TICK_5 len:-4\n", "len"),
        (b"ver:3.0 server:s serial:1 pool:p poolserial:1 eventname:TICK_5 len:ten\n", "len"),
        (b"ver:3.0 server:s serial:x pool:p poolserial:1 eventname:TICK_5 len:1\n", "serial"),
        (b"ver:4.0 server:s serial:1 pool:p poolserial:1 eventname:TICK_5 len:1\n", "version"),
        (
            b"ver:3.0 server:s serial:1 pool:p poolserial:1 eventname:TICK_5 len:99999999999\n",
            "limit",
        ),
        (b"\xff\xfe\x00binary\n", "not UTF-8"),
        (b"ver:3.0 server:s serial:1 pool:p poolserial:1 eventname:TICK_5 len:4\nwhen", "when"),
        (
            b"ver:3.0 server:s serial:1 pool:p poolserial:1 eventname:TICK_5 len:2\n\xff\xff",
            "UTF-8",
        ),
        (b"A" * (MAX_HEADER_BYTES + 1), "no newline"),
    ],
)
def test_listener_garbage_raises_naming_the_bytes(wire: bytes, fragment: str) -> None:
    conn = ListenerConnection()
    conn.ready()
    conn.receive_data(wire)
    with pytest.raises(RemoteProtocolError, match=fragment) as info:
        conn.next_event()
    assert repr(info.value.offending[:5])[2:-1] in str(info.value) or not info.value.offending
    assert conn.state is ListenerState.UNKNOWN


def test_listener_result_before_event_is_a_local_error() -> None:
    conn = ListenerConnection()
    with pytest.raises(LocalProtocolError):
        conn.ok()
    conn.ready()
    with pytest.raises(LocalProtocolError):
        conn.ready()


@settings(max_examples=300)
@given(st.binary(max_size=300), st.integers(1, 17))
def test_listener_never_fails_other_than_protocol_error_on_random_bytes(
    data: bytes, chunk: int
) -> None:
    conn = ListenerConnection()
    conn.ready()
    try:
        for i in range(0, len(data), chunk):
            conn.receive_data(data[i : i + chunk])
            while isinstance(conn.next_event(), Notification):
                conn.ok()
                conn.ready()
        conn.receive_data(b"")
        while isinstance(item := conn.next_event(), Notification):
            conn.ok()
            conn.ready()
        assert isinstance(item, Closed)
    except RemoteProtocolError:
        assert conn.state is ListenerState.UNKNOWN


# -- supervisor side ---------------------------------------------------------------


def sv_feed(conn: SupervisorConnection, data: bytes, *, byte_at_a_time: bool) -> list[object]:
    out: list[object] = []
    for chunk in (data[i : i + 1] for i in range(len(data))) if byte_at_a_time else [data]:
        conn.receive_data(chunk)
        while (item := conn.next_event()) is not NEED_DATA:
            out.append(item)
    return out


EXITED = ProcessStateChange(
    E.PROCESS_STATE_EXITED, "quick", "quick", "RUNNING", pid=6230, expected=True
)


def test_supervisor_envelope_matches_supervisord_43_bytes() -> None:
    sv = SupervisorConnection(server="sv1ident", pool="allev")
    sv.receive_data(b"READY\n")
    assert sv.next_event() == Ready()
    assert sv.send_event(EXITED, serial=15, poolserial=15) == CAPTURED
    assert sv.state is ListenerState.BUSY


def test_supervisor_len_counts_code_points() -> None:
    sv = SupervisorConnection(server="s", pool="p")
    sv.receive_data(b"READY\n")
    sv.next_event()
    assert sv.send_event(RemoteCommunication("t2", "héllo"), serial=1, poolserial=1) == NON_ASCII


@pytest.mark.parametrize(
    ("answer", "ok"),
    [
        (b"RESULT 2\nOK", True),
        (b"RESULT 4\nFAIL", False),
        (b"RESULT 2\nok", False),
        (b"RESULT 3\nOK\n", False),
        (b"RESULT 0\n", False),
    ],
)
def test_supervisor_only_ok_acknowledges(answer: bytes, ok: bool, byte_at_a_time: bool) -> None:
    sv = SupervisorConnection()
    sv.receive_data(b"READY\n")
    sv.next_event()
    sv.send_event(EXITED, serial=1, poolserial=1)
    got = sv_feed(sv, answer + b"READY\n", byte_at_a_time=byte_at_a_time)
    assert len(got) == 2
    result, ready = got
    assert isinstance(result, Result) and result.ok is ok
    assert ready == Ready()
    assert sv.in_flight is None


@pytest.mark.parametrize(
    ("state_setup", "stray"),
    [
        ("ack", b"READY\r\n"),
        ("ack", b"hello\n"),
        ("ready", b"READY\n"),
        ("busy", b"RESULT x\nOK"),
        ("busy", b"OK\n"),
        ("busy", b"RESULT 99999999\n"),
    ],
)
def test_supervisor_protocol_violation_makes_listener_unknown_for_good(
    state_setup: str, stray: bytes
) -> None:
    sv = SupervisorConnection()
    if state_setup in ("ready", "busy"):
        sv.receive_data(b"READY\n")
        sv.next_event()
    if state_setup == "busy":
        sv.send_event(EXITED, serial=1, poolserial=1)
    sv.receive_data(stray)
    with pytest.raises(RemoteProtocolError):
        sv.next_event()
    assert sv.state is ListenerState.UNKNOWN
    sv.receive_data(b"READY\n")
    assert sv.next_event() is NEED_DATA
    with pytest.raises(LocalProtocolError):
        sv.send_event(EXITED, serial=2, poolserial=2)
    if state_setup == "busy":
        assert sv.in_flight is not None and sv.in_flight.serial == 1


def test_supervisor_cannot_send_unless_ready() -> None:
    sv = SupervisorConnection()
    with pytest.raises(LocalProtocolError):
        sv.send_event(EXITED, serial=1, poolserial=1)


def test_both_sides_talk_to_each_other() -> None:
    sv = SupervisorConnection(server="vigild", pool="p")
    ln = ListenerConnection()
    sent: list[Event] = [EXITED, RemoteCommunication("t", "ü"), Tick(E.TICK_60, 60)]
    received = []
    sv.receive_data(ln.ready())
    assert sv.next_event() == Ready()
    for serial, ev in enumerate(sent):
        ln.receive_data(sv.send_event(ev, serial=serial, poolserial=serial))
        n = ln.next_event()
        assert isinstance(n, Notification)
        received.append(n.event)
        sv.receive_data(ln.ok() + ln.ready())
        assert isinstance(sv.next_event(), Result)
        assert sv.next_event() == Ready()
    assert received == sent
