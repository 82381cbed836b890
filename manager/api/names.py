"""Namespecs: ``name``, ``group:name``, ``group:*`` — how the API names processes."""

from __future__ import annotations

__all__ = ["make_namespec", "split_namespec"]


def make_namespec(group: str, name: str) -> str:
    """``name`` when a process is alone in its homonymous group, else ``group:name``."""
    return name if group == name else f"{group}:{name}"


def split_namespec(namespec: str) -> tuple[str, str | None]:
    """``name`` → (name, name); ``g:n`` → (g, n); ``g:*`` and ``g:`` → (g, None)."""
    group, sep, process = namespec.partition(":")
    if not sep:
        return namespec, namespec
    if not process or process == "*":
        return group, None
    return group, process
