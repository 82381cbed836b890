#!/usr/bin/env python3
"""Demo risk worker: recomputes a toy value-at-risk every --interval seconds.

Exits 0 promptly on SIGTERM.
"""

import argparse
import os
import random
import signal
import statistics
import time
from types import FrameType


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--interval", type=float, default=2.0)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)
    name = os.environ.get("SUPERVISOR_PROCESS_NAME", "risk")
    book = [random.uniform(-1e6, 1e6) for _ in range(50)]
    run = 0
    try:
        while True:
            run += 1
            pnl = sorted(sum(p * random.gauss(0, 0.01) for p in book) for _ in range(200))
            var99 = -pnl[len(pnl) // 100]
            mean = statistics.fmean(pnl)
            print(f"{name} run {run}: VaR99={var99:,.0f} mean={mean:,.0f}", flush=True)
            time.sleep(args.interval)
    finally:
        print(f"{name} stopping", flush=True)


if __name__ == "__main__":
    main()
