"""Rendering alerts for each channel: pure functions from alerts to payloads.

* :func:`json_envelope` — Vigil's own schema (``format = json``, a command's stdin);
* :func:`slack_payload` — a Slack incoming-webhook body (``text`` + Block Kit ``blocks``);
* :func:`alertmanager_payload` — the body of ``POST /api/v2/alerts`` (a list of
  postable alerts: ``labels``, ``annotations``, ``startsAt``, ``endsAt``);
* :func:`email_message` — a text mail, one alert or a digest (fatalmailbatch-style lines);
* :func:`command_environment` — ``VIGIL_ALERT_*`` variables for a command.

Several alerts in one call make a *digest* (batching or rate limiting); every
format carries all of them.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from typing import Any

from listeners.alerting.model import SCHEMA_ID, Alert, Trigger, iso

__all__ = [
    "ALERTNAMES",
    "SLACK_MAX_ALERTS",
    "alertmanager_payload",
    "command_environment",
    "email_message",
    "json_envelope",
    "slack_payload",
    "subject",
]

T = Trigger
#: Alertmanager ``alertname`` per condition (Prometheus' CamelCase convention)
ALERTNAMES: Mapping[Trigger, str] = {
    T.FATAL: "SupervisorProcessFatal",
    T.EXITED_UNEXPECTED: "SupervisorProcessExitedUnexpectedly",
    T.BACKOFF: "SupervisorProcessBackoff",
    T.BREAKER_OPEN: "VigilBreakerOpen",
    T.HEALTH_RESTART: "VigilHealthRestart",
}
SEVERITY: Mapping[Trigger, str] = {
    T.FATAL: "critical",
    T.BREAKER_OPEN: "critical",
    T.EXITED_UNEXPECTED: "warning",
    T.BACKOFF: "warning",
    T.HEALTH_RESTART: "warning",
}
#: alerts listed one by one in a Slack digest (Slack allows 50 blocks per message)
SLACK_MAX_ALERTS = 20
SLACK_TEXT_MAX = 2900
SLACK_HEADER_MAX = 150


def json_envelope(
    alerts: Sequence[Alert], *, channel: str, host: str, now: float
) -> dict[str, Any]:
    """The documented ``format = json`` body."""
    return {
        "schema": SCHEMA_ID,
        "channel": channel,
        "host": host,
        "sent_at": iso(now),
        "digest": len(alerts) > 1,
        "count": len(alerts),
        "alerts": [a.to_json() for a in alerts],
    }


def _title(a: Alert) -> str:
    if not a.firing:
        return f"{a.trigger.value}: {a.program}"
    reminder = f" (reminder {a.reminder})" if a.reminder else ""
    return f"{a.condition.value}: {a.program}{reminder}"


def subject(alerts: Sequence[Alert], host: str, fixed: str | None = None) -> str:
    """A mail subject: ``fixed`` if given, else from the alert(s)."""
    if fixed:
        return fixed
    if len(alerts) == 1:
        return f"[vigil] {_title(alerts[0])} on {host}"
    firing = sum(a.firing for a in alerts)
    resolved = len(alerts) - firing
    return f"[vigil] {len(alerts)} alerts from {host} ({firing} firing, {resolved} resolved)"


def _duration(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    if seconds < 60:
        return f"{seconds:.1f}s"
    return str(dt.timedelta(seconds=int(seconds)))


def _facts(a: Alert) -> list[tuple[str, str]]:
    """(label, value) pairs shown by Slack fields and mail bodies; unknowns left out."""
    state = (
        f"{a.from_state} -> {a.to_state}"
        if a.from_state and a.to_state
        else (a.to_state or a.from_state)
    )
    pairs: list[tuple[str, str | None]] = [
        ("Host", a.host),
        ("Program", a.program if a.group == a.name else f"{a.program} (group {a.group})"),
        ("State", state),
        ("Exit status", None if a.exit_status is None else str(a.exit_status)),
        ("Uptime", _duration(a.uptime)),
        ("Restarts", str(a.restarts)),
        ("Occurrences", str(a.occurrences)),
        ("Since", iso(a.started_at)),
        ("Ended", None if a.ended_at is None else iso(a.ended_at)),
        ("Check", a.check),
        ("Reason", a.reason),
        ("Spawn error", a.spawn_error),
        ("Context", a.context_error and f"unavailable: {a.context_error}"),
    ]
    return [(k, v) for k, v in pairs if v]


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int, *, keep_end: bool = False) -> str:
    if len(text) <= limit:
        return text
    return "…" + text[-(limit - 1) :] if keep_end else text[: limit - 1] + "…"


def _slack_code(title: str, tail: str) -> dict[str, Any]:
    body = _clip(_slack_escape(tail.rstrip("\n")), SLACK_TEXT_MAX - len(title) - 10, keep_end=True)
    return {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*\n```{body}```"}}


def _emoji(a: Alert) -> str:
    if not a.firing:
        return ":large_green_circle:"
    return ":red_circle:" if SEVERITY[a.condition] == "critical" else ":large_orange_circle:"


def slack_payload(alerts: Sequence[Alert], *, channel: str, host: str) -> dict[str, Any]:
    """A Slack incoming-webhook body: ``text`` (the fallback) and ``blocks``."""
    context: dict[str, Any] = {
        "type": "context",
        "elements": [
            {"type": "mrkdwn", "text": _slack_escape(f"Vigil · channel {channel} · host {host}")}
        ],
    }
    if len(alerts) == 1:
        a = alerts[0]
        blocks: list[dict[str, Any]] = [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": _clip(_title(a), SLACK_HEADER_MAX),
                    "emoji": True,
                },
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": _clip(f"{_emoji(a)} {_slack_escape(a.summary)}", SLACK_TEXT_MAX),
                },
                "fields": [
                    {"type": "mrkdwn", "text": _clip(f"*{k}*\n{_slack_escape(v)}", 1900)}
                    for k, v in _facts(a)[:10]
                ],
            },
        ]
        if a.stderr_tail:
            blocks.append(_slack_code("stderr (last lines)", a.stderr_tail))
        if a.stdout_tail:
            blocks.append(_slack_code("stdout (last lines)", a.stdout_tail))
        context["elements"].append({"type": "mrkdwn", "text": f"alert {a.id}"})
        blocks.append(context)
        return {
            "text": _clip(f"{_title(a)} on {a.host}: {a.summary}", SLACK_TEXT_MAX),
            "blocks": blocks,
        }
    firing = sum(a.firing for a in alerts)
    title = f"{len(alerts)} alerts from {host} ({firing} firing, {len(alerts) - firing} resolved)"
    blocks = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _clip(title, SLACK_HEADER_MAX), "emoji": True},
        }
    ]
    for a in alerts[:SLACK_MAX_ALERTS]:
        line = f"{_emoji(a)} *{_slack_escape(_title(a))}* — {_slack_escape(a.summary)}"
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _clip(line, SLACK_TEXT_MAX)}}
        )
    if len(alerts) > SLACK_MAX_ALERTS:
        more = f"… and {len(alerts) - SLACK_MAX_ALERTS} more"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": more}})
    blocks.append(context)
    lines = "\n".join(f"{_title(a)}: {a.summary}" for a in alerts)
    return {"text": _clip(f"{title}\n{lines}", SLACK_TEXT_MAX), "blocks": blocks}


def alertmanager_payload(
    alerts: Sequence[Alert],
    *,
    labels: Sequence[tuple[str, str]] = (),
    repeat_interval: float = 60.0,
) -> list[dict[str, Any]]:
    """The body of ``POST /api/v2/alerts``.

    Labels identify the alert (``alertname``, ``host``, ``group``, ``process``,
    ``severity``, ``check`` for breakers, then ``labels``); everything that varies
    (exit status, uptime, tails…) is an annotation. A firing alert's ``endsAt`` is
    4 × ``repeat_interval`` ahead (the channel re-posts it every ``repeat_interval``,
    as Prometheus does), so Alertmanager resolves it by itself if Vigil goes away;
    a resolved one carries its real end.
    """
    out: list[dict[str, Any]] = []
    for a in alerts:
        lab = {
            "alertname": ALERTNAMES[a.condition],
            "host": a.host,
            "group": a.group,
            "process": a.name,
            "severity": SEVERITY[a.condition],
        }
        if a.condition is T.BREAKER_OPEN and a.check:
            lab["check"] = a.check
        lab.update(labels)
        annotations = {"summary": a.summary, "program": a.program}
        for key, value in _facts(a):
            if key not in ("Host", "Program", "Since", "Ended"):
                annotations[key.lower().replace(" ", "_")] = value
        for key, tail in (("stderr_tail", a.stderr_tail), ("stdout_tail", a.stdout_tail)):
            if tail:
                annotations[key] = tail
        annotations["vigil_id"] = a.id
        item: dict[str, Any] = {
            "labels": lab,
            "annotations": annotations,
            "startsAt": iso(a.started_at),
        }
        if a.ended_at is not None:
            item["endsAt"] = iso(a.ended_at)
        elif repeat_interval > 0:
            item["endsAt"] = iso(a.at + 4 * repeat_interval)
        out.append(item)
    return out


def _text_block(a: Alert) -> str:
    width = max(len(k) for k, _ in _facts(a)) + 2
    lines = [_title(a), "", a.summary, ""]
    lines += [f"{k + ':':<{width}}{v}" for k, v in _facts(a)]
    lines.append(f"{'Alert id:':<{width}}{a.id}")
    for title, tail in (("stderr", a.stderr_tail), ("stdout", a.stdout_tail)):
        if tail:
            lines += ["", f"--- last lines of {title} ---", tail.rstrip("\n")]
    return "\n".join(lines)


def _local(ts: float) -> str:
    when = dt.datetime.fromtimestamp(ts)
    return when.strftime("%Y-%m-%d %H:%M:%S,") + f"{when.microsecond // 1000:03d}"


def email_message(
    alerts: Sequence[Alert],
    *,
    sender: str,
    to: Sequence[str],
    host: str,
    fixed_subject: str | None = None,
) -> EmailMessage:
    """A text mail: one alert, or a digest led by one ``<time> -- <summary>`` line each."""
    msg = EmailMessage()
    msg["Subject"] = subject(alerts, host, fixed_subject)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = email.utils.formatdate(localtime=True)
    msg["Message-ID"] = email.utils.make_msgid(idstring=alerts[0].id[:16], domain="vigil")
    msg["X-Vigil-Alert-Ids"] = " ".join(a.id for a in alerts)
    if len(alerts) == 1:
        body = _text_block(alerts[0])
    else:
        head = [f"{_local(a.at)} -- {a.summary}" for a in alerts]
        body = (
            "\n".join(head) + "\n\n" + "\n\n".join("=" * 72 + "\n" + _text_block(a) for a in alerts)
        )
    msg.set_content(body + "\n\n-- \nVigil alerts\n")
    return msg


def command_environment(alerts: Sequence[Alert], *, channel: str) -> dict[str, str]:
    """``VIGIL_ALERT_*`` variables for the first alert (the whole set is on stdin).

    Every field of the JSON schema but the log tails, upper-cased:
    ``VIGIL_ALERT_ID``, ``VIGIL_ALERT_STATUS``, ``VIGIL_ALERT_CONDITION``,
    ``VIGIL_ALERT_PROGRAM``, ``VIGIL_ALERT_SUMMARY``, ``VIGIL_ALERT_EXIT_STATUS``…
    (empty for null), plus ``VIGIL_ALERT_CHANNEL`` and ``VIGIL_ALERT_COUNT``.
    """
    env = {"VIGIL_ALERT_CHANNEL": channel, "VIGIL_ALERT_COUNT": str(len(alerts))}
    for key, value in alerts[0].to_json().items():
        if key in ("stderr_tail", "stdout_tail"):
            continue
        if value is None:
            text = ""
        elif isinstance(value, bool):
            text = "1" if value else "0"
        else:
            text = str(value)
        env[f"VIGIL_ALERT_{key.upper()}"] = text
    return env
