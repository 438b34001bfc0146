"""How many CPUs this process may really use, and the one threading rule that follows from it.

On a shared machine ``os.cpu_count()`` lies twice: the process may be pinned to fewer cores
(affinity) or capped by a container's CPU quota (cgroup). And torch's intra-op threads busy-wait
at every barrier: with other processes on the cores, two intra-op threads made one clip take
8.6 s instead of 43 ms on a 2-core machine. So inference runs one intra-op thread per worker and
gets its parallelism from independent workers (clips, requests, halves of a clip), never
workers × intra-op threads.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from pathlib import Path


def _cgroup_cpu_limit() -> float | None:
    """CPUs allowed by the cgroup quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``), None if unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def available_cpus() -> int:
    """CPUs this process can use: its affinity mask, capped by the cgroup quota; at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    if limit is not None:
        cpus = min(cpus, max(1, math.ceil(limit)))
    return max(1, cpus)


_lock = threading.Lock()
_depth = 0
_saved_threads = 1


@contextlib.contextmanager
def one_intra_op_thread():
    """Inside: torch runs one intra-op thread; outside, the caller's setting is back. Nested and
    concurrent uses share one switch (the setting is process-wide)."""
    import torch

    global _depth, _saved_threads
    with _lock:
        if _depth == 0:
            _saved_threads = torch.get_num_threads()
            if _saved_threads != 1:
                torch.set_num_threads(1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved_threads != 1:
                torch.set_num_threads(_saved_threads)
