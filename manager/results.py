"""Result handlers of ``[eventlistener:x] result_handler`` (reference §1.6).

A handler is ``handler(event, response: bytes) -> None``; it accepts the event by
returning and rejects it by raising an exception named ``RejectEvent`` (ours, or
``supervisor.dispatchers.RejectEvent`` for handlers written for supervisord).
Any other exception counts as a rejection too (supervisord would also put that
listener in UNKNOWN; vigild keeps it serving and logs the error). Handlers get
Vigil's typed events (:mod:`manager.events`), not supervisord's event objects.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Callable

from manager.events import Event

__all__ = [
    "DEFAULT_RESULT_HANDLER",
    "Outcome",
    "RejectEvent",
    "default_handler",
    "judge",
    "resolve",
]

#: supervisord's default, which Vigil implements itself.
DEFAULT_RESULT_HANDLER = "supervisor.dispatchers:default_handler"

ResultHandler = Callable[[Event, bytes], None]


class RejectEvent(Exception):
    """Raised by a result handler to reject the event (it is buffered again)."""


def default_handler(event: Event, response: bytes) -> None:
    """Only a body of exactly ``OK`` acknowledges."""
    if response != b"OK":
        raise RejectEvent(response)


def resolve(spec: str) -> ResultHandler:
    """The callable named by ``package.module:callable``.

    Raises:
        ValueError: it cannot be imported or is not callable.
    """
    if spec == DEFAULT_RESULT_HANDLER:
        return default_handler
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError("not of the form package.module:callable")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(str(exc)) from None
    if not callable(obj):
        raise ValueError("not callable")
    handler: ResultHandler = obj
    return handler


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    ERROR = "error"


def judge(handler: ResultHandler, event: Event, response: bytes) -> tuple[Outcome, str]:
    """Run the handler; the outcome and, for an error, its text."""
    try:
        handler(event, response)
    except Exception as exc:
        if type(exc).__name__ == "RejectEvent":
            return Outcome.REJECTED, ""
        return Outcome.ERROR, repr(exc)
    return Outcome.ACCEPTED, ""
