"""A shared machine, simulated: ``with busy(2):`` keeps two other processes spinning on the CPU
(plain Python loops, like any CPU-bound neighbour) for as long as the block runs."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time


@contextlib.contextmanager
def busy(processes: int):
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        time.sleep(0.5)  # let the scheduler see them
        yield
    finally:
        for p in spinners:
            p.kill()
            p.wait()
