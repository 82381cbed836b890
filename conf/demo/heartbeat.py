#!/usr/bin/env python3
"""Demo strategy worker: touches --file every second and logs a line to stdout.

Every --comm-every seconds it also emits a PROCESS_COMMUNICATION message
(needs ``stdout_capture_maxbytes`` set on the program). Exits 0 on SIGTERM.
"""

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

BEGIN, END = "<!--XSUPERVISOR:BEGIN-->", "<!--XSUPERVISOR:END-->"


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--file", required=True, type=Path)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--comm-every", type=float, default=5.0)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)
    every = max(1, round(args.comm_every / args.interval))
    beat = 0
    try:
        while True:
            args.file.touch()
            beat += 1
            print(f"strategy heartbeat {beat}", flush=True)
            if beat % every == 0:
                sys.stdout.write(f"{BEGIN}heartbeat{END}")
                sys.stdout.flush()
            time.sleep(args.interval)
    finally:
        print("strategy stopping", flush=True)


if __name__ == "__main__":
    main()
