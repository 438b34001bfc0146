"""HTTP API throughput and latency on loopback: 6 s clips at concurrency 1, 4 and 16, the ONNX
Runtime engine (the default) and the torch engine side by side, on a quiet machine and optionally
with busy processes on the cores.

    python bench/serve.py [--requests 48] [--seconds 60] [--engines onnx torch] [--busy 0] [--bf16]

Starts `speech2face serve --engine E` on a free loopback port, sends a bounded number of requests
per level (stopping early at the time bound), prints requests/s, p50/p95 latency and errors, stops
the server.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from busy import busy  # noqa: E402


def levels(base: str, clips: list[bytes], requests: int, seconds: float, label: str) -> None:
    for concurrency in (1, 4, 16):
        deadline = time.perf_counter() + seconds

        local = threading.local()

        def one(i: int):
            if time.perf_counter() > deadline:
                return None
            if not hasattr(local, "client"):  # one kept-alive connection per simulated user, as wrk or hey keep
                local.client = httpx.Client(timeout=120)  # (building a client costs ~20 ms of CPU: not the server's)
                clients.append(local.client)
            t = time.perf_counter()
            r = local.client.post(f"{base}/api/reconstruct", files={"audio": ("c.opus", clips[i % len(clips)])})
            return time.perf_counter() - t, r.status_code

        clients: list[httpx.Client] = []
        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = [r for r in pool.map(one, range(requests)) if r is not None]
        wall = time.perf_counter() - start
        for client in clients:
            client.close()
        lat = [t for t, code in results if code == 200]
        errors = sum(code != 200 for _, code in results)
        print(f"{label}, concurrency {concurrency:>2}: {len(results)} requests, {len(results) / wall:.1f} req/s, "
              f"p50 {statistics.median(lat) * 1000:.0f} ms, p95 {np.percentile(lat, 95) * 1000:.0f} ms, errors {errors}")


def serve(engine: str, clips: list[bytes], args: argparse.Namespace) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bf16 = args.bf16 and engine == "torch"
    server = subprocess.Popen([sys.executable, "-m", "speech2face", "serve", "--port", str(port), "--engine", engine]
                              + ["--bf16"] * bf16, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).json()["model_loaded"]:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        for _ in range(3):  # warm-up
            httpx.post(f"{base}/api/reconstruct", files={"audio": ("w.opus", clips[0])}, timeout=60)
        label = engine + ", --bf16" * bf16
        levels(base, clips, args.requests, args.seconds, label)
        if args.busy:
            with busy(args.busy):
                levels(base, clips, args.requests, args.seconds, f"{label}, {args.busy} busy processes")
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(here.parent / "shared" / "data" / "s2f-pairs"))
    parser.add_argument("--requests", type=int, default=48, help="requests per concurrency level, at most")
    parser.add_argument("--seconds", type=float, default=60.0, help="time bound per level")
    parser.add_argument("--engines", nargs="+", default=["onnx", "torch"], choices=("onnx", "torch"))
    parser.add_argument("--busy", type=int, default=0, help="busy processes for a second run (0: skip it)")
    parser.add_argument("--bf16", action="store_true", help="the torch engine with --bf16 (GE2E's LSTM in bfloat16)")
    args = parser.parse_args()
    clips = [p.read_bytes() for p in sorted(Path(args.data, "audio").glob("*.opus"))[:16]]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; server on loopback")
    for engine in args.engines:
        serve(engine, clips, args)


if __name__ == "__main__":
    main()
