"""A lean event listener for benchmarks: timestamps every event as it arrives.

Writes one line per event to $BENCH_OUT: ``<time.time()> <eventname> <payload first line>``
(line-buffered), or with $BENCH_COUNT_ONLY=1 only ``<time> <count>`` every 1000 events.
"""

import os
import signal
import sys
import time


def _stop(signum, frame):  # type: ignore[no-untyped-def]
    raise SystemExit(0)


signal.signal(signal.SIGTERM, _stop)

out = open(os.environ["BENCH_OUT"], "a", buffering=1)  # noqa: SIM115 (lives as long as the process)
count_only = os.environ.get("BENCH_COUNT_ONLY") == "1"
stdin = sys.stdin.buffer
stdout = sys.stdout.buffer
n = 0
stdout.write(b"READY\n")
stdout.flush()
try:
    while True:
        line = stdin.readline()
        if not line:
            break
        now = time.time()
        headers = dict(tok.split(b":", 1) for tok in line.split())
        payload = stdin.read(int(headers[b"len"]))  # ASCII payloads only in the benchmarks
        n += 1
        if count_only:
            if n % 1000 == 0:
                out.write(f"{now} {n}\n")
        else:
            first = payload.split(b"\n", 1)[0].decode()
            out.write(f"{now} {headers[b'eventname'].decode()} {first}\n")
        stdout.write(b"RESULT 2\nOKREADY\n")
        stdout.flush()
finally:
    if count_only:
        out.write(f"{time.time()} {n} final\n")
