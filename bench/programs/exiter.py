"""Runs for --after seconds, stamps ``<pid> <time.time()>`` to --stamp, then exits 1 at once."""

import argparse
import os
import time

ap = argparse.ArgumentParser()
ap.add_argument("--after", type=float, default=0.3)
ap.add_argument("--stamp", required=True)
args = ap.parse_args()
time.sleep(args.after)
fd = os.open(args.stamp, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.write(fd, f"{os.getpid()} {time.time()}\n".encode())
os._exit(1)
