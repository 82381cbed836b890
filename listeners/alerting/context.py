"""Context for alerts, fetched over XML-RPC off the protocol loop.

:func:`fetch_context` asks the supervisor about the alert's process
(``getProcessInfo``: exit status, run time, spawn error) and for the last lines of
its stderr and stdout (``tailProcessStderrLog`` / ``tailProcessStdoutLog``,
``tail_bytes`` each, at most ``tail_lines`` lines). Failures never block an alert:
what could not be fetched is named in ``context_error``.

:class:`Enricher` is the thread that does this for freshly spooled alerts, rewrites
them in their spool and wakes their courier.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from listeners.alerting.model import Alert
from listeners.alerting.spool import Spool
from manager.rpcclient import RPCError, RPCFault

__all__ = [
    "EnrichJob",
    "Enricher",
    "RpcNamespace",
    "exit_status_from_log",
    "fetch_context",
    "tail_lines",
]


class RpcNamespace(Protocol):
    """The ``supervisor.*`` namespace of :class:`manager.rpcclient.SupervisorClient`."""

    def __getattr__(self, name: str) -> Callable[..., Any]: ...


def tail_lines(text: str, lines: int) -> str:
    """The last ``lines`` lines of ``text`` (a first partial line is dropped if cut)."""
    if lines <= 0:
        return ""
    parts = text.splitlines(keepends=True)
    return "".join(parts[-lines:])


def _tail(rpc: RpcNamespace, method: str, ns: str, size: int, lines: int) -> tuple[str | None, str]:
    """(tail or None, error text)."""
    try:
        text, _offset, overflow = getattr(rpc, method)(ns, 0, size)
    except RPCFault as exc:
        if exc.name == "NO_FILE":
            return None, ""
        return None, f"{method}: {exc}"
    except RPCError as exc:
        return None, f"{method}: {exc}"
    text = str(text)
    if overflow:
        _, newline, rest = text.partition("\n")
        text = rest if newline else text
    return tail_lines(text, lines) or None, ""


#: supervisord's and vigild's main-log line for an exit
_EXITED = r"exited: {name} \((?:exit status (-?\d+)|terminated by \w+);"
MAIN_LOG_TAIL = 16384


def exit_status_from_log(rpc: RpcNamespace, name: str) -> int | None:
    """The last exit status the main log reports for ``name`` (-1: killed by a signal)."""
    try:
        text = str(rpc.readLog(-MAIN_LOG_TAIL, 0))
    except RPCError:
        return None
    found: list[str] = re.findall(_EXITED.format(name=re.escape(name)), text)
    if not found:
        return None
    return int(found[-1]) if found[-1] else -1


def fetch_context(
    rpc: RpcNamespace, alert: Alert, *, tail_bytes: int = 2048, lines: int = 20
) -> Alert:
    """``alert`` with ``exit_status``, ``uptime``, ``spawn_error`` and log tails filled in."""
    ns = f"{alert.group}:{alert.name}"
    errors: list[str] = []
    changes: dict[str, Any] = {"enriched": True}
    try:
        info = rpc.getProcessInfo(ns)
    except RPCError as exc:
        errors.append(f"getProcessInfo: {exc}")
    else:
        start, stop, now = (
            int(info.get("start", 0)),
            int(info.get("stop", 0)),
            int(info.get("now", 0)),
        )
        if info.get("statename") == "RUNNING" and start:
            changes["uptime"] = float(max(0, now - start))
        elif start and stop >= start:
            changes["uptime"] = float(stop - start)
        # the exit status of the run that ended: a new spawn clears it, and a too-quick
        # exit (BACKOFF, FATAL) never records it, so the main log's "exited:" line tells
        state = info.get("statename")
        if state in ("EXITED", "STOPPED") and "exitstatus" in info:
            changes["exit_status"] = int(info["exitstatus"])
        elif state in ("BACKOFF", "FATAL"):
            changes["exit_status"] = exit_status_from_log(rpc, alert.name)
        if info.get("spawnerr"):
            changes["spawn_error"] = str(info["spawnerr"])
    if tail_bytes > 0 and lines > 0:
        for field, method in (
            ("stderr_tail", "tailProcessStderrLog"),
            ("stdout_tail", "tailProcessStdoutLog"),
        ):
            tail, error = _tail(rpc, method, ns, tail_bytes, lines)
            changes[field] = tail
            if error:
                errors.append(error)
    changes["context_error"] = "; ".join(errors) or None
    return alert.replace(**changes)


@dataclass(frozen=True)
class EnrichJob:
    spool: Spool
    alert: Alert
    tail_bytes: int
    tail_lines: int
    #: called after the spool was updated (wakes the channel's courier)
    done: Callable[[], None]


class Enricher:
    """One thread fetching context for spooled alerts, in order."""

    def __init__(
        self,
        rpc: Callable[[], RpcNamespace],
        log: logging.Logger,
        stopping: threading.Event,
    ) -> None:
        self.rpc = rpc
        self.log = log
        self.stopping = stopping
        self.queue: queue.SimpleQueue[list[EnrichJob]] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="vigil-alert-context", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def submit(self, jobs: list[EnrichJob]) -> None:
        if jobs:
            self.queue.put(jobs)

    def join(self, timeout: float) -> None:
        self.queue.put([])
        if self.thread.is_alive():
            self.thread.join(timeout)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                jobs = self.queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if not jobs:
                continue
            try:
                self.run_jobs(jobs)
            except Exception:
                self.log.exception("alerts: fetching context failed")
                for job in jobs:
                    job.done()

    def run_jobs(self, jobs: list[EnrichJob]) -> None:
        """Enrich ``jobs`` (the alerts of one event), fetching each process's context once."""
        cache: dict[tuple[str, str, int, int], Alert] = {}
        rpc = self.rpc()
        for job in jobs:
            a = job.alert
            key = (a.group, a.name, job.tail_bytes, job.tail_lines)
            fetched = cache.get(key)
            if fetched is None:
                fetched = fetch_context(rpc, a, tail_bytes=job.tail_bytes, lines=job.tail_lines)
                cache[key] = fetched
                if fetched.context_error:
                    self.log.warning(
                        "alerts: context for %s incomplete: %s", a.program, fetched.context_error
                    )
            enriched = a.replace(
                enriched=True,
                exit_status=fetched.exit_status,
                uptime=fetched.uptime,
                spawn_error=fetched.spawn_error,
                stderr_tail=fetched.stderr_tail,
                stdout_tail=fetched.stdout_tail,
                context_error=fetched.context_error,
            )
            try:
                job.spool.update(enriched)
            except OSError as exc:
                self.log.error("alerts: could not rewrite %s in the spool: %s", a.id, exc)
            job.done()
