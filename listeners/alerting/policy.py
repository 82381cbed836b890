"""Alert hygiene for one channel, as a pure state machine (clock values are passed in).

Theory of operation
-------------------
The plugin feeds a :class:`ChannelPolicy` facts — process state changes, health
verdicts, health restarts, breaker transitions, ``getAllProcessInfo`` snapshots —
and calls :meth:`ChannelPolicy.tick` when :meth:`ChannelPolicy.next_deadline`
comes. Every call returns :class:`Decision`\\ s: the alerts to spool, and one line
for every other choice (deduplicated, resolved silently, ignored), so the plugin
can log each decision. The policy never sleeps, sends or reads a clock.

Rules:

* A *condition* is (process, trigger in :data:`~listeners.alerting.model.CONDITIONS`
  [, health check]). Its first occurrence fires one alert; later occurrences while
  it fires are deduplicated (counted in ``occurrences``): a crash loop is one alert.
* While firing, a reminder goes out every ``repeat_interval`` seconds (0: never).
* A process condition (FATAL, EXITED_UNEXPECTED, BACKOFF, HEALTH_RESTART) resolves
  when the process has been RUNNING for ``stable_for`` seconds with no health check
  of it unhealthy, or STOPPED for ``stable_for`` seconds (stopped on purpose, not the
  first half of a restart). BREAKER_OPEN resolves when the
  breaker closes. A resolution is notified (RECOVERED, or BREAKER_CLOSED for a
  breaker) only if that trigger is in ``on =``; otherwise it is cleared silently.
* Only triggers in ``on =`` and processes matched by ``programs =`` count at all.
* Firing conditions survive a listener restart: :meth:`ChannelPolicy.snapshot` is
  persisted by the plugin and given back to :meth:`ChannelPolicy.restore`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from listeners.alerting.config import AlertConfig, ProgramFilter
from listeners.alerting.model import Alert, Status, Trigger, iso, namespec, new_id

__all__ = ["ChannelPolicy", "Decision", "PolicySpec", "PolicyStatistics", "Verb"]

T = Trigger
#: conditions that a stable RUNNING resolves (BREAKER_OPEN waits for the breaker)
PROCESS_CONDITIONS = frozenset({T.FATAL, T.EXITED_UNEXPECTED, T.BACKOFF, T.HEALTH_RESTART})
SNAPSHOT_VERSION = 1


class Verb(enum.Enum):
    FIRE = "fire"
    REMIND = "remind"
    RESOLVE = "resolve"
    DEDUPLICATE = "deduplicate"
    #: resolved without a notice (its resolution trigger is not in ``on =``)
    CLEAR = "clear"


@dataclass(frozen=True)
class Decision:
    verb: Verb
    key: str
    #: one line for the log
    text: str
    #: the notification to spool (FIRE, REMIND, RESOLVE)
    alert: Alert | None = None


@dataclass(frozen=True)
class PolicySpec:
    channel: str
    host: str
    on: frozenset[Trigger]
    programs: ProgramFilter = field(default_factory=ProgramFilter)
    repeat_interval: float = 3600.0
    stable_for: float = 10.0

    @classmethod
    def from_config(cls, cfg: AlertConfig) -> PolicySpec:
        return cls(cfg.name, cfg.host, cfg.on, cfg.programs, cfg.repeat_interval, cfg.stable_for)


@dataclass(frozen=True)
class PolicyStatistics:
    firing: int
    fired: int
    reminded: int
    resolved: int
    deduplicated: int


@dataclass
class _Track:
    """What the policy knows about one process."""

    state: str = "UNKNOWN"
    #: monotonic time it entered RUNNING (None unless RUNNING)
    running_since: float | None = None
    #: monotonic time it entered STOPPED (None unless STOPPED)
    stopped_since: float | None = None
    starts: int = 0
    #: check name -> failure detail, for checks whose last verdict was UNHEALTHY
    unhealthy: dict[str, str] = field(default_factory=dict)

    @property
    def restarts(self) -> int:
        return max(0, self.starts - 1)


@dataclass
class _Firing:
    condition: Trigger
    group: str
    name: str
    check: str | None
    #: the latest facts (first alert updated by later occurrences); reminders copy it
    latest: Alert
    #: monotonic time of the last notice (first or reminder)
    last_sent: float
    occurrences: int = 1
    reminders: int = 0


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class ChannelPolicy:
    """Dedup, reminders and resolution for one ``[alert:x]`` channel."""

    def __init__(self, spec: PolicySpec) -> None:
        self.spec = spec
        self._tracks: dict[tuple[str, str], _Track] = {}
        self._firing: dict[str, _Firing] = {}
        #: set when the firing set changed (the plugin persists the snapshot, then clears it)
        self.dirty = False
        self._counts = {v: 0 for v in Verb}

    # -- facts -------------------------------------------------------------------------

    def process_state(
        self,
        group: str,
        name: str,
        to_state: str,
        *,
        from_state: str,
        now: float,
        wall: float,
        pid: int | None = None,
        expected: bool | None = None,
        tries: int | None = None,
    ) -> list[Decision]:
        """A PROCESS_STATE_* event."""
        if not self.spec.programs.matches(group, name):
            return []
        track = self._track(group, name)
        track.state = to_state
        track.running_since = now if to_state == "RUNNING" else None
        track.stopped_since = now if to_state == "STOPPED" else None
        if to_state == "STARTING":
            track.starts += 1
        trigger = {"FATAL": T.FATAL, "BACKOFF": T.BACKOFF}.get(to_state)
        if to_state == "EXITED" and expected is False:
            trigger = T.EXITED_UNEXPECTED
        out: list[Decision] = []
        if trigger is not None and trigger in self.spec.on:
            out += self._occur(
                trigger,
                group,
                name,
                None,
                None,
                now,
                wall,
                from_state=from_state,
                to_state=to_state,
                pid=pid,
                expected=expected,
                tries=tries,
            )
        return out

    def observe(self, group: str, name: str, statename: str, uptime: float, now: float) -> None:
        """A ``getAllProcessInfo`` entry (at start, to learn how long processes have run)."""
        if not self.spec.programs.matches(group, name):
            return
        track = self._track(group, name)
        track.state = statename
        track.running_since = now - max(0.0, uptime) if statename == "RUNNING" else None
        track.stopped_since = now if statename == "STOPPED" else None

    def verdict(self, group: str, name: str, check: str, healthy: bool, detail: str) -> None:
        """A health verdict change: an unhealthy check holds RECOVERED back."""
        if not self.spec.programs.matches(group, name):
            return
        track = self._track(group, name)
        if healthy:
            track.unhealthy.pop(check, None)
        else:
            track.unhealthy[check] = detail

    def health_restart(
        self,
        group: str,
        name: str,
        check: str,
        reason: str,
        *,
        now: float,
        wall: float,
        error: str = "",
    ) -> list[Decision]:
        """The health plugin restarted (or started) the process."""
        if T.HEALTH_RESTART not in self.spec.on or not self.spec.programs.matches(group, name):
            return []
        if error:
            reason = f"{reason}; the restart failed: {error}"
        return self._occur(T.HEALTH_RESTART, group, name, check, reason, now, wall)

    def breaker(
        self,
        group: str,
        name: str,
        check: str,
        new: str,
        reason: str,
        *,
        now: float,
        wall: float,
    ) -> list[Decision]:
        """A breaker transition; ``new`` is ``OPEN``, ``HALF_OPEN`` or ``CLOSED``."""
        if not self.spec.programs.matches(group, name):
            return []
        if new == "OPEN":
            if T.BREAKER_OPEN not in self.spec.on:
                return []
            return self._occur(T.BREAKER_OPEN, group, name, check, reason, now, wall)
        if new != "CLOSED":
            return []
        key = self._key(group, name, T.BREAKER_OPEN, check)
        firing = self._firing.get(key)
        if firing is not None:
            return [self._resolve(key, firing, wall, "the breaker closed again")]
        if T.BREAKER_CLOSED not in self.spec.on:
            return []
        alert = self._alert(T.BREAKER_CLOSED, T.BREAKER_OPEN, group, name, check, wall)
        alert = alert.replace(
            status=Status.RESOLVED,
            ended_at=wall,
            reason=reason,
            summary=f"{namespec(group, name)}: breaker of check {check} closed again",
        )
        return [self._count(Decision(Verb.RESOLVE, key, "breaker closed", alert))]

    # -- time --------------------------------------------------------------------------

    def tick(self, now: float, wall: float) -> list[Decision]:
        """Reminders and resolutions that are due at ``now``."""
        out: list[Decision] = []
        for key, f in list(self._firing.items()):
            settled = self._settled(f, now) if f.condition in PROCESS_CONDITIONS else None
            if settled is not None:
                out += self._resolve_process(f.group, f.name, wall, settled)
                continue
            repeat = self.spec.repeat_interval
            if key in self._firing and repeat > 0 and now >= f.last_sent + repeat:
                out.append(self._remind(key, f, now, wall))
        return out

    def next_deadline(self) -> float | None:
        """The monotonic time of the next reminder or resolution, if any."""
        times: list[float] = []
        for f in self._firing.values():
            if self.spec.repeat_interval > 0:
                times.append(f.last_sent + self.spec.repeat_interval)
            track = self._tracks.get((f.group, f.name))
            if f.condition not in PROCESS_CONDITIONS or track is None:
                continue
            if track.running_since is not None and not track.unhealthy:
                times.append(track.running_since + self.spec.stable_for)
            if track.stopped_since is not None:
                times.append(track.stopped_since + self.spec.stable_for)
        return min(times, default=None)

    # -- persistence -------------------------------------------------------------------

    def snapshot(self, now: float, wall: float) -> dict[str, Any]:
        return {
            "version": SNAPSHOT_VERSION,
            "firing": [
                {
                    "condition": f.condition.value,
                    "group": f.group,
                    "name": f.name,
                    "check": f.check,
                    "latest": f.latest.to_record(),
                    "last_sent": wall - (now - f.last_sent),
                    "occurrences": f.occurrences,
                    "reminders": f.reminders,
                }
                for f in self._firing.values()
            ],
        }

    def restore(self, data: dict[str, Any], now: float, wall: float) -> int:
        """Take back what :meth:`snapshot` saved; returns how many conditions fire.

        Raises:
            KeyError, ValueError, TypeError: not a snapshot of this version.
        """
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"snapshot version {data.get('version')!r}")
        for item in data["firing"]:
            latest = Alert.from_record(item["latest"])
            f = _Firing(
                condition=Trigger(item["condition"]),
                group=str(item["group"]),
                name=str(item["name"]),
                check=item["check"],
                latest=latest,
                last_sent=now - max(0.0, wall - float(item["last_sent"])),
                occurrences=int(item["occurrences"]),
                reminders=int(item["reminders"]),
            )
            self._firing[latest.key] = f
        return len(self._firing)

    def firing(self) -> list[Alert]:
        """The latest facts of every firing condition."""
        return [f.latest for f in self._firing.values()]

    def statistics(self) -> PolicyStatistics:
        c = self._counts
        return PolicyStatistics(
            firing=len(self._firing),
            fired=c[Verb.FIRE],
            reminded=c[Verb.REMIND],
            resolved=c[Verb.RESOLVE] + c[Verb.CLEAR],
            deduplicated=c[Verb.DEDUPLICATE],
        )

    # -- internals ---------------------------------------------------------------------

    def _track(self, group: str, name: str) -> _Track:
        return self._tracks.setdefault((group, name), _Track())

    def _key(self, group: str, name: str, condition: Trigger, check: str | None) -> str:
        key = f"{self.spec.host}/{namespec(group, name)}/{condition.value}"
        return f"{key}/{check}" if check else key

    def _count(self, d: Decision) -> Decision:
        self._counts[d.verb] += 1
        return d

    def _alert(
        self,
        trigger: Trigger,
        condition: Trigger,
        group: str,
        name: str,
        check: str | None,
        wall: float,
        **facts: Any,
    ) -> Alert:
        track = self._track(group, name)
        if check is None and track.unhealthy:
            check, detail = next(iter(track.unhealthy.items()))
            facts.setdefault("reason", detail)
        return Alert(
            id=new_id(),
            key=self._key(group, name, condition, check if condition is T.BREAKER_OPEN else None),
            status=Status.FIRING,
            trigger=trigger,
            condition=condition,
            host=self.spec.host,
            group=group,
            name=name,
            summary="",
            started_at=wall,
            at=wall,
            restarts=track.restarts,
            check=check,
            **facts,
        )

    def _occur(
        self,
        condition: Trigger,
        group: str,
        name: str,
        check: str | None,
        reason: str | None,
        now: float,
        wall: float,
        **facts: Any,
    ) -> list[Decision]:
        if reason is not None:
            facts["reason"] = reason
        alert = self._alert(condition, condition, group, name, check, wall, **facts)
        f = self._firing.get(alert.key)
        self.dirty = True
        if f is None:
            alert = alert.replace(summary=_summary(alert))
            self._firing[alert.key] = _Firing(condition, group, name, check, alert, last_sent=now)
            return [self._count(Decision(Verb.FIRE, alert.key, "new condition", alert))]
        f.occurrences += 1
        f.latest = f.latest.replace(
            occurrences=f.occurrences,
            restarts=alert.restarts,
            **{k: v for k, v in facts.items() if k in _FACTS},
        )
        repeat = self.spec.repeat_interval
        nxt = (
            f"next reminder in {_duration(max(0.0, f.last_sent + repeat - now))}"
            if repeat > 0
            else "no reminders"
        )
        text = (
            f"already firing since {iso(f.latest.started_at)} ({f.occurrences} occurrences); {nxt}"
        )
        return [self._count(Decision(Verb.DEDUPLICATE, alert.key, text))]

    def _remind(self, key: str, f: _Firing, now: float, wall: float) -> Decision:
        f.reminders += 1
        f.last_sent = now
        self.dirty = True
        base = _summary(f.latest)
        alert = f.latest.replace(
            id=new_id(),
            trigger=f.condition,
            reminder=f.reminders,
            at=wall,
            summary=(
                f"{base} (still firing after {_duration(wall - f.latest.started_at)}, "
                f"{f.occurrences} occurrence{'s' if f.occurrences != 1 else ''})"
            ),
            **_NO_CONTEXT,
        )
        return self._count(Decision(Verb.REMIND, key, f"reminder {f.reminders}", alert))

    def _settled(self, f: _Firing, now: float) -> str | None:
        """Why the process of ``f`` counts as recovered at ``now``, or None if it does not."""
        track = self._tracks.get((f.group, f.name))
        if track is None:
            return None
        stable = self.spec.stable_for
        running = track.running_since
        if running is not None and now - running >= stable and not track.unhealthy:
            return f"RUNNING and healthy for {_duration(stable)}"
        # a stop on purpose, not the stop half of a restart
        if track.stopped_since is not None and now - track.stopped_since >= stable:
            return "stopped on purpose"
        return None

    def _resolve_process(self, group: str, name: str, wall: float, why: str) -> list[Decision]:
        out = []
        for key, f in list(self._firing.items()):
            if (f.group, f.name) == (group, name) and f.condition in PROCESS_CONDITIONS:
                out.append(self._resolve(key, f, wall, why))
        return out

    def _resolve(self, key: str, f: _Firing, wall: float, why: str) -> Decision:
        del self._firing[key]
        self.dirty = True
        breaker = f.condition is T.BREAKER_OPEN
        notice = T.BREAKER_CLOSED if breaker and T.BREAKER_CLOSED in self.spec.on else None
        if notice is None and T.RECOVERED in self.spec.on:
            notice = T.RECOVERED
        if notice is None:
            return self._count(
                Decision(Verb.CLEAR, key, f"resolved ({why}); no notice: RECOVERED not in on =")
            )
        alert = f.latest.replace(
            id=new_id(),
            status=Status.RESOLVED,
            trigger=notice,
            reminder=0,
            at=wall,
            ended_at=wall,
            summary=(
                f"{f.latest.program} recovered from {f.condition.value} ({why}; "
                f"firing for {_duration(wall - f.latest.started_at)}, "
                f"{f.occurrences} occurrence{'s' if f.occurrences != 1 else ''})"
            ),
            **_NO_CONTEXT,
        )
        return self._count(Decision(Verb.RESOLVE, key, why, alert))


#: facts a later occurrence updates in the firing condition's latest alert
_FACTS = frozenset({"from_state", "to_state", "pid", "expected", "tries", "reason"})
#: context fetched by the enricher: cleared on reminders and resolutions, fetched afresh
_NO_CONTEXT: dict[str, Any] = {
    "enriched": False,
    "exit_status": None,
    "uptime": None,
    "spawn_error": None,
    "stderr_tail": None,
    "stdout_tail": None,
    "context_error": None,
}


def _summary(a: Alert) -> str:
    p = a.program
    c = a.condition
    if c is T.FATAL:
        tries = f" after {a.tries} tries" if a.tries else ""
        return f"{p} is FATAL: supervisord gave up starting it{tries}"
    if c is T.EXITED_UNEXPECTED:
        pid = f" (pid {a.pid})" if a.pid else ""
        return f"{p} exited unexpectedly{pid} from {a.from_state}"
    if c is T.BACKOFF:
        tries = f" (try {a.tries})" if a.tries else ""
        return f"{p} exited too quickly and is in BACKOFF{tries}"
    if c is T.BREAKER_OPEN:
        why = f": {a.reason}" if a.reason else ""
        return f"{p}: breaker of check {a.check} is OPEN, no more automatic restarts{why}"
    why = f": {a.reason}" if a.reason else ""
    return f"{p} was restarted by health check {a.check}{why}"
