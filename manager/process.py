"""One supervised process: supervisord's state machine, driven by requests, exits and timers.

Theory of operation
-------------------
A :class:`Process` decides; its :class:`ProcessHost` acts. The process never
touches the OS, the clock or the event bus directly: it asks the host to spawn
(through ``host.os``), to signal, to schedule a timer, to emit an event. The
host is vigild's supervisor in production and a hand-written fake in unit tests,
which drive every transition with an injected clock and no sleeping.

``_change`` is the only writer of ``state``; it checks the move against
:data:`manager.states.TRANSITIONS` and emits the PROCESS_STATE_* event with the
exact payload supervisord 4.3 sends (reference §2.2, §3).

Differences from supervisord 4.3, on purpose (reference §9 item 9):
* timers fire when due (no 1-second loop granularity); a child that exits before
  ``startsecs`` is always BACKOFF, never promoted first (no reap race);
* a BACKOFF process stopped by request has its failure counter reset;
* an exit reaped before the startsecs timer ran but after startsecs elapsed is
  RUNNING then EXITED, as in supervisord;
* automatic restarts and retries may be deferred by the host (``defer_spawn``):
  vigild paces a crash loop to the speed of the listeners instead of dropping
  their events (see :class:`manager.supervisor.Supervisor`).
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Protocol

from manager.config import ProcessConfig
from manager.datatypes import AutoRestart
from manager.events import Event, ProcessStateChange
from manager.loop import Timer
from manager.osfacade import OS, Spawned, SpawnError
from manager.states import ProcessState, check_transition, event_for

__all__ = ["Process", "ProcessHost", "decode_exit", "signal_name"]

P = ProcessState


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def decode_exit(status: int) -> tuple[int, str]:
    """A waitpid status as supervisord reports it: (exitstatus, text); a signal death is -1."""
    if os.WIFSIGNALED(status):
        return -1, f"terminated by {signal_name(os.WTERMSIG(status))}"
    code = os.waitstatus_to_exitcode(status)
    return code, f"exit status {code}"


class ProcessHost(Protocol):
    @property
    def os(self) -> OS: ...

    @property
    def log(self) -> logging.Logger: ...

    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def wallclock(self) -> float: ...

    def call_at(self, when: float, callback: object) -> Timer: ...

    def emit(self, event: Event) -> None: ...

    def spawn_child(self, process: Process) -> Spawned:
        """Fork ``process``'s child: ``os.spawn`` of its spec, plus what the host hands it
        (an fcgi-program's socket as fd 0).

        Raises:
            SpawnError: the child could not be started.
        """
        ...

    def spawned(self, process: Process, spawned: Spawned) -> None:
        """Wire the new child's pipes."""
        ...

    def state_changed(self, process: Process, old: ProcessState) -> None: ...

    def accepting_restarts(self) -> bool:
        """False while shutting down or reloading: no autorestart, no backoff retry."""
        ...

    def defer_spawn(self, process: Process) -> bool:
        """True if the host will call ``process.respawn()`` later (restart pacing)."""
        ...


class Process:
    def __init__(self, config: ProcessConfig, host: ProcessHost) -> None:
        self.config = config
        self.host = host
        #: Current state; written only by ``_change``.
        self.state = P.STOPPED
        #: Pid of the running child, 0 when there is none.
        self.pid = 0
        #: Consecutive failed starts ("tries" in events).
        self.backoff = 0
        #: Wall-clock time of the last spawn / exit (XML-RPC ``start`` / ``stop``), 0 = never.
        self.laststart = 0.0
        self.laststop = 0.0
        #: Monotonic time of the last spawn.
        self.started_at = 0.0
        self.spawnerr = ""
        #: Last exit status (-1 = killed by a signal).
        self.exitstatus = 0
        self._timer: Timer | None = None
        #: when the current stop turns to SIGKILL (``stopwaitsecs`` after it began)
        self._stop_deadline = 0.0

    # -- identity ------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def group(self) -> str:
        return self.config.group

    @property
    def namespec(self) -> str:
        return self.name if self.group == self.name else f"{self.group}:{self.name}"

    def __repr__(self) -> str:
        return f"<Process {self.namespec} {self.state.name} pid={self.pid}>"

    # -- the one writer of .state ----------------------------------------------------

    def _change(
        self,
        new: ProcessState,
        *,
        tries: int | None = None,
        pid: int | None = None,
        expected: bool | None = None,
    ) -> None:
        old = self.state
        check_transition(self.namespec, old, new)
        self.state = new
        self.host.emit(
            ProcessStateChange(
                event_for(new),
                self.name,
                self.group,
                old.name,
                tries=tries,
                pid=pid,
                expected=expected,
            )
        )
        self.host.state_changed(self, old)

    def _set_timer(self, when: float, callback: object) -> None:
        self._cancel_timer()
        self._timer = self.host.call_at(when, callback)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- starting ------------------------------------------------------------------

    def spawn(self) -> None:
        """Enter STARTING and fork. A spawn error goes to BACKOFF (and maybe FATAL) at once."""
        self._cancel_timer()
        host = self.host
        self.spawnerr = ""
        self.exitstatus = 0  # supervisord clears it on spawn (and reports None as 0)
        self.laststart = host.wallclock()
        self.started_at = host.now()
        self._change(P.STARTING, tries=self.backoff)
        try:
            spawned = host.spawn_child(self)
        except SpawnError as exc:
            self.spawnerr = str(exc)
            host.log.info("spawnerr: %s", exc)
            self._failed_start()
            return
        self.pid = spawned.pid
        host.log.info("spawned: %r with pid %d", self.name, self.pid)
        host.spawned(self, spawned)
        self._set_timer(self.started_at + self.config.startsecs, self._startsecs_elapsed)

    def _startsecs_elapsed(self) -> None:
        self._timer = None
        if self.state is P.STARTING and self.pid:
            self._enter_running()

    def _enter_running(self) -> None:
        self.backoff = 0
        self._change(P.RUNNING, pid=self.pid)
        self.host.log.info(
            "success: %s entered RUNNING state, process has stayed up for > than %s seconds "
            "(startsecs)",
            self.name,
            _secs(self.config.startsecs),
        )

    def _failed_start(self) -> None:
        """STARTING -> BACKOFF, then FATAL if out of retries, else a retry timer."""
        self.backoff += 1
        self._change(P.BACKOFF, tries=self.backoff)
        if self.backoff > self.config.startretries:
            self.give_up()
        else:
            self._set_timer(self.host.now() + self.backoff, self._retry)

    def _retry(self) -> None:
        self._timer = None
        if (
            self.state is P.BACKOFF
            and self.host.accepting_restarts()
            and not self.host.defer_spawn(self)
        ):
            self.spawn()

    def respawn(self) -> None:
        """A deferred automatic restart or retry, if it still applies."""
        if self.state in (P.EXITED, P.BACKOFF) and self.host.accepting_restarts():
            self.spawn()

    def give_up(self) -> None:
        """BACKOFF -> FATAL (out of retries, or a shutdown stops a backing-off process)."""
        self._cancel_timer()
        self.backoff = 0
        self._change(P.FATAL)
        self.host.log.info(
            "gave up: %s entered FATAL state, too many start retries too quickly", self.name
        )

    # -- exits ---------------------------------------------------------------------

    def exited(self, status: int) -> None:
        """The child was reaped with waitpid ``status``."""
        host = self.host
        pid = self.pid
        self._cancel_timer()
        self.pid = 0
        self.laststop = host.wallclock()
        es, text = decode_exit(status)
        self.exitstatus = es
        expected = es in self.config.exitcodes
        if self.state is P.STOPPING:
            self._change(P.STOPPED, pid=pid)
            (host.log.info if expected else host.log.warning)("stopped: %s (%s)", self.name, text)
            if self.config.stopasgroup or self.config.killasgroup:
                self._reap_group_rest(pid)
            return
        if self.state is P.STARTING:
            if host.now() - self.started_at < self.config.startsecs:
                self.exitstatus = 0  # as supervisord: a too-quick exit leaves no status
                self.spawnerr = "Exited too quickly (process log may have details)"
                host.log.warning("exited: %s (%s; not expected)", self.name, text)
                self._failed_start()
                return
            self.pid = pid
            self._enter_running()
            self.pid = 0
        if self.state is not P.RUNNING:
            host.log.warning("reaped %s (pid %d) in state %s", self.name, pid, self.state.name)
            return
        self._change(P.EXITED, expected=expected, pid=pid)
        (host.log.info if expected else host.log.warning)(
            "exited: %s (%s; %s)", self.name, text, "expected" if expected else "not expected"
        )
        restart = self.config.autorestart is AutoRestart.TRUE or (
            self.config.autorestart is AutoRestart.UNEXPECTED and not expected
        )
        if restart and host.accepting_restarts() and not host.defer_spawn(self):
            self.spawn()

    # -- stopping and signalling -----------------------------------------------------

    def stop(self) -> None:
        """Stop on request: signal a live child, or STOPPED straight from BACKOFF."""
        if self.state is P.BACKOFF:
            self._cancel_timer()
            self.backoff = 0
            self._change(P.STOPPED, pid=0)
            return
        if self.state in (P.RUNNING, P.STARTING):
            self._cancel_timer()
            self._change(P.STOPPING, pid=self.pid)
            self._stop_deadline = self.host.now() + self.config.stopwaitsecs
            if self._send(self.config.stopsignal, group=self.config.stopasgroup):
                self._set_timer(self._stop_deadline, self._kill_timeout)

    def _reap_group_rest(self, pgid: int) -> None:
        """The leader of a ``stopasgroup``/``killasgroup`` program exited on the stop signal,
        but members of its process group live on: they get SIGKILL at the stop's deadline
        (``stopwaitsecs`` after the stop) if still there — supervisord leaves them running.
        While the daemon shuts down or reloads, at once (no one would be left to do it).

        The pgid cannot be reused meanwhile: Linux allocates no pid still in use as a pgid.
        """
        try:
            self.host.os.kill(pgid, 0, group=True)
        except OSError:
            return  # the group is empty
        if self.host.accepting_restarts():
            when = max(self._stop_deadline, self.host.now())
            self.host.call_at(when, lambda: self._kill_group_rest(pgid))
        else:
            self._kill_group_rest(pgid)

    def _kill_group_rest(self, pgid: int) -> None:
        try:
            self.host.os.kill(pgid, signal.SIGKILL, group=True)
        except ProcessLookupError:
            return  # they exited in time
        except OSError as exc:
            self.host.log.error("could not kill the rest of %s's process group: %s", self.name, exc)
            return
        self.host.log.warning(
            "killing the rest of %s's process group (pgid %d) with SIGKILL", self.name, pgid
        )

    def _kill_timeout(self) -> None:
        self._timer = None
        if self.state is not P.STOPPING or not self.pid:
            return
        self.host.log.warning("killing %r (%d) with SIGKILL", self.name, self.pid)
        if self._send(signal.SIGKILL, group=self.config.killasgroup):
            self._set_timer(self.host.now() + self.config.stopwaitsecs, self._kill_timeout)

    def _send(self, sig: int, *, group: bool) -> bool:
        """Signal the child; False if that failed and the process went UNKNOWN."""
        try:
            self.host.os.kill(self.pid, sig, group=group)
        except ProcessLookupError:
            return True  # already gone; the reaper will report it
        except OSError as exc:
            self.host.log.critical("unknown problem killing %s (%d): %s", self.name, self.pid, exc)
            self._cancel_timer()
            self._change(P.UNKNOWN)
            return False
        return True

    def send_signal(self, sig: int) -> bool:
        """An arbitrary signal (signalProcess); the state does not change on success."""
        return self._send(sig, group=False)


def _secs(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)
