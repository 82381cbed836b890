"""Payloads checked against their documented shapes: Vigil JSON, Slack, Alertmanager, mail."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest

from listeners.alerting.formats import (
    ALERTNAMES,
    SLACK_MAX_ALERTS,
    alertmanager_payload,
    command_environment,
    email_message,
    json_envelope,
    slack_payload,
)
from listeners.alerting.model import (
    ALERT_SCHEMA,
    CONDITIONS,
    ENVELOPE_SCHEMA,
    Alert,
    Status,
    Trigger,
    iso,
    new_id,
)
from listeners.alerting.redact import Redactor, mask_url

WALL = 1_714_564_800.123  # 2024-05-01T12:00:00.123Z


def alert(name: str = "web", **kw: Any) -> Alert:
    a = Alert(
        id=new_id(),
        key=f"h/{name}/FATAL",
        status=Status.FIRING,
        trigger=Trigger.FATAL,
        condition=Trigger.FATAL,
        host="h",
        group=name,
        name=name,
        summary=f"{name} is FATAL: supervisord gave up starting it after 3 tries",
        started_at=WALL,
        at=WALL + 1,
        from_state="BACKOFF",
        to_state="FATAL",
        tries=3,
        exit_status=3,
        uptime=0.25,
        restarts=2,
        spawn_error="Exited too quickly (process log may have details)",
        stderr_tail="Traceback (most recent call last):\n  <module>\nValueError: <bad> & port\n",
        stdout_tail="starting\n",
        enriched=True,
    )
    return a.replace(**kw)


def resolved(name: str = "web") -> Alert:
    return alert(name).replace(
        status=Status.RESOLVED, trigger=Trigger.RECOVERED, ended_at=WALL + 60, summary="ok"
    )


# --- a small JSON Schema validator (the subset ALERT_SCHEMA uses) --------------------------

_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _is(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def validate(value: Any, schema: dict[str, Any], path: str = "$") -> None:
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        assert any(_is(value, k) for k in kinds), f"{path}: {value!r} is not {kinds}"
    if "const" in schema:
        assert value == schema["const"], path
    if "enum" in schema:
        assert value in schema["enum"], f"{path}: {value!r} not in {schema['enum']}"
    if "minimum" in schema and isinstance(value, int | float):
        assert value >= schema["minimum"], path
    if schema.get("format") == "date-time" and isinstance(value, str):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", value), path
    if isinstance(value, dict):
        missing = set(schema.get("required", ())) - set(value)
        assert not missing, f"{path}: missing {missing}"
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            assert set(value) <= set(props), f"{path}: extra {set(value) - set(props)}"
        for key, sub in props.items():
            if key in value:
                validate(value[key], sub, f"{path}.{key}")
    if isinstance(value, list):
        assert len(value) >= schema.get("minItems", 0), path
        for i, item in enumerate(value):
            validate(item, schema.get("items", {}), f"{path}[{i}]")


# --- Vigil's JSON ------------------------------------------------------------------------


def test_json_envelope_matches_the_documented_schema() -> None:
    body = json_envelope([alert()], channel="ops", host="h", now=WALL + 2)
    validate(body, ENVELOPE_SCHEMA)
    assert (body["schema"], body["digest"], body["count"]) == ("vigil.alerts/v1", False, 1)
    a = body["alerts"][0]
    assert a["started_at"] == "2024-05-01T12:00:00.123Z" and a["ended_at"] is None
    assert (a["program"], a["exit_status"], a["uptime"], a["restarts"]) == ("web", 3, 0.25, 2)
    assert body == json.loads(json.dumps(body))


def test_every_trigger_status_and_unknown_value_is_schema_valid() -> None:
    bare = Alert(
        id="x",
        key="h/g:p/BACKOFF",
        status=Status.FIRING,
        trigger=Trigger.BACKOFF,
        condition=Trigger.BACKOFF,
        host="h",
        group="g",
        name="p",
        summary="s",
        started_at=0.0,
        at=0.0,
    )
    alerts = [bare, resolved()] + [alert().replace(trigger=t, condition=t) for t in CONDITIONS]
    body = json_envelope(alerts, channel="ops", host="h", now=WALL)
    validate(body, ENVELOPE_SCHEMA)
    assert body["digest"] is True and body["count"] == len(alerts)
    assert body["alerts"][0]["program"] == "g:p"


def test_schema_documents_every_field_of_the_alert() -> None:
    assert set(ALERT_SCHEMA["properties"]) == set(alert().to_json())
    assert set(ALERT_SCHEMA["required"]) == set(alert().to_json())


def test_iso_is_rfc3339_utc_with_milliseconds() -> None:
    assert iso(WALL) == "2024-05-01T12:00:00.123Z"
    parsed = dt.datetime.fromisoformat(iso(WALL).replace("Z", "+00:00"))
    assert abs(parsed.timestamp() - WALL) < 0.001


def test_record_round_trip() -> None:
    a = alert(ended_at=WALL + 3)
    assert Alert.from_record(json.loads(json.dumps(a.to_record()))) == a
    with pytest.raises(ValueError):
        Alert.from_record({**a.to_record(), "status": "burning"})


# --- Slack -------------------------------------------------------------------------------


def check_slack_shape(payload: dict[str, Any]) -> None:
    """Slack's incoming-webhook body: text fallback + Block Kit limits."""
    assert set(payload) == {"text", "blocks"}
    assert isinstance(payload["text"], str) and 0 < len(payload["text"]) <= 3000
    blocks = payload["blocks"]
    assert 1 <= len(blocks) <= 50
    for b in blocks:
        kind = b["type"]
        assert kind in ("header", "section", "context")
        if kind == "header":
            assert b["text"]["type"] == "plain_text" and len(b["text"]["text"]) <= 150
        elif kind == "section":
            assert b["text"]["type"] == "mrkdwn" and len(b["text"]["text"]) <= 3000
            fields = b.get("fields", [])
            assert len(fields) <= 10
            assert all(f["type"] == "mrkdwn" and len(f["text"]) <= 2000 for f in fields)
        else:
            assert 1 <= len(b["elements"]) <= 10
            assert all(e["type"] == "mrkdwn" for e in b["elements"])


def test_slack_single_alert() -> None:
    a = alert()
    p = slack_payload([a], channel="ops", host="h")
    check_slack_shape(p)
    assert p["text"].startswith("FATAL: web on h: web is FATAL")
    header, summary, stderr, stdout, context = p["blocks"]
    assert header["text"]["text"] == "FATAL: web"
    assert summary["text"]["text"].startswith(":red_circle: web is FATAL")
    fields = {f["text"].split("\n")[0]: f["text"].split("\n", 1)[1] for f in summary["fields"]}
    assert fields["*State*"] == "BACKOFF -&gt; FATAL" and fields["*Exit status*"] == "3"
    assert "ValueError: &lt;bad&gt; &amp; port" in stderr["text"]["text"]
    assert stderr["text"]["text"].startswith("*stderr (last lines)*\n```")
    assert "starting" in stdout["text"]["text"]
    assert a.id in json.dumps(context)


def test_slack_resolved_and_reminder_titles() -> None:
    p = slack_payload([resolved()], channel="ops", host="h")
    check_slack_shape(p)
    assert p["blocks"][0]["text"]["text"] == "RECOVERED: web"
    assert ":large_green_circle:" in p["blocks"][1]["text"]["text"]
    r = slack_payload([alert(reminder=2)], channel="ops", host="h")
    assert r["blocks"][0]["text"]["text"] == "FATAL: web (reminder 2)"


def test_slack_digest_stays_within_limits() -> None:
    many = [alert(f"p{i}") for i in range(SLACK_MAX_ALERTS + 5)] + [resolved()]
    p = slack_payload(many, channel="ops", host="h")
    check_slack_shape(p)
    assert p["blocks"][0]["text"]["text"] == "26 alerts from h (25 firing, 1 resolved)"
    assert p["blocks"][-2]["text"]["text"] == "… and 6 more"


def test_slack_clips_huge_tails_from_the_start() -> None:
    tail = "".join(f"line {i}\n" for i in range(2000))
    p = slack_payload([alert(stderr_tail=tail, summary="x" * 5000)], channel="ops", host="h")
    check_slack_shape(p)
    assert "line 1999" in p["blocks"][2]["text"]["text"]


# --- Alertmanager ------------------------------------------------------------------------


def test_alertmanager_postable_alerts() -> None:
    firing = alert()
    (a, r) = alertmanager_payload(
        [firing, resolved("db")], labels=[("team", "ops")], repeat_interval=60
    )
    assert set(a) == {"labels", "annotations", "startsAt", "endsAt"}
    assert a["labels"] == {
        "alertname": "SupervisorProcessFatal",
        "host": "h",
        "group": "web",
        "process": "web",
        "severity": "critical",
        "team": "ops",
    }
    assert all(isinstance(v, str) for v in {**a["labels"], **a["annotations"]}.values())
    assert a["annotations"]["summary"] == firing.summary
    assert (
        a["annotations"]["exit_status"] == "3" and "ValueError" in a["annotations"]["stderr_tail"]
    )
    assert a["startsAt"] == iso(WALL) and a["endsAt"] == iso(WALL + 1 + 240)
    assert r["endsAt"] == iso(WALL + 60)
    assert set(ALERTNAMES) == CONDITIONS


def test_alertmanager_labels_are_identity_only() -> None:
    a1, a2 = alertmanager_payload([alert(exit_status=1, uptime=3), alert(exit_status=2)])
    assert a1["labels"] == a2["labels"]
    b = alert().replace(condition=Trigger.BREAKER_OPEN, check="http")
    ((lab,),) = [[x["labels"] for x in alertmanager_payload([b])]]
    assert lab["check"] == "http" and lab["alertname"] == "VigilBreakerOpen"
    (no_end,) = alertmanager_payload([alert()], repeat_interval=0)
    assert "endsAt" not in no_end


# --- mail and command ----------------------------------------------------------------------


def test_email_single_and_digest() -> None:
    m = email_message([alert()], sender="v@h", to=["a@x", "b@x"], host="h")
    assert m["Subject"] == "[vigil] FATAL: web on h"
    assert (m["From"], m["To"]) == ("v@h", "a@x, b@x")
    body = m.get_content()
    assert "web is FATAL" in body and "Exit status:" in body and "--- last lines of stderr" in body
    d = email_message(
        [alert(), resolved("db")], sender="v@h", to=["a@x"], host="h", fixed_subject="Fatal!"
    )
    assert d["Subject"] == "Fatal!"
    lines = d.get_content().splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} -- web is FATAL.*", lines[0])
    assert lines[1].endswith(" -- ok")


def test_command_environment() -> None:
    env = command_environment([alert(), resolved()], channel="ops")
    assert env["VIGIL_ALERT_COUNT"] == "2" and env["VIGIL_ALERT_CHANNEL"] == "ops"
    assert env["VIGIL_ALERT_STATUS"] == "firing" and env["VIGIL_ALERT_PROGRAM"] == "web"
    assert env["VIGIL_ALERT_EXIT_STATUS"] == "3" and env["VIGIL_ALERT_ENDED_AT"] == ""
    assert "VIGIL_ALERT_STDERR_TAIL" not in env
    assert all(isinstance(v, str) for v in env.values())


# --- secrets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (
            "https://hooks.slack.com/services/T0AAA/B0BBB/XyZsecret",
            "https://hooks.slack.com/services/***/***/***",
        ),
        ("http://127.0.0.1:9093/api/v2/alerts", "http://127.0.0.1:9093/api/v2/alerts"),
        ("https://u:pw@h/hook?token=abc&x=1", "https://***@h/hook?token=***&x=***"),
        ("https://h/a1b2c3d4e5f6", "https://h/***"),
        ("not a url", "***"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_redactor_masks_urls_quoted_by_requests_and_secrets() -> None:
    url = "https://hooks.slack.com/services/T0AAA/B0BBB/XyZsecret"
    r = Redactor(["hunter2-pw"], urls=[url])
    msg = (
        f"HTTPSConnectionPool(host='hooks.slack.com', port=443): Max retries exceeded with "
        f"url: /services/T0AAA/B0BBB/XyZsecret (Caused by ...) {url} password hunter2-pw"
    )
    out = r(msg)
    assert "XyZsecret" not in out and "T0AAA" not in out and "hunter2-pw" not in out
    assert "url: /services/***/***/***" in out


def test_redacting_filter_masks_urllib3_request_lines() -> None:
    import logging

    from listeners.alerting.redact import RedactingFilter

    url = "https://hooks.slack.com/services/T0AAA/B0BBB/XyZsecret"
    record = logging.LogRecord(
        "urllib3.connectionpool",
        logging.DEBUG,
        __file__,
        1,
        '%s://%s:%s "%s %s %s" %s %s',
        (
            "https",
            "hooks.slack.com",
            443,
            "POST",
            "/services/T0AAA/B0BBB/XyZsecret",
            "HTTP/1.1",
            200,
            2,
        ),
        None,
    )
    assert RedactingFilter([Redactor(urls=[url])]).filter(record)
    assert record.getMessage() == (
        'https://hooks.slack.com:443 "POST /services/***/***/*** HTTP/1.1" 200 2'
    )
