"""Which methods a namespace publishes, and the ``@tag`` lines of their docstrings.

Theory of operation
-------------------
A namespace is any object; its published methods are the callable attributes its
class and the class's bases (all but :class:`object`) define, under names that do
not start with ``_`` — supervisord's rule, extended to the mixins that
``SupervisorNamespace`` is assembled from. Where a name is defined twice, the most
derived definition wins, as attribute lookup does. The method name is the wire name;
aliases (``getVersion = getAPIVersion``) are published under both names.

A ``_wire_<method>`` twin (never published itself) returns ``<method>``'s value
already marshalled; :func:`wire_table` finds them by the same walk.

:func:`gettags` parses supervisord's ``@param type name`` / ``@return type`` docstring
lines, from which ``system.methodSignature`` is computed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

__all__ = ["Tag", "gettags", "method_table", "wire_table"]


def _class_attributes(cls: type) -> dict[str, object]:
    """What ``cls`` and its bases except :class:`object` define, the most derived winning."""
    attributes: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        if klass is not object:
            attributes.update(vars(klass))
    return attributes


def method_table(namespaces: Mapping[str, object]) -> dict[str, Callable[..., object]]:
    """Every published method as ``{"ns.method": bound method}``, aliases included.

    A method is published when its class or one of its bases (not :class:`object`)
    defines it and its name does not start with ``_`` — supervisord's rule.
    """
    table: dict[str, Callable[..., object]] = {}
    for ns_name, ns in namespaces.items():
        for attr, value in _class_attributes(type(ns)).items():
            if attr.startswith("_") or not callable(value):
                continue
            table[f"{ns_name}.{attr}"] = getattr(ns, attr)
    return table


def wire_table(namespaces: Mapping[str, object]) -> dict[str, Callable[..., object]]:
    """The ``_wire_<method>`` twins, as ``{"ns.method": bound twin}``.

    A twin takes the method's arguments and returns its value already marshalled
    (:class:`~manager.xmlrpcwire.Marshalled`); it must unmarshal to what the
    method returns.
    """
    table: dict[str, Callable[..., object]] = {}
    for ns_name, ns in namespaces.items():
        for attr in _class_attributes(type(ns)):
            if attr.startswith("_wire_") and callable(getattr(ns, attr[6:], None)):
                table[f"{ns_name}.{attr[6:]}"] = getattr(ns, attr)
    return table


Tag = tuple[int, str | None, str | None, str | None, str]


def gettags(comment: str) -> list[Tag]:
    """Parse ``@tag type name text`` lines of a docstring, as supervisord's ``gettags``.

    Returns:
        ``(line, tag, datatype, name, text)`` tuples; the first one is the text
        before any tag (tag ``None``).
    """
    tags: list[Tag] = []
    tag: str | None = None
    datatype: str | None = None
    name: str | None = None
    tag_lineno = 0
    tag_text: list[str] = []
    for lineno, raw in enumerate(comment.split("\n")):
        line = raw.strip()
        if line.startswith("@"):
            tags.append((tag_lineno, tag, datatype, name, "\n".join(tag_text)))
            parts = line.split(None, 3)
            datatype = parts[1] if len(parts) > 1 else ""
            name = parts[2] if len(parts) > 2 else ""
            tag_text = [parts[3].lstrip()] if len(parts) > 3 else []
            tag = parts[0][1:]
            tag_lineno = lineno
        elif line:
            tag_text.append(line)
    tags.append((tag_lineno, tag, datatype, name, "\n".join(tag_text)))
    return tags
