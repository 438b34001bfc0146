"""The per-item preparation run as Ray tasks, for data bigger than one machine.

The cluster only computes: each item is one task running the same ``prepare_item`` as the local
path and returning its files; the driver (the machine running ``speech2face prepare``) writes the
shards, in order and atomically, as on one machine. So a worker killed mid-task is simply retried
by Ray (``max_retries``), and a sample is written once or not at all; a driver killed mid-run leaves
complete shards only, and a rerun redoes the rest.

Every node needs speech2face installed (the same version) and the source files at the same paths
(a shared file system: NFS, a Kubernetes volume, a Slurm cluster's scratch).
"""

from __future__ import annotations

import logging
import os
from collections import deque
from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

from ..errors import InputError
from .prepare import Prepared, PrepareOptions, prepare_item
from .sources import SourceItem

MAX_RETRIES = 3  # attempts after a worker or node dies mid-task
TASKS_PER_CPU = 4  # in flight per CPU of the cluster: enough to keep every CPU busy, bounded memory


def _ray():
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs Ray: pip install 'speech2face[ray]'") from None
    return ray


@contextmanager
def ray_cluster(address: str, num_cpus: Optional[int] = None) -> Iterator[dict]:
    """Connect to a Ray cluster for the duration of the block; yields its size (CPUs, nodes).

    ``address``: ``local`` (start Ray on this machine, with ``num_cpus`` CPUs, default all), ``auto``
    (the cluster ``ray start`` left running here), ``ray://host:port`` (Ray Client) or a cluster's
    ``host:port``. A session already open in this process (``ray.init`` by the caller) is used as it is.
    """
    ray = _ray()
    if ray.is_initialized():
        yield _size(ray)
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline machines: no usage report
    kwargs = {"num_cpus": num_cpus} if address == "local" else {}
    try:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False, **kwargs)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise InputError(f"cannot reach a Ray cluster at {address!r}: {str(exc).splitlines()[0]}") from None
    try:
        yield _size(ray)
    finally:
        ray.shutdown()


def _size(ray) -> dict:
    return {"cpus": int(ray.cluster_resources().get("CPU", 0)), "nodes": sum(n["Alive"] for n in ray.nodes())}


def ray_map(work: Sequence[SourceItem], options: PrepareOptions) -> Iterator[Prepared]:
    """``prepare_item`` of each item on the cluster, yielded in the order of ``work``.

    A sliding window of tasks: the oldest is awaited while the newer ones run, so results come
    back in order with at most ``TASKS_PER_CPU`` × CPUs items held at once.
    """
    ray = _ray()
    task = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(prepare_item)
    window = TASKS_PER_CPU * max(1, int(ray.cluster_resources().get("CPU", 1)))
    pending: deque = deque()
    items = iter(work)
    options_ref = ray.put(options)
    for item in items:
        pending.append(task.remote(item, options_ref))
        if len(pending) >= window:
            break
    while pending:
        result = ray.get(pending.popleft())
        next_item = next(items, None)
        if next_item is not None:
            pending.append(task.remote(next_item, options_ref))
        yield result
