"""Voice → face speed on CPU, the ONNX Runtime engine (the default) and the torch engine side by
side in one run: cold CLI for one clip, `import speech2face; speech2face.load_model()` in a new
process, warm latency per 6 s clip (median, p95), a batch of 32, the cost of what the voice tells,
peak memory; optionally again with busy processes on the cores, and the runtime's install size.
Real clips from ../shared/data/s2f-pairs.

    python bench/reconstruct.py [--clips 40] [--engines onnx torch] [--busy 0] [--install-size]
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

REPEATS = 3  # new processes per cold figure (the median is printed)


def _wall(command: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - t


def cold(clip: Path, engine: str) -> dict:
    """New processes: the CLI drawing one clip, and the import plus load_model() alone."""
    load = f"import speech2face; speech2face.load_model(engine={engine!r})"
    with tempfile.TemporaryDirectory() as tmp:
        cli = [_wall([sys.executable, "-m", "speech2face", "reconstruct", str(clip), "-o", f"{tmp}/face.png",
                      "--engine", engine]) for _ in range(REPEATS)]
    loads = [_wall([sys.executable, "-c", load]) for _ in range(REPEATS)]
    return {"cold_cli": statistics.median(cli), "load_model": statistics.median(loads)}


def warm(model, clips: list[Path]) -> dict:
    model.reconstruct(clips[0])  # warm-up
    times = []
    for clip in clips:
        t = time.perf_counter()
        model.reconstruct(clip)  # decode file + resample + VAD + embed + encode + draw
        times.append(time.perf_counter() - t)
    batch = (clips * 2)[:32]
    model.reconstruct_each(batch)  # warm-up: each engine's first run of a batch's shapes plans its memory
    rates = []
    for _ in range(3):
        t = time.perf_counter()
        model.reconstruct_each(batch)
        rates.append(len(batch) / (time.perf_counter() - t))
    return {"warm": statistics.median(times), "warm_p95": float(np.percentile(times, 95)),
            "batch": statistics.median(rates), "n": len(times)}


def attributes_cost(model, clips: list[Path]) -> str:
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
    return ", ".join(f"{k} {statistics.median(v) * 1000:.0f} ms ({statistics.median(v) / base:.2f}x)"
                     for k, v in times.items())


def report(label: str, figures: dict) -> None:
    print(f"{label}: cold CLI one clip {figures['cold_cli']:.2f} s; import + load_model() {figures['load_model']:.2f} s; "
          f"warm per 6 s clip median {figures['warm'] * 1000:.0f} ms, p95 {figures['warm_p95'] * 1000:.0f} ms "
          f"(n={figures['n']}); batch of 32: {figures['batch']:.1f} clips/s")


def install_size(repo: Path) -> None:
    """A new virtual environment with the runtime profile (`pip install speech2face`): its size and
    the packages pulled."""
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(repo)], check=True)
        size = subprocess.run(["du", "-sm", str(venv)], capture_output=True, text=True, check=True).stdout.split()[0]
        listed = subprocess.run([str(venv / "bin" / "pip"), "list", "--format=freeze"], capture_output=True, text=True,
                                check=True).stdout.split()
        pulled = [p for p in listed if not p.lower().startswith(("pip==", "setuptools==", "wheel=="))]
        print(f"runtime install (pip install speech2face, Python {platform.python_version()}): {size} MB, "
              f"{len(pulled)} packages: {' '.join(pulled)}")


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(here.parent / "shared" / "data" / "s2f-pairs"))
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--engines", nargs="+", default=["onnx", "torch"], choices=("onnx", "torch"))
    parser.add_argument("--busy", type=int, default=0, help="busy processes for a second warm run (0: skip it)")
    parser.add_argument("--install-size", action="store_true", help="also build a fresh runtime venv and measure it")
    args = parser.parse_args()
    clips = sorted(Path(args.data, "audio").glob("*.opus"))[: args.clips]
    if not clips:
        sys.exit(f"no clips in {args.data}/audio")

    from speech2face import load_model
    from speech2face.runtime import available_cpus

    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, {os.cpu_count()} cores "
          f"({available_cpus()} available), Python {platform.python_version()}")
    for engine in args.engines:
        model = load_model(device="cpu", engine=engine)
        figures = cold(clips[0], engine) | warm(model, clips)
        report(engine, figures)
        print(f"{engine}, warm per clip: {attributes_cost(model, clips[:20])}")
        if args.busy:
            with busy(args.busy):
                loaded = warm(model, clips)
            print(f"{engine}, {args.busy} busy processes: warm median {loaded['warm'] * 1000:.0f} ms "
                  f"({loaded['warm'] / figures['warm']:.2f}x), batch {loaded['batch']:.1f} clips/s")
    print(f"peak memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if args.install_size:
        install_size(here)


if __name__ == "__main__":
    main()
