"""What an alert is: triggers, the :class:`Alert` record, and Vigil's JSON schema.

An :class:`Alert` is one notification about one *condition* of one process: the
first notice that it fires, a reminder while it keeps firing, or the notice that
it resolved. It is a plain frozen record: the policy creates it from event facts,
the enricher adds context fetched over XML-RPC (exit status, uptime, log tails),
the spool stores it as JSON (:meth:`Alert.to_json` / :meth:`Alert.from_json`) and
the formats render it. :data:`ALERT_SCHEMA` is the JSON Schema of
:meth:`Alert.to_json`; the module docstring of :mod:`listeners.plugins.alerts`
documents it for humans.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import uuid
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ALERT_SCHEMA",
    "CONDITIONS",
    "ENVELOPE_SCHEMA",
    "SCHEMA_ID",
    "Alert",
    "Status",
    "Trigger",
    "iso",
    "namespec",
    "new_id",
]

#: The ``schema`` value of every ``format = json`` envelope.
SCHEMA_ID = "vigil.alerts/v1"


class Trigger(enum.Enum):
    """The names allowed in ``on =``: what makes a channel send something."""

    #: PROCESS_STATE_FATAL: supervisord gave up starting the process
    FATAL = "FATAL"
    #: PROCESS_STATE_EXITED with ``expected:0`` (a crash)
    EXITED_UNEXPECTED = "EXITED_UNEXPECTED"
    #: PROCESS_STATE_BACKOFF: the process exited before ``startsecs``
    BACKOFF = "BACKOFF"
    #: a health check's circuit breaker opened (no more automatic restarts)
    BREAKER_OPEN = "BREAKER_OPEN"
    #: that breaker closed again (the resolution of BREAKER_OPEN)
    BREAKER_CLOSED = "BREAKER_CLOSED"
    #: the health plugin restarted (or FATAL-recovery started) the process
    HEALTH_RESTART = "HEALTH_RESTART"
    #: a process with a fired alert is RUNNING and healthy again (the resolution)
    RECOVERED = "RECOVERED"


#: The triggers that start a *firing* condition; the others only resolve one.
CONDITIONS = frozenset(
    {
        Trigger.FATAL,
        Trigger.EXITED_UNEXPECTED,
        Trigger.BACKOFF,
        Trigger.BREAKER_OPEN,
        Trigger.HEALTH_RESTART,
    }
)


class Status(enum.Enum):
    FIRING = "firing"
    RESOLVED = "resolved"


def new_id() -> str:
    """A fresh notification id (32 hex digits)."""
    return uuid.uuid4().hex


def iso(ts: float) -> str:
    """RFC 3339 UTC with milliseconds: ``2024-05-01T12:00:00.123Z``."""
    when = dt.datetime.fromtimestamp(ts, dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def namespec(group: str, name: str) -> str:
    """``name`` when the process is its own group (a plain program), else ``group:name``."""
    return name if group == name else f"{group}:{name}"


@dataclass(frozen=True)
class Alert:
    """One notification. Field comments are the documented JSON schema."""

    #: unique per notification; receivers drop repeats of an id (delivery is at-least-once)
    id: str
    #: ``host/program/CONDITION[/check]``: the same for the first notice, reminders, resolution
    key: str
    status: Status
    #: the ``on =`` trigger that produced this notification
    trigger: Trigger
    #: what fires or fired (one of :data:`CONDITIONS`)
    condition: Trigger
    host: str
    group: str
    name: str
    #: one line for humans
    summary: str
    #: wall-clock seconds: when the condition began firing
    started_at: float
    #: wall-clock seconds: when this notification was made
    at: float
    #: wall-clock seconds: when the condition resolved (resolved notices only)
    ended_at: float | None = None
    #: 0 for the first notice, n for the n-th reminder
    reminder: int = 0
    #: how many times the condition occurred while firing (crashes of a crash loop)
    occurrences: int = 1
    from_state: str | None = None
    to_state: str | None = None
    pid: int | None = None
    expected: bool | None = None
    tries: int | None = None
    exit_status: int | None = None
    #: seconds the latest run of the process lasted (or has lasted, if running)
    uptime: float | None = None
    #: starts of the process after its first, seen by this listener since it started
    restarts: int = 0
    #: the health check involved (BREAKER_*, HEALTH_RESTART, or a failing check)
    check: str | None = None
    #: the health-check failure reason, breaker reason or action error
    reason: str | None = None
    #: supervisord's ``spawnerr`` (why it could not start), if any
    spawn_error: str | None = None
    stderr_tail: str | None = None
    stdout_tail: str | None = None
    #: why context could not be fetched (XML-RPC failure), if it could not
    context_error: str | None = None
    #: context (exit status, uptime, tails) has been fetched (or given up on)
    enriched: bool = False

    @property
    def program(self) -> str:
        return namespec(self.group, self.name)

    @property
    def firing(self) -> bool:
        return self.status is Status.FIRING

    def replace(self, **changes: Any) -> Alert:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """The documented JSON object (see :data:`ALERT_SCHEMA`)."""
        return {
            "id": self.id,
            "key": self.key,
            "status": self.status.value,
            "trigger": self.trigger.value,
            "condition": self.condition.value,
            "reminder": self.reminder,
            "occurrences": self.occurrences,
            "summary": self.summary,
            "host": self.host,
            "group": self.group,
            "name": self.name,
            "program": self.program,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "pid": self.pid,
            "expected": self.expected,
            "tries": self.tries,
            "exit_status": self.exit_status,
            "uptime": self.uptime,
            "restarts": self.restarts,
            "check": self.check,
            "reason": self.reason,
            "spawn_error": self.spawn_error,
            "started_at": iso(self.started_at),
            "at": iso(self.at),
            "ended_at": None if self.ended_at is None else iso(self.ended_at),
            "stderr_tail": self.stderr_tail,
            "stdout_tail": self.stdout_tail,
            "context_error": self.context_error,
        }

    def to_record(self) -> dict[str, Any]:
        """Lossless form for the spool (epoch floats, the ``enriched`` flag)."""
        out = self.to_json()
        out.update(
            started_at=self.started_at,
            at=self.at,
            ended_at=self.ended_at,
            enriched=self.enriched,
        )
        del out["program"]
        return out

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Alert:
        """Inverse of :meth:`to_record`.

        Raises:
            KeyError, ValueError, TypeError: not a record of this version.
        """
        fields = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in data.items() if k in fields}
        kw["status"] = Status(data["status"])
        kw["trigger"] = Trigger(data["trigger"])
        kw["condition"] = Trigger(data["condition"])
        for name in ("started_at", "at"):
            kw[name] = float(data[name])
        alert = cls(**kw)
        if not isinstance(alert.id, str) or not isinstance(alert.key, str):
            raise TypeError("id and key must be strings")
        return alert


_STR = {"type": "string"}
_OPT_STR = {"type": ["string", "null"]}
_OPT_INT = {"type": ["integer", "null"]}
_TIME = {"type": "string", "format": "date-time"}

#: JSON Schema (draft 2020-12) of one alert object as sent by ``format = json``.
ALERT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "id",
        "key",
        "status",
        "trigger",
        "condition",
        "reminder",
        "occurrences",
        "summary",
        "host",
        "group",
        "name",
        "program",
        "from_state",
        "to_state",
        "pid",
        "expected",
        "tries",
        "exit_status",
        "uptime",
        "restarts",
        "check",
        "reason",
        "spawn_error",
        "started_at",
        "at",
        "ended_at",
        "stderr_tail",
        "stdout_tail",
        "context_error",
    ],
    "properties": {
        "id": _STR,
        "key": _STR,
        "status": {"enum": [s.value for s in Status]},
        "trigger": {"enum": [t.value for t in Trigger]},
        "condition": {"enum": sorted(t.value for t in CONDITIONS)},
        "reminder": {"type": "integer", "minimum": 0},
        "occurrences": {"type": "integer", "minimum": 1},
        "summary": _STR,
        "host": _STR,
        "group": _STR,
        "name": _STR,
        "program": _STR,
        "from_state": _OPT_STR,
        "to_state": _OPT_STR,
        "pid": _OPT_INT,
        "expected": {"type": ["boolean", "null"]},
        "tries": _OPT_INT,
        "exit_status": _OPT_INT,
        "uptime": {"type": ["number", "null"], "minimum": 0},
        "restarts": {"type": "integer", "minimum": 0},
        "check": _OPT_STR,
        "reason": _OPT_STR,
        "spawn_error": _OPT_STR,
        "started_at": _TIME,
        "at": _TIME,
        "ended_at": {"type": ["string", "null"], "format": "date-time"},
        "stderr_tail": _OPT_STR,
        "stdout_tail": _OPT_STR,
        "context_error": _OPT_STR,
    },
}

#: JSON Schema of the body of every ``format = json`` POST (and of a command's stdin).
ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["schema", "channel", "host", "sent_at", "digest", "count", "alerts"],
    "properties": {
        "schema": {"const": SCHEMA_ID},
        "channel": _STR,
        "host": _STR,
        "sent_at": _TIME,
        "digest": {"type": "boolean"},
        "count": {"type": "integer", "minimum": 1},
        "alerts": {"type": "array", "minItems": 1, "items": ALERT_SCHEMA},
    },
}
