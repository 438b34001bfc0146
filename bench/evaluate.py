"""The evaluation protocol end to end on real pairs: `speech2face evaluate --model shipped` on N
pairs, run twice — the first fills the image-score cache, the second is the warm figure.

    python bench/evaluate.py [--pairs 250] [--data ../shared/data/s2f-pairs]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(here.parent / "shared" / "data" / "s2f-pairs"))
    parser.add_argument("--pairs", type=int, default=250)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "speech2face", "evaluate", "--data", args.data, "--model", "shipped",
                   "--limit", str(args.pairs), "--cache", f"{tmp}/scores.jsonl", "--quiet"]
        for label in ("cold cache", "warm cache"):
            t = time.perf_counter()
            subprocess.run(command + ["--out", f"{tmp}/{label.split()[0]}"], check=True, capture_output=True)
            print(f"evaluate --model shipped on {args.pairs} pairs, {label}: {time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()
