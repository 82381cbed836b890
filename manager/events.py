"""supervisord 4.x event types, their hierarchy and their payloads.

Theory of operation
-------------------
Every event that crosses the event-listener protocol has a concrete *type* (the
``eventname:`` header token) and a *payload* (text). This module is the single
definition of both, shared by the supervisor side (vigild builds payloads) and
the listener side (vigil-listener parses them):

* :class:`EventType` lists every type supervisord 4.3 knows, abstract ones
  included; :data:`PARENT` is the hierarchy, so a subscription to
  ``PROCESS_STATE`` matches every ``PROCESS_STATE_*`` and ``EVENT`` matches all.
* Each payload shape is a frozen dataclass with ``payload() -> str`` (what a
  supervisor sends) and ``parse(type, payload) -> Event`` (what a listener
  reads). ``parse(t, e.payload()) == e`` for every event ``e``.

Payload quirks copied from supervisord 4.3 on purpose (reference §2.2):
PROCESS_STATE token sets have no trailing newline; PROCESS_GROUP_* payloads do;
PROCESS_LOG carries a ``channel`` token, PROCESS_COMMUNICATION does not.

Nothing here does I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = [
    "PARENT",
    "Event",
    "EventType",
    "PayloadError",
    "ProcessCommunication",
    "ProcessGroupEvent",
    "ProcessLog",
    "ProcessStateChange",
    "RemoteCommunication",
    "SupervisorStateChange",
    "Tick",
    "UnknownEvent",
    "parse_event",
    "parse_event_names",
]


class EventType(enum.Enum):
    """Every event type of supervisord 4.x; the value is the wire name."""

    EVENT = "EVENT"
    PROCESS_STATE = "PROCESS_STATE"
    PROCESS_STATE_STOPPED = "PROCESS_STATE_STOPPED"
    PROCESS_STATE_EXITED = "PROCESS_STATE_EXITED"
    PROCESS_STATE_STARTING = "PROCESS_STATE_STARTING"
    PROCESS_STATE_STOPPING = "PROCESS_STATE_STOPPING"
    PROCESS_STATE_BACKOFF = "PROCESS_STATE_BACKOFF"
    PROCESS_STATE_FATAL = "PROCESS_STATE_FATAL"
    PROCESS_STATE_RUNNING = "PROCESS_STATE_RUNNING"
    PROCESS_STATE_UNKNOWN = "PROCESS_STATE_UNKNOWN"
    PROCESS_LOG = "PROCESS_LOG"
    PROCESS_LOG_STDOUT = "PROCESS_LOG_STDOUT"
    PROCESS_LOG_STDERR = "PROCESS_LOG_STDERR"
    PROCESS_COMMUNICATION = "PROCESS_COMMUNICATION"
    PROCESS_COMMUNICATION_STDOUT = "PROCESS_COMMUNICATION_STDOUT"
    PROCESS_COMMUNICATION_STDERR = "PROCESS_COMMUNICATION_STDERR"
    REMOTE_COMMUNICATION = "REMOTE_COMMUNICATION"
    SUPERVISOR_STATE_CHANGE = "SUPERVISOR_STATE_CHANGE"
    SUPERVISOR_STATE_CHANGE_RUNNING = "SUPERVISOR_STATE_CHANGE_RUNNING"
    SUPERVISOR_STATE_CHANGE_STOPPING = "SUPERVISOR_STATE_CHANGE_STOPPING"
    TICK = "TICK"
    TICK_5 = "TICK_5"
    TICK_60 = "TICK_60"
    TICK_3600 = "TICK_3600"
    PROCESS_GROUP = "PROCESS_GROUP"
    PROCESS_GROUP_ADDED = "PROCESS_GROUP_ADDED"
    PROCESS_GROUP_REMOVED = "PROCESS_GROUP_REMOVED"

    @property
    def abstract(self) -> bool:
        """True for types that are only subscribed to, never sent."""
        return self in _ABSTRACT

    @property
    def parent(self) -> EventType | None:
        return PARENT[self]

    def lineage(self) -> Iterator[EventType]:
        """This type, then each ancestor up to ``EVENT``."""
        t: EventType | None = self
        while t is not None:
            yield t
            t = PARENT[t]

    def is_a(self, other: EventType) -> bool:
        """True if a subscription to ``other`` matches this type."""
        return other in self.lineage()

    @classmethod
    def from_name(cls, name: str) -> EventType:
        """Look a wire name up, case-insensitively; ``ValueError`` names it if unknown."""
        try:
            return cls(name.strip().upper())
        except ValueError:
            raise ValueError(f"unknown event type {name!r}") from None


E = EventType

#: The hierarchy of supervisord 4.3 (reference §2.1): child -> parent.
PARENT: dict[EventType, EventType | None] = {
    E.EVENT: None,
    E.PROCESS_STATE: E.EVENT,
    E.PROCESS_STATE_STOPPED: E.PROCESS_STATE,
    E.PROCESS_STATE_EXITED: E.PROCESS_STATE,
    E.PROCESS_STATE_STARTING: E.PROCESS_STATE,
    E.PROCESS_STATE_STOPPING: E.PROCESS_STATE,
    E.PROCESS_STATE_BACKOFF: E.PROCESS_STATE,
    E.PROCESS_STATE_FATAL: E.PROCESS_STATE,
    E.PROCESS_STATE_RUNNING: E.PROCESS_STATE,
    E.PROCESS_STATE_UNKNOWN: E.PROCESS_STATE,
    E.PROCESS_LOG: E.EVENT,
    E.PROCESS_LOG_STDOUT: E.PROCESS_LOG,
    E.PROCESS_LOG_STDERR: E.PROCESS_LOG,
    E.PROCESS_COMMUNICATION: E.EVENT,
    E.PROCESS_COMMUNICATION_STDOUT: E.PROCESS_COMMUNICATION,
    E.PROCESS_COMMUNICATION_STDERR: E.PROCESS_COMMUNICATION,
    E.REMOTE_COMMUNICATION: E.EVENT,
    E.SUPERVISOR_STATE_CHANGE: E.EVENT,
    E.SUPERVISOR_STATE_CHANGE_RUNNING: E.SUPERVISOR_STATE_CHANGE,
    E.SUPERVISOR_STATE_CHANGE_STOPPING: E.SUPERVISOR_STATE_CHANGE,
    E.TICK: E.EVENT,
    E.TICK_5: E.TICK,
    E.TICK_60: E.TICK,
    E.TICK_3600: E.TICK,
    E.PROCESS_GROUP: E.EVENT,
    E.PROCESS_GROUP_ADDED: E.PROCESS_GROUP,
    E.PROCESS_GROUP_REMOVED: E.PROCESS_GROUP,
}

_ABSTRACT = frozenset(
    {
        E.EVENT,
        E.PROCESS_STATE,
        E.PROCESS_LOG,
        E.PROCESS_COMMUNICATION,
        E.SUPERVISOR_STATE_CHANGE,
        E.TICK,
        E.PROCESS_GROUP,
    }
)

#: PROCESS_STATE_* type -> the supervisord state name it announces.
STATE_OF_EVENT: dict[EventType, str] = {
    t: t.value.removeprefix("PROCESS_STATE_")
    for t in EventType
    if t.is_a(E.PROCESS_STATE) and not t.abstract
}
#: The reverse of :data:`STATE_OF_EVENT`.
EVENT_OF_STATE: dict[str, EventType] = {v: k for k, v in STATE_OF_EVENT.items()}

#: Which optional token each PROCESS_STATE_* payload carries (reference §2.2).
_STATE_EXTRA: dict[EventType, tuple[str, ...]] = {
    E.PROCESS_STATE_STARTING: ("tries",),
    E.PROCESS_STATE_BACKOFF: ("tries",),
    E.PROCESS_STATE_RUNNING: ("pid",),
    E.PROCESS_STATE_STOPPING: ("pid",),
    E.PROCESS_STATE_STOPPED: ("pid",),
    E.PROCESS_STATE_EXITED: ("expected", "pid"),
    E.PROCESS_STATE_FATAL: (),
    E.PROCESS_STATE_UNKNOWN: (),
}


def parse_event_names(text: str) -> tuple[EventType, ...]:
    """Parse an ``events=`` list: comma separated, case-insensitive, de-duplicated.

    Raises:
        ValueError: naming the first unknown type, or if the list is empty.
    """
    names: list[EventType] = []
    for raw in text.split(","):
        if not raw.strip():
            continue
        t = EventType.from_name(raw)
        if t not in names:
            names.append(t)
    if not names:
        raise ValueError("no event type given")
    return tuple(names)


class PayloadError(ValueError):
    """A payload does not have the shape its event type requires."""


def _tokens(line: str, what: str) -> dict[str, str]:
    """Split a ``key:value key:value`` token set the way childutils does (values may hold ``:``)."""
    out: dict[str, str] = {}
    for tok in line.split():
        key, sep, value = tok.partition(":")
        if not sep or not key:
            raise PayloadError(f"{what}: token {tok!r} is not key:value")
        out[key] = value
    return out


def _require(tokens: dict[str, str], keys: tuple[str, ...], what: str) -> list[str]:
    missing = [k for k in keys if k not in tokens]
    if missing:
        raise PayloadError(f"{what}: missing {', '.join(missing)} in {tokens!r}")
    return [tokens[k] for k in keys]


def _int(value: str, key: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise PayloadError(f"{what}: {key}:{value!r} is not an integer") from None


@dataclass(frozen=True)
class ProcessStateChange:
    """PROCESS_STATE_*: ``processname:p groupname:g from_state:S`` + tries | pid | expected."""

    type: EventType
    processname: str
    groupname: str
    from_state: str
    #: STARTING/BACKOFF only: failed starts so far (BACKOFF may reach startretries+1).
    tries: int | None = None
    #: RUNNING/STOPPING/STOPPED/EXITED: the pid (0 when STOPPED from BACKOFF).
    pid: int | None = None
    #: EXITED only: the exit status was in ``exitcodes``.
    expected: bool | None = None

    @property
    def to_state(self) -> str:
        return STATE_OF_EVENT[self.type]

    def payload(self) -> str:
        parts = [
            f"processname:{self.processname}",
            f"groupname:{self.groupname}",
            f"from_state:{self.from_state}",
        ]
        for key in _STATE_EXTRA[self.type]:
            if key == "tries":
                parts.append(f"tries:{self.tries or 0}")
            elif key == "pid":
                parts.append(f"pid:{self.pid or 0}")
            else:
                parts.append(f"expected:{int(bool(self.expected))}")
        return " ".join(parts)

    @classmethod
    def parse(cls, type: EventType, payload: str) -> ProcessStateChange:
        what = type.value
        toks = _tokens(payload, what)
        name, group, from_state = _require(toks, ("processname", "groupname", "from_state"), what)
        extra = _STATE_EXTRA[type]
        values = dict(zip(extra, _require(toks, extra, what), strict=True))
        tries = _int(values["tries"], "tries", what) if "tries" in values else None
        pid = _int(values["pid"], "pid", what) if "pid" in values else None
        expected: bool | None = None
        if "expected" in values:
            if values["expected"] not in ("0", "1"):
                raise PayloadError(f"{what}: expected:{values['expected']!r} is not 0 or 1")
            expected = values["expected"] == "1"
        return cls(type, name, group, from_state, tries=tries, pid=pid, expected=expected)


@dataclass(frozen=True)
class ProcessLog:
    """PROCESS_LOG_STDOUT/STDERR: ``processname: groupname: pid: channel:`` then ``\\n`` + data."""

    type: EventType
    processname: str
    groupname: str
    pid: int
    channel: str
    data: str

    def payload(self) -> str:
        return (
            f"processname:{self.processname} groupname:{self.groupname} "
            f"pid:{self.pid} channel:{self.channel}\n{self.data}"
        )

    @classmethod
    def parse(cls, type: EventType, payload: str) -> ProcessLog:
        what = type.value
        head, sep, data = payload.partition("\n")
        if not sep:
            raise PayloadError(f"{what}: no newline between header tokens and data")
        toks = _tokens(head, what)
        keys = ("processname", "groupname", "pid", "channel")
        name, group, pid, channel = _require(toks, keys, what)
        return cls(type, name, group, _int(pid, "pid", what), channel, data)


@dataclass(frozen=True)
class ProcessCommunication:
    """PROCESS_COMMUNICATION_STDOUT/STDERR: ``processname: groupname: pid:`` then ``\\n`` + data."""

    type: EventType
    processname: str
    groupname: str
    pid: int
    data: str

    def payload(self) -> str:
        return (
            f"processname:{self.processname} groupname:{self.groupname} pid:{self.pid}\n{self.data}"
        )

    @classmethod
    def parse(cls, type: EventType, payload: str) -> ProcessCommunication:
        what = type.value
        head, sep, data = payload.partition("\n")
        if not sep:
            raise PayloadError(f"{what}: no newline between header tokens and data")
        toks = _tokens(head, what)
        name, group, pid = _require(toks, ("processname", "groupname", "pid"), what)
        return cls(type, name, group, _int(pid, "pid", what), data)


@dataclass(frozen=True)
class RemoteCommunication:
    """REMOTE_COMMUNICATION: ``type:<type>\\n<data>`` (from ``supervisor.sendRemoteCommEvent``)."""

    comm_type: str
    data: str
    type: EventType = field(default=E.REMOTE_COMMUNICATION, init=False)

    def payload(self) -> str:
        return f"type:{self.comm_type}\n{self.data}"

    @classmethod
    def parse(cls, type: EventType, payload: str) -> RemoteCommunication:
        head, _sep, data = payload.partition("\n")
        if not head.startswith("type:"):
            raise PayloadError(f"{type.value}: payload does not start with 'type:'")
        return cls(head.removeprefix("type:"), data)


@dataclass(frozen=True)
class SupervisorStateChange:
    """SUPERVISOR_STATE_CHANGE_RUNNING/STOPPING: empty payload."""

    type: EventType

    def payload(self) -> str:
        return ""

    @classmethod
    def parse(cls, type: EventType, payload: str) -> SupervisorStateChange:
        if payload:
            raise PayloadError(f"{type.value}: expected an empty payload, got {payload[:40]!r}")
        return cls(type)


@dataclass(frozen=True)
class Tick:
    """TICK_5/60/3600: ``when:<epoch>``, the start of the time slice just entered."""

    type: EventType
    when: int

    def payload(self) -> str:
        return f"when:{self.when}"

    @classmethod
    def parse(cls, type: EventType, payload: str) -> Tick:
        (when,) = _require(_tokens(payload, type.value), ("when",), type.value)
        return cls(type, _int(when, "when", type.value))


@dataclass(frozen=True)
class ProcessGroupEvent:
    """PROCESS_GROUP_ADDED/REMOVED: ``groupname:<g>\\n`` (with the trailing newline)."""

    type: EventType
    groupname: str

    def payload(self) -> str:
        return f"groupname:{self.groupname}\n"

    @classmethod
    def parse(cls, type: EventType, payload: str) -> ProcessGroupEvent:
        (group,) = _require(_tokens(payload, type.value), ("groupname",), type.value)
        return cls(type, group)


@dataclass(frozen=True)
class UnknownEvent:
    """An event type this module does not know (e.g. one added by an rpcinterface plugin).

    Its ``type`` is ``EVENT`` so that catch-all subscribers still see it.
    """

    eventname: str
    raw: str
    type: EventType = field(default=E.EVENT, init=False)

    def payload(self) -> str:
        return self.raw


Event = (
    ProcessStateChange
    | ProcessLog
    | ProcessCommunication
    | RemoteCommunication
    | SupervisorStateChange
    | Tick
    | ProcessGroupEvent
    | UnknownEvent
)


def event_name(event: Event) -> str:
    """The concrete wire name of an event (``eventname:`` header token)."""
    if isinstance(event, UnknownEvent):
        return event.eventname
    return event.type.value


def parse_event(eventname: str, payload: str) -> Event:
    """Build the typed event for a wire name and payload.

    Raises:
        PayloadError: the payload does not fit the type (the message names both),
            or ``eventname`` is an abstract type, which is never sent.
    """
    try:
        t = EventType(eventname)
    except ValueError:
        return UnknownEvent(eventname, payload)
    if t.abstract:
        raise PayloadError(f"{eventname} is an abstract event type and is never sent")
    if t.is_a(E.PROCESS_STATE):
        return ProcessStateChange.parse(t, payload)
    if t.is_a(E.PROCESS_LOG):
        return ProcessLog.parse(t, payload)
    if t.is_a(E.PROCESS_COMMUNICATION):
        return ProcessCommunication.parse(t, payload)
    if t is E.REMOTE_COMMUNICATION:
        return RemoteCommunication.parse(t, payload)
    if t.is_a(E.SUPERVISOR_STATE_CHANGE):
        return SupervisorStateChange.parse(t, payload)
    if t.is_a(E.TICK):
        return Tick.parse(t, payload)
    return ProcessGroupEvent.parse(t, payload)
