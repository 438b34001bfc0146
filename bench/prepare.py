"""Throughput and peak memory of `speech2face prepare` on the paired folder, 1 and 2 workers, locally and on Ray.

    python bench/prepare.py [--limit 300] [--workers 1 2] [--ray] [--data ../shared/data/s2f-pairs]

With --ray the same runs are made again with `--ray local` (Ray started on this machine with that
many CPUs; its start-up counted).
Each run goes into a fresh temporary folder in its own process; peak memory is the largest
resident set of the main process and of any one worker.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys, time
from pathlib import Path
from speech2face.data import PairedFolder, prepare
data, out, workers, limit = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ray_address = sys.argv[5] or None
t = time.perf_counter()
summary = prepare([PairedFolder(Path(data))], out, workers=workers, limit=limit, progress=False, ray_address=ray_address)
seconds = time.perf_counter() - t
kib = lambda who: resource.getrusage(who).ru_maxrss
print(json.dumps({"items": summary["items_listed"], "written": summary["written"], "seconds": seconds,
                  "main_peak_mb": kib(resource.RUSAGE_SELF) / 1024, "worker_peak_mb": kib(resource.RUSAGE_CHILDREN) / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parents[1]
    parser.add_argument("--data", default=str(here.parent / "shared" / "data" / "s2f-pairs"))
    parser.add_argument("--limit", type=int, default=300, help="pairs per run (all 1,050: --limit 1050)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--ray", action="store_true", help="also run each on Ray started here (needs speech2face[ray])")
    args = parser.parse_args()
    if not Path(args.data, "pairs.csv").is_file():
        sys.exit(f"no paired folder at {args.data}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    runs = [("", w) for w in args.workers] + ([("local", w) for w in args.workers] if args.ray else [])
    for ray_address, workers in runs:
        with tempfile.TemporaryDirectory() as out:
            result = subprocess.run([sys.executable, "-c", CHILD, args.data, out, str(workers), str(args.limit), ray_address],
                                    capture_output=True, text=True, check=True)
        r = json.loads(result.stdout.strip().splitlines()[-1])
        where = f"ray local, {workers} CPU{'s' * (workers > 1)}" if ray_address else f"workers={workers}"
        memory = (f"peak memory main {r['main_peak_mb']:.0f} MB, per worker {r['worker_peak_mb']:.0f} MB" if not ray_address
                  else f"peak memory driver {r['main_peak_mb']:.0f} MB")
        print(f"{where}: {r['items']} pairs in {r['seconds']:.1f} s = {r['items'] / r['seconds']:.1f} pairs/s "
              f"(start-up included); {memory}")

if __name__ == "__main__":
    main()
