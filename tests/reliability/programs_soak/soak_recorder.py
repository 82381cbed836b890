"""An event listener that records every event it receives, one line each, and acknowledges it.

Usage (as an ``[eventlistener:x]`` command): ``python soak_recorder.py OUTFILE``.
Each line of OUTFILE is ``<poolserial> <eventname> <payload's first line>``, written
line-buffered before the acknowledgement, so a line exists for every acknowledged event.
Payloads are decoded as UTF-8 with replacement (the soak's payloads are ASCII).
"""

from __future__ import annotations

import signal
import sys
from types import FrameType


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: list[str]) -> int:
    """Record events to ``argv[1]`` until stdin ends or SIGTERM."""
    signal.signal(signal.SIGTERM, _stop)
    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    with open(argv[1], "a", buffering=1, encoding="utf-8") as out:
        stdout.write(b"READY\n")
        stdout.flush()
        while True:
            line = stdin.readline()
            if not line:
                return 0
            headers = dict(tok.split(b":", 1) for tok in line.split())
            payload = stdin.read(int(headers[b"len"]))
            first = payload.split(b"\n", 1)[0].decode("utf-8", "replace")
            serial = headers[b"poolserial"].decode()
            out.write(f"{serial} {headers[b'eventname'].decode()} {first}\n")
            stdout.write(b"RESULT 2\nOKREADY\n")
            stdout.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
