"""Event types, hierarchy and payloads against supervisord 4.3's captured bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from manager.events import (
    Event,
    EventType,
    PayloadError,
    ProcessCommunication,
    ProcessGroupEvent,
    ProcessLog,
    ProcessStateChange,
    RemoteCommunication,
    SupervisorStateChange,
    Tick,
    UnknownEvent,
    event_name,
    parse_event,
    parse_event_names,
)

E = EventType

# Payloads captured from supervisord 4.3.0 (reference §2.2).
CAPTURED = [
    (
        "PROCESS_STATE_EXITED",
        "processname:quick groupname:quick from_state:RUNNING expected:1 pid:6230",
        ProcessStateChange(
            E.PROCESS_STATE_EXITED, "quick", "quick", "RUNNING", pid=6230, expected=True
        ),
    ),
    (
        "PROCESS_STATE_STARTING",
        "processname:a groupname:g from_state:BACKOFF tries:2",
        ProcessStateChange(E.PROCESS_STATE_STARTING, "a", "g", "BACKOFF", tries=2),
    ),
    (
        "PROCESS_STATE_BACKOFF",
        "processname:a groupname:g from_state:STARTING tries:4",
        ProcessStateChange(E.PROCESS_STATE_BACKOFF, "a", "g", "STARTING", tries=4),
    ),
    (
        "PROCESS_STATE_RUNNING",
        "processname:a groupname:g from_state:STARTING pid:12",
        ProcessStateChange(E.PROCESS_STATE_RUNNING, "a", "g", "STARTING", pid=12),
    ),
    (
        "PROCESS_STATE_STOPPED",
        "processname:a groupname:g from_state:BACKOFF pid:0",
        ProcessStateChange(E.PROCESS_STATE_STOPPED, "a", "g", "BACKOFF", pid=0),
    ),
    (
        "PROCESS_STATE_FATAL",
        "processname:a groupname:g from_state:BACKOFF",
        ProcessStateChange(E.PROCESS_STATE_FATAL, "a", "g", "BACKOFF"),
    ),
    (
        "PROCESS_LOG_STDOUT",
        "processname:talker groupname:talker pid:7155 channel:stdout\nout-line\n",
        ProcessLog(E.PROCESS_LOG_STDOUT, "talker", "talker", 7155, "stdout", "out-line\n"),
    ),
    (
        "PROCESS_COMMUNICATION_STDOUT",
        "processname:talker groupname:talker pid:7155\ncomm-data",
        ProcessCommunication(E.PROCESS_COMMUNICATION_STDOUT, "talker", "talker", 7155, "comm-data"),
    ),
    (
        "REMOTE_COMMUNICATION",
        "type:mytype\nhello data",
        RemoteCommunication("mytype", "hello data"),
    ),
    ("PROCESS_GROUP_ADDED", "groupname:allev\n", ProcessGroupEvent(E.PROCESS_GROUP_ADDED, "allev")),
    ("TICK_5", "when:1795660510", Tick(E.TICK_5, 1795660510)),
    (
        "SUPERVISOR_STATE_CHANGE_RUNNING",
        "",
        SupervisorStateChange(E.SUPERVISOR_STATE_CHANGE_RUNNING),
    ),
]


@pytest.mark.parametrize(("name", "payload", "expected"), CAPTURED)
def test_captured_payloads_parse_and_serialize_byte_exact(
    name: str, payload: str, expected: Event
) -> None:
    event = parse_event(name, payload)
    assert event == expected
    assert event.payload() == payload
    assert event_name(event) == name


def test_every_concrete_type_is_parseable_and_every_type_descends_from_event() -> None:
    for t in EventType:
        assert E.EVENT in t.lineage()
        assert t.is_a(E.EVENT)
    concrete = [t for t in EventType if not t.abstract]
    assert len(concrete) == 20


def test_hierarchy_subscription_matches_children_only() -> None:
    assert E.PROCESS_STATE_EXITED.is_a(E.PROCESS_STATE)
    assert not E.PROCESS_STATE_EXITED.is_a(E.TICK)
    assert E.TICK_60.is_a(E.TICK)
    assert not E.PROCESS_STATE.is_a(E.PROCESS_STATE_EXITED)
    assert list(E.PROCESS_LOG_STDERR.lineage()) == [E.PROCESS_LOG_STDERR, E.PROCESS_LOG, E.EVENT]


def test_event_names_list_is_case_insensitive_and_deduplicated() -> None:
    assert parse_event_names(" process_state , TICK_5,PROCESS_STATE") == (
        E.PROCESS_STATE,
        E.TICK_5,
    )


@pytest.mark.parametrize("text", ["FOO", "PROCESS_STATE,NOPE", "", " , "])
def test_event_names_list_rejects_unknown_and_empty(text: str) -> None:
    with pytest.raises(ValueError):
        parse_event_names(text)


def test_unknown_event_name_is_kept_under_event() -> None:
    ev = parse_event("MY_PLUGIN_EVENT", "x:y")
    assert ev == UnknownEvent("MY_PLUGIN_EVENT", "x:y")
    assert ev.type is E.EVENT
    assert event_name(ev) == "MY_PLUGIN_EVENT"


@pytest.mark.parametrize(
    ("name", "payload", "fragment"),
    [
        ("PROCESS_STATE_EXITED", "processname:a groupname:a from_state:RUNNING pid:1", "expected"),
        ("PROCESS_STATE_RUNNING", "processname:a groupname:a from_state:STARTING pid:x", "pid"),
        (
            "PROCESS_STATE_EXITED",
            "processname:a groupname:a from_state:R expected:2 pid:1",
            "0 or 1",
        ),
        ("PROCESS_STATE_RUNNING", "processname:a groupname:a junk pid:1", "junk"),
        ("PROCESS_LOG_STDOUT", "processname:a groupname:a pid:1 channel:stdout", "newline"),
        ("TICK_5", "when:soon", "when"),
        ("PROCESS_GROUP_ADDED", "\n", "groupname"),
        ("REMOTE_COMMUNICATION", "typo:x\ny", "type:"),
        ("SUPERVISOR_STATE_CHANGE_RUNNING", "x", "empty"),
        ("PROCESS_STATE", "processname:a", "abstract"),
    ],
)
def test_malformed_payload_names_the_problem(name: str, payload: str, fragment: str) -> None:
    with pytest.raises(PayloadError, match=fragment):
        parse_event(name, payload)


names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Cc"), blacklist_characters=":/"),
    min_size=1,
    max_size=12,
).filter(lambda s: s.split() == [s])


@st.composite
def events(draw: st.DrawFn) -> Event:
    kind = draw(st.sampled_from([t for t in EventType if not t.abstract]))
    p, g = draw(names), draw(names)
    text = draw(st.text(max_size=40).filter(lambda s: "\x00" not in s))
    n = draw(st.integers(0, 2**31))
    if kind.is_a(E.PROCESS_STATE):
        return ProcessStateChange(
            kind,
            p,
            g,
            draw(st.sampled_from(["STARTING", "RUNNING", "BACKOFF"])),
            tries=n if kind in (E.PROCESS_STATE_STARTING, E.PROCESS_STATE_BACKOFF) else None,
            pid=n
            if kind
            in (
                E.PROCESS_STATE_RUNNING,
                E.PROCESS_STATE_STOPPING,
                E.PROCESS_STATE_STOPPED,
                E.PROCESS_STATE_EXITED,
            )
            else None,
            expected=draw(st.booleans()) if kind is E.PROCESS_STATE_EXITED else None,
        )
    if kind.is_a(E.PROCESS_LOG):
        return ProcessLog(kind, p, g, n, draw(st.sampled_from(["stdout", "stderr"])), text)
    if kind.is_a(E.PROCESS_COMMUNICATION):
        return ProcessCommunication(kind, p, g, n, text)
    if kind is E.REMOTE_COMMUNICATION:
        return RemoteCommunication(p, text)
    if kind.is_a(E.SUPERVISOR_STATE_CHANGE):
        return SupervisorStateChange(kind)
    if kind.is_a(E.TICK):
        return Tick(kind, n)
    return ProcessGroupEvent(kind, g)


@given(events())
def test_payload_round_trip(event: Event) -> None:
    assert parse_event(event_name(event), event.payload()) == event
