"""Throughput and peak memory of `speech2face prepare` on the paired folder, 1 and 2 workers.

    python bench/prepare.py [--limit 300] [--workers 1 2] [--data ../shared/data/s2f-pairs]

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
t = time.perf_counter()
summary = prepare([PairedFolder(Path(data))], out, workers=workers, limit=limit, progress=False)
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
    args = parser.parse_args()
    if not Path(args.data, "pairs.csv").is_file():
        sys.exit(f"no paired folder at {args.data}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as out:
            result = subprocess.run([sys.executable, "-c", CHILD, args.data, out, str(workers), str(args.limit)],
                                    capture_output=True, text=True, check=True)
        r = json.loads(result.stdout.strip().splitlines()[-1])
        print(f"workers={workers}: {r['items']} pairs in {r['seconds']:.1f} s = {r['items'] / r['seconds']:.1f} pairs/s "
              f"(start-up included); peak memory main {r['main_peak_mb']:.0f} MB, per worker {r['worker_peak_mb']:.0f} MB")


if __name__ == "__main__":
    main()
