"""Data: sources of audio-visual material, preparation into shards, and the shard reader."""

from .prepare import PrepareOptions, prepare, prepare_item
from .shards import ShardDataset, iter_shard, list_shards
from .sources import AVSpeech, FaceFolder, PairedFolder, RawSample, SourceItem, VoxCeleb, load_item, open_source

__all__ = [
    "AVSpeech",
    "FaceFolder",
    "PairedFolder",
    "PrepareOptions",
    "RawSample",
    "ShardDataset",
    "SourceItem",
    "VoxCeleb",
    "iter_shard",
    "list_shards",
    "load_item",
    "open_source",
    "prepare",
    "prepare_item",
]
