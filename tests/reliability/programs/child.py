"""Misbehaving children for the core-fault scenarios: ``child.py MODE ARGS``.

Modes:

``ignore-term``
    Ignores SIGTERM and sleeps (only SIGKILL stops it).
``daemonize PIDFILE``
    Forks; the child stays in the process group, ignores SIGHUP/SIGTERM, writes its pid to
    PIDFILE (one line, appended) and sleeps; the parent exits 0 at once — a classic
    daemonizing program whose daemon escapes the supervisor.
``group N PIDFILE [leader-exits]``
    Forks N children in its process group, all ignoring SIGTERM, writes every pid of the group
    (the leader's first) to PIDFILE and sleeps. With ``leader-exits`` the leader itself exits 0
    on SIGTERM (its children still ignore it).
``talk PROGRESS``
    Writes 200-byte lines to stdout, about 1,000 a second, forever, and every 10 lines the
    count written so far to PROGRESS — it stops counting when its stdout blocks.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path


def forever() -> None:
    while True:
        time.sleep(600)


def append_pid(path: Path, pid: int) -> None:
    with path.open("a") as f:
        f.write(f"{pid}\n")
        f.flush()
        os.fsync(f.fileno())


def main() -> None:
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        forever()
    elif mode == "daemonize":
        if os.fork() == 0:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            append_pid(Path(args[0]), os.getpid())
            forever()
        os._exit(0)
    elif mode == "group":
        n, pidfile = int(args[0]), Path(args[1])
        leader_exits = args[2:] == ["leader-exits"]
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        kids = []
        for _ in range(n):
            pid = os.fork()
            if pid == 0:
                forever()
            kids.append(pid)
        if leader_exits:
            signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(0))
        tmp = pidfile.with_name(pidfile.name + ".tmp")
        tmp.write_text("".join(f"{p}\n" for p in [os.getpid(), *kids]))
        os.replace(tmp, pidfile)
        forever()
    elif mode == "talk":
        progress, i = Path(args[0]), 0
        scratch = progress.with_name(progress.name + ".tmp")
        while True:
            for _ in range(10):
                sys.stdout.write(f"line-{i:09d} ".ljust(199, "x") + "\n")
                i += 1
            sys.stdout.flush()
            scratch.write_text(str(i))
            os.replace(scratch, progress)  # readers never see a half-written count
            time.sleep(0.01)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
