"""Exec check: a command that exits 0 within the timeout (Kubernetes ``exec``).

Decisions:

* A **string** runs through ``/bin/sh -c`` (so ``curl -fs URL || exit 1`` and
  ``$VAR`` work as written in the config file); a **sequence** is an argv run
  directly, with no shell.
* The command runs in its own session (``setsid``), so on timeout the whole
  process group is killed with SIGKILL (the shell and what it started), and
  then reaped.
* stdout and stderr are merged; only the last :data:`OUTPUT_TAIL` bytes are
  kept (memory stays bounded however chatty the command is) and quoted in the
  detail, decoded as UTF-8 with replacement.
* ``env`` is merged over the inherited environment (as supervisord's
  ``environment=``); stdin is ``/dev/null``.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence

from healthchecks.result import CheckResult, Clock, run_guarded

__all__ = ["OUTPUT_TAIL", "ExecCheck"]

#: Bytes of output kept for the detail.
OUTPUT_TAIL = 500
SHELL = "/bin/sh"


class ExecCheck:
    """Run ``command``; passes iff it exits 0 within ``timeout`` seconds.

    Raises:
        ValueError: an empty command or a non-positive timeout.
    """

    def __init__(
        self,
        command: str | Sequence[str],
        *,
        timeout: float = 1.0,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        if isinstance(command, str):
            if not command.strip():
                raise ValueError("empty command")
            self.argv: tuple[str, ...] = (SHELL, "-c", command)
        else:
            if not command:
                raise ValueError("empty command")
            self.argv = tuple(command)
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.timeout = float(timeout)
        self.env = None if env is None else dict(env)
        self.cwd = cwd
        self._clock = clock

    def check(self) -> CheckResult:
        """Run the command once; never raises."""
        return run_guarded(self._check, self._clock)

    def close(self) -> None:
        """Nothing is held between checks."""

    def __repr__(self) -> str:
        return f"ExecCheck({list(self.argv)!r})"

    def _check(self) -> tuple[bool, str]:
        deadline = self._clock() + self.timeout
        env = None if self.env is None else {**os.environ, **self.env}
        try:
            proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
            )
        except OSError as exc:
            return False, f"cannot run {self.argv[0]!r}: {exc.strerror or exc}"
        with proc:
            assert proc.stdout is not None
            tail, finished = _read_tail(proc.stdout.fileno(), deadline, self._clock)
            if finished:
                try:
                    code = proc.wait(max(0.0, deadline - self._clock()))
                except subprocess.TimeoutExpired:
                    finished = False
            if not finished:
                _kill_group(proc)
                return False, _with_output(f"timeout after {self.timeout}s", tail)
        if code == 0:
            return True, _with_output("exit 0", tail)
        if code < 0:
            return False, _with_output(f"killed by {_signal_name(-code)}", tail)
        return False, _with_output(f"exit {code}", tail)


def _read_tail(fd: int, deadline: float, clock: Clock) -> tuple[bytes, bool]:
    """Read ``fd`` to EOF keeping the last bytes; ``False`` if the deadline came first."""
    tail = bytearray()
    os.set_blocking(fd, False)
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - clock()
            if left <= 0 or not selector.select(left):
                return bytes(tail), False
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                return bytes(tail), True
            tail += chunk
            del tail[:-OUTPUT_TAIL]


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the command's process group (it leads its own session), then reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _with_output(said: str, tail: bytes) -> str:
    text = tail.decode("utf-8", errors="replace").strip()
    return f"{said}: {text}" if text else said
