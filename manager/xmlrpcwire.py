"""XML-RPC on the wire: parse a call, marshal a reply (vigild's server side).

Parsing is ``xmlrpc.client``'s Unmarshaller on expat, with DTDs and entity
declarations refused. Marshalling is a specialised, much faster equivalent of
``xmlrpc.client.dumps`` for the few types big replies are made of, with
supervisord's rules: ``allow_none=False``; integers clamped to the XML-RPC ``i4``
range (timestamps would otherwise overflow in 2038); characters XML 1.0 cannot
carry (control characters from a child's log, lone surrogates) become U+FFFD, so
a reply always parses (supervisord sends them raw and the client fails).

A :class:`Marshalled` value is a ``<value>`` element rendered already (the
``_wire_`` forms of :mod:`manager.rpcinterface`); it is sent as it is.
"""

from __future__ import annotations

import re
import xmlrpc.client
from typing import Any
from xml.parsers import expat

__all__ = [
    "MAXINT",
    "MININT",
    "BadRequest",
    "Marshalled",
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


def loads_request(body: bytes) -> tuple[tuple[Any, ...], str | None]:
    """``(params, method name)`` of an XML-RPC call, as ``xmlrpc.client.loads``, without DTDs.

    A call without ``<params>`` has no parameters (supervisord accepts that too).

    Raises:
        BadRequest: a DTD or entity declaration, malformed XML, or not a call.
    """
    if _DTD.search(body):
        raise BadRequest("DTDs and entity declarations are not accepted")
    unmarshaller = xmlrpc.client.Unmarshaller()
    # as ExpatParser does: expat hands over str already, so no decoding ("" = none)
    unmarshaller.xml("", None)
    parser = expat.ParserCreate(None, None)
    parser.StartElementHandler = unmarshaller.start
    parser.EndElementHandler = unmarshaller.end
    parser.CharacterDataHandler = unmarshaller.data
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    parser.buffer_text = True
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise BadRequest(f"unparsable XML: {exc}") from None
    except (ValueError, OverflowError) as exc:  # e.g. <int>x</int>
        raise BadRequest(f"bad value: {exc}") from None
    except xmlrpc.client.ResponseError as exc:  # an element inside <value> it does not know
        raise BadRequest(f"malformed XML-RPC: {exc.args[0] if exc.args else exc}") from None
    except ArithmeticError:  # <bigdecimal>x</bigdecimal> (decimal.InvalidOperation)
        raise BadRequest("bad value: not a decimal number") from None
    except (TypeError, IndexError, KeyError):
        # the Unmarshaller trusts the structure: a <member> without <name> (an odd
        # number of items, or a list as a key), </array> or </struct> with no start
        raise BadRequest("malformed XML-RPC structure") from None
    method = unmarshaller.getmethodname()
    try:
        params = unmarshaller.close()
    except xmlrpc.client.ResponseError:
        params = ()
    except (xmlrpc.client.Fault, TypeError, IndexError):  # any <fault>, well-formed or not
        raise BadRequest("a fault is not a call") from None
    return params, method


_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _wire(value: object) -> Any:
    """``value`` made marshallable: ints clamped to i4, XML-invalid characters replaced."""
    if isinstance(value, bool | float) or value is None:
        return value
    if isinstance(value, int):
        return max(MININT, min(MAXINT, int(value)))  # int(): also plain ints from IntEnums
    if isinstance(value, str):
        return _XML_INVALID.sub("\ufffd", value)
    if isinstance(value, list | tuple):
        return [_wire(v) for v in value]
    if isinstance(value, dict):
        return {_XML_INVALID.sub("\ufffd", str(k)): _wire(v) for k, v in value.items()}
    return value


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

    Big replies (``getAllProcessInfo`` of 500 processes) are made of a few types only;
    anything unusual falls back to ``xmlrpc.client`` (which rejects ``None``).
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
    elif t is float:
        out.append(f"<value><double>{value!r}</double></value>")
    else:
        out.append(
            xmlrpc.client.dumps((_wire(value),), allow_none=False)
            .split("<param>\n", 1)[1]
            .rsplit("</param>", 1)[0]
        )


def marshal_value(value: object) -> bytes:
    """A methodResponse carrying ``value``.

    Raises:
        TypeError: ``value`` contains ``None`` or something else XML-RPC cannot carry.
    """
    out = ["<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n"]
    _dump(value, out)
    out.append("\n</param>\n</params>\n</methodResponse>\n")
    return "".join(out).encode("utf-8")


def marshal_fault(code: int, text: str) -> bytes:
    """A methodResponse carrying a fault."""
    fault = xmlrpc.client.Fault(int(code), _XML_INVALID.sub("\ufffd", text))
    return xmlrpc.client.dumps(fault, methodresponse=True).encode("utf-8")
