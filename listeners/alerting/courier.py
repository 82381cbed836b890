"""Delivery for one channel: a thread that empties the spool, off the protocol loop.

Theory of operation
-------------------
:meth:`Courier.step` looks at the spool and decides: nothing to do; wait (for
context, for the batch window, for the rate limit); or send. It sends the oldest
alert alone, or — when ``batch_window`` is set or the rate limit held alerts back —
up to ``max_batch`` alerts as one digest. Sending is retried with tenacity:
exponential backoff from ``retry_initial`` to ``retry_max`` seconds plus jitter, or
exactly the receiver's ``Retry-After`` after an HTTP 429, until it succeeds or the
listener stops (the alerts then stay spooled for the next start). Only after the
receiver accepted a message are its alerts removed from the spool. A permanent
refusal (HTTP 400/410/413/422, SMTP 5xx) drops the message, logged as an error.

Alerts wait up to :data:`ENRICH_WAIT` seconds for their context (exit status, log
tails) before they are sent without it; alerts are always sent in spool order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_when_event_set,
    wait_exponential,
    wait_random,
)

from listeners.alerting.config import AlertConfig, RateLimit
from listeners.alerting.model import Alert
from listeners.alerting.spool import Spool
from listeners.alerting.transports import DeliveryError, Sender

__all__ = ["ENRICH_WAIT", "Courier", "CourierStatistics", "TokenBucket"]

#: seconds an alert waits for its context before it is sent without
ENRICH_WAIT = 2.0


class TokenBucket:
    """``count`` messages per ``per`` seconds, bursts up to ``count``."""

    def __init__(self, limit: RateLimit, now: float) -> None:
        self.limit = limit
        self.tokens = float(limit.count)
        self.at = now

    def _refill(self, now: float) -> None:
        if self.limit.enabled:
            rate = self.limit.count / self.limit.per
            self.tokens = min(float(self.limit.count), self.tokens + (now - self.at) * rate)
        self.at = now

    def wait_time(self, now: float) -> float:
        """Seconds until a message may go (0: now)."""
        if not self.limit.enabled:
            return 0.0
        self._refill(now)
        if self.tokens >= 1.0:
            return 0.0
        return (1.0 - self.tokens) * self.limit.per / self.limit.count

    def take(self, now: float) -> None:
        if self.limit.enabled:
            self._refill(now)
            self.tokens = max(0.0, self.tokens - 1.0)


@dataclass(frozen=True)
class CourierStatistics:
    messages: int
    alerts_sent: int
    failures: int
    dropped: int
    rate_limited: int


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, DeliveryError) and not exc.permanent


class Courier:
    """Delivers one channel's spool through its sender."""

    def __init__(
        self,
        cfg: AlertConfig,
        spool: Spool,
        sender: Sender,
        log: logging.Logger,
        stopping: threading.Event,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.spool = spool
        self.sender = sender
        self.log = log
        self.stopping = stopping
        self.clock = clock
        self.wall = wall
        self._sleep: Callable[[float], None] = sleep or self._pause
        self.bucket = TokenBucket(cfg.rate_limit, clock())
        self._wake = threading.Event()
        self._first_seen: dict[str, float] = {}
        #: the rate limit is holding alerts back (they go out as one digest)
        self._held = False
        self._messages = self._sent = self._failures = self._dropped = self._limited = 0
        self.thread = threading.Thread(
            target=self._run, name=f"vigil-alert-{cfg.name}", daemon=True
        )

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def _pause(self, seconds: float) -> None:
        """Sleep between retries; shutdown cuts it short."""
        self.stopping.wait(seconds)

    def notify(self) -> None:
        """Something was spooled or enriched: look again now."""
        self._wake.set()

    def join(self, timeout: float) -> None:
        self._wake.set()
        if self.thread.is_alive():
            self.thread.join(timeout)

    def _run(self) -> None:
        while not self.stopping.is_set():
            self._wake.clear()
            try:
                delay = self.step()
            except Exception:
                self.log.exception("alert %s: courier error", self.cfg.name)
                delay = 1.0
            if delay is None:
                self._wake.wait(1.0)
            elif delay > 0:
                self._wake.wait(delay)

    # -- deciding ----------------------------------------------------------------------

    def step(self) -> float | None:
        """Send what is due. Returns seconds to wait before the next step (None: idle)."""
        pending = self.spool.pending()
        if not pending:
            self._held = False
            self._first_seen.clear()
            return None
        now = self.clock()
        ready: list[Alert] = []
        wait_context: float | None = None
        for a in pending:
            seen = self._first_seen.setdefault(a.id, now)
            if not a.enriched and now - seen < ENRICH_WAIT:
                wait_context = ENRICH_WAIT - (now - seen)
                break
            ready.append(a)
        if not ready:
            return wait_context
        if self.cfg.batch_window > 0:
            age = self.wall() - ready[0].at
            if age < self.cfg.batch_window:
                return self.cfg.batch_window - age
        delay = self.bucket.wait_time(now)
        if delay > 0:
            if not self._held:
                self._limited += 1
                self.log.warning(
                    "alert %s: rate-limited (%s): holding %d alert(s), next message in %.1fs "
                    "as a digest",
                    self.cfg.name,
                    self.cfg.rate_limit,
                    len(ready),
                    delay,
                )
            self._held = True
            return delay
        digest = self.cfg.batch_window > 0 or self._held
        batch = ready[: self.cfg.max_batch] if digest else ready[:1]
        self.deliver(batch)
        return 0.0

    # -- sending -----------------------------------------------------------------------

    def deliver(self, batch: Sequence[Alert]) -> bool:
        """Send ``batch`` as one message, retrying; True if accepted (then unspooled)."""
        ids = {a.id for a in batch}
        what = _describe(batch)
        retrying = Retrying(
            stop=stop_when_event_set(self.stopping),
            wait=self._wait,
            retry=retry_if_exception(_retryable),
            sleep=self._sleep,
            before_sleep=lambda rs: self._log_retry(rs, what),
            reraise=True,
        )
        started = self.clock()
        try:
            answer = retrying(self.sender.send, batch)
        except DeliveryError as exc:
            if not exc.permanent:
                self.log.warning(
                    "alert %s: stopping with %s undelivered (kept in the spool): %s",
                    self.cfg.name,
                    what,
                    exc,
                )
                return False
            self.spool.remove(ids, delivered=False)
            self._dropped += len(batch)
            self.log.error(
                "alert %s: dropped %s: the receiver refused it for good: %s",
                self.cfg.name,
                what,
                exc,
            )
            return False
        now = self.clock()
        self.bucket.take(now)
        self.spool.remove(ids)
        for i in ids:
            self._first_seen.pop(i, None)
        self._messages += 1
        self._sent += len(batch)
        self.log.info(
            "alert %s: sent %s%s: %s in %.0f ms",
            self.cfg.name,
            what,
            " (digest)" if len(batch) > 1 else "",
            answer,
            (now - started) * 1000,
        )
        self._held = self._held and len(self.spool) > 0
        return True

    def _wait(self, rs: RetryCallState) -> float:
        exc = rs.outcome.exception() if rs.outcome is not None else None
        if isinstance(exc, DeliveryError) and exc.retry_after is not None:
            return exc.retry_after
        backoff = wait_exponential(multiplier=self.cfg.retry_initial, max=self.cfg.retry_max)
        jitter = wait_random(0, min(1.0, self.cfg.retry_initial))
        return float((backoff + jitter)(rs))

    def _log_retry(self, rs: RetryCallState, what: str) -> None:
        self._failures += 1
        exc = rs.outcome.exception() if rs.outcome is not None else None
        delay = rs.next_action.sleep if rs.next_action is not None else 0.0
        self.log.warning(
            "alert %s: delivery of %s failed (attempt %d): %s; retrying in %.1fs (%d spooled)",
            self.cfg.name,
            what,
            rs.attempt_number,
            exc,
            delay,
            len(self.spool),
        )

    def statistics(self) -> CourierStatistics:
        return CourierStatistics(
            self._messages, self._sent, self._failures, self._dropped, self._limited
        )


def _describe(batch: Sequence[Alert]) -> str:
    if len(batch) == 1:
        a = batch[0]
        kind = f"{a.status.value} {a.condition.value}" if a.firing else a.trigger.value
        if a.reminder:
            kind += f" reminder {a.reminder}"
        return f"alert {a.id[:8]} ({kind} {a.program})"
    ids = ", ".join(a.id[:8] for a in batch[:5]) + ("…" if len(batch) > 5 else "")
    return f"{len(batch)} alerts ({ids})"
