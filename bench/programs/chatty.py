"""Emits --n capture blocks (one PROCESS_COMMUNICATION_STDOUT event each), then sleeps."""

import argparse
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, default=5000)
ap.add_argument("--delay", type=float, default=0.5, help="seconds to wait before emitting")
args = ap.parse_args()
time.sleep(args.delay)
block = b"<!--XSUPERVISOR:BEGIN-->tick<!--XSUPERVISOR:END-->\n"
out = sys.stdout.buffer
out.write(block * args.n)  # one write: the pipe paces it, the producer costs no CPU
out.flush()
time.sleep(3600)
