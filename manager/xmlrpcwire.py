"""XML-RPC on the wire: parse a call, marshal a reply (vigild's server side).

Parsing follows ``xmlrpc.client``'s Unmarshaller on expat, with DTDs and entity
declarations refused; marshalling is a specialised, much faster equivalent of
``xmlrpc.client.dumps``. vigild imports neither ``xmlrpc.client`` nor, through it,
``http.client`` and ``ssl``: a smaller daemon. The rules are supervisord's:
``allow_none=False``; integers clamped to the XML-RPC ``i4``
range (timestamps would otherwise overflow in 2038); characters XML 1.0 cannot
carry (control characters from a child's log, lone surrogates) become U+FFFD, so
a reply always parses (supervisord sends them raw and the client fails).

A :class:`Marshalled` value is a ``<value>`` element rendered already (the
``_wire_`` forms of :mod:`manager.rpcinterface`); it is sent as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from xml.parsers import expat

__all__ = [
    "MAXINT",
    "MININT",
    "BadRequest",
    "Marshalled",
    "Opaque",
    "loads_request",
    "marshal_fault",
    "marshal_value",
    "text",
]

MAXINT = 2**31 - 1
MININT = -(2**31)


class Marshalled(str):
    """One XML-RPC ``<value>…</value>`` element, rendered already: marshalled verbatim."""

    __slots__ = ()


# No DTD, ever. defusedxml is not available, and expat (under xmlrpc.client) expands
# internal entities, so a DOCTYPE declaring nested entities ("billion laughs") turns a
# small body into gigabytes of memory and seconds of CPU; external entities are a
# further risk. XML-RPC never needs a DTD, so a body that mentions one is refused with
# 400 before it reaches the parser, and the parser itself is told to stop at any
# DOCTYPE or entity declaration (that also covers encodings such as UTF-16, where the
# raw bytes would not match the pattern).
_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class BadRequest(Exception):
    """The body is not an acceptable XML-RPC call (answered with 400)."""


def _refuse_dtd(*args: object) -> None:
    raise BadRequest("DTDs and entity declarations are not accepted")


class Opaque:
    """A ``<base64>`` or ``<dateTime.iso8601>`` parameter: carried, never a str or bytes.

    No method of the API takes one; like ``xmlrpc.client``'s Binary and DateTime it
    passes no annotation but ``Any``, so the call is INCORRECT_PARAMETERS.
    """

    __slots__ = ("kind", "text")

    def __init__(self, kind: str, text: str) -> None:
        self.kind = kind
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and (self.kind, self.text) == (other.kind, other.text)

    __hash__ = None  # type: ignore[assignment]  # as xmlrpc.client's: not a struct key

    def __repr__(self) -> str:
        return f"Opaque({self.kind!r}, {self.text!r})"


class _CallReader:
    """expat handlers building a call: ``xmlrpc.client.Unmarshaller``'s rules, our errors.

    The same values for the same document (``<base64>``/``<dateTime.iso8601>`` become
    :class:`Opaque`), so vigild needs neither ``xmlrpc.client`` nor, through it,
    ``http.client`` and ``ssl`` (~3 MB of RSS). Structural errors surface as
    IndexError/TypeError, values as ValueError/ArithmeticError, as there.
    """

    def __init__(self) -> None:
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.data: list[str] = []
        #: the last element opened was <value> (its text is a string if nothing follows)
        self.value = False
        self.kind: str | None = None
        self.method: str | None = None

    def start(self, tag: str, attrs: object) -> None:
        if ":" in tag:
            tag = tag.split(":")[-1]
        if tag == "array" or tag == "struct":
            self.marks.append(len(self.stack))
        self.data = []
        if self.value and tag not in _ENDS:
            raise BadRequest(f"malformed XML-RPC: unknown tag {tag!r}")
        self.value = tag == "value"

    def text(self, data: str) -> None:
        self.data.append(data)

    def end(self, tag: str) -> None:
        f = _ENDS.get(tag)
        if f is None:
            if ":" not in tag:
                return
            f = _ENDS.get(tag.split(":")[-1])
            if f is None:
                return
        f(self, "".join(self.data))

    def _push(self, value: object) -> None:
        self.stack.append(value)
        self.value = False

    def _boolean(self, data: str) -> None:
        if data not in ("0", "1"):
            raise TypeError("bad boolean value")
        self._push(data == "1")

    def _bigdecimal(self, data: str) -> None:
        import decimal  # rare: not worth its import at every start

        self._push(decimal.Decimal(data))

    def _base64(self, data: str) -> None:
        import base64

        base64.decodebytes(data.encode("ascii"))  # binascii.Error is a ValueError
        self._push(Opaque("base64", data))

    def _datetime(self, data: str) -> None:
        self.stack.append(Opaque("dateTime.iso8601", data.strip()))  # keeps .value, as there

    def _array(self, data: str) -> None:
        mark = self.marks.pop()
        self.stack[mark:] = [self.stack[mark:]]
        self.value = False

    def _struct(self, data: str) -> None:
        mark = self.marks.pop()
        items = self.stack[mark:]
        struct = {}
        for i in range(0, len(items), 2):
            struct[items[i]] = items[i + 1]
        self.stack[mark:] = [struct]
        self.value = False

    def _value(self, data: str) -> None:
        if self.value:  # <value>text</value>: a string
            self._push(data)

    def _params(self, data: str) -> None:
        self.kind = "params"

    def _fault(self, data: str) -> None:
        self.kind = "fault"

    def _method_name(self, data: str) -> None:
        self.method = data
        self.kind = "methodName"


_ENDS: dict[str, Callable[[_CallReader, str], None]] = {
    "nil": lambda r, d: r._push(None),
    "boolean": _CallReader._boolean,
    **dict.fromkeys(
        ("i1", "i2", "i4", "i8", "int", "biginteger"),
        lambda r, d: r._push(int(d)),
    ),
    "double": lambda r, d: r._push(float(d)),
    "float": lambda r, d: r._push(float(d)),
    "bigdecimal": _CallReader._bigdecimal,
    "string": _CallReader._push,
    "name": _CallReader._push,
    "array": _CallReader._array,
    "struct": _CallReader._struct,
    "base64": _CallReader._base64,
    "dateTime.iso8601": _CallReader._datetime,
    "value": _CallReader._value,
    "params": _CallReader._params,
    "fault": _CallReader._fault,
    "methodName": _CallReader._method_name,
}


def loads_request(body: bytes) -> tuple[tuple[Any, ...], str | None]:
    """``(params, method name)`` of an XML-RPC call, as ``xmlrpc.client.loads``, without DTDs.

    A call without ``<params>`` has no parameters (supervisord accepts that too).

    Raises:
        BadRequest: a DTD or entity declaration, malformed XML, or not a call.
    """
    if _DTD.search(body):
        raise BadRequest("DTDs and entity declarations are not accepted")
    reader = _CallReader()
    parser = expat.ParserCreate(None, None)
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.text
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    parser.buffer_text = True
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise BadRequest(f"unparsable XML: {exc}") from None
    except (ValueError, OverflowError) as exc:  # e.g. <int>x</int>
        raise BadRequest(f"bad value: {exc}") from None
    except ArithmeticError:  # <bigdecimal>x</bigdecimal> (decimal.InvalidOperation)
        raise BadRequest("bad value: not a decimal number") from None
    except (TypeError, IndexError, KeyError):
        # the structure is trusted, as in xmlrpc.client: a <member> without <name> (an
        # odd number of items, or a list as a key), </array> or </struct> with no start
        raise BadRequest("malformed XML-RPC structure") from None
    if reader.kind is None or reader.marks:
        return (), reader.method
    if reader.kind == "fault":
        raise BadRequest("a fault is not a call")
    return tuple(reader.stack), reader.method


_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


_NEEDS_ESCAPE = re.compile("[&<>\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def text(value: str) -> str:
    """XML character data: escaped, XML-invalid characters replaced (fast path: unchanged)."""
    if _NEEDS_ESCAPE.search(value) is None:
        return value
    value = _XML_INVALID.sub("\ufffd", value)
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


#: struct keys → their "<member><name>…</name>" (the same dozen keys in every struct)
_NAMES: dict[object, str] = {}


def _dump(value: object, out: list[str]) -> None:
    """Append the ``<value>`` of one object: a specialised, much faster ``xmlrpc.client`` dump.

    Big replies (``getAllProcessInfo`` of 500 processes) are made of a few types only.
    Subclasses of str, dict, list and float are dumped as those.

    Raises:
        TypeError: ``None`` or any other type (``allow_none=False``, as supervisord).
    """
    t = type(value)
    if t is Marshalled:
        out.append(value)  # type: ignore[arg-type]
    elif t is str:
        out.append(f"<value><string>{text(value)}</string></value>")  # type: ignore[arg-type]
    elif t is bool:
        out.append(
            "<value><boolean>1</boolean></value>"
            if value
            else "<value><boolean>0</boolean></value>"
        )
    elif t is dict:
        out.append("<value><struct>")
        for k, v in value.items():  # type: ignore[attr-defined]
            name = _NAMES.get(k) if type(k) is str else None
            if name is None:
                name = f"<member><name>{text(str(k))}</name>"
                if type(k) is str and len(_NAMES) < 4096:
                    _NAMES[k] = name
            tv = type(v)  # strings and ints inline: most members of the big replies
            if tv is str:
                out.append(f"{name}<value><string>{text(v)}</string></value></member>")
            elif tv is int and MININT <= v <= MAXINT:
                out.append(f"{name}<value><int>{v}</int></value></member>")
            else:
                out.append(name)
                _dump(v, out)
                out.append("</member>")
        out.append("</struct></value>")
    elif t is list or t is tuple:
        out.append("<value><array><data>")
        for v in value:  # type: ignore[attr-defined]
            _dump(v, out)
        out.append("</data></array></value>")
    elif isinstance(value, int):  # also IntEnum members
        out.append(f"<value><int>{max(MININT, min(MAXINT, int(value)))}</int></value>")
    elif isinstance(value, float):
        out.append(f"<value><double>{float(value)!r}</double></value>")
    elif isinstance(value, str):
        _dump(str(value), out)
    elif isinstance(value, dict):
        _dump(dict(value), out)
    elif isinstance(value, list | tuple):
        _dump(list(value), out)
    elif value is None:
        raise TypeError("cannot marshal None unless allow_none is enabled")
    else:
        raise TypeError(f"cannot marshal {t} objects")


def marshal_value(value: object) -> bytes:
    """A methodResponse carrying ``value``.

    Raises:
        TypeError: ``value`` contains ``None`` or something else XML-RPC cannot carry.
    """
    out = ["<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n"]
    _dump(value, out)
    out.append("\n</param>\n</params>\n</methodResponse>\n")
    return "".join(out).encode("utf-8")


def marshal_fault(code: int, text_: str) -> bytes:
    """A methodResponse carrying a fault (byte for byte what ``xmlrpc.client.dumps`` writes)."""
    return (
        "<?xml version='1.0'?>\n<methodResponse>\n<fault>\n<value><struct>\n"
        "<member>\n<name>faultCode</name>\n"
        f"<value><int>{max(MININT, min(MAXINT, int(code)))}</int></value>\n</member>\n"
        "<member>\n<name>faultString</name>\n"
        f"<value><string>{text(text_)}</string></value>\n</member>\n"
        "</struct></value>\n</fault>\n</methodResponse>\n"
    ).encode()
