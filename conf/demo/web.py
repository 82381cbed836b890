#!/usr/bin/env python3
"""Demo market-data service: GET /healthz -> 200 ok, GET /quote -> a JSON quote.

Fault switch for health-check demos: if the file named by $DEMO_FAULT_FILE contains
``500`` /healthz answers 500, if it contains ``hang`` /healthz never answers.
"""

import argparse
import json
import os
import random
import signal
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

PRICE = {"EURUSD": 1.0850, "GBPUSD": 1.2700, "USDJPY": 151.20}


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def fault() -> str:
    path = os.environ.get("DEMO_FAULT_FILE", "")
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/healthz":
            mode = fault()
            if mode == "hang":
                while True:
                    time.sleep(3600)
            if mode == "500":
                self.reply(500, "text/plain", b"fault injected\n")
            else:
                self.reply(200, "text/plain", b"ok")
        elif path == "/quote":
            sym = random.choice(sorted(PRICE))
            mid = PRICE[sym] = round(PRICE[sym] * (1 + random.gauss(0, 0.0002)), 5)
            quote = {"symbol": sym, "bid": round(mid - 1e-4, 5), "ask": round(mid + 1e-4, 5)}
            self.reply(200, "application/json", json.dumps({**quote, "ts": time.time()}).encode())
        else:
            self.reply(404, "text/plain", b"not found\n")

    def reply(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8081)
    args = ap.parse_args()
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    signal.signal(signal.SIGTERM, on_sigterm)
    print(f"marketdata listening on http://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
