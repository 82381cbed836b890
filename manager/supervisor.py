"""vigild's core: groups of processes, listener pools, child I/O, reaping, shutdown and reload.

Theory of operation
-------------------
:class:`Supervisor` is the :class:`~manager.process.ProcessHost` of every
process. It owns the :class:`~manager.loop.Loop`; everything happens on that one
thread, in callbacks:

* a child's exit arrives as SIGCHLD on the loop's wakeup pipe; the child's
  pending output is drained and its pipes closed first, then ``Process.exited``
  runs — so the log/events of a child precede its exit event, and the exit event
  is emitted in the same turn, not on a 1-second tick. The pipes are closed even
  if a descendant (a daemon) still holds them, as supervisord does: vigild would
  otherwise keep three fds per such exit and log the daemon as the program (a
  paused pipe is closed when it has been resumed and drained);
* every state change is an event; ``emit`` gives it a serial (only if some pool
  subscribes, as supervisord) and puts it in each subscribed pool, which
  dispatches to READY listeners immediately;
* child output is read when readable, split by :class:`manager.capture.OutputChannel`
  into log data and captured PROCESS_COMMUNICATION text, written to the log
  file and emitted as events; a channel whose events go to a full pool is
  paused (its fd unregistered) until that pool drains — backpressure instead of
  dropping;
* a pool that stays full and accepts no event for STALL_AFTER seconds while
  producers or restarts wait on it is *stalled*: a listener that never answers
  (or FAILs forever) must not freeze the programs whose output it subscribes to.
  A stalled pool holds nobody back and, at ``SPILL × buffer_size`` events,
  discards its oldest event of any type (supervisord: at buffer_size), until one
  of its listeners accepts an event again.
* an ``[fcgi-program:x]``'s socket (:class:`~manager.fcgisocket.SharedSocket`, one
  per program section, kept in its :class:`Group`) is checked when the group is
  created, taken by each spawn as the child's fd 0 and released when that child is
  reaped (before its exit is processed, so an autorestart of the last child gets
  a new socket) — supervisord's socket_manager timing.

Shutdown (SIGTERM/SIGINT/SIGQUIT, RPC ``shutdown``) stops groups one at a time in
descending priority, waiting for each; reload (SIGHUP, RPC ``restart``) does the
same, then re-reads the config and starts again in the same process.
"""

from __future__ import annotations

import errno
import functools
import itertools
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from manager import mainlog
from manager.capture import Captured, LogData, OutputChannel, decode_output
from manager.config import Config, GroupConfig, LogConfig, PoolConfig, ProcessConfig
from manager.events import (
    Event,
    EventType,
    ProcessCommunication,
    ProcessGroupEvent,
    ProcessLog,
    SupervisorStateChange,
    Tick,
)
from manager.fcgisocket import FcgiSocketError, SharedSocket
from manager.logfiles import RotatingFile, auto_log_path, cleanup_auto_logs
from manager.loop import Loop, Timer
from manager.osfacade import OS, RealOS, Spawned, SpawnError, SpawnSpec
from manager.pool import ListenerPool
from manager.process import Process
from manager.states import RUNNING_STATES, STOPPED_STATES, ProcessState, SupervisorState

__all__ = ["Group", "Supervisor"]

E = EventType
_READ = 131072
#: Longest an automatic restart waits for a full listener pool before going ahead anyway.
PACE_MAX_DELAY = 1.0
#: Free slots a pool needs before a paced restart goes ahead (the events one restart makes).
PACE_HEADROOM = 3
#: How often a shutdown reports the processes it is still waiting for, seconds (supervisord: 3).
SHUTDOWN_REPORT_EVERY = 3.0
#: A full pool that accepts no event for this long while someone waits on it is stalled.
STALL_AFTER = 5.0
#: Serial numbers survive reloads (supervisord keeps a module-level counter).
_serials = itertools.count()
TICK_PERIODS = ((E.TICK_5, 5), (E.TICK_60, 60), (E.TICK_3600, 3600))


@dataclass
class Group:
    config: GroupConfig | PoolConfig
    processes: dict[str, Process] = field(default_factory=dict)
    pool: ListenerPool | None = None
    #: fcgi-program sockets by program (section) name
    sockets: dict[str, SharedSocket] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def priority(self) -> int:
        return self.config.priority

    def ordered(self, *, reverse: bool = False) -> list[Process]:
        return sorted(
            self.processes.values(),
            key=lambda p: (p.config.priority, p.name),
            reverse=reverse,
        )

    def alive(self) -> bool:
        return any(p.state not in STOPPED_STATES for p in self.processes.values())


class _Output:
    """One output pipe of one child."""

    def __init__(
        self,
        sup: Supervisor,
        process: Process,
        channel: str,
        fd: int,
        logfile: RotatingFile | None,
        cfg: LogConfig,
        protocol: ListenerPool | None,
    ) -> None:
        self.sup = sup
        self.process = process
        self.pid = process.pid
        self.channel = channel
        self.fd = fd
        self.logfile = logfile
        self.events_enabled = cfg.events_enabled
        self.protocol = protocol
        self.splitter = OutputChannel(cfg.capture_maxbytes, sup.config.supervisord.strip_ansi)
        self.log_type = E.PROCESS_LOG_STDOUT if channel == "stdout" else E.PROCESS_LOG_STDERR
        self.comm_type = (
            E.PROCESS_COMMUNICATION_STDOUT
            if channel == "stdout"
            else E.PROCESS_COMMUNICATION_STDERR
        )
        self.capturing = cfg.capture_maxbytes > 0
        self.paused = False
        #: The child was reaped: close as soon as the pipe is drained.
        self.reaped = False
        os.set_blocking(fd, False)

    def sinks(self) -> list[ListenerPool]:
        types = []
        if self.events_enabled:
            types.append(self.log_type)
        if self.capturing:
            types.append(self.comm_type)
        return list({id(p): p for t in types for p in self.sup.subscribers(t)}.values())

    def on_readable(self) -> None:
        try:
            data = os.read(self.fd, _READ)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        self.handle(data)

    def drain(self) -> None:
        """Read whatever is already in the pipe (before the child's exit is processed)."""
        for _ in range(64):
            if self.fd < 0 or self.paused:
                return
            try:
                data = os.read(self.fd, _READ)
            except (BlockingIOError, OSError):
                return
            if not data:
                self.close()
                return
            self.handle(data)

    def finish(self) -> None:
        """The child was reaped (and the pipe drained): close now, or once resumed."""
        self.reaped = True
        if not self.paused:
            self.close()

    def handle(self, data: bytes) -> None:
        proc = self.process
        if self.protocol is not None:
            if self.logfile is not None:
                self.logfile.write(data)
            self.protocol.receive(proc.name, data)
            return
        for chunk in self.splitter.feed(data):
            self._chunk(chunk)
        if (self.events_enabled or self.capturing) and not all(
            self.sup.room_for(p) for p in self.sinks()
        ):
            self.pause()

    def _chunk(self, chunk: LogData | Captured) -> None:
        proc = self.process
        if isinstance(chunk, LogData):
            if self.logfile is not None and not chunk.in_capture:
                self.logfile.write(chunk.data)
            if self.events_enabled and chunk.data:
                self.sup.emit(
                    ProcessLog(
                        self.log_type,
                        proc.name,
                        proc.group,
                        self.pid,
                        self.channel,
                        decode_output(chunk.data),
                    )
                )
        else:
            self.sup.emit(
                ProcessCommunication(
                    self.comm_type, proc.name, proc.group, self.pid, decode_output(chunk.data)
                )
            )

    def pause(self) -> None:
        if not self.paused and self.fd >= 0:
            self.paused = True
            self.sup.loop.remove_reader(self.fd)
            self.sup.paused.add(self)
            for pool in self.sinks():
                if not pool.has_room():
                    self.sup.watch_stall(pool)

    def resume(self) -> None:
        if self.paused and self.fd >= 0:
            self.paused = False
            self.sup.loop.add_reader(self.fd, self.on_readable)

    def close(self) -> None:
        if self.fd < 0:
            return
        for chunk in self.splitter.flush():
            self._chunk(chunk)
        self.sup.loop.remove_reader(self.fd)
        self.sup.paused.discard(self)
        os.close(self.fd)
        self.fd = -1
        self.sup.outputs_closed(self)


class _Child:
    """The live I/O of one spawned child: its outputs and its stdin."""

    def __init__(self, pid: int, stdin: int) -> None:
        self.pid = pid
        self.stdin = stdin
        self.outputs: list[_Output] = []
        self.pending = bytearray()


class Supervisor:
    """Runs one configuration until shutdown."""

    def __init__(
        self,
        config: Config,
        *,
        log: logging.Logger,
        os_facade: OS | None = None,
        loop: Loop | None = None,
        environ: Mapping[str, str] | None = None,
        wallclock: Callable[[], float] = time.time,
        config_loader: Callable[[], Config] | None = None,
    ) -> None:
        self.config = config
        self._log = log
        self._os = os_facade or RealOS()
        self.loop = loop or Loop()
        self._environ = dict(os.environ if environ is None else environ)
        self._wallclock = wallclock
        self._config_loader = config_loader
        self.state = SupervisorState.RUNNING
        self.groups: dict[str, Group] = {}
        self.children: dict[int, _Child] = {}
        self.by_pid: dict[int, Process] = {}
        #: pid -> the fcgi socket that child holds (released when it is reaped)
        self._socket_refs: dict[int, SharedSocket] = {}
        self.paused: set[_Output] = set()
        self.logfiles: dict[tuple[str, str, str], RotatingFile] = {}
        self._tick_timers: list[Timer] = []
        self._last_tick: dict[EventType, int] = {}
        self._stopping_group: Group | None = None
        self._exit_requested: SupervisorState | None = None
        self.done = False
        #: Automatic restarts waiting for room in a listener pool (restart pacing).
        self._paced: dict[Process, Timer] = {}
        #: Automatic restarts waiting for their loop turn (one per turn), and the
        #: turn of the last one.
        self._turn_queue: deque[Process] = deque()
        self._turn_armed = False
        self._spawn_turn = -1
        self._subscribers: dict[EventType, list[ListenerPool]] = {}
        #: Stalled pools (by name) -> their ``delivered`` count when they stalled.
        self._stalled: dict[str, int] = {}
        self._stall_timers: dict[str, Timer] = {}
        #: Callbacks run whenever any process changes state (RPC waits use it).
        self.watchers: list[Callable[[Process], None]] = []

    # -- ProcessHost -----------------------------------------------------------------

    @property
    def os(self) -> OS:
        return self._os

    @property
    def log(self) -> logging.Logger:
        return self._log

    def now(self) -> float:
        return self.loop.clock()

    def wallclock(self) -> float:
        return self._wallclock()

    def call_at(self, when: float, callback: object) -> Timer:
        assert callable(callback)
        return self.loop.call_at(when, callback)

    def accepting_restarts(self) -> bool:
        return self.state is SupervisorState.RUNNING

    def _state_pools_have_room(self) -> bool:
        """Room for a restart's next few events (STARTING, RUNNING, EXITED) in every pool."""
        return all(
            p.free_slots() >= PACE_HEADROOM or self._is_stalled(p)
            for p in self.subscribers(E.PROCESS_STATE_STARTING)
        )

    def defer_spawn(self, process: Process) -> bool:
        """Restart pacing: hold an automatic restart while a PROCESS_STATE pool is full,
        and take one automatic restart per loop turn.

        A crash loop then runs at the speed its listeners acknowledge events instead of
        overflowing their buffers; after PACE_MAX_DELAY the restart goes ahead anyway, so
        a stuck listener cannot hold programs down. When several children exit at once,
        their EXITED events go out first and the restarts (a fork and exec each) follow
        one per turn, with the listeners' I/O handled in between.
        """
        if process in self._paced or process in self._turn_queue:
            return True
        if not self._state_pools_have_room():
            for pool in self.subscribers(E.PROCESS_STATE_STARTING):
                if pool.free_slots() < PACE_HEADROOM:
                    self.watch_stall(pool)
            self._paced[process] = self.loop.call_later(
                PACE_MAX_DELAY, functools.partial(self._paced_spawn, process)
            )
            return True
        if self._spawn_turn == self.loop.turn:
            self._turn_queue.append(process)
            if not self._turn_armed:
                self._turn_armed = True
                self.loop.call_after_io(self._spawn_queued)
            return True
        self._spawn_turn = self.loop.turn
        return False

    def _spawn_queued(self) -> None:
        self._turn_armed = False
        while self._turn_queue:
            process = self._turn_queue.popleft()
            if not self._owns(process):
                continue
            if not self.defer_spawn(process):  # else queued again, for the next turn
                process.respawn()
            break
        if self._turn_queue and not self._turn_armed:
            self._turn_armed = True
            self.loop.call_after_io(self._spawn_queued)

    def _owns(self, process: Process) -> bool:
        """``process`` is still one of ours (its group was not removed or replaced)."""
        group = self.groups.get(process.group)
        return group is not None and group.processes.get(process.name) is process

    def _paced_spawn(self, process: Process) -> None:
        timer = self._paced.pop(process, None)
        if timer is not None:
            timer.cancel()
            if self._owns(process):
                process.respawn()

    def _on_pool_drain(self) -> None:
        if self.paused:
            self.resume_paused()
        if self._paced and self._state_pools_have_room():
            self._paced_spawn(next(iter(self._paced)))

    # -- stalled pools --------------------------------------------------------------

    def _is_stalled(self, pool: ListenerPool) -> bool:
        """Stalled, and still not answering (an accepted event ends the stall)."""
        mark = self._stalled.get(pool.name)
        if mark is None:
            return False
        if pool.delivered != mark:
            del self._stalled[pool.name]
            self.log.info("pool %s accepts events again; backpressure resumes", pool.name)
            return False
        return True

    def room_for(self, pool: ListenerPool) -> bool:
        """May producers go on feeding ``pool``? (it has room, or it is stalled)"""
        return pool.has_room() or self._is_stalled(pool)

    def watch_stall(self, pool: ListenerPool) -> None:
        """Someone waits on the full ``pool``: check in STALL_AFTER s that it still moves."""
        if pool.name in self._stall_timers or pool.name in self._stalled:
            return
        self._stall_timers[pool.name] = self.loop.call_later(
            STALL_AFTER, functools.partial(self._stall_check, pool, pool.delivered)
        )

    def _stall_check(self, pool: ListenerPool, delivered: int) -> None:
        self._stall_timers.pop(pool.name, None)
        group = self.groups.get(pool.name)
        if group is None or group.pool is not pool or pool.has_room():
            return
        if pool.delivered != delivered:  # slow, not stuck: keep watching while it is full
            self.watch_stall(pool)
            return
        self._stalled[pool.name] = delivered
        self.log.warning(
            "pool %s has accepted no event for %s seconds with its buffer full: its "
            "producers go on and its oldest events are discarded until it answers again",
            pool.name,
            _secs(STALL_AFTER),
        )
        self._on_pool_drain()

    def emit(self, event: Event) -> None:
        pools = self.subscribers(event.type)
        if not pools:
            return
        serial = next(_serials)
        for pool in pools:
            pool.accept(event, serial, stalled=bool(self._stalled) and self._is_stalled(pool))

    def server_url(self, process: Process) -> str | None:
        if process.config.serverurl:
            return process.config.serverurl
        unix = self.config.unix_http_server
        if unix is not None:
            return f"unix://{Path(unix.file).resolve()}"
        for inet in self.config.inet_http_servers:
            host = inet.host if inet.host not in ("", "*") else "localhost"
            return f"http://{host}:{inet.port}"
        return None

    def spawn_spec(self, process: Process) -> SpawnSpec:
        cfg = process.config
        env = dict(self._environ)
        env["SUPERVISOR_ENABLED"] = "1"
        env["SUPERVISOR_PROCESS_NAME"] = cfg.name
        env["SUPERVISOR_GROUP_NAME"] = cfg.group
        url = self.server_url(process)
        if url:
            env["SUPERVISOR_SERVER_URL"] = url
        env.update(self.config.supervisord.environment)
        env.update(cfg.environment)
        return SpawnSpec(
            argv=cfg.argv,
            env=env,
            cwd=cfg.directory,
            umask=cfg.umask,
            user=cfg.user,
            redirect_stderr=cfg.redirect_stderr and not cfg.is_listener,
        )

    def spawn_child(self, process: Process) -> Spawned:
        """Spawn ``process``; an fcgi-program's child gets a reference to its socket as fd 0.

        Raises:
            SpawnError: also when the socket cannot be created.
        """
        spec = self.spawn_spec(process)
        group = self.groups.get(process.group)
        shared = group.sockets.get(process.config.program) if group is not None else None
        if shared is None:
            return self._os.spawn(spec)
        try:
            fd = shared.acquire()
        except FcgiSocketError as exc:
            raise SpawnError(str(exc)) from None
        try:
            spawned = self._os.spawn(replace(spec, stdin=fd))
        except BaseException:
            shared.release()
            raise
        self._socket_refs[spawned.pid] = shared
        return spawned

    def spawned(self, process: Process, spawned: Spawned) -> None:
        stdin = -1 if spawned.stdin is None else spawned.stdin
        child = _Child(spawned.pid, stdin)
        self.children[spawned.pid] = child
        self.by_pid[spawned.pid] = process
        if stdin >= 0:
            os.set_blocking(stdin, False)
        group = self.groups[process.group]
        pool = group.pool
        cfg = process.config
        channels = [("stdout", spawned.stdout, cfg.stdout)]
        if spawned.stderr is not None:
            channels.append(("stderr", spawned.stderr, cfg.stderr))
        for channel, fd, lc in channels:
            out = _Output(
                self,
                process,
                channel,
                fd,
                self.logfile(process, channel),
                lc,
                pool if (pool is not None and channel == "stdout") else None,
            )
            child.outputs.append(out)
            self.loop.add_reader(fd, out.on_readable)
        if pool is not None:
            pool.attach(process.name, functools.partial(self._write_stdin, child))

    def state_changed(self, process: Process, old: ProcessState) -> None:
        group = self.groups.get(process.group)
        if group is not None and group.pool is not None:
            group.pool.set_running(process.name, process.state is ProcessState.RUNNING)
        for watcher in list(self.watchers):
            watcher(process)
        if self.state is not SupervisorState.RUNNING:
            self.loop.call_soon(self._shutdown_step)

    # -- child I/O -------------------------------------------------------------------

    def logfile(self, process: Process, channel: str) -> RotatingFile | None:
        return self.logfiles.get((process.group, process.name, channel))

    def log_path(self, process: Process, channel: str) -> Path | None:
        f = self.logfile(process, channel)
        return None if f is None else f.path

    def _write_stdin(self, child: _Child, data: bytes) -> None:
        if child.stdin < 0:
            return
        child.pending += data
        self._flush_stdin(child)

    def _flush_stdin(self, child: _Child) -> None:
        while child.pending and child.stdin >= 0:
            try:
                n = os.write(child.stdin, child.pending)
            except BlockingIOError:
                self.loop.add_writer(child.stdin, functools.partial(self._flush_stdin, child))
                return
            except OSError as exc:
                self.log.debug("write to pid %d stdin failed: %s", child.pid, exc)
                child.pending.clear()
                break
            del child.pending[:n]
        if child.stdin >= 0:
            self.loop.remove_writer(child.stdin)

    def send_stdin(self, process: Process, data: bytes) -> bool:
        child = self.children.get(process.pid)
        if child is None or child.stdin < 0:
            return False
        self._write_stdin(child, data)
        return True

    def outputs_closed(self, out: _Output) -> None:
        child = self.children.get(out.pid)
        if child is not None and all(o.fd < 0 for o in child.outputs):
            self._release(child)

    def _release(self, child: _Child) -> None:
        if child.pid in self.by_pid:
            return  # not reaped yet
        if child.stdin >= 0:
            self.loop.remove_writer(child.stdin)
            os.close(child.stdin)
            child.stdin = -1
        self.children.pop(child.pid, None)

    def resume_paused(self) -> None:
        for out in list(self.paused):
            if all(self.room_for(p) for p in out.sinks()):
                self.paused.discard(out)
                out.resume()
                out.drain()
                if out.reaped and not out.paused:
                    out.close()

    # -- reaping ---------------------------------------------------------------------

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._os.released(pid)
            process = self.by_pid.pop(pid, None)
            shared = self._socket_refs.pop(pid, None)
            if shared is not None:
                shared.release()
            child = self.children.get(pid)
            if child is not None:
                for out in child.outputs:
                    out.drain()
                    out.finish()
            if process is None:
                self.log.info("reaped unknown pid %d", pid)
                continue
            group = self.groups.get(process.group)
            if group is not None and group.pool is not None:
                group.pool.set_running(process.name, False)
                group.pool.detach(process.name)
            if process.pid == pid:
                process.exited(status)
            if child is not None and all(o.fd < 0 for o in child.outputs):
                self._release(child)

    # -- groups ----------------------------------------------------------------------

    def pools(self) -> Iterator[ListenerPool]:
        for g in self.groups.values():
            if g.pool is not None:
                yield g.pool

    def subscribers(self, t: EventType) -> list[ListenerPool]:
        """The pools an event of type ``t`` goes to (cached; groups change rarely)."""
        found = self._subscribers.get(t)
        if found is None:
            found = self._subscribers[t] = [p for p in self.pools() if p.subscribes(t)]
        return found

    def add_group(self, cfg: GroupConfig | PoolConfig, *, check_sockets: bool = True) -> Group:
        """Create a group (its processes STOPPED) and announce it.

        Raises:
            FcgiSocketError: (with ``check_sockets``) an fcgi-program's socket cannot be
                created; nothing was added, as in supervisord.
        """
        group = Group(cfg)
        for pc in cfg.processes:
            if pc.socket is not None and pc.program not in group.sockets:
                group.sockets[pc.program] = SharedSocket(pc.socket, log=self.log)
        if check_sockets:
            for shared in group.sockets.values():
                shared.check()
        if isinstance(cfg, PoolConfig):
            group.pool = ListenerPool(
                cfg,
                server=self.config.supervisord.identifier,
                log=self.log,
                on_drain=self._on_pool_drain,
                call_later=self.loop.call_later,
                clock=self.loop.clock,
            )
        sd = self.config.supervisord
        for pc in cfg.processes:
            group.processes[pc.name] = Process(pc, self)
            for channel, lc in (("stdout", pc.stdout), ("stderr", pc.stderr)):
                path = self._resolve_log_path(pc, channel, lc)
                if path is not None:
                    f = RotatingFile(path, lc.maxbytes, lc.backups)
                    f.write(b"")
                    self.logfiles[(cfg.name, pc.name, channel)] = f
        self.groups[cfg.name] = group
        self._subscribers.clear()
        self.emit(ProcessGroupEvent(E.PROCESS_GROUP_ADDED, cfg.name))
        del sd
        return group

    def _resolve_log_path(self, pc: ProcessConfig, channel: str, lc: LogConfig) -> Path | None:
        if channel == "stderr" and pc.redirect_stderr and not pc.is_listener:
            return None
        target = lc.target
        if target.is_auto:
            return auto_log_path(
                Path(self.config.supervisord.childlogdir),
                pc.name,
                channel,
                self.config.supervisord.identifier,
            )
        if target.path is None:
            return None
        return Path(target.path)

    def remove_group(self, name: str) -> None:
        group = self.groups.pop(name)
        self._subscribers.clear()
        self._close_sockets(group)
        for p in group.processes.values():
            for channel in ("stdout", "stderr"):
                f = self.logfiles.pop((name, p.name, channel), None)
                if f is not None:
                    f.close()
        self.emit(ProcessGroupEvent(E.PROCESS_GROUP_REMOVED, name))

    def ordered_groups(self, *, reverse: bool = False) -> list[Group]:
        return sorted(self.groups.values(), key=lambda g: (g.priority, g.name), reverse=reverse)

    def start_group(self, group: Group) -> None:
        for p in group.ordered():
            if p.config.autostart and p.state is ProcessState.STOPPED and not p.laststart:
                p.spawn()

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Create every group (pools first), announce RUNNING, spawn autostart processes."""
        sd = self.config.supervisord
        if not sd.nocleanup:
            cleanup_auto_logs(Path(sd.childlogdir), sd.identifier)
        configs: list[GroupConfig | PoolConfig] = [*self.config.pools, *self.config.groups]
        for cfg in sorted(configs, key=lambda c: (c.priority, c.name)):
            try:
                self.add_group(cfg)
            except FcgiSocketError as exc:
                # vigild checked the sockets before starting; this is a reload: keep the
                # group, whose spawns will fail with this error (supervisord dies of it)
                self.log.critical("%s", exc)
                self.add_group(cfg, check_sockets=False)
        self.state = SupervisorState.RUNNING
        self.emit(SupervisorStateChange(E.SUPERVISOR_STATE_CHANGE_RUNNING))
        for group in self.ordered_groups():
            self.start_group(group)
        self._schedule_ticks()

    def _schedule_ticks(self) -> None:
        now = self.wallclock()
        mono = self.now()
        for t in self._tick_timers:
            t.cancel()
        self._tick_timers = []
        for etype, period in TICK_PERIODS:
            boundary = (int(now) // period + 1) * period
            self._tick_timers.append(
                self.loop.call_at(
                    mono + (boundary - now), functools.partial(self._tick, etype, period)
                )
            )

    def _tick(self, etype: EventType, period: int) -> None:
        now = self.wallclock()
        when = int(now) // period * period
        if self._last_tick.get(etype) != when and self.state is SupervisorState.RUNNING:
            self._last_tick[etype] = when
            self.emit(Tick(etype, when))
        boundary = when + period
        self._tick_timers = [t for t in self._tick_timers if not t.cancelled]
        self._tick_timers.append(
            self.loop.call_at(
                self.now() + max(0.0, boundary - now), functools.partial(self._tick, etype, period)
            )
        )

    def handle_signal(self, signum: int) -> None:
        if signum == signal.SIGCHLD:
            self.reap()
        elif signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            self.log.warning("received %s indicating exit request", signal.Signals(signum).name)
            self.request_stop(SupervisorState.SHUTDOWN)
        elif signum == signal.SIGHUP:
            if self.state is SupervisorState.SHUTDOWN:
                self.log.warning("ignored SIGHUP indicating restart request (shutdown in progress)")
            else:
                self.log.warning("received SIGHUP indicating restart request")
                self.request_stop(SupervisorState.RESTARTING)
        elif signum == signal.SIGUSR2:
            self.log.info("received SIGUSR2 indicating log reopen request")
            for f in self.logfiles.values():
                f.reopen()
            mainlog.reopen(self.log)
        else:
            self.log.warning("received %s; ignored", signal.Signals(signum).name)

    def request_stop(self, why: SupervisorState) -> None:
        """Begin a shutdown (SHUTDOWN) or reload (RESTARTING)."""
        if self.state is not SupervisorState.RUNNING:
            if why is SupervisorState.SHUTDOWN:
                self.state = why
            return
        self.state = why
        self.emit(SupervisorStateChange(E.SUPERVISOR_STATE_CHANGE_STOPPING))
        self.loop.call_soon(self._shutdown_step)
        self.loop.call_soon(self._shutdown_report)

    def _shutdown_report(self) -> None:
        """supervisord's ``waiting for a, b to die`` (INFO): now, then every 3 s until all
        processes are stopped."""
        if self.done:
            return
        alive = [p.name for p in self.all_processes() if p.state not in STOPPED_STATES]
        if alive:
            self.log.info("waiting for %s to die", ", ".join(alive))
        self.loop.call_later(SHUTDOWN_REPORT_EVERY, self._shutdown_report)

    def _shutdown_step(self) -> None:
        """Stop the highest-priority group still alive; finish when none is."""
        if self.state is SupervisorState.RUNNING or self.done:
            return
        current = self._stopping_group
        if current is not None and current.name in self.groups and current.alive():
            return  # still waiting for it
        for group in self.ordered_groups(reverse=True):
            if group.alive():
                self._stopping_group = group
                for p in group.ordered(reverse=True):
                    if p.state is ProcessState.BACKOFF:
                        p.give_up()
                    elif p.state in RUNNING_STATES:
                        p.stop()
                if group.alive():
                    return
        self._stopping_group = None
        self.done = True

    def run(self) -> SupervisorState:
        """Run until shutdown or reload completes; returns which one it was."""
        while not self.done:
            self.loop.run_once()
        for t in [*self._tick_timers, *self._stall_timers.values()]:
            t.cancel()
        self._stall_timers.clear()
        self.close_children_io()
        return self.state

    def close_children_io(self) -> None:
        for child in list(self.children.values()):
            for out in child.outputs:
                if out.fd >= 0:
                    out.drain()
                    if out.fd >= 0:
                        self.loop.remove_reader(out.fd)
                        os.close(out.fd)
                        out.fd = -1
            if child.stdin >= 0:
                self.loop.remove_writer(child.stdin)
                try:
                    os.close(child.stdin)
                except OSError as exc:  # pragma: no cover
                    if exc.errno != errno.EBADF:
                        raise
                child.stdin = -1
        self.children.clear()
        for f in self.logfiles.values():
            f.close()
        for group in self.groups.values():
            self._close_sockets(group)

    def _close_sockets(self, group: Group) -> None:
        """Close a group's fcgi sockets, whatever children may still hold (UNKNOWN ones)."""
        for shared in group.sockets.values():
            shared.close()
        self._socket_refs = {
            pid: s for pid, s in self._socket_refs.items() if s not in group.sockets.values()
        }

    # -- lookups (RPC) -----------------------------------------------------------------

    def all_processes(self) -> list[Process]:
        return [p for g in self.ordered_groups() for p in g.ordered()]


def _secs(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)
