"""The sans-I/O HTTP side: the request parser and response rendering, no sockets.

Every parser test feeds its bytes both all at once and one byte at a time (house rule 5):
a socket may deliver a request in any number of pieces and the events must not change.
"""

from __future__ import annotations

import ast
import contextlib
import http
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from manager.httpproto import (
    NEED_DATA,
    HTTPError,
    Limits,
    Request,
    RequestHead,
    RequestParser,
    Response,
    error_response,
    render_response,
)

POST = (
    b"POST /RPC2 HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\n"
    b"Content-Length: 5\r\n\r\nhello"
)

#: bytes per ``feed``: 0 is everything in one call
CHUNKS = [pytest.param(0, id="all-at-once"), pytest.param(1, id="byte-at-a-time")]


def events(parser: RequestParser) -> list[RequestHead | Request]:
    """Every event the parser can give from what it has buffered."""
    out: list[RequestHead | Request] = []
    while True:
        event = parser.next_event()
        if event is NEED_DATA:
            return out
        out.append(event)


def feed(parser: RequestParser, data: bytes, chunk: int) -> list[RequestHead | Request]:
    """Feed ``data`` in pieces of ``chunk`` bytes (0: at once), collecting events after each."""
    step = chunk or max(len(data), 1)
    out: list[RequestHead | Request] = []
    for i in range(0, len(data), step):
        parser.feed(data[i : i + step])
        out += events(parser)
    return out


@pytest.mark.parametrize("chunk", CHUNKS)
def test_parser_gives_the_head_then_the_whole_request(chunk: int) -> None:
    head, request = feed(RequestParser(), POST, chunk)
    assert isinstance(head, RequestHead) and isinstance(request, Request)
    assert head.method == "POST" and head.target == "/RPC2" and head.version == (1, 1)
    assert head.headers["content-type"] == "text/xml"
    assert request.body == b"hello" and request.head is head
    assert head.keep_alive


def test_parser_fed_one_byte_at_a_time_needs_data_until_the_last_byte() -> None:
    parser = RequestParser()
    seen: list[RequestHead | Request] = []
    for i in range(len(POST)):
        parser.feed(POST[i : i + 1])
        got = events(parser)
        seen += got
        if i < len(POST) - 1:
            assert not any(isinstance(e, Request) for e in got), i
    assert [type(e) for e in seen] == [RequestHead, Request]
    assert seen[1].body == b"hello"  # type: ignore[union-attr]
    # the head was complete exactly at the blank line
    parser2 = RequestParser()
    head_end = POST.index(b"\r\n\r\n") + 4
    parser2.feed(POST[: head_end - 1])
    assert parser2.next_event() is NEED_DATA
    parser2.feed(POST[head_end - 1 : head_end])
    assert isinstance(parser2.next_event(), RequestHead)


@pytest.mark.parametrize("chunk", CHUNKS)
def test_parser_handles_pipelined_requests_lf_endings_and_blank_lines_between(
    chunk: int,
) -> None:
    parser = RequestParser()
    got = feed(
        parser, POST + b"\r\n\nGET /a?x=1 HTTP/1.0\nConnection: keep-alive\n\n" + POST, chunk
    )
    assert [type(e).__name__ for e in got] == ["RequestHead", "Request"] * 3
    second = got[2]
    assert isinstance(second, RequestHead)
    assert second.path == "/a" and second.target == "/a?x=1"
    assert second.version == (1, 0) and second.keep_alive
    assert [e.body for e in got if isinstance(e, Request)] == [b"hello", b"", b"hello"]
    assert not parser.in_request


@pytest.mark.parametrize("chunk", CHUNKS)
def test_parser_in_request_and_buffered(chunk: int) -> None:
    parser = RequestParser()
    assert feed(parser, b"\r\n\n", chunk) == []
    assert not parser.in_request  # blank lines between requests are not a request
    assert feed(parser, b"GET / HT", chunk) == []
    assert parser.in_request and parser.buffered == len(b"GET / HT")
    assert [type(e) for e in feed(parser, b"TP/1.1\r\n\r\n", chunk)] == [RequestHead, Request]
    assert not parser.in_request and parser.buffered == 0


@pytest.mark.parametrize("chunk", CHUNKS)
def test_parser_keep_alive_and_expect_continue_rules(chunk: int) -> None:
    def head(version: str, extra: str = "") -> RequestHead:
        event = feed(RequestParser(), f"GET / HTTP/{version}\r\n{extra}\r\n".encode(), chunk)[0]
        assert isinstance(event, RequestHead)
        return event

    assert head("1.1").keep_alive
    assert not head("1.1", "Connection: close\r\n").keep_alive
    assert not head("1.1", "Connection: keep-alive, Close\r\n").keep_alive
    assert not head("1.0").keep_alive
    assert head("1.0", "Connection: Keep-Alive\r\n").keep_alive
    assert head("1.1", "Expect: 100-continue\r\n").expects_continue
    assert not head("1.0", "Expect: 100-continue\r\n").expects_continue
    assert not head("1.1").expects_continue


@pytest.mark.parametrize("chunk", CHUNKS)
def test_parser_joins_repeated_headers_and_lowercases_names(chunk: int) -> None:
    data = b"GET / HTTP/1.1\r\nX-A: 1\r\nx-a:2  \r\nHOST: h\r\n\r\n"
    head = feed(RequestParser(), data, chunk)[0]
    assert isinstance(head, RequestHead)
    assert dict(head.headers) == {"x-a": "1, 2", "host": "h"}


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1 extra\r\n\r\n", 400),
        (b"GET / FTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nA: b\x00c\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\n\r\n", 411),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 2097153\r\n\r\n", 413),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nA: " + b"b" * 9000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"A: bbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n" * 3000, 431),
    ],
)
def test_parser_rejects_malformed_and_oversized_requests(
    data: bytes, status: int, chunk: int
) -> None:
    with pytest.raises(HTTPError) as info:
        feed(RequestParser(), data, chunk)
    assert info.value.status == status


@pytest.mark.parametrize("chunk", CHUNKS)
def test_parser_accepts_a_body_of_exactly_the_limit_and_no_more(chunk: int) -> None:
    data = b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789"
    assert [type(e) for e in feed(RequestParser(Limits(max_body=10)), data, chunk)] == [
        RequestHead,
        Request,
    ]
    with pytest.raises(HTTPError) as info:
        feed(RequestParser(Limits(max_body=9)), data, chunk)
    assert info.value.status == 413


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400), st.integers(min_value=1, max_value=50))
def test_parser_never_fails_except_with_httperror(data: bytes, chunk: int) -> None:
    parser = RequestParser(Limits(max_line=64, max_head=256, max_body=128))
    with contextlib.suppress(HTTPError):
        feed(parser, data, chunk)


#: pieces that make (mostly) well-formed pipelined requests when strung together
_FRAGMENTS = [
    b"GET / HTTP/1.1\r\n",
    b"POST /RPC2 HTTP/1.0\n",
    b"Content-Length: 3\r\n",
    b"Connection: close\r\n",
    b"X: y\n",
    b"\r\n",
    b"\n",
    b"abc",
    b"x" * 70,
]


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=300),
        st.lists(st.sampled_from(_FRAGMENTS), max_size=30).map(b"".join),
    )
)
def test_parser_events_do_not_depend_on_how_the_bytes_are_split(data: bytes) -> None:
    def outcome(chunk: int) -> list[object]:
        parser = RequestParser(Limits(max_line=64, max_head=256, max_body=128))
        try:
            return list(feed(parser, POST + data, chunk))
        except HTTPError as exc:
            return [exc.status]

    assert outcome(1) == outcome(0)


def test_httperror_defaults_its_message_to_the_status_phrase() -> None:
    assert str(HTTPError(413)) == http.HTTPStatus(413).phrase
    assert str(HTTPError(400, "malformed request line")) == "malformed request line"


# --- rendering -------------------------------------------------------------------------------


def test_render_response_keep_alive_http_1_1() -> None:
    data = render_response(
        Response(200, b"hi", headers=(("X-A", "1"),)),
        version=(1, 1),
        keep_alive=True,
        head_only=False,
    )
    assert data == (
        b"HTTP/1.1 200 OK\r\nServer: vigild\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 2\r\nX-A: 1\r\n\r\nhi"
    )


def test_render_response_connection_header() -> None:
    def head(version: tuple[int, int], keep_alive: bool) -> bytes:
        return render_response(Response(), version=version, keep_alive=keep_alive, head_only=True)

    assert b"Connection: close\r\n" in head((1, 1), False)
    assert b"Connection:" not in head((1, 1), True)
    assert b"Connection: close\r\n" in head((1, 0), False)
    assert b"Connection: Keep-Alive\r\n" in head((1, 0), True)
    assert head((1, 0), True).startswith(b"HTTP/1.0 200 OK\r\n")


def test_render_response_head_only_and_chunked_omit_the_body() -> None:
    response = Response(200, b"body", content_type="text/xml")
    head_only = render_response(response, version=(1, 1), keep_alive=True, head_only=True)
    assert head_only.endswith(b"Content-Length: 4\r\n\r\n")
    chunked = render_response(
        response, version=(1, 1), keep_alive=True, head_only=False, chunked=True
    )
    assert b"Content-Type: text/xml\r\n" in chunked
    assert chunked.endswith(b"Transfer-Encoding: chunked\r\n\r\n")
    assert b"Content-Length" not in chunked


def test_render_response_unknown_status() -> None:
    data = render_response(Response(599), version=(1, 1), keep_alive=True, head_only=True)
    assert data.startswith(b"HTTP/1.1 599 Unknown\r\n")


def test_error_response_closes_and_explains() -> None:
    response = error_response(400, "malformed request line")
    assert response.status == 400 and response.close
    assert response.body == b"400 Bad Request: malformed request line\n"
    challenge = (("WWW-Authenticate", 'Basic realm="default"'),)
    unauthorized = error_response(401, headers=challenge)
    assert unauthorized.body == b"401 Unauthorized\n" and unauthorized.headers == challenge


# --- sans-I/O stays sans-I/O -----------------------------------------------------------------

#: modules through which code could read, write, sleep or log
_IO_MODULES = {"socket", "os", "selectors", "select", "time", "logging", "threading", "asyncio"}


@pytest.mark.parametrize("module", ["httpproto", "httpauth"])
def test_pure_http_modules_import_nothing_that_does_io(module: str) -> None:
    tree = ast.parse((Path(__file__).parents[2] / "manager" / f"{module}.py").read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert {name.split(".")[0] for name in imported} & _IO_MODULES == set()
    assert not {name for name in imported if name.startswith("manager.")}
