"""manager.fastloads: the fast reply reader equals xmlrpc.client, or steps aside for it."""

from __future__ import annotations

import xmlrpc.client
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from manager import fastloads
from manager.fastloads import loads_value
from manager.rpcserver import marshal_fault, marshal_value

INFO = {
    "name": "p_001",
    "group": "p",
    "description": "pid 12345, uptime 0:01:02",
    "start": 1700000000,
    "stop": 0,
    "now": 1700000062,
    "state": 20,
    "statename": "RUNNING",
    "spawnerr": "",
    "exitstatus": 0,
    "logfile": "/tmp/x/p_001-stdout.log",
    "stdout_logfile": "/tmp/x/p_001-stdout.log",
    "stderr_logfile": "",
    "pid": 12345,
}


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (``True == 1`` does not count)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def reference(data: bytes | str) -> Any:
    params, _ = xmlrpc.client.loads(data)
    return params[0] if len(params) == 1 else params


def outcome(fn: Any, data: bytes | str) -> tuple[str, Any]:
    try:
        return "value", fn(data)
    except Exception as exc:
        return "error", type(exc).__name__


values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**31), max_value=2**31 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def test_a_process_list_from_either_server_takes_the_fast_path() -> None:
    infos = [dict(INFO, name=f"p_{i:03d}") for i in range(50)]
    for data in (
        xmlrpc.client.dumps((infos,), methodresponse=True),  # supervisord
        marshal_value(infos).decode(),  # vigild
    ):
        ok, value = fastloads._fast(data)
        assert ok and same(value, infos) and same(reference(data), infos)


@settings(max_examples=400)
@given(values)
@example("a>\n")
@example("tab\there\r\nand CR\r")
@example({'q"uote\\': ["&amp;", "<x>", "'", "\u2028 é 😀"]})
@example([[], {}, "", [[]], {"": {}}])
def test_equal_to_xmlrpc_client_for_dumps_output(value: Any) -> None:
    data = xmlrpc.client.dumps((value,), methodresponse=True, allow_none=True)
    got, want = outcome(loads_value, data), outcome(reference, data)
    assert got[0] == want[0] and (got[0] == "error" or same(got[1], want[1])), (got, want)
    assert outcome(loads_value, data.encode())[0] == want[0]


@settings(max_examples=300)
@given(values)
def test_equal_to_xmlrpc_client_for_vigild_replies(value: Any) -> None:
    try:
        data = marshal_value(value)
    except TypeError:  # None: vigild sends no nil, as supervisord
        return
    assert same(loads_value(data), reference(data))


@settings(max_examples=1500)
@given(
    st.lists(st.sampled_from(["x", 1, True, "a&b", {"k": [1, "v"]}]), max_size=4),
    st.integers(min_value=0),
    st.integers(min_value=0, max_value=3),
    st.sampled_from(
        [
            "",
            " ",
            "\n",
            "<",
            ">",
            "&",
            "&#65;",
            "/",
            "</value>",
            "<value>",
            "<double>1",
            "\\",
            '"',
            "1",
            "<nil/>",
            "]]>",
            "<!--",
            "\r",
            "\x01",
            "\xff",
            "<i4>",
        ]
    ),
)
def test_mutated_replies_give_what_xmlrpc_client_gives(
    value: list[Any], at: int, cut: int, insert: str
) -> None:
    """Bytes cut and spliced anywhere: the fast path never returns a different value and
    never accepts what xmlrpc.client refuses."""
    data = xmlrpc.client.dumps((value,), methodresponse=True)
    i = at % (len(data) + 1)
    mutated = data[:i] + insert + data[i + cut :]
    got, want = outcome(loads_value, mutated), outcome(reference, mutated)
    assert got[0] == want[0], (mutated, got, want)
    if got[0] == "value":
        assert same(got[1], want[1]), (mutated, got, want)


def test_a_fault_raises_fault() -> None:
    for data in (
        xmlrpc.client.dumps(xmlrpc.client.Fault(10, "BAD_NAME: x"), methodresponse=True),
        marshal_fault(10, "BAD_NAME: x"),
    ):
        with pytest.raises(xmlrpc.client.Fault) as exc:
            loads_value(data)
        assert (exc.value.faultCode, exc.value.faultString) == (10, "BAD_NAME: x")


@pytest.mark.parametrize(
    "body",
    [
        "<value><double>1.5</double></value>",
        "<value>untyped</value>",
        "<value><string>&#65;</string></value>",
        "<value><int>007</int></value>",
        "<value><int>+5</int></value>",
        "<value><base64>eHl6</base64></value>",
        "<value> <string>x</string></value>",
    ],
)
def test_outside_the_subset_xmlrpc_client_decides(body: str) -> None:
    data = (
        "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n"
        f"{body}\n</param>\n</params>\n</methodResponse>\n"
    )
    assert fastloads._fast(data)[0] is False
    assert same(loads_value(data), reference(data))


def test_latin1_declared_replies_are_left_to_xmlrpc_client() -> None:
    data = (
        "<?xml version='1.0' encoding='iso-8859-1'?>\n<methodResponse><params><param>"
        "<value><string>caf\xe9</string></value></param></params></methodResponse>"
    ).encode("latin-1")
    assert loads_value(data) == "caf\xe9"
