"""One ``fg <process>`` session: the process's output on screen, the user's lines to its stdin.

Theory of operation
-------------------
:class:`Foreground` does what supervisorctl's ``do_fg`` does once the process is known
to be RUNNING. Two daemon threads follow ``/logtail/<name>/stdout`` and ``/stderr``
(:class:`~manager.ctl.stream.LogStream`) and write what arrives; the calling thread
reads a line at a time (``input()``) and sends it, with a newline, through
``supervisor.sendProcessStdin``, then checks the process is still RUNNING. The session
ends, after ``Exiting foreground``, on:

* Ctrl-C (``KeyboardInterrupt``) or the end of input (``EOFError``);
* ``sendProcessStdin`` failing: ``Process got killed`` for NOT_RUNNING, else
  ``ERROR: <Fault n: 'TEXT'>`` (supervisorctl prints the fault object);
* the process no longer RUNNING after a line was sent: ``Process got killed``.

The exit status is left as it was (0), as supervisorctl leaves it; any other failure
propagates (the ``error:`` line, exit 1).

Two deliberate differences from supervisorctl:

* supervisorctl notices a process that stopped only when the next line is typed;
  here a watcher thread polls ``getProcessInfo`` every :data:`POLL_INTERVAL` seconds
  and ends the session (``Process got killed``) by itself. To interrupt the blocking
  ``input()`` it sends SIGURG to the calling thread, whose handler (installed for the
  session only) raises :class:`ProcessStopped`. SIGURG is ignored by default, so a
  signal that arrives after the session restored the old handler does nothing. Signal
  handlers exist only in the main thread: elsewhere there is no watcher and a stop is
  noticed at the next line, as in supervisorctl.
* The streams end before ``Exiting foreground`` is printed and the command returns at
  once; supervisorctl's stream thread lingers up to 30 s (its ``select`` timeout)
  before the program exits.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, TextIO

from manager.ctl.formatting import fault_repr
from manager.ctl.stream import LogStream
from manager.faults import Fault
from manager.rpcclient import RPCError, RPCFault, ServerURL

__all__ = ["POLL_INTERVAL", "Foreground", "ProcessStopped"]

#: ``manager.states.ProcessState.RUNNING``, kept here so that vigilctl starts without
#: importing the state tables (a test holds them equal)
RUNNING = 20
#: seconds between the watcher's ``getProcessInfo`` calls
POLL_INTERVAL = 0.5
#: seconds allowed for connecting a stream
CONNECT_TIMEOUT = 10.0
#: seconds to wait for a stream thread after its socket was shut down
JOIN_TIMEOUT = 2.0
#: what the watcher sends the reading thread (default action: ignore)
WAKE_SIGNAL = signal.SIGURG


class ProcessStopped(Exception):
    """Raised in the reading thread (by the SIGURG handler) when the process stopped."""


class Foreground:
    """``fg <name>`` for a process that is RUNNING (the caller checked).

    Args:
        name: the process (``name`` or ``group:name``).
        call: ``call("sendProcessStdin", name, data)``: an RPC of the ``supervisor``
            namespace; it may be called from two threads at once.
        out: the output; stream text and the closing messages go there.
        err: stream failures go there (``<url>/logtail/... Cannot read, ...``).
        read_line: reads one line without its newline; ``EOFError`` at the end.
        target, url, username, password: the server, for the ``/logtail`` streams.
        poll_interval: seconds between the watcher's polls.
    """

    def __init__(
        self,
        name: str,
        *,
        call: Callable[..., Any],
        out: TextIO,
        err: TextIO,
        read_line: Callable[[], str],
        target: ServerURL,
        url: str,
        username: str | None,
        password: str | None,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.name = name
        self._call = call
        self._out = out
        self._err = err
        self._read_line = read_line
        self._poll_interval = poll_interval
        self._lock = threading.Lock()
        self._ended = False
        self._streams = [
            LogStream(
                target,
                f"/logtail/{name}/{channel}",
                url=url,
                username=username,
                password=password,
                write=self._write,
                error=self._error,
                timeout=CONNECT_TIMEOUT,
            )
            for channel in ("stdout", "stderr")
        ]

    def run(self) -> None:
        """Run the session until it ends (see the module docstring); print how it ended."""
        watcher = _StopWatcher(self._running, self._poll_interval)
        threads: list[threading.Thread] = []
        messages: list[str] | None = None
        # ProcessStopped can arrive anywhere until the watcher is stopped, even while a
        # Ctrl-C is being handled or in _detach(); the handler raises it once at most
        for _ in range(2):
            try:
                if messages is None:
                    messages = self._attached(watcher, threads)
                self._detach(watcher, threads)
                break
            except ProcessStopped:
                if messages is None:
                    messages = ["Process got killed"]
        for message in [*(messages or []), "Exiting foreground"]:
            self._out.write(message + "\n")
        self._out.flush()

    # -- the session

    def _attached(self, watcher: _StopWatcher, threads: list[threading.Thread]) -> list[str]:
        """Start following and forward lines until the session ends; return what to print.

        Raises:
            ProcessStopped: the watcher saw the process stop.
        """
        try:
            for stream in self._streams:
                thread = threading.Thread(target=stream.run, name=stream.path, daemon=True)
                thread.start()
                threads.append(thread)
            watcher.start()
            return self._forward()
        except (KeyboardInterrupt, EOFError):
            return []

    def _detach(self, watcher: _StopWatcher, threads: list[threading.Thread]) -> None:
        """Stop the watcher and the streams (again, if cut short the first time)."""
        watcher.stop()
        for stream in self._streams:
            stream.close()
        with self._lock:
            self._ended = True  # nothing written after this
        for thread in threads:
            thread.join(JOIN_TIMEOUT)

    def _forward(self) -> list[str]:
        """Send each line read to the process, until it is gone."""
        while True:
            line = self._read_line() + "\n"
            try:
                self._call("sendProcessStdin", self.name, line)
            except RPCFault as exc:
                if exc.code == Fault.NOT_RUNNING:
                    return ["Process got killed"]
                return [f"ERROR: {fault_repr(exc)}"]
            if not self._running():
                return ["Process got killed"]

    def _running(self) -> bool:
        return bool(self._call("getProcessInfo", self.name)["state"] == RUNNING)

    # -- what the streams write

    def _write(self, text: str) -> None:
        with self._lock:
            if self._ended:
                return
            try:
                self._out.write(text)
                self._out.flush()
            except (OSError, ValueError):
                pass  # stdout is gone: the reading thread finds out for itself

    def _error(self, message: str) -> None:
        with self._lock:
            if self._ended:
                return
            try:
                self._err.write(message + "\n")
                self._err.flush()
            except (OSError, ValueError):
                pass


class _StopWatcher:
    """Polls ``running()`` in a thread; when it turns false, wakes the starting thread.

    The wake-up is :data:`WAKE_SIGNAL` sent to that thread, whose handler raises
    :class:`ProcessStopped` while :attr:`armed`. Only the main thread can have signal
    handlers: started from another thread, the watcher does nothing.
    """

    def __init__(self, running: Callable[[], bool], interval: float) -> None:
        self._running = running
        self._interval = interval
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._previous: Any = None
        self._installed = False
        #: whether the handler may raise :class:`ProcessStopped` (it disarms itself)
        self.armed = False

    def start(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._previous = signal.signal(WAKE_SIGNAL, self._on_signal)
        self._installed = True
        self.armed = True
        target = threading.get_ident()
        threading.Thread(target=self._watch, args=(target,), name="fg watcher", daemon=True).start()

    def stop(self) -> None:
        """Disarm and stop polling; a signal already on its way is then ignored."""
        self.armed = False
        with self._lock:
            self._done.set()
        if self._installed:
            self._installed = False
            previous = signal.SIG_DFL if self._previous is None else self._previous
            signal.signal(WAKE_SIGNAL, previous)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.armed:
            self.armed = False
            raise ProcessStopped

    def _watch(self, target: int) -> None:
        while not self._done.wait(self._interval):
            try:
                if self._running():
                    continue
            except RPCError:
                return  # the next line typed runs into the same trouble and reports it
            with self._lock:
                if not self._done.is_set():
                    signal.pthread_kill(target, WAKE_SIGNAL)
            return
