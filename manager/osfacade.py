"""The operating-system calls of the core, behind one small facade.

The core never forks, signals or resolves commands itself: it asks an :class:`OS`.
:class:`RealOS` does it for real; tests of pure logic pass a hand-written fake.

Spawning uses :class:`subprocess.Popen` (fork+exec in C, exec errors reported
back to the parent), with each child in its own process group (``setpgid(0,0)``,
as supervisord's ``setpgrp``), its own pipes, ``close_fds``, and
``user``/``umask``/``cwd`` applied in the child. A spec's ``stdin`` fd (an
fcgi-program's socket) becomes the child's fd 0 instead of a pipe.
"""

from __future__ import annotations

import errno
import logging
import os
import pwd
import stat
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from manager.faults import Fault
from manager.watchdog import Watchdog

_log = logging.getLogger("vigild")

__all__ = ["OS", "RealOS", "SpawnError", "SpawnSpec", "Spawned", "resolve_command"]


class SpawnError(Exception):
    """A child could not be started. ``fault`` is the XML-RPC fault a start request gets."""

    def __init__(self, message: str, fault: Fault = Fault.SPAWN_ERROR) -> None:
        super().__init__(message)
        self.fault = fault


@dataclass(frozen=True)
class SpawnSpec:
    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: str | None = None
    umask: int | None = None
    user: str | None = None
    redirect_stderr: bool = False
    #: an fd to be the child's fd 0 (an fcgi-program's socket; the caller keeps it);
    #: ``None`` = a new pipe
    stdin: int | None = None


@dataclass(frozen=True)
class Spawned:
    pid: int
    #: None when the spec gave the child its stdin.
    stdin: int | None
    stdout: int
    #: None when stderr is redirected to stdout.
    stderr: int | None


class OS(Protocol):
    def spawn(self, spec: SpawnSpec) -> Spawned: ...

    def kill(self, pid: int, sig: int, *, group: bool) -> None: ...

    def released(self, pid: int) -> None:
        """``pid`` was reaped (it may be reused from now on)."""
        ...


def resolve_command(argv0: str, path: str | None) -> str:
    """Find the program to run as supervisord does, before forking (reference §3.8).

    Raises:
        SpawnError: with supervisord's spawnerr text and the fault a start request gets.
    """
    if "/" in argv0:
        candidates = [argv0]
    else:
        dirs = (path or "/bin:/usr/bin:/usr/local/bin").split(os.pathsep)
        candidates = [os.path.join(d, argv0) for d in dirs]
    for filename in candidates:
        try:
            st = os.stat(filename)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            raise SpawnError(f"command at {filename!r} is a directory", Fault.NOT_EXECUTABLE)
        if not st.st_mode & 0o111:
            raise SpawnError(f"command at {filename!r} is not executable", Fault.NOT_EXECUTABLE)
        if not os.access(filename, os.X_OK):
            raise SpawnError(f"no permission to run command {filename!r}", Fault.NOT_EXECUTABLE)
        return filename
    raise SpawnError(f"can't find command {argv0!r}", Fault.NO_FILE)


class RealOS:
    """The real thing.

    ``watchdog``: told of every child spawned and reaped, so that it can kill the
    children if vigild dies (see :mod:`manager.watchdog`).
    """

    def __init__(self, *, watchdog: Watchdog | None = None) -> None:
        self._watchdog = watchdog
        #: Children spawned and not reaped yet (told to a replacement watchdog).
        self._live: set[int] = set()

    def spawn(self, spec: SpawnSpec) -> Spawned:
        if not spec.argv:
            raise SpawnError("empty command", Fault.NOT_EXECUTABLE)
        program = resolve_command(spec.argv[0], spec.env.get("PATH"))
        user = group = None
        extra_groups: list[int] | None = None
        if spec.user is not None:
            try:
                pw = (
                    pwd.getpwnam(spec.user)
                    if not spec.user.isdigit()
                    else pwd.getpwuid(int(spec.user))
                )
            except KeyError:
                raise SpawnError(f"couldn't find user {spec.user!r}") from None
            if os.getuid() == 0:
                user, group = pw.pw_uid, pw.pw_gid
                extra_groups = os.getgrouplist(pw.pw_name, pw.pw_gid)
            elif os.getuid() != pw.pw_uid:
                raise SpawnError(f"can't run as user {spec.user!r}: vigild is not root")
        outputs = [os.pipe() for _ in range(1 if spec.redirect_stderr else 2)]
        # no stdin pipe when the spec brings the child's fd 0 (-1: nothing to close)
        fds = [os.pipe() if spec.stdin is None else (-1, -1), *outputs]
        (in_r, in_w), (out_r, out_w) = fds[0], fds[1]
        err_r, err_w = fds[2] if len(fds) == 3 else (None, None)
        argv, executable = list(spec.argv), program
        try:
            p = subprocess.Popen(
                argv,
                executable=executable,
                stdin=in_r if spec.stdin is None else spec.stdin,
                stdout=out_w,
                stderr=subprocess.STDOUT if err_w is None else err_w,
                cwd=spec.cwd,
                env=dict(spec.env),
                umask=-1 if spec.umask is None else spec.umask,
                user=user,
                group=group,
                extra_groups=extra_groups,
                process_group=0,
                close_fds=True,
            )
        except BaseException as exc:
            for pair in fds:
                for fd in pair:
                    if fd >= 0:
                        os.close(fd)
            if isinstance(exc, FileNotFoundError):
                if spec.cwd is not None and exc.filename == spec.cwd:
                    raise SpawnError(f"couldn't chdir to {spec.cwd}: ENOENT") from None
                raise SpawnError(f"can't find command {spec.argv[0]!r}", Fault.NO_FILE) from None
            if isinstance(exc, PermissionError):
                raise SpawnError(
                    f"no permission to run command {program!r}: {exc.strerror}",
                    Fault.NOT_EXECUTABLE,
                ) from None
            if isinstance(exc, OSError):
                name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
                raise SpawnError(
                    f"couldn't spawn {spec.argv[0]!r}: {name}: {exc.strerror}"
                ) from None
            raise
        if in_r >= 0:
            os.close(in_r)
        os.close(out_w)
        if err_w is not None:
            os.close(err_w)
        # The core reaps with waitpid(-1): keep Popen from ever waiting for or warning about it.
        p.returncode = 0
        self._live.add(p.pid)
        if self._watchdog is not None:
            self._watchdog.spawned(p.pid)
        return Spawned(pid=p.pid, stdin=in_w if in_w >= 0 else None, stdout=out_r, stderr=err_r)

    def released(self, pid: int) -> None:
        """A child was reaped — or the watchdog itself, which is then replaced."""
        self._live.discard(pid)
        watchdog = self._watchdog
        if watchdog is None:
            return
        if pid != watchdog.pid:
            watchdog.reaped(pid)
        elif watchdog.restart(self._live):
            _log.warning(
                "the orphan watchdog (pid %d) died; a new one (pid %d) watches %d children",
                pid,
                watchdog.pid,
                len(self._live),
            )
        else:
            _log.error(
                "the orphan watchdog (pid %d) died and cannot be replaced: children will "
                "outlive vigild if it is killed",
                pid,
            )

    def kill(self, pid: int, sig: int, *, group: bool) -> None:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
