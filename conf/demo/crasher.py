#!/usr/bin/env python3
"""Demo feed handler that cannot connect: exits with --status after --delay seconds.

With ``startsecs`` longer than --delay supervisord counts every run as a failed start
and the program ends in FATAL after ``startretries``.
"""

import argparse
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--delay", type=float, default=0.2)
    ap.add_argument("--status", type=int, default=3)
    args = ap.parse_args()
    print("feedhandler connecting to exchange gateway...", flush=True)
    time.sleep(args.delay)
    print("feedhandler: connection refused by gateway, giving up", file=sys.stderr, flush=True)
    sys.exit(args.status)


if __name__ == "__main__":
    main()
