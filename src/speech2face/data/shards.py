"""Read prepared shards: an IterableDataset that reads every sample once per process (split across
its loader workers; across ranks only when asked)."""

from __future__ import annotations

import io
import json
import random
import tarfile
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import numpy as np
import torch

from torch.utils.data import IterableDataset, get_worker_info

from ..errors import InputError


def list_shards(paths: Union[str, Path, Sequence[Union[str, Path]]]) -> list[Path]:
    """Shard files from a folder, a single .tar, or a list of either, in name order."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    shards: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise InputError(f"{p}: no such file or folder (shards are made by speech2face prepare)")
        shards.extend(sorted(p.glob("shard-*.tar")) if p.is_dir() else [p])
    if not shards:
        raise InputError(f"no shards (shard-*.tar) in {', '.join(map(str, paths))}: make them with speech2face prepare")
    return shards


def decode_field(name: str, data: bytes):
    """One tar member → a python value by its suffix (npy → array, jpg → RGB uint8, json → dict)."""
    if name.endswith(".npy"):
        return np.load(io.BytesIO(data), allow_pickle=False)
    if name.endswith((".jpg", ".png")):
        from PIL import Image

        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    if name == "json" or name.endswith(".json"):
        return json.loads(data)
    if name.endswith(".flac"):
        import soundfile as sf

        wave, _ = sf.read(io.BytesIO(data), dtype="float32")
        return wave
    return data


def iter_shard(path: Path, fields: Optional[set[str]] = None, decode: bool = True) -> Iterator[dict]:
    """Samples of one tar, as dicts ``{"__key__", "<field>": value}``; field = name after the key's dot,
    without its extension (``spec.npy`` → ``spec``, ``json`` → ``json``)."""
    current: dict = {}
    with tarfile.open(path, "r|") as tar:  # streaming: members of a sample are adjacent
        for member in tar:
            if not member.isfile():
                continue
            key, _, suffix = member.name.partition(".")
            field = suffix.rsplit(".", 1)[0] if "." in suffix else suffix
            if current and current["__key__"] != key:
                yield current
                current = {}
            current.setdefault("__key__", key)
            if fields is not None and field not in fields:
                continue
            data = tar.extractfile(member).read()
            current[field] = decode_field(suffix, data) if decode else data
    if current:
        yield current


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ShardDataset(IterableDataset):
    """Samples from prepared shards: every sample once, in every process.

    In a ``DataLoader`` with workers, the workers share the reading (each sample still comes once).
    ``by_rank=True`` also splits across the ranks of ``torch.distributed`` (each rank reads its
    part; off by default: the trainers load every pair in every rank and split them themselves).
    With at least as many shards as consumers (ranks × workers), whole shards are dealt out;
    otherwise every consumer reads all shards and keeps every n-th sample. ``fields`` limits
    what is decoded (e.g. {"spk", "desc", "json"}); ``keep`` filters samples by their metadata;
    call ``set_epoch`` to reshuffle the shard order when ``shuffle`` is on.
    """

    def __init__(
        self,
        shards: Union[str, Path, Sequence[Union[str, Path]]],
        fields: Optional[Sequence[str]] = None,
        shuffle: bool = False,
        seed: int = 0,
        keep=None,
        by_rank: bool = False,
    ) -> None:
        super().__init__()
        self.shards = list_shards(shards)
        self.fields = set(fields) | {"json"} if fields is not None else None
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        self.keep = keep
        self.by_rank = by_rank  # True: each rank of torch.distributed reads its own part

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def consumer(self) -> tuple[int, int]:
        """(index, count) of this reader among all ranks × loader workers."""
        rank, world = _rank_and_world() if self.by_rank else (0, 1)
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        return rank * workers + worker, world * workers

    def __iter__(self) -> Iterator[dict]:
        shards = list(self.shards)
        if self.shuffle:
            random.Random(self.seed + self.epoch).shuffle(shards)
        index, count = self.consumer()
        by_shard = len(shards) >= count
        n = 0
        for shard in shards[index::count] if by_shard else shards:
            for sample in iter_shard(shard, self.fields):
                if self.keep is not None and not self.keep(sample["json"]):
                    continue
                if by_shard or n % count == index:
                    yield sample
                n += 1
