"""The connection state machine: its table, its one writer, and every path through it.

A :class:`~manager.httpconn.Connection` is driven here on one end of a socketpair, on a
:class:`~manager.loop.Loop` with a fake clock that the test turns by hand, so each path
(keep-alive, deferred answer, stream, error, 401, timeout, ...) is deterministic and its
moves can be compared one by one. ``_to`` is the one writer of ``state``; a subclass
records each move it makes. The same connections over real TCP sockets, with threads,
are in test_httpserver.py.
"""

from __future__ import annotations

import ast
import contextlib
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from manager.httpconn import Connection, ConnectionOwner, Handler, Responder, Stream
from manager.httpproto import (
    CONNECTION_TRANSITIONS,
    ConnectionState,
    IllegalConnectionTransition,
    Limits,
    Request,
    RequestHead,
    Response,
    check_connection_transition,
)
from manager.loop import Loop

ROOT = Path(__file__).resolve().parents[2]

R = ConnectionState.READING
W = ConnectionState.WAITING
L = ConnectionState.LINGERING
X = ConnectionState.CLOSED

Move = tuple[ConnectionState, ConnectionState]

# --- the paths the tests below take, move by move ---------------------------------------------

#: two requests answered at once on one connection, then the client shuts its side
KEEP_ALIVE: list[Move] = [(R, W), (W, R), (R, W), (W, R), (R, X)]
#: an answer sent later by the handler, then the server shuts down with the connection idle
DEFERRED_THEN_SHUTDOWN: list[Move] = [(R, W), (W, R), (R, X)]
#: the client goes away (or the server shuts down) before the handler answers
GONE_WHILE_WAITING: list[Move] = [(R, W), (W, X)]
#: a chunked stream, then another request on the same connection
STREAM_THEN_NEXT: list[Move] = [(R, W), (W, R), (R, W), (W, R), (R, X)]
#: an answer after which the connection closes (HTTP/1.0 stream, Connection: close, 500)
LAST_ANSWER: list[Move] = [(R, W), (W, R), (R, L), (L, X)]
#: refused before the handler saw it: a malformed request, a 401, a 408
REFUSED: list[Move] = [(R, L), (L, X)]
#: the client connects and leaves without a request
IDLE_EOF: list[Move] = [(R, X)]

ALL_PATHS = [
    KEEP_ALIVE,
    DEFERRED_THEN_SHUTDOWN,
    GONE_WHILE_WAITING,
    STREAM_THEN_NEXT,
    LAST_ANSWER,
    REFUSED,
    IDLE_EOF,
]

# --- a connection on a socketpair, on a loop turned by hand ------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class RecordingConnection(Connection):
    """A Connection that records every move its one writer makes."""

    def __init__(self, server: ConnectionOwner, sock: socket.socket) -> None:
        self.moves: list[Move] = []
        super().__init__(server, sock)

    def _to(self, new: ConnectionState) -> None:
        old = self.state
        super()._to(new)
        self.moves.append((old, new))


@dataclass
class Owner:
    """The server side a Connection needs; the handler answers by path.

    ``/now`` at once, ``/later`` is kept in :attr:`pending`, ``/stream`` starts a
    stream kept in :attr:`streams`, ``/boom`` raises.
    """

    loop: Loop
    limits: Limits
    allow: bool = True
    pending: list[Responder] = field(default_factory=list)
    streams: list[Stream] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    forgotten: list[Connection] = field(default_factory=list)

    @property
    def handler(self) -> Handler:
        return self.handle

    def handle(self, request: Request, responder: Responder) -> None:
        if request.path == "/later":
            responder.on_close(lambda: self.gone.append(request.path))
            self.pending.append(responder)
        elif request.path == "/stream":
            stream = responder.stream()
            stream.on_close(lambda: self.gone.append(request.path))
            self.streams.append(stream)
        elif request.path == "/boom":
            raise RuntimeError("handler bug")
        else:
            responder.send(Response(200, f"{request.method} {request.path}".encode()))

    def authorized(self, head: RequestHead) -> bool:
        return self.allow

    def forget(self, conn: Connection) -> None:
        self.forgotten.append(conn)


@dataclass
class Client:
    sock: socket.socket
    conn: RecordingConnection
    harness: Harness

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.harness.run()

    def receive(self) -> tuple[bytes, bool]:
        """What the server has sent so far, and whether it shut its side (EOF)."""
        chunks: list[bytes] = []
        while True:
            try:
                chunk = self.sock.recv(65536)
            except BlockingIOError:
                return b"".join(chunks), False
            except ConnectionResetError:
                return b"".join(chunks), True
            if not chunk:
                return b"".join(chunks), True
            chunks.append(chunk)

    def shut(self) -> None:
        """Shut our write side; the server reads EOF."""
        self.sock.shutdown(socket.SHUT_WR)
        self.harness.run()

    def leave(self) -> None:
        self.sock.close()
        self.harness.run()


class Harness:
    def __init__(self, limits: Limits) -> None:
        self.clock = Clock()
        self.loop = Loop(self.clock)
        self.owner = Owner(self.loop, limits)
        self.clients: list[Client] = []

    def connect(self) -> Client:
        ours, theirs = socket.socketpair()
        theirs.setblocking(False)
        ours.setblocking(False)  # small writes only; reads take what is there
        client = Client(ours, RecordingConnection(self.owner, theirs), self)
        self.clients.append(client)
        return client

    def run(self, turns: int = 4) -> None:
        for _ in range(turns):
            self.loop.run_once(0)

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds
        self.run()

    def close(self) -> None:
        for client in self.clients:
            client.conn.close()
            client.sock.close()
        self.loop.close()


@pytest.fixture
def harness() -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def factory(limits: Limits | None = None) -> Harness:
        h = Harness(limits or Limits(request_timeout=5.0, linger=2.0))
        made.append(h)
        return h

    yield factory
    for h in made:
        h.close()


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


# --- the table ---------------------------------------------------------------------------------


def test_table_closed_is_final_and_every_other_state_may_close() -> None:
    """So closing a connection is always legal, even one whose state machine broke."""
    assert CONNECTION_TRANSITIONS[X] == {}
    assert all(X in CONNECTION_TRANSITIONS[s] for s in ConnectionState if s is not X)


def test_table_covers_every_state_and_all_are_reachable_from_reading() -> None:
    assert set(CONNECTION_TRANSITIONS) == set(ConnectionState)
    seen, todo = {R}, [R]
    while todo:
        for new in CONNECTION_TRANSITIONS[todo.pop()]:
            if new not in seen:
                seen.add(new)
                todo.append(new)
    assert seen == set(ConnectionState)


@pytest.mark.parametrize("old", list(ConnectionState), ids=lambda s: s.name)
@pytest.mark.parametrize("new", list(ConnectionState), ids=lambda s: s.name)
def test_check_connection_transition_allows_exactly_the_table(
    old: ConnectionState, new: ConnectionState
) -> None:
    if new in CONNECTION_TRANSITIONS[old]:
        check_connection_transition(old, new)
    else:
        with pytest.raises(IllegalConnectionTransition, match=f"{old.name} -> {new.name}"):
            check_connection_transition(old, new)


def test_every_move_in_the_table_is_taken_by_some_path_below() -> None:
    table = {(old, new) for old, moves in CONNECTION_TRANSITIONS.items() for new in moves}
    taken = {move for path in ALL_PATHS for move in path}
    assert taken == table


# --- one writer --------------------------------------------------------------------------------


def _state_assignments(path: Path) -> list[str]:
    """``Class.function`` for each assignment to an attribute named ``state`` in ``path``."""
    found: list[str] = []

    def visit(node: ast.AST, where: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, [*where, child.name])
                continue
            targets: list[ast.expr] = []
            if isinstance(child, ast.Assign):
                targets = child.targets
            elif isinstance(child, (ast.AugAssign, ast.AnnAssign, ast.For)):
                targets = [child.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Attribute) and sub.attr == "state":
                        found.append(".".join(where))
            if isinstance(child, ast.Call) and any(
                isinstance(arg, ast.Constant) and arg.value == "state" for arg in child.args
            ):
                found.append(".".join(where) + " (setattr-like call)")
            visit(child, where)

    visit(ast.parse(path.read_text()), [])
    return found


def test_state_is_written_only_by_to_after_its_initial_value() -> None:
    assert _state_assignments(ROOT / "manager" / "httpconn.py") == [
        "Connection.__init__",
        "Connection._to",
    ]
    assert _state_assignments(ROOT / "manager" / "httpserver.py") == []


def test_to_checks_the_table_before_it_writes() -> None:
    tree = ast.parse((ROOT / "manager" / "httpconn.py").read_text())
    to = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_to")
    body = [
        s for s in to.body if not isinstance(s, ast.Expr) or not isinstance(s.value, ast.Constant)
    ]
    assert ast.unparse(body[0]) == "check_connection_transition(self.state, new)"
    assert ast.unparse(body[1]) == "self.state = new"
    assert len(body) == 2


def test_the_first_state_is_reading(harness: Callable[..., Harness]) -> None:
    client = harness().connect()
    assert client.conn.state is R and client.conn.moves == []


# --- each legal path ---------------------------------------------------------------------------


def test_path_request_response_keep_alive_next_request(harness: Callable[..., Harness]) -> None:
    client = harness().connect()
    for path in ("/a", "/b"):
        client.send(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        raw, eof = client.receive()
        assert raw.startswith(b"HTTP/1.1 200 OK") and raw.endswith(f"GET {path}".encode())
        assert not eof and client.conn.state is R
    client.shut()
    assert client.conn.moves == KEEP_ALIVE
    assert client.harness.owner.forgotten == [client.conn]


def test_path_deferred_answer_then_server_shutdown(harness: Callable[..., Harness]) -> None:
    h = harness()
    client = h.connect()
    client.send(b"GET /later HTTP/1.1\r\n\r\n")
    assert client.conn.state is W and client.receive() == (b"", False)
    h.owner.pending[0].send(Response(200, b"late"))  # as a loop callback would, later
    h.run()
    raw, eof = client.receive()
    assert raw.endswith(b"late") and not eof and client.conn.state is R
    client.conn.shutdown()
    assert client.conn.moves == DEFERRED_THEN_SHUTDOWN
    assert h.owner.gone == []


@pytest.mark.parametrize("how", ["client leaves", "server shuts down"])
def test_path_gone_while_waiting_runs_on_close(harness: Callable[..., Harness], how: str) -> None:
    h = harness()
    client = h.connect()
    client.send(b"GET /later HTTP/1.1\r\n\r\n")
    if how == "client leaves":
        client.leave()
    else:
        client.conn.shutdown()
    assert client.conn.moves == GONE_WHILE_WAITING
    assert h.owner.gone == ["/later"] and h.owner.pending[0].closed


def test_path_stream_then_next_request(harness: Callable[..., Harness]) -> None:
    h = harness()
    client = h.connect()
    client.send(b"GET /stream HTTP/1.1\r\n\r\n")
    stream = h.owner.streams[0]
    stream.write(b"tick")
    h.run()
    assert client.conn.state is W  # the whole stream is WAITING
    stream.end()
    h.run()
    raw, eof = client.receive()
    assert b"Transfer-Encoding: chunked" in raw and raw.endswith(b"4\r\ntick\r\n0\r\n\r\n")
    assert not eof and client.conn.state is R
    client.send(b"GET /next HTTP/1.1\r\n\r\n")
    assert client.receive()[0].endswith(b"GET /next")
    client.shut()
    assert client.conn.moves == STREAM_THEN_NEXT


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(b"GET /stream HTTP/1.0\r\n\r\n", id="HTTP/1.0 stream"),
        pytest.param(b"GET /now HTTP/1.1\r\nConnection: close\r\n\r\n", id="Connection: close"),
        pytest.param(b"GET /boom HTTP/1.1\r\n\r\n", id="handler error 500"),
    ],
)
def test_path_last_answer_lingers_then_closes_at_eof(
    harness: Callable[..., Harness], request_bytes: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness()
    client = h.connect()
    client.send(request_bytes)
    for stream in h.owner.streams:
        stream.write(b"body")
        stream.end()
        h.run()
    raw, eof = client.receive()
    assert eof and b"Connection: close" in raw
    assert client.conn.state is L
    client.leave()
    assert client.conn.moves == LAST_ANSWER
    assert "illegal transition" not in caplog.text


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        pytest.param(b"\x16\x03\x01 not http\r\n\r\n", 400, id="malformed"),
        pytest.param(b"POST /RPC2 HTTP/1.1\r\nHost: x\r\n\r\n", 411, id="no length"),
    ],
)
def test_path_close_after_error(
    harness: Callable[..., Harness], request_bytes: bytes, status: int
) -> None:
    client = harness().connect()
    client.send(request_bytes)
    raw, eof = client.receive()
    assert status_of(raw) == status and eof and client.conn.state is L
    client.send(b"dropped while lingering")
    assert client.conn.state is L
    client.leave()
    assert client.conn.moves == REFUSED


def test_path_401(harness: Callable[..., Harness]) -> None:
    h = harness()
    h.owner.allow = False
    client = h.connect()
    client.send(b"POST /RPC2 HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody")
    raw, eof = client.receive()
    assert status_of(raw) == 401 and eof
    client.leave()
    assert client.conn.moves == REFUSED
    assert h.owner.pending == [] and h.owner.streams == []


def test_path_timeout_408_then_the_linger_delay_closes(harness: Callable[..., Harness]) -> None:
    h = harness(Limits(request_timeout=5.0, linger=2.0))
    client = h.connect()
    client.send(b"GET /slow HTTP/1.1\r\nHost:")
    h.advance(4.9)
    assert client.conn.state is R
    h.advance(0.2)
    raw, eof = client.receive()
    assert status_of(raw) == 408 and eof and client.conn.state is L
    h.advance(2.1)  # the client never closes: the linger delay does
    assert client.conn.moves == REFUSED
    assert h.owner.forgotten == [client.conn]


def test_path_idle_client_leaves(harness: Callable[..., Harness]) -> None:
    client = harness().connect()
    client.shut()
    assert client.conn.moves == IDLE_EOF


# --- an illegal move closes that connection only ---------------------------------------------


def test_to_refuses_a_move_not_in_the_table_and_leaves_the_state(
    harness: Callable[..., Harness],
) -> None:
    client = harness().connect()
    with pytest.raises(IllegalConnectionTransition, match="READING -> READING"):
        client.conn._to(R)
    client.conn.close()
    with pytest.raises(IllegalConnectionTransition, match="CLOSED -> READING"):
        client.conn._to(R)
    assert client.conn.state is X and client.conn.moves == [(R, X)]


@contextlib.contextmanager
def _without(
    monkeypatch: pytest.MonkeyPatch, old: ConnectionState, new: ConnectionState
) -> Iterator[None]:
    """The table with ``old -> new`` removed (a connection that takes it is broken)."""
    moves = {k: v for k, v in CONNECTION_TRANSITIONS[old].items() if k is not new}
    with monkeypatch.context() as m:
        m.setitem(CONNECTION_TRANSITIONS, old, moves)
        yield


def test_illegal_move_in_a_loop_callback_closes_that_connection_and_the_loop_goes_on(
    harness: Callable[..., Harness],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = harness()
    broken, other = h.connect(), h.connect()
    with _without(monkeypatch, R, W):
        broken.send(b"GET /now HTTP/1.1\r\n\r\n")  # the readable callback raises inside
    assert broken.conn.state is X and h.owner.forgotten == [broken.conn]
    assert broken.receive() == (b"", True)
    assert "illegal transition READING -> WAITING" in caplog.text
    other.send(b"GET /now HTTP/1.1\r\n\r\n")
    assert other.receive()[0].endswith(b"GET /now") and other.conn.state is R


@pytest.mark.parametrize(
    "path", ["/now", "/later", "/stream"], ids=["answer at once", "answer later", "stream end"]
)
def test_illegal_move_in_a_handlers_answer_closes_that_connection_only(
    harness: Callable[..., Harness],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    path: str,
) -> None:
    h = harness()
    broken = h.connect()
    with _without(monkeypatch, W, R):
        broken.send(f"GET {path} HTTP/1.1\r\n\r\n".encode())
        # from outside the connection, as a timer or a process event would; nothing raises
        for responder in h.owner.pending:
            responder.send(Response(200, b"late"))
        for stream in h.owner.streams:
            stream.end()
        h.run()
    assert broken.conn.state is X and broken.conn.moves == [(R, W), (W, X)]
    assert "illegal transition WAITING -> READING" in caplog.text
    assert "error handling" not in caplog.text  # contained in the connection, not a 500
    other = h.connect()
    other.send(b"GET /now HTTP/1.1\r\n\r\n")
    assert other.receive()[0].endswith(b"GET /now")
