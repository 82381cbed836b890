"""How fast a listener is READY again after each event, while its plugin works 1 s per event.

Side by side in one run, each driven over real pipes by the supervisor half of the protocol
(envelope written -> ``RESULT ... READY`` read back):

* ``vigil-listener`` with a plugin whose handler sleeps 1 s (queued, the default);
* ``vigil-listener`` acknowledging only (no plugin): the floor;
* a superlance-style listener (``supervisor.childutils``) doing the same 1 s of work before it
  answers, which is how httpok/crashmail/memmon are written.

Usage: ``python -m bench.listener_ready [--events N]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from manager.events import EventType, ProcessStateChange
from manager.protocol import NEED_DATA, Ready, Result, SupervisorConnection

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

CHILDUTILS_LISTENER = """
import sys, time
from supervisor import childutils
while True:
    headers, payload = childutils.listener.wait(sys.stdin, sys.stdout)
    time.sleep(1.0)
    childutils.listener.ok(sys.stdout)
"""


def measure(argv: list[str], events: int) -> list[float]:
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
        assert p.stdin is not None and p.stdout is not None
        sv = SupervisorConnection(server="bench", pool="p")

        def expect(kind: type) -> None:
            while (item := sv.next_event()) is NEED_DATA:
                data = os.read(p.stdout.fileno(), 4096)  # type: ignore[union-attr]
                if not data:
                    raise RuntimeError(f"{argv[0]} exited")
                sv.receive_data(data)
            assert isinstance(item, kind), item

        expect(Ready)
        samples = []
        for serial in range(events):
            ev = ProcessStateChange(
                EventType.PROCESS_STATE_RUNNING, "web", "web", "STARTING", pid=1000 + serial
            )
            t0 = time.perf_counter()
            p.stdin.write(sv.send_event(ev, serial=serial, poolserial=serial))
            p.stdin.flush()
            expect(Result)
            expect(Ready)
            samples.append(time.perf_counter() - t0)
        p.stdin.close()
        p.kill()
        p.wait()
        p.stdout.close()
    return samples


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--childutils-events", type=int, default=5)
    args = ap.parse_args()
    listener = str(BIN / "vigil-listener")
    runs = [
        (
            "vigil-listener, 1 s plugin (queued)",
            [listener, "--plugins", "tests.support.plugins:slow"],
            args.events,
        ),
        ("vigil-listener, ack only", [listener, "--plugins", ""], args.events),
        (
            "childutils listener, 1 s work (superlance style)",
            [sys.executable, "-c", CHILDUTILS_LISTENER],
            args.childutils_events,
        ),
    ]
    print("| listener | events | READY after event p50 | p99 | max |")
    print("|---|---|---|---|---|")
    results = {}
    for label, argv, n in runs:
        s = measure(argv, n)
        results[label] = s
        print(
            f"| {label} | {n} | {statistics.median(s) * 1e3:.2f} ms | "
            f"{pct(s, 0.99) * 1e3:.2f} ms | {max(s) * 1e3:.2f} ms |"
        )
    ours = pct(results[runs[0][0]], 0.99)
    theirs = pct(results[runs[2][0]], 0.99)
    print(f"\nratio (childutils p99 / vigil p99): {theirs / ours:.0f}x")


if __name__ == "__main__":
    main()
