"""Reading XML-RPC replies fast: supervisord's big ``getAllProcessInfo`` in a few ms.

``xmlrpc.client`` parses a reply with one Python callback per XML element: 21 ms for the
0.5 MB that 500 processes make, as much as the server takes to answer. The replies
supervisord (``xmlrpc.client.dumps``) and vigild send use a handful of element types in
a fixed nesting, so :func:`loads_value` rewrites them into JSON with ``str.replace``
(C speed) and lets ``json.loads`` build the objects: ~5 ms.

Contract: the fast path either returns exactly what ``xmlrpc.client.loads`` returns for
the same bytes, or declines and ``xmlrpc.client.loads`` runs. It declines on anything
outside the subset: faults, ``<double>``, ``<base64>``, dates, untyped ``<value>text``,
character references, CDATA, comments, other whitespace between tags, invalid JSON.
A property test (tests/unit/test_fastloads.py) holds the two to that.
"""

from __future__ import annotations

import json
import re
import xmlrpc.client
from typing import Any

__all__ = ["loads_value"]

# tag sequences of the subset → JSON; applied in this order (see _to_json)
_TAGS = (
    ("</value><value>", "</value>,<value>"),  # array items
    ("</member><member><name>", ',"'),
    ("<member><name>", '"'),
    ("</name>", '":'),
    ("</member>", ""),
    ("<value><string>", '"'),
    ("</string></value>", '"'),
    ("<value><int>", ""),
    ("</int></value>", ""),
    ("<value><i4>", ""),
    ("</i4></value>", ""),
    ("<value><boolean>1</boolean></value>", "true"),
    ("<value><boolean>0</boolean></value>", "false"),
    ("<value><nil/></value>", "null"),
    ("<value><struct>", "{"),
    ("</struct></value>", "}"),
    ("<value><array><data>", "["),
    ("</data></array></value>", "]"),
)
_BREAK_AFTER = ("<data>", "<struct>", "<member>", "</name>", "</value>", "</member>")
# whatever is outside the subset: the fast path declines (one literal "<" first: fast scan)
_DECLINE = re.compile(
    # text where xmlrpc.client ignores it (outside string, name, int and boolean)
    r"<(?:/(?:value|member|name|data|array|struct|int|i4|string|boolean)>[^<]"
    r"|(?:member|data|array|struct|nil/)>[^<]"
    r"|value>(?!<(?:string|int|i4|boolean|nil/|struct|array)>)"  # untyped, double, base64...
    r"|[!?])"  # comments, CDATA, processing instructions
)
_BAD_ENTITY = re.compile(r"&(?!(?:lt|gt|amp|quot|apos);)")  # character references, others
_HEAD = re.compile(
    r"<\?xml version=(['\"])1\.0\1(?: encoding=(['\"])(?i:utf-8)\2)?\?>"
    r"[ \t\r\n]*<methodResponse>[ \t\r\n]*<params>[ \t\r\n]*<param>"
)
# xmlrpc.client reads ints with int(): "+5", " 7" and "007" are fine there, not in JSON
_BAD_INT = re.compile(r"<(int|i4)>(?!-?(?:0|[1-9][0-9]*)</\1>)")


def _to_json(body: str) -> str | None:
    """The JSON text of one ``<value>…</value>`` (line breaks as dumps writes them), or None."""
    body = body.strip()
    if "\n" in body:  # the line breaks xmlrpc.client.dumps puts after these tags
        for tag in _BREAK_AFTER:
            body = body.replace(tag + "\n", tag)
    if not (body.startswith("<value>") and body.endswith("</value>")):
        return None
    if _DECLINE.search(body) is not None or _BAD_INT.search(body) is not None:
        return None
    if "]]>" in body or ("&" in body and _BAD_ENTITY.search(body) is not None):
        return None  # "]]>" is not text in XML
    if "\\" in body:
        body = body.replace("\\", "\\\\")
    if '"' in body:
        body = body.replace('"', '\\"')
    if "\r" in body:  # the XML parser turns CR LF and lone CR into LF
        body = body.replace("\r\n", "\n").replace("\r", "\n")
    if "\n" in body:
        body = body.replace("\n", "\\n")
    if "\t" in body:
        body = body.replace("\t", "\\t")
    for tag, text in _TAGS:
        body = body.replace(tag, text)
    if "<" in body:
        return None
    if "&" in body:
        body = (
            body.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", '\\"')
            .replace("&apos;", "'")
            .replace("&amp;", "&")
        )
    return body


def _fast(data: str) -> tuple[bool, Any]:
    m = _HEAD.match(data)
    if m is None:
        return False, None
    head = m.end()
    tail = data.rfind("</param>")
    if tail < 0 or data[tail:].split() != ["</param>", "</params>", "</methodResponse>"]:
        return False, None
    text = _to_json(data[head:tail])
    if text is None:
        return False, None
    try:
        return True, json.loads(text)
    except ValueError:
        return False, None


def loads_value(data: bytes | str) -> Any:
    """The value of a one-parameter XML-RPC ``methodResponse``.

    Raises:
        xmlrpc.client.Fault: the reply is a fault.
        xml.parsers.expat.ExpatError, xmlrpc.client.ResponseError: it does not parse.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        text = ""  # another encoding, or not text: xmlrpc.client decides
    ok, value = _fast(text)
    if ok:
        return value
    params, _ = xmlrpc.client.loads(data)
    return params[0] if len(params) == 1 else params
