"""The supervisord event-listener protocol, both sides, sans-I/O.

Theory of operation
-------------------
Two objects, one per side of the pipe pair, in the manner of h11: feed them the
bytes you read with ``receive_data``; pull what those bytes mean with
``next_event`` (which returns :data:`NEED_DATA` until a whole message is there);
ask them for the bytes to write (``ready()``, ``ok()``, ``send_event()``...).
Neither object reads, writes, logs or sleeps.

Wire format (reference §1.3)::

    listener -> supervisor   READY\\n
    supervisor -> listener   ver:3.0 server:S serial:N pool:P poolserial:M eventname:E len:L\\n
                             <payload, L units, no terminator>
    listener -> supervisor   RESULT k\\n<k bytes>          only "OK" acknowledges

``len:`` units. supervisord 4.3 counts the payload in Unicode code points and
then sends UTF-8 (upstream issue #1243), so for non-ASCII payloads ``len`` is
smaller than the byte count. Vigil follows 4.3 exactly, on both sides: the
listener reads ``len`` code points of UTF-8, and vigild sends ``len`` as the
number of code points. This keeps Python text-mode listeners (childutils,
superlance) working against vigild, and byte-exact framing for Vigil's own
listener against either supervisor. ASCII payloads, by far the common case,
are the same in either unit. ``RESULT k`` counts bytes, as in supervisord.

Rules: one table per side (``_LISTENER_TABLE``, ``_SUPERVISOR_TABLE``) holds
the legal moves; ``_move`` is the only writer of ``.state``. Malformed input
raises :class:`RemoteProtocolError` naming the offending bytes; asking for an
illegal move raises :class:`LocalProtocolError`. Limits on header and payload
size keep garbage from growing memory without bound.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from manager.events import Event, PayloadError, event_name, parse_event

__all__ = [
    "MAX_HEADER_BYTES",
    "MAX_PAYLOAD_CHARS",
    "NEED_DATA",
    "Closed",
    "Header",
    "ListenerConnection",
    "ListenerState",
    "LocalProtocolError",
    "Notification",
    "ProtocolError",
    "Ready",
    "RemoteProtocolError",
    "Result",
    "SupervisorConnection",
    "encode_envelope",
    "payload_length",
]

PROTOCOL_VERSION = "3.0"
READY_LINE = b"READY\n"
#: A header line longer than this without a newline is garbage.
MAX_HEADER_BYTES = 8192
#: Largest ``len:`` accepted (code points); supervisord reads child output in 128 KiB chunks.
MAX_PAYLOAD_CHARS = 64 * 1024 * 1024
#: Largest ``RESULT k`` accepted.
MAX_RESULT_BYTES = 64 * 1024
_SHOW = 60  # bytes of offending input quoted in an error


class ProtocolError(Exception):
    """The protocol was violated. ``offending`` holds the bytes concerned (may be empty)."""

    def __init__(self, message: str, offending: bytes = b"") -> None:
        super().__init__(message)
        self.offending = offending


class LocalProtocolError(ProtocolError):
    """We asked for something the protocol does not allow in this state."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes the protocol does not allow."""


def _quote(data: bytes) -> str:
    shown = repr(data[:_SHOW])
    return shown + (f" ... ({len(data)} bytes)" if len(data) > _SHOW else "")


class _Marker(enum.Enum):
    NEED_DATA = "NEED_DATA"


#: Returned by ``next_event`` while a message is incomplete.
NEED_DATA = _Marker.NEED_DATA


@dataclass(frozen=True)
class Header:
    """The envelope line of one event."""

    server: str
    serial: int
    pool: str
    poolserial: int
    eventname: str
    length: int
    ver: str = PROTOCOL_VERSION

    def encode(self) -> bytes:
        return (
            f"ver:{self.ver} server:{self.server} serial:{self.serial} pool:{self.pool} "
            f"poolserial:{self.poolserial} eventname:{self.eventname} len:{self.length}\n"
        ).encode()

    @classmethod
    def parse(cls, line: bytes) -> Header:
        """Parse one header line (without its newline); tokens in any order, extras ignored."""
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise RemoteProtocolError(f"header is not UTF-8: {_quote(line)}", line) from None
        tokens: dict[str, str] = {}
        for tok in text.split():
            key, sep, value = tok.partition(":")
            if not sep:
                raise RemoteProtocolError(
                    f"header token {tok!r} is not key:value in {_quote(line)}", line
                )
            tokens[key] = value
        missing = [
            k
            for k in ("ver", "server", "serial", "pool", "poolserial", "eventname", "len")
            if k not in tokens
        ]
        if missing:
            raise RemoteProtocolError(f"header lacks {', '.join(missing)}: {_quote(line)}", line)
        if tokens["ver"] != PROTOCOL_VERSION:
            raise RemoteProtocolError(
                f"unsupported protocol version {tokens['ver']!r} (want {PROTOCOL_VERSION}) "
                f"in {_quote(line)}",
                line,
            )
        numbers: dict[str, int] = {}
        for key in ("serial", "poolserial", "len"):
            value = tokens[key]
            if not value.isascii() or not value.isdigit():
                raise RemoteProtocolError(
                    f"header {key}:{value!r} is not a non-negative integer in {_quote(line)}", line
                )
            numbers[key] = int(value)
        if numbers["len"] > MAX_PAYLOAD_CHARS:
            raise RemoteProtocolError(
                f"header len:{numbers['len']} exceeds the limit of {MAX_PAYLOAD_CHARS}: "
                f"{_quote(line)}",
                line,
            )
        if not tokens["eventname"]:
            raise RemoteProtocolError(f"header has an empty eventname: {_quote(line)}", line)
        return cls(
            server=tokens["server"],
            serial=numbers["serial"],
            pool=tokens["pool"],
            poolserial=numbers["poolserial"],
            eventname=tokens["eventname"],
            length=numbers["len"],
        )


@dataclass(frozen=True)
class Notification:
    """One event as a listener receives it."""

    header: Header
    event: Event
    payload: str


@dataclass(frozen=True)
class Closed:
    """The peer closed the stream at a message boundary (a clean EOF)."""


@dataclass(frozen=True)
class Ready:
    """The listener said ``READY``."""


@dataclass(frozen=True)
class Result:
    """The listener answered an event. Only the body ``OK`` acknowledges (reference §1.6)."""

    body: bytes

    @property
    def ok(self) -> bool:
        return self.body == b"OK"


def payload_length(payload: str) -> int:
    """The ``len:`` of a payload: its number of code points (see module docstring)."""
    return len(payload)


def encode_envelope(event: Event, *, server: str, serial: int, pool: str, poolserial: int) -> bytes:
    """Header line plus UTF-8 payload for one event, as vigild sends it."""
    payload = event.payload()
    header = Header(
        server=server,
        serial=serial,
        pool=pool,
        poolserial=poolserial,
        eventname=event_name(event),
        length=payload_length(payload),
    )
    return header.encode() + payload.encode("utf-8")


def _split_chars(buf: bytes | bytearray, count: int) -> int | None:
    """Byte length of the first ``count`` UTF-8 code points of ``buf``, or None if not all there.

    Raises:
        RemoteProtocolError: the bytes are not UTF-8.
    """
    if len(buf) >= count and buf[:count].isascii():
        return count
    chunk = bytes(buf[: 4 * count])
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError as exc:
        truncated_tail = exc.end == len(chunk) and len(chunk) - exc.start < 4
        if not truncated_tail or exc.reason != "unexpected end of data":
            bad = chunk[max(0, exc.start - 10) : exc.end + 10]
            raise RemoteProtocolError(
                f"payload is not UTF-8 at byte {exc.start}: {_quote(bad)}", bad
            ) from None
        text = chunk[: exc.start].decode("utf-8")
    if len(text) < count:
        return None
    return len(text[:count].encode("utf-8"))


# ---------------------------------------------------------------------------
# Listener side
# ---------------------------------------------------------------------------


class ListenerState(enum.IntEnum):
    """States of one listener as supervisord tracks them (reference §1.2); codes are 4.3's.

    An IntEnum (and so are the inputs below) because the tables are looked up per event
    and IntEnum members hash in C.
    """

    READY = 10
    BUSY = 20
    ACKNOWLEDGED = 30
    UNKNOWN = 40


class _In(enum.IntEnum):
    SEND_READY = 1
    GOT_EVENT = 2
    SEND_RESULT = 3
    VIOLATION = 4


S = ListenerState
#: Listener side: ACKNOWLEDGED -(READY)-> READY -(event)-> BUSY -(RESULT)-> ACKNOWLEDGED.
_LISTENER_TABLE: dict[tuple[ListenerState, _In], ListenerState] = {
    (S.ACKNOWLEDGED, _In.SEND_READY): S.READY,
    (S.READY, _In.GOT_EVENT): S.BUSY,
    (S.BUSY, _In.SEND_RESULT): S.ACKNOWLEDGED,
    (S.ACKNOWLEDGED, _In.VIOLATION): S.UNKNOWN,
    (S.READY, _In.VIOLATION): S.UNKNOWN,
    (S.BUSY, _In.VIOLATION): S.UNKNOWN,
}


class ListenerConnection:
    """The listener's half: parses envelopes, produces ``READY`` and ``RESULT`` bytes.

    Starts ACKNOWLEDGED (it must say READY first). ``receive_data(b"")`` means EOF.
    """

    def __init__(self) -> None:
        self.state = ListenerState.ACKNOWLEDGED
        self._buf = bytearray()
        self._header: Header | None = None
        self._eof = False

    def _move(self, how: _In) -> None:
        try:
            self.state = _LISTENER_TABLE[(self.state, how)]
        except KeyError:
            raise LocalProtocolError(
                f"cannot {how.name.lower().replace('_', ' ')} in state {self.state.name}"
            ) from None

    def ready(self) -> bytes:
        """Bytes that announce readiness for the next event."""
        self._move(_In.SEND_READY)
        return READY_LINE

    def result(self, body: bytes) -> bytes:
        """Bytes that answer the event in hand."""
        self._move(_In.SEND_RESULT)
        return b"RESULT %d\n" % len(body) + body

    def ok(self) -> bytes:
        return self.result(b"OK")

    def fail(self) -> bytes:
        return self.result(b"FAIL")

    def receive_data(self, data: bytes) -> None:
        """Add bytes read from stdin; ``b""`` marks the end of the stream."""
        if data:
            self._buf += data
        else:
            self._eof = True

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def _violation(self, message: str, offending: bytes) -> RemoteProtocolError:
        self._move(_In.VIOLATION)
        return RemoteProtocolError(message, offending)

    def next_event(self) -> Notification | Closed | _Marker:
        """The next whole event, ``NEED_DATA``, or :class:`Closed` at a clean EOF.

        Only in state READY does it consume input.

        Raises:
            RemoteProtocolError: garbage, a truncated message at EOF, or oversized input.
        """
        if self.state is not ListenerState.READY:
            return NEED_DATA
        if self._header is None:
            nl = self._buf.find(b"\n", 0, MAX_HEADER_BYTES + 1)
            if nl < 0:
                if len(self._buf) > MAX_HEADER_BYTES:
                    raise self._violation(
                        f"no newline in the first {MAX_HEADER_BYTES} bytes of a header: "
                        f"{_quote(bytes(self._buf))}",
                        bytes(self._buf[:_SHOW]),
                    )
                if self._eof:
                    if not self._buf:
                        return Closed()
                    raise self._violation(
                        f"stream ended inside a header: {_quote(bytes(self._buf))}",
                        bytes(self._buf),
                    )
                return NEED_DATA
            line = bytes(self._buf[:nl])
            try:
                self._header = Header.parse(line)
            except RemoteProtocolError:
                self._move(_In.VIOLATION)
                raise
            del self._buf[: nl + 1]
        header = self._header
        try:
            size = _split_chars(self._buf, header.length)
        except RemoteProtocolError:
            self._move(_In.VIOLATION)
            raise
        if size is None:
            if self._eof:
                raise self._violation(
                    f"stream ended inside the payload of {header.eventname} serial "
                    f"{header.serial}: got {len(self._buf)} bytes of len:{header.length}: "
                    f"{_quote(bytes(self._buf))}",
                    bytes(self._buf),
                )
            return NEED_DATA
        payload = bytes(self._buf[:size]).decode("utf-8")
        del self._buf[:size]
        self._header = None
        try:
            event = parse_event(header.eventname, payload)
        except PayloadError as exc:
            raise self._violation(
                f"bad payload for {header.eventname} serial {header.serial}: {exc}",
                payload.encode()[:_SHOW],
            ) from None
        self._move(_In.GOT_EVENT)
        return Notification(header, event, payload)


# ---------------------------------------------------------------------------
# Supervisor side
# ---------------------------------------------------------------------------


class _Sv(enum.IntEnum):
    GOT_READY = 1
    SEND_EVENT = 2
    GOT_RESULT = 3
    VIOLATION = 4


#: Supervisor side (reference §1.5): the same states, seen from the other end.
_SUPERVISOR_TABLE: dict[tuple[ListenerState, _Sv], ListenerState] = {
    (S.ACKNOWLEDGED, _Sv.GOT_READY): S.READY,
    (S.READY, _Sv.SEND_EVENT): S.BUSY,
    (S.BUSY, _Sv.GOT_RESULT): S.ACKNOWLEDGED,
    (S.ACKNOWLEDGED, _Sv.VIOLATION): S.UNKNOWN,
    (S.READY, _Sv.VIOLATION): S.UNKNOWN,
    (S.BUSY, _Sv.VIOLATION): S.UNKNOWN,
    (S.UNKNOWN, _Sv.VIOLATION): S.UNKNOWN,
}


class SupervisorConnection:
    """The supervisor's half for one listener process: envelopes out, READY/RESULT in.

    A violation moves it to UNKNOWN for good (as supervisord does): later input is
    discarded and no event may be sent. The pool decides what to do with the event
    in flight (:attr:`in_flight` stays set until a RESULT arrives).
    """

    def __init__(self, *, server: str = "supervisor", pool: str = "listener") -> None:
        self.state = ListenerState.ACKNOWLEDGED
        self.server = server
        self.pool = pool
        self._buf = bytearray()
        self._result_len: int | None = None
        #: The header of the event sent and not yet answered.
        self.in_flight: Header | None = None

    def _move(self, how: _Sv) -> None:
        try:
            self.state = _SUPERVISOR_TABLE[(self.state, how)]
        except KeyError:
            raise LocalProtocolError(
                f"cannot {how.name.lower().replace('_', ' ')} in state {self.state.name}"
            ) from None

    def _violation(self, message: str, offending: bytes) -> RemoteProtocolError:
        self._move(_Sv.VIOLATION)
        self._buf.clear()
        self._result_len = None
        return RemoteProtocolError(message, offending)

    def send_event(self, event: Event, *, serial: int, poolserial: int) -> bytes:
        """The envelope bytes for ``event``; legal only while READY."""
        self._move(_Sv.SEND_EVENT)
        payload = event.payload()
        self.in_flight = Header(
            server=self.server,
            serial=serial,
            pool=self.pool,
            poolserial=poolserial,
            eventname=event_name(event),
            length=payload_length(payload),
        )
        return self.in_flight.encode() + payload.encode("utf-8")

    def receive_data(self, data: bytes) -> None:
        if self.state is ListenerState.UNKNOWN:
            return
        self._buf += data

    def next_event(self) -> Ready | Result | _Marker:
        """``Ready``, ``Result`` or ``NEED_DATA``.

        Raises:
            RemoteProtocolError: stray output, a bad RESULT line; the state becomes UNKNOWN.
        """
        st = self.state
        if st is ListenerState.UNKNOWN:
            return NEED_DATA
        if st is ListenerState.ACKNOWLEDGED:
            if len(self._buf) < len(READY_LINE):
                if not READY_LINE.startswith(bytes(self._buf)):
                    raise self._violation(
                        f"expected READY, got {_quote(bytes(self._buf))}", bytes(self._buf)
                    )
                return NEED_DATA
            if not self._buf.startswith(READY_LINE):
                raise self._violation(
                    f"expected READY, got {_quote(bytes(self._buf))}", bytes(self._buf)
                )
            del self._buf[: len(READY_LINE)]
            self._move(_Sv.GOT_READY)
            return Ready()
        if st is ListenerState.READY:
            if self._buf:
                raise self._violation(
                    f"output while READY with no event pending: {_quote(bytes(self._buf))}",
                    bytes(self._buf),
                )
            return NEED_DATA
        # BUSY
        if self._result_len is None:
            nl = self._buf.find(b"\n", 0, 64)
            if nl < 0:
                if len(self._buf) >= 64 or not (b"RESULT ".startswith(bytes(self._buf[:7]))):
                    raise self._violation(
                        f"bad result line: {_quote(bytes(self._buf))}", bytes(self._buf)
                    )
                return NEED_DATA
            line = bytes(self._buf[:nl])
            count = line[7:].strip()
            if (
                not line.startswith(b"RESULT ")
                or not count.isdigit()
                or int(count) > MAX_RESULT_BYTES
            ):
                raise self._violation(f"bad result line: {_quote(line)}", line)
            self._result_len = int(count)
            del self._buf[: nl + 1]
        if len(self._buf) < self._result_len:
            return NEED_DATA
        body = bytes(self._buf[: self._result_len])
        del self._buf[: self._result_len]
        self._result_len = None
        self.in_flight = None
        self._move(_Sv.GOT_RESULT)
        return Result(body)
