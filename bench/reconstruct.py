"""Voice → face speed on CPU: cold start of the CLI for one clip, warm latency per 6 s clip
(median, p95), batch throughput, peak memory — on a quiet machine, then with two other busy
processes on the cores. Real clips from ../shared/data/s2f-pairs.

    python bench/reconstruct.py [--clips 40] [--data ../shared/data/s2f-pairs] [--busy 2]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from busy import busy  # noqa: E402


def measure(model, clips: list[Path], label: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:  # cold: a new process, imports and weights included
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "speech2face", "reconstruct", str(clips[0]), "-o", f"{tmp}/face.png",
                        "--device", "cpu"], check=True, capture_output=True)
        cold = time.perf_counter() - t
    model.reconstruct(clips[0])  # warm-up
    times = []
    for clip in clips:
        t = time.perf_counter()
        model.reconstruct(clip)  # decode file + resample + VAD + embed + encode + draw
        times.append(time.perf_counter() - t)
    batch = clips[:32]
    t = time.perf_counter()
    model.reconstruct_each(batch)
    rate = len(batch) / (time.perf_counter() - t)
    print(f"{label}: cold CLI one clip {cold:.2f} s; warm per 6 s clip median {statistics.median(times) * 1000:.0f} ms, "
          f"p95 {np.percentile(times, 95) * 1000:.0f} ms (n={len(times)}); batch of {len(batch)}: {rate:.1f} clips/s")
    return {"cold": cold, "warm": statistics.median(times), "batch": rate}


def attributes_cost(model, clips: list[Path]) -> None:
    """Warm latency per clip without what the voice tells (no read-out, no steering), with it (the
    default), and with 4 variations, on the same clips, interleaved so drift hits all alike."""
    def plain(clip):
        attributes, steer = model.attributes, model.steer
        model.attributes, model.steer = None, False
        try:
            model.reconstruct(clip)
        finally:
            model.attributes, model.steer = attributes, steer

    runs = {"without voice attributes": plain, "default": model.reconstruct,
            "variations=4": lambda c: model.reconstruct(c, variations=4)}
    times: dict[str, list[float]] = {k: [] for k in runs}
    for clip in clips:
        for name, fn in runs.items():
            t = time.perf_counter()
            fn(clip)
            times[name].append(time.perf_counter() - t)
    base = statistics.median(times["without voice attributes"])
    print("warm per clip: " + ", ".join(f"{k} {statistics.median(v) * 1000:.0f} ms ({statistics.median(v) / base:.2f}x)"
                                        for k, v in times.items()))


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(here.parent / "shared" / "data" / "s2f-pairs"))
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--busy", type=int, default=2, help="busy processes for the second run (0: skip it)")
    args = parser.parse_args()
    clips = sorted(Path(args.data, "audio").glob("*.opus"))[: args.clips]
    if not clips:
        sys.exit(f"no clips in {args.data}/audio")

    from speech2face import load_model
    from speech2face.runtime import available_cpus

    model = load_model(device="cpu")
    import torch

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores ({available_cpus()} available), torch "
          f"{torch.__version__}, {torch.get_num_threads()} intra-op thread(s), {model.workers} workers")
    quiet = measure(model, clips, "quiet")
    attributes_cost(model, clips)
    if args.busy:
        with busy(args.busy):
            loaded = measure(model, clips, f"{args.busy} busy processes")
        print("busy / quiet: " + ", ".join(f"{k} {loaded[k] / quiet[k]:.2f}x" for k in ("cold", "warm"))
              + f", batch throughput {quiet['batch'] / loaded['batch']:.2f}x slower")
    print(f"peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
