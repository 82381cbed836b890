"""Process and supervisor states, and the one table of legal process transitions.

Theory of operation
-------------------
Rule 1: every legal move of a supervised process is a row of :data:`TRANSITIONS`
(reference §3.2). Rule 2: :func:`check_transition` is consulted by the one writer
of ``Process.state``; a move not in the table is a bug and raises
:class:`IllegalTransition` instead of silently corrupting state.
Codes and names are supervisord 4.3's, because they are wire values (XML-RPC
``state``/``statename``, event names, metric values).
"""

from __future__ import annotations

import enum

from manager.events import EventType

__all__ = [
    "RUNNING_STATES",
    "SIGNALLABLE_STATES",
    "STOPPED_STATES",
    "TRANSITIONS",
    "IllegalTransition",
    "ProcessState",
    "SupervisorState",
    "check_transition",
    "event_for",
]


class ProcessState(enum.IntEnum):
    STOPPED = 0
    STARTING = 10
    RUNNING = 20
    BACKOFF = 30
    STOPPING = 40
    EXITED = 100
    FATAL = 200
    UNKNOWN = 1000


class SupervisorState(enum.IntEnum):
    FATAL = 2
    RUNNING = 1
    RESTARTING = 0
    SHUTDOWN = -1


P = ProcessState

#: States in which a process counts as started ("already started", "can be stopped").
RUNNING_STATES = frozenset({P.STARTING, P.RUNNING, P.BACKOFF})
#: States in which a process counts as not running (status exit 3, group removable).
STOPPED_STATES = frozenset({P.STOPPED, P.EXITED, P.FATAL, P.UNKNOWN})
#: States in which ``signalProcess`` is allowed.
SIGNALLABLE_STATES = frozenset({P.STARTING, P.RUNNING, P.STOPPING})

#: from-state -> the states it may move to, and why (reference §3.2).
TRANSITIONS: dict[ProcessState, dict[ProcessState, str]] = {
    P.STOPPED: {P.STARTING: "autostart or start request"},
    P.STARTING: {
        P.RUNNING: "alive for more than startsecs",
        P.BACKOFF: "exited before startsecs, or the spawn failed",
        P.STOPPING: "stop request",
        P.UNKNOWN: "signalling it failed",
    },
    P.RUNNING: {
        P.EXITED: "exited without a stop request",
        P.STOPPING: "stop request",
        P.UNKNOWN: "signalling it failed",
    },
    P.BACKOFF: {
        P.STARTING: "retry after the backoff delay",
        P.FATAL: "more than startretries failed starts, or shutdown",
        P.STOPPED: "stop request",
    },
    P.STOPPING: {
        P.STOPPED: "reaped after a stop request",
        P.UNKNOWN: "signalling it failed",
    },
    P.EXITED: {P.STARTING: "autorestart or start request"},
    P.FATAL: {P.STARTING: "start request"},
    P.UNKNOWN: {},
}


class IllegalTransition(RuntimeError):
    """A move not in :data:`TRANSITIONS` was attempted: a bug in the core."""


def check_transition(name: str, old: ProcessState, new: ProcessState) -> None:
    """Raise :class:`IllegalTransition` unless ``old -> new`` is in the table."""
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"{name}: illegal transition {old.name} -> {new.name}")


def event_for(state: ProcessState) -> EventType:
    """The PROCESS_STATE_* event announcing entry into ``state``."""
    return EventType(f"PROCESS_STATE_{state.name}")
