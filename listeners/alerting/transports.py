"""Sending one message (one alert or a digest) over HTTP, SMTP or a command.

A sender's :meth:`send` either returns a short description of success
(``HTTP 200``, ``250 OK``, ``exit 0``) or raises :class:`DeliveryError`, which says
whether trying again can help (``permanent``) and how long the receiver asked us
to wait (``retry_after``, from Slack's or anyone's HTTP 429 ``Retry-After``).
Retrying itself is the courier's job. Error texts pass through the channel's
:class:`~listeners.alerting.redact.Redactor`: a URL's token never reaches a log.
"""

from __future__ import annotations

import email.utils
import json
import os
import smtplib
import ssl
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import requests

from listeners.alerting.config import (
    AlertConfig,
    CommandSettings,
    EmailSettings,
    Format,
    HttpSettings,
    SmtpSecurity,
)
from listeners.alerting.formats import (
    alertmanager_payload,
    command_environment,
    email_message,
    json_envelope,
    slack_payload,
)
from listeners.alerting.model import Alert
from listeners.alerting.redact import Redactor

__all__ = [
    "CommandSender",
    "DeliveryError",
    "EmailSender",
    "HttpSender",
    "Sender",
    "build_sender",
    "parse_retry_after",
]

#: HTTP statuses that no retry will fix: the receiver refuses this payload
PERMANENT_HTTP = frozenset({400, 410, 413, 422})
#: longest Retry-After we honour (a broken receiver must not park us for a day)
MAX_RETRY_AFTER = 3600.0
USER_AGENT = "vigil-alerts/1"


class DeliveryError(Exception):
    """A message was not accepted."""

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class Sender(Protocol):
    def send(self, alerts: Sequence[Alert]) -> str:
        """Deliver one message; return what the receiver said.

        Raises:
            DeliveryError: not accepted.
        """
        ...


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


class HttpSender:
    """POSTs JSON (``json``, ``slack`` or ``alertmanager`` format) to one URL."""

    def __init__(
        self,
        cfg: AlertConfig,
        settings: HttpSettings,
        *,
        redact: Redactor | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.settings = settings
        self.redact = redact or cfg.redactor()
        self.wall = wall

    def body(self, alerts: Sequence[Alert]) -> Any:
        fmt = self.settings.format
        if fmt is Format.SLACK:
            return slack_payload(alerts, channel=self.cfg.name, host=self.cfg.host)
        if fmt is Format.ALERTMANAGER:
            return alertmanager_payload(
                alerts, labels=self.settings.labels, repeat_interval=self.cfg.repeat_interval
            )
        return json_envelope(alerts, channel=self.cfg.name, host=self.cfg.host, now=self.wall())

    def send(self, alerts: Sequence[Alert]) -> str:
        s = self.settings
        data = json.dumps(self.body(alerts), ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT}
        headers.update(s.headers)
        verify: bool | str = str(s.tls_ca) if s.tls_ca is not None else s.verify
        try:
            with requests.Session() as session:
                response = session.post(
                    s.url, data=data, headers=headers, timeout=self.cfg.timeout, verify=verify
                )
                status, reason, text = response.status_code, response.reason, response.text
                retry_after = response.headers.get("Retry-After")
                response.close()
        except requests.RequestException as exc:
            raise DeliveryError(self.redact(f"{type(exc).__name__}: {exc}")) from None
        if 200 <= status < 300:
            return f"HTTP {status}"
        detail = self.redact(f"HTTP {status} {reason}: {' '.join(text.split())[:200]}")
        if status == 429:
            raise DeliveryError(detail, retry_after=parse_retry_after(retry_after, self.wall()))
        raise DeliveryError(detail, permanent=status in PERMANENT_HTTP)


class EmailSender:
    """Sends a mail with :mod:`smtplib`: plain, STARTTLS or SSL, with optional login."""

    def __init__(
        self, cfg: AlertConfig, settings: EmailSettings, *, redact: Redactor | None = None
    ) -> None:
        self.cfg = cfg
        self.settings = settings
        self.redact = redact or cfg.redactor()

    def tls_context(self) -> ssl.SSLContext:
        s = self.settings
        ctx = ssl.create_default_context(cafile=None if s.tls_ca is None else str(s.tls_ca))
        if not s.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def send(self, alerts: Sequence[Alert]) -> str:
        s = self.settings
        msg = email_message(
            alerts, sender=s.sender, to=s.to, host=self.cfg.host, fixed_subject=s.subject
        )
        timeout = self.cfg.timeout
        try:
            smtp: smtplib.SMTP
            if s.security is SmtpSecurity.SSL:
                smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=timeout, context=self.tls_context())
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=timeout)
            with smtp:
                if s.security is SmtpSecurity.STARTTLS:
                    smtp.starttls(context=self.tls_context())
                if s.username is not None:
                    smtp.login(s.username, s.password or "")
                refused = smtp.send_message(msg)
        except smtplib.SMTPAuthenticationError as exc:
            # fixable by an operator without losing the spool: keep retrying
            raise DeliveryError(self.redact(f"SMTP login refused: {exc}")) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                self.redact(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"),
                permanent=500 <= exc.smtp_code < 600,
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryError(
                self.redact(f"every recipient refused: {exc.recipients!r}"),
                permanent=all(500 <= c < 600 for c in codes),
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(self.redact(f"{type(exc).__name__}: {exc}")) from None
        partial = f", refused: {', '.join(refused)}" if refused else ""
        return f"accepted by {s.host}:{s.port}{partial}"


class CommandSender:
    """Runs ``/bin/sh -c COMMAND`` with the JSON envelope on stdin and ``VIGIL_ALERT_*``."""

    def __init__(
        self,
        cfg: AlertConfig,
        settings: CommandSettings,
        *,
        environ: Mapping[str, str] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.settings = settings
        self.environ = os.environ if environ is None else environ
        self.wall = wall

    def send(self, alerts: Sequence[Alert]) -> str:
        body = json_envelope(alerts, channel=self.cfg.name, host=self.cfg.host, now=self.wall())
        env = dict(self.environ)
        env.update(command_environment(alerts, channel=self.cfg.name))
        try:
            done = subprocess.run(
                ["/bin/sh", "-c", self.settings.command],
                input=json.dumps(body, ensure_ascii=False).encode("utf-8"),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=self.cfg.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise DeliveryError(f"command timed out after {self.cfg.timeout:g}s") from None
        except OSError as exc:
            raise DeliveryError(f"command could not run: {exc}") from None
        if done.returncode != 0:
            err = " ".join(done.stderr.decode("utf-8", "replace").split())[-300:]
            raise DeliveryError(f"command exited {done.returncode}: {err}")
        return "exit 0"


def build_sender(cfg: AlertConfig) -> Sender:
    t = cfg.transport
    if isinstance(t, HttpSettings):
        return HttpSender(cfg, t)
    if isinstance(t, EmailSettings):
        return EmailSender(cfg, t)
    return CommandSender(cfg, t)
