"""Voice → face speed on CPU: warm latency per 6 s clip (median, p95), cold start of the CLI for one
clip, batch throughput, peak memory. Real clips from ../shared/data/s2f-pairs.

    python bench/reconstruct.py [--clips 40] [--data ../shared/data/s2f-pairs]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(here.parent / "shared" / "data" / "s2f-pairs"))
    parser.add_argument("--clips", type=int, default=40)
    args = parser.parse_args()
    clips = sorted(Path(args.data, "audio").glob("*.opus"))[: args.clips]
    if not clips:
        sys.exit(f"no clips in {args.data}/audio")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")

    with tempfile.TemporaryDirectory() as tmp:  # cold: a new process, imports and weights included
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "speech2face", "reconstruct", str(clips[0]), "-o", f"{tmp}/face.png",
                        "--device", "cpu"], check=True, capture_output=True)
        cold = time.perf_counter() - t
    print(f"cold CLI, one clip: {cold:.2f} s")

    from speech2face import load_model

    model = load_model(device="cpu")
    model.reconstruct(clips[0])  # warm-up
    times = []
    for clip in clips:
        t = time.perf_counter()
        model.reconstruct(clip)  # decode file + resample + embed + encode + decode face
        times.append(time.perf_counter() - t)
    print(f"warm, per 6 s clip: median {statistics.median(times) * 1000:.0f} ms, "
          f"p95 {np.percentile(times, 95) * 1000:.0f} ms (n={len(times)})")
    batch = clips[:32]
    t = time.perf_counter()
    model.reconstruct_many(batch)
    elapsed = time.perf_counter() - t
    print(f"batch of {len(batch)}: {len(batch) / elapsed:.1f} clips/s")
    print(f"peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
