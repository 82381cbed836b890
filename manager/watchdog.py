"""A watchdog that kills vigild's children if vigild itself dies (SIGKILL, crash).

supervisord leaves its children running as orphans when it is killed (reference §8,
#168/#1101), and a restarted supervisord then starts a second copy of everything.
vigild forks this watchdog once at start-up. It holds the read end of a pipe whose
write end only vigild has (close-on-exec, so children never inherit it); vigild
writes ``+PID`` when it spawns a child and ``-PID`` when it reaps one. When the
pipe reports EOF — vigild has exited, however it died — the watchdog SIGKILLs the
process group of every child still registered (each child leads its own group)
and exits. After a clean shutdown every child was reaped, so it kills nothing.
If the watchdog itself dies (killed by hand, by the OOM killer), vigild reaps it and
:meth:`Watchdog.restart` forks a new one that is told of every live child.

Costs: one fork at start-up and one short write per spawn and per reap (a
``preexec_fn`` doing ``PR_SET_PDEATHSIG`` would make every spawn a full fork of the
daemon instead). The watchdog ignores SIGINT/SIGTERM/SIGHUP/SIGQUIT, so a Ctrl-C to
the terminal's process group does not take it down before vigild has stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable

__all__ = ["Watchdog"]


class Watchdog:
    """The vigild side: register and forget children; ``close()`` at clean exit."""

    def __init__(self, fd: int, pid: int) -> None:
        self._fd = fd
        #: The watchdog's own pid.
        self.pid = pid

    @classmethod
    def start(cls) -> Watchdog:
        r, w = os.pipe()  # both close-on-exec: no child inherits them
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the forked watchdog
            try:
                os.close(w)
                _watch(r)
            finally:
                os._exit(0)
        os.close(r)
        return cls(w, pid)

    def _send(self, line: str) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.write(self._fd, line.encode())

    def spawned(self, pid: int) -> None:
        self._send(f"+{pid}\n")

    def reaped(self, pid: int) -> None:
        self._send(f"-{pid}\n")

    def restart(self, live: Iterable[int]) -> bool:
        """The watchdog died (vigild reaped it): fork a new one watching ``live``.

        Returns False if it could not be forked; orphan protection is then off.
        """
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        try:
            new = Watchdog.start()
        except OSError:
            return False
        self._fd, self.pid = new._fd, new.pid
        for pid in live:
            self.spawned(pid)
        return True

    def close(self) -> None:
        """Clean exit: EOF for the watchdog, which then exits (killing nothing left)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)


def _watch(fd: int) -> None:  # pragma: no cover - runs in the forked watchdog
    os.closerange(3, fd)  # listening sockets, logs, the loop's wakeup pipe: not ours
    os.closerange(fd + 1, os.sysconf("SC_OPEN_MAX"))
    signal.set_wakeup_fd(-1)
    for s in (
        signal.SIGINT,
        signal.SIGTERM,
        signal.SIGHUP,
        signal.SIGQUIT,
        signal.SIGUSR1,
        signal.SIGUSR2,
    ):
        signal.signal(s, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    children: set[int] = set()
    pending = b""
    while True:
        try:
            data = os.read(fd, 65536)
        except InterruptedError:
            continue
        if not data:
            break
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line[:1] == b"+":
                children.add(int(line[1:]))
            elif line[:1] == b"-":
                children.discard(int(line[1:]))
    for pid in children:
        for kill in (os.killpg, os.kill):
            with contextlib.suppress(OSError):
                kill(pid, signal.SIGKILL)
