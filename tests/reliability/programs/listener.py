"""Fault-injection event listeners (raw protocol, no dependencies): ``listener.py MODE ARGS``.

Modes:

``record FILE [RELEASE]``
    Appends ``pid serial poolserial eventname ident`` for every event to FILE, flushed and
    fsynced **before** answering, where ``ident`` is the last line of the payload (the data of a
    REMOTE_COMMUNICATION event, the ``processname:`` token of a state event otherwise). Without
    RELEASE it answers OK at once. With RELEASE it holds every event it has not seen before
    (not already in FILE) un-acknowledged until the file RELEASE exists — the driver SIGKILLs it
    meanwhile; an event already in FILE (a redelivery) is acknowledged at once.
``fail``
    Answers ``RESULT 4\\nFAIL`` to every event, forever.
``garbage``
    Answers bytes that are no RESULT line to the first event (the core should stop sending),
    then keeps writing garbage, 1 KiB every 10 ms, forever (the core must discard it).
``silent``
    Says READY, takes one event and never answers.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import BinaryIO

GARBAGE = b"\x00\xffthis is not a RESULT line\n\x01\x02garbage garbage garbage\n"


def _ready(out: BinaryIO) -> None:
    out.write(b"READY\n")
    out.flush()


def _read_event(inp: BinaryIO) -> tuple[dict[str, str], bytes] | None:
    """The next (header tokens, payload), or None at EOF."""
    line = inp.readline()
    if not line:
        return None
    header = dict(tok.split(":", 1) for tok in line.decode().split())
    payload = inp.read(int(header["len"]))
    return header, payload


def _ident(header: dict[str, str], payload: bytes) -> str:
    text = payload.decode(errors="replace")
    if header["eventname"] == "REMOTE_COMMUNICATION":
        return text.partition("\n")[2].strip() or "-"
    for tok in text.split():
        if tok.startswith("processname:"):
            return tok.split(":", 1)[1]
    return "-"


def record(path: Path, release: Path | None) -> None:
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    pid = os.getpid()
    with path.open("a") as rec:
        while True:
            _ready(out)
            got = _read_event(inp)
            if got is None:
                return
            header, payload = got
            ident = _ident(header, payload)
            seen = release is not None and any(
                line.split()[4] == ident for line in path.read_text().splitlines() if line
            )
            rec.write(
                f"{pid} {header['serial']} {header['poolserial']} {header['eventname']} {ident}\n"
            )
            rec.flush()
            os.fsync(rec.fileno())
            if release is not None and not seen:
                while not release.exists():  # the driver kills us here
                    time.sleep(0.005)
            out.write(b"RESULT 2\nOK")
            out.flush()


def fail() -> None:
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    while True:
        _ready(out)
        if _read_event(inp) is None:
            return
        out.write(b"RESULT 4\nFAIL")
        out.flush()


def garbage() -> None:
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    _ready(out)
    if _read_event(inp) is None:
        return
    out.write(GARBAGE)
    out.flush()
    chunk = (GARBAGE * (1024 // len(GARBAGE) + 1))[:1024]
    while True:
        out.write(chunk)
        out.flush()
        time.sleep(0.01)


def silent() -> None:
    _ready(sys.stdout.buffer)
    while True:
        time.sleep(600)


def main() -> None:
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "record":
        record(Path(args[0]), Path(args[1]) if len(args) > 1 else None)
    elif mode == "fail":
        fail()
    elif mode == "garbage":
        garbage()
    elif mode == "silent":
        silent()
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
