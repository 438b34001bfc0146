"""`prepare --ray`: on a two-node Ray cluster started here, the same shards as the local path on real
clips, a worker killed mid-task retried without losing or repeating a sample, and a rerun redoing only
unfinished shards."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from speech2face.data import PairedFolder, prepare
from speech2face.errors import InputError

from conftest import PAIRS

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'speech2face[ray]')")
pytestmark = pytest.mark.slow
N_ITEMS, SHARD_SIZE = 8, 3


def _tasks_running(title: str = "ray::prepare_item") -> list[int]:
    """Ray worker processes busy with a preparation task (Ray sets their title to the task's name)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(title.encode()):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


class KillOneWorker(threading.Thread):
    """SIGKILL the first Ray worker seen running a preparation task, as a node failure would."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.killed: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and not self.killed:
            for pid in _tasks_running():
                os.kill(pid, signal.SIGKILL)
                self.killed.append(pid)
                break
            time.sleep(0.05)


def _members(folder: Path) -> dict[str, bytes]:
    files = {}
    for tar_path in sorted(folder.glob("shard-*.tar")):
        with tarfile.open(tar_path) as tar:
            for member in tar.getmembers():
                files[f"{tar_path.name}/{member.name}"] = tar.extractfile(member).read()
    return files


@pytest.fixture(scope="module")
def local_shards(tmp_path_factory):
    if not (PAIRS / "pairs.csv").is_file():
        pytest.skip(f"no paired data at {PAIRS}")
    out = tmp_path_factory.mktemp("local")
    prepare([PairedFolder(PAIRS)], out, shard_size=SHARD_SIZE, limit=N_ITEMS, progress=False)
    return out


@pytest.fixture(scope="module")
def two_node_cluster():
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def test_no_cluster_is_a_clear_error(tmp_path, monkeypatch):
    """`--ray auto` with no cluster running here: one line saying so, nothing written (runs before the cluster starts)."""
    if not (PAIRS / "pairs.csv").is_file():
        pytest.skip(f"no paired data at {PAIRS}")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "ray"))
    with pytest.raises(InputError, match="cannot reach a Ray cluster at 'auto'"):
        prepare([PairedFolder(PAIRS)], tmp_path / "out", limit=2, progress=False, ray_address="auto")
    assert not list((tmp_path / "out").glob("shard-*"))

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"RAY_TMPDIR": str(tmp_path / "ray")}
    cli = [sys.executable, "-m", "speech2face", "prepare", str(PAIRS), "--out", str(tmp_path / "cli"), "--limit", "2",
           "--ray", "auto", "--quiet"]
    run = subprocess.run(cli, capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 2, run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("speech2face prepare: error: cannot reach a Ray cluster at 'auto'") and "Traceback" not in run.stderr


def test_ray_writes_the_local_shards_though_a_worker_dies(local_shards, two_node_cluster, tmp_path):
    killer = KillOneWorker()
    killer.start()
    summary = prepare([PairedFolder(PAIRS)], tmp_path, shard_size=SHARD_SIZE, limit=N_ITEMS, progress=False,
                      ray_address=two_node_cluster.address)
    killer.stop.set()
    killer.join()
    assert killer.killed, "no preparation task was seen running, so none was killed"
    assert summary["this_run"]["runner"] == {"ray": two_node_cluster.address, "cpus": 2, "nodes": 2}
    assert summary["complete"] and summary["written"] + summary["skipped"] == N_ITEMS

    local, ray_files = _members(local_shards), _members(tmp_path)
    assert sorted(ray_files) == sorted(local)  # same shards, same sample keys, each once
    for name, data in local.items():
        if name.endswith(".desc.npy"):
            np.testing.assert_allclose(np.load(io.BytesIO(ray_files[name])), np.load(io.BytesIO(data)), atol=1e-5)
    assert (tmp_path / "shard-000001.json").read_text() == (local_shards / "shard-000001.json").read_text()

    # a rerun after losing one shard redoes that shard only
    (tmp_path / "shard-000001.json").unlink()
    again = prepare([PairedFolder(PAIRS)], tmp_path, shard_size=SHARD_SIZE, limit=N_ITEMS, progress=False,
                    ray_address=two_node_cluster.address)
    assert again["this_run"]["shards_written"] == 1 and again["this_run"]["items"] == SHARD_SIZE
    assert _members(tmp_path) == ray_files
