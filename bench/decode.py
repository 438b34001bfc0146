"""Face decoder speed on CPU: decoded faces per second at batch 1 and 32, and peak memory.

    python bench/decode.py [--weights PATH] [--repeats 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="face decoder weights (default: shipped)")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    from speech2face.pipeline import load_decoder

    renderer = load_decoder(args.weights, "cpu")
    rng = np.random.default_rng(0)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    for batch in (1, 32):
        desc = rng.standard_normal((batch, 128)).astype(np.float32) * 0.1
        renderer.decode(desc)  # warm-up
        times = []
        for _ in range(args.repeats if batch == 1 else max(3, args.repeats // 4)):
            t = time.perf_counter()
            renderer.decode(desc)
            times.append(time.perf_counter() - t)
        med = statistics.median(times)
        print(f"batch {batch:>2}: {med * 1000:.1f} ms per call (median), {batch / med:.1f} faces/s")
    print(f"peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
