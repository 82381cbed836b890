"""The ``alerts`` plugin: one channel per ``[alert:NAME]`` section, nothing lost.

Configuration
-------------
::

    [alert:ops]
    type = webhook                    ; webhook | slack | alertmanager | email | command
    url = http://127.0.0.1:8080/hook
    on = FATAL, EXITED_UNEXPECTED, RECOVERED
    programs = web, db:*, !db:replica

Keys of every channel (times in seconds, fractions allowed):

====================  ==========================  =========================================
key                   default                     meaning
====================  ==========================  =========================================
type                  (required)                  webhook, slack, alertmanager, email, command
on                    FATAL, RECOVERED            triggers: FATAL, EXITED_UNEXPECTED, BACKOFF,
                                                  BREAKER_OPEN, BREAKER_CLOSED, HEALTH_RESTART,
                                                  RECOVERED
programs              (all)                       name, group:name, group:*; ``!sel`` excludes
repeat_interval       3600 (alertmanager: 60)     reminder while a condition fires; 0 = none
stable_for            10                          RUNNING (and healthy) this long = recovered
rate_limit            10/60 (alertmanager: none)  N/SECONDS messages; more wait, then go as one
                                                  digest; ``0`` or ``none`` = no limit
batch_window          0                           > 0: collect alerts this long, send a digest
max_batch             50                          alerts per digest
spool_dir             %(here)s/vigil-alerts/NAME  undelivered alerts (see Durability)
spool_max             1000                        alerts kept; the oldest is dropped beyond
retry_initial         1                           first delivery retry delay (doubles)
retry_max             60                          longest delay between delivery attempts
timeout               10                          per delivery attempt (HTTP, SMTP, command)
host                  the hostname                the ``host`` of every alert
tail_bytes            2048                        bytes of stderr/stdout fetched; 0 = none
tail_lines            20                          lines of each tail kept
====================  ==========================  =========================================

Per type:

* ``webhook``: ``url`` (required), ``format`` = ``json`` (default, the schema
  below), ``slack`` or ``alertmanager``; ``headers`` (``Name: value; Name2: v``),
  ``verify`` (true), ``tls_ca``; ``labels`` with format alertmanager.
* ``slack``: a webhook with format slack — ``url`` is the incoming-webhook URL.
  A 429 answer is retried after exactly its ``Retry-After``.
* ``alertmanager``: ``url`` of Alertmanager (``http://host:9093``; ``/api/v2/alerts``
  is appended), ``labels`` (``team=ops, env=prod``) added to every alert. A firing
  alert is re-posted every ``repeat_interval`` with ``endsAt`` 4 × that ahead; the
  recovery posts the real ``endsAt``.
* ``email``: ``to`` (required, comma-separated), ``from`` (``vigil@HOST``),
  ``smtp_host`` (localhost), ``smtp_port`` (25; 587 with starttls, 465 with ssl),
  ``tls`` = ``none`` (default) | ``starttls`` | ``ssl``, ``username``, ``password``,
  ``verify`` (true), ``tls_ca``, ``subject`` (fixed; default made from the alerts).
  With ``batch_window`` it is fatalmailbatch: one digest mail per window, one
  ``<time> -- <summary>`` line per alert, then the details.
* ``command``: ``command`` (run by ``/bin/sh -c``): the JSON envelope below on
  stdin, ``VIGIL_ALERT_*`` variables (the first alert's fields, upper-cased,
  without the tails; ``VIGIL_ALERT_COUNT``, ``VIGIL_ALERT_CHANNEL``); exit 0 = sent.

``url``, ``headers``, ``username``, ``password``, ``spool_dir`` and ``tls_ca`` get
supervisord's ``%(ENV_X)s`` / ``%(here)s`` expansion (so secrets can live in the
environment; write ``%`` as ``%%``); the other values are literal. Secrets — the
password, header values, a URL's path tokens and query — are masked (``***``) in
every log line and configuration error.

Hygiene
-------
A condition — (process, FATAL | EXITED_UNEXPECTED | BACKOFF | HEALTH_RESTART), or
(process, check, BREAKER_OPEN) — sends one alert when it starts firing; further
occurrences (a crash loop) are counted, not sent; a reminder follows every
``repeat_interval``. It resolves when the process has been RUNNING ``stable_for``
seconds with no unhealthy health check, or STOPPED that long (stopped on purpose, not
the first half of a restart); a breaker when it closes. The resolution sends a
RECOVERED (BREAKER_CLOSED) notice if that trigger is in ``on``. Under supervisord
keep ``stable_for`` above 1 s: its poll loop notices an exit up to a second late, so
a run looks that much longer. Every decision is one stderr line: ``spooled``, ``deduplicated``,
``reminder``, ``resolved``, ``rate-limited``, ``sent``, ``retrying``, ``dropped``.

Durability
----------
An inline handler runs the policy and writes each alert to ``spool_dir`` (one
fsynced JSON file per alert, plus ``state.json`` with the firing conditions)
*before* the event is acknowledged; a listener killed earlier gets the event again
from supervisord, and a redelivered event is recognised and not counted twice.
Context is fetched over XML-RPC by a separate thread; each channel's courier thread
delivers from the spool, retrying with exponential backoff and jitter (tenacity)
until the receiver accepts, and deletes an alert only then. At start the spool is
read back: everything a previous run did not deliver is sent, and firing
conditions keep their reminders and recoveries. Delivery is at-least-once: dedupe
on ``id``. The default spool is beside the config file because that is the one
directory the operator chose for this supervisor; point ``spool_dir`` elsewhere
(e.g. /var/lib/vigil) when that directory is read-only.

The JSON schema (``format = json``; a command's stdin)
-----------------------------------------------------
Every POST is one envelope (:data:`~listeners.alerting.model.ENVELOPE_SCHEMA`)::

    {"schema": "vigil.alerts/v1", "channel": "ops", "host": "web-01",
     "sent_at": "2024-05-01T12:00:03.120Z", "digest": false, "count": 1,
     "alerts": [ALERT, ...]}

and every ALERT has all of these keys (:data:`~listeners.alerting.model.ALERT_SCHEMA`;
times are RFC 3339 UTC, unknown values ``null``)::

    id            "3f2a…" unique per notification (dedupe on it)
    key           "web-01/web/FATAL" — same for the alert, its reminders and resolution
    status        "firing" | "resolved"
    trigger       the on= trigger that produced it (RECOVERED/BREAKER_CLOSED when resolved)
    condition     FATAL | EXITED_UNEXPECTED | BACKOFF | BREAKER_OPEN | HEALTH_RESTART
    reminder      0 for the first notice, n for the n-th reminder
    occurrences   times the condition occurred while firing (crashes in a crash loop)
    summary       one line for humans
    host, group, name, program ("group:name", or "name" for a plain program)
    from_state, to_state    the transition (e.g. "BACKOFF", "FATAL")
    pid, expected, tries    from the event, where it has them
    exit_status   the exit status of the run that ended
    uptime        seconds the latest run lasted (or has lasted)
    restarts      starts after the first seen by this listener since it started
    check, reason the health check and its failure reason / breaker reason
    spawn_error   supervisord's spawnerr
    started_at    when the condition began firing
    at            when this notification was made
    ended_at      when it resolved (resolved only)
    stderr_tail, stdout_tail   last lines of the process's logs
    context_error why some context could not be fetched
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from listeners.alerting.config import AlertConfig, load_alerts
from listeners.alerting.context import Enricher, EnrichJob, RpcNamespace
from listeners.alerting.courier import Courier, CourierStatistics
from listeners.alerting.policy import ChannelPolicy, Decision, PolicySpec, PolicyStatistics, Verb
from listeners.alerting.redact import RedactingFilter
from listeners.alerting.spool import Spool, SpoolStatistics
from listeners.alerting.transports import Sender, build_sender
from listeners.plugin import PluginContext
from listeners.plugins.health import BreakerChange, Remediation, VerdictChange
from manager.events import EventType, ProcessStateChange
from manager.ini import ConfigError
from manager.protocol import Notification
from manager.rpcclient import RPCError

__all__ = ["AlertsPlugin", "Channel", "ChannelStatistics", "setup"]

STATE_VERSION = 1
#: seconds the plugin's threads get at shutdown, all together
STOP_TIMEOUT = 3.0


@dataclass(frozen=True)
class ChannelStatistics:
    name: str
    policy: PolicyStatistics
    spool: SpoolStatistics
    courier: CourierStatistics


@dataclass
class Channel:
    cfg: AlertConfig
    policy: ChannelPolicy
    spool: Spool
    courier: Courier


class AlertsPlugin:
    """Policies, spools and couriers of every channel, fed by events and the bus."""

    def __init__(
        self,
        ctx: PluginContext,
        configs: list[AlertConfig],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        senders: Mapping[str, Sender] | None = None,
        rpc: Callable[[], RpcNamespace] | None = None,
        fsync: bool = True,
    ) -> None:
        self.ctx = ctx
        self.log = ctx.log
        self.clock = clock
        self.wall = wall
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.rpc: Callable[[], RpcNamespace] = rpc or (lambda: ctx.supervisor().supervisor)
        self.enricher = Enricher(self.rpc, self.log, ctx.stopping)
        self.channels: list[Channel] = []
        for cfg in configs:
            spool = Spool(cfg.spool_dir, cfg.spool_max, fsync=fsync)
            sender = (senders or {}).get(cfg.name) or build_sender(cfg)
            courier = Courier(cfg, spool, sender, self.log, ctx.stopping, clock=clock, wall=wall)
            policy = ChannelPolicy(PolicySpec.from_config(cfg))
            self.channels.append(Channel(cfg, policy, spool, courier))
        #: (serial, pool, poolserial, eventname, payload) of the last event handled
        self.last_event: list[Any] | None = None
        #: urllib3 logs request paths at debug level: mask the channels' tokens there too
        self.log_filter = RedactingFilter([c.redactor() for c in configs])
        logging.getLogger("urllib3.connectionpool").addFilter(self.log_filter)
        self.thread = threading.Thread(target=self._run, name="vigil-alerts", daemon=True)

    # -- start and stop ----------------------------------------------------------------

    def open(self) -> None:
        """Open every spool and take back what a previous run left.

        Raises:
            ConfigError: a spool directory cannot be created or read.
        """
        now, wall = self.clock(), self.wall()
        jobs: list[EnrichJob] = []
        for ch in self.channels:
            try:
                problems = ch.spool.open()
            except OSError as exc:
                raise ConfigError(
                    f"cannot use the spool directory: {exc}",
                    file=ch.cfg.file,
                    section=ch.cfg.section,
                    key="spool_dir",
                    value=str(ch.cfg.spool_dir),
                ) from None
            for problem in problems:
                self.log.error("alert %s: %s", ch.cfg.name, problem)
            self._restore(ch, now, wall)
            pending = ch.spool.pending()
            if pending:
                self.log.warning(
                    "alert %s: %d undelivered alert(s) from a previous run in %s: delivering",
                    ch.cfg.name,
                    len(pending),
                    ch.cfg.spool_dir,
                )
            jobs += [self._job(ch, a) for a in pending if not a.enriched]
            self.log.info("alert %s: %s", ch.cfg.name, ch.cfg.describe())
        self.enricher.submit(jobs)

    def _restore(self, ch: Channel, now: float, wall: float) -> None:
        try:
            state = ch.spool.load_state()
            if state is None:
                return
            firing = ch.policy.restore(state["policy"], now, wall)
            last = state.get("last_event")
            if last is not None and self.last_event is None:
                self.last_event = list(last)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.log.error(
                "alert %s: unreadable state in %s (%s): starting with no firing conditions",
                ch.cfg.name,
                ch.cfg.spool_dir,
                exc,
            )
            return
        if firing:
            self.log.info(
                "alert %s: %d condition(s) still firing from a previous run", ch.cfg.name, firing
            )

    def start(self) -> None:
        self.enricher.start()
        for ch in self.channels:
            ch.courier.start()
        self.thread.start()

    def stop(self) -> None:
        deadline = self.clock() + STOP_TIMEOUT
        with self.lock:
            self.wake.notify_all()
            for ch in self.channels:
                self._save(ch)
        if self.thread.is_alive():
            self.thread.join(max(0.0, deadline - self.clock()))
        self.enricher.join(max(0.0, deadline - self.clock()))
        for ch in self.channels:
            ch.courier.join(max(0.0, deadline - self.clock()))
            left = len(ch.spool)
            if left:
                self.log.warning(
                    "alert %s: %d alert(s) left in the spool for the next start",
                    ch.cfg.name,
                    left,
                )
        logging.getLogger("urllib3.connectionpool").removeFilter(self.log_filter)

    # -- facts -------------------------------------------------------------------------

    def on_process_state(self, n: Notification) -> None:
        """Inline: decide and spool before supervisord gets the acknowledgement."""
        ev = n.event
        assert isinstance(ev, ProcessStateChange)
        h = n.header
        ident = [h.serial, h.pool, h.poolserial, h.eventname, n.payload]
        jobs: list[EnrichJob] = []
        with self.lock:
            if ident == self.last_event:
                self.log.info(
                    "alerts: event %d (%s) redelivered after a restart: already handled",
                    h.serial,
                    h.eventname,
                )
                return
            self.last_event = ident
            now, wall = self.clock(), self.wall()
            for ch in self.channels:
                decisions = ch.policy.process_state(
                    ev.groupname,
                    ev.processname,
                    ev.to_state,
                    from_state=ev.from_state,
                    now=now,
                    wall=wall,
                    pid=ev.pid,
                    expected=ev.expected,
                    tries=ev.tries,
                )
                jobs += self._apply(ch, decisions)
            self.wake.notify_all()
        self.enricher.submit(jobs)

    def on_health_action(self, msg: object) -> None:
        if not isinstance(msg, Remediation) or msg.action not in ("restart", "start"):
            return
        self._feed(
            lambda p, now, wall: p.health_restart(
                msg.group,
                msg.name,
                msg.check,
                msg.reason,
                now=now,
                wall=wall,
                error="" if msg.ok else msg.error,
            )
        )

    def on_breaker(self, msg: object) -> None:
        if not isinstance(msg, BreakerChange):
            return
        t = msg.transition
        self._feed(
            lambda p, now, wall: p.breaker(
                msg.group, msg.name, msg.check, t.new.name, t.reason, now=now, wall=wall
            )
        )

    def on_verdict(self, msg: object) -> None:
        if not isinstance(msg, VerdictChange):
            return
        with self.lock:
            for ch in self.channels:
                ch.policy.verdict(msg.group, msg.name, msg.check, msg.healthy, msg.detail)
            self.wake.notify_all()

    def _feed(self, fact: Callable[[ChannelPolicy, float, float], list[Decision]]) -> None:
        jobs: list[EnrichJob] = []
        with self.lock:
            now, wall = self.clock(), self.wall()
            for ch in self.channels:
                jobs += self._apply(ch, fact(ch.policy, now, wall))
            self.wake.notify_all()
        self.enricher.submit(jobs)

    # -- deciding ----------------------------------------------------------------------

    def _job(self, ch: Channel, alert: Any) -> EnrichJob:
        return EnrichJob(ch.spool, alert, ch.cfg.tail_bytes, ch.cfg.tail_lines, ch.courier.notify)

    def _apply(self, ch: Channel, decisions: list[Decision]) -> list[EnrichJob]:
        """Log and spool the decisions of one channel. Caller holds the lock."""
        jobs: list[EnrichJob] = []
        name = ch.cfg.name
        for d in decisions:
            a = d.alert
            if a is None:
                verb = "deduplicated" if d.verb is Verb.DEDUPLICATE else "resolved silently"
                self.log.info("alert %s: %s %s: %s", name, verb, d.key, d.text)
                continue
            what = {Verb.FIRE: "firing", Verb.REMIND: "reminder", Verb.RESOLVE: "resolved"}[d.verb]
            try:
                dropped = ch.spool.add(a)
            except OSError as exc:
                self.log.error(
                    "alert %s: %s %s (%s): could NOT be spooled, dropped: %s",
                    name,
                    what,
                    d.key,
                    a.summary,
                    exc,
                )
                continue
            (self.log.warning if d.verb is Verb.FIRE else self.log.info)(
                "alert %s: %s %s (%s): %s; spooled as %s (%d pending)",
                name,
                what,
                d.key,
                d.text,
                a.summary,
                a.id[:8],
                len(ch.spool),
            )
            for lost in dropped:
                self.log.error(
                    "alert %s: spool full (spool_max = %d): dropped the oldest alert %s "
                    "(%s %s, made %s): %s",
                    name,
                    ch.cfg.spool_max,
                    lost.id[:8],
                    lost.status.value,
                    lost.condition.value,
                    time.strftime("%H:%M:%S", time.localtime(lost.at)),
                    lost.summary,
                )
            jobs.append(self._job(ch, a))
        self._save(ch)
        if decisions:
            ch.courier.notify()
        return jobs

    def _save(self, ch: Channel) -> None:
        """Persist the policy's firing set if it changed. Caller holds the lock."""
        if not ch.policy.dirty:
            return
        state = {
            "version": STATE_VERSION,
            "policy": ch.policy.snapshot(self.clock(), self.wall()),
            "last_event": self.last_event,
        }
        try:
            ch.spool.save_state(state)
        except OSError as exc:
            self.log.error("alert %s: could not save state: %s", ch.cfg.name, exc)
            return
        ch.policy.dirty = False

    # -- the scheduler -----------------------------------------------------------------

    def reconcile(self) -> None:
        """Learn how long processes have been RUNNING (recoveries across a restart)."""
        try:
            infos = self.rpc().getAllProcessInfo()
        except RPCError as exc:
            self.log.warning("alerts: getAllProcessInfo failed: %s", exc)
            return
        with self.lock:
            now = self.clock()
            for info in infos:
                uptime = float(max(0, int(info["now"]) - int(info["start"])))
                for ch in self.channels:
                    ch.policy.observe(info["group"], info["name"], info["statename"], uptime, now)
            self.wake.notify_all()

    def _run(self) -> None:
        if any(ch.policy.statistics().firing for ch in self.channels):
            self.reconcile()
        while not self.ctx.stopping.is_set():
            jobs: list[EnrichJob] = []
            with self.lock:
                now, wall = self.clock(), self.wall()
                deadline: float | None = None
                for ch in self.channels:
                    jobs += self._apply(ch, ch.policy.tick(now, wall))
                    d = ch.policy.next_deadline()
                    if d is not None and (deadline is None or d < deadline):
                        deadline = d
                self.enricher.submit(jobs)
                jobs = []
                if not self.ctx.stopping.is_set():
                    timeout = 1.0 if deadline is None else deadline - self.clock()
                    self.wake.wait(min(1.0, max(0.01, timeout)))

    def statistics(self) -> list[ChannelStatistics]:
        with self.lock:
            return [
                ChannelStatistics(
                    ch.cfg.name,
                    ch.policy.statistics(),
                    ch.spool.statistics(),
                    ch.courier.statistics(),
                )
                for ch in self.channels
            ]


def setup(ctx: PluginContext) -> None:
    if ctx.config is None:
        ctx.log.warning("alerts: no config file, no [alert:x] channels")
        return
    configs = load_alerts(ctx.config)
    if not configs:
        ctx.log.warning("alerts: no [alert:x] sections in %s", ctx.config.path)
        return
    plugin = AlertsPlugin(ctx, configs)
    plugin.open()
    ctx.subscribe(plugin.on_process_state, EventType.PROCESS_STATE, inline=True)
    ctx.bus.subscribe("health.action", plugin.on_health_action)
    ctx.bus.subscribe("health.breaker", plugin.on_breaker)
    ctx.bus.subscribe("health.verdict", plugin.on_verdict)
    ctx.on_stop(plugin.stop)
    plugin.start()
    ctx.log.info("alerts: %d channel(s) configured", len(configs))
