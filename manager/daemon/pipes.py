"""One child's pipes: :class:`Output` reads a stdout/stderr pipe into the log file, events
or (a listener's stdout) its pool; :class:`Child` holds a child's outputs and its stdin.

An :class:`Output` whose events go to a full pool pauses (its fd unregistered) and asks
its host to watch that pool for a stall; the host resumes it when the pool has room
(:mod:`manager.daemon.pacing`). An output of a reaped child closes once drained — a
paused one once it has been resumed and drained.
"""

from __future__ import annotations

import os
from typing import Protocol

from manager.capture import Captured, LogData, OutputChannel, decode_output
from manager.config import Config, LogConfig
from manager.events import Event, EventType, ProcessCommunication, ProcessLog
from manager.logfiles import RotatingFile
from manager.loop import Loop
from manager.pool import ListenerPool
from manager.process import Process

__all__ = ["Child", "Output", "OutputHost"]

E = EventType
_READ = 131072


class OutputHost(Protocol):
    """What an :class:`Output` uses of the supervisor."""

    loop: Loop
    config: Config
    #: the outputs paused for backpressure
    paused: set[Output]

    def subscribers(self, t: EventType) -> list[ListenerPool]:
        """The pools an event of type ``t`` goes to."""
        ...

    def room_for(self, pool: ListenerPool) -> bool:
        """May producers go on feeding ``pool``?"""
        ...

    def watch_stall(self, pool: ListenerPool) -> None:
        """Someone waits on the full ``pool``."""
        ...

    def emit(self, event: Event) -> None: ...

    def outputs_closed(self, out: Output) -> None:
        """``out`` closed its fd (the child's I/O is released once all are closed)."""
        ...


class Output:
    """One output pipe of one child."""

    def __init__(
        self,
        sup: OutputHost,
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


class Child:
    """The live I/O of one spawned child: its outputs and its stdin."""

    def __init__(self, pid: int, stdin: int) -> None:
        self.pid = pid
        self.stdin = stdin
        self.outputs: list[Output] = []
        self.pending = bytearray()
