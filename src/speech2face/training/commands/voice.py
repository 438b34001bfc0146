"""speech2face train [voice]: train a voice encoder (speech → face descriptor) with the Speech2Face
loss (``speech2face.training.voice``).

One process (CPU or one GPU):
    speech2face train shards/pairs --out runs/voice
Several processes on one machine (gloo on CPU, nccl on GPUs), the data split by rank:
    torchrun --standalone --nproc-per-node 2 --no-python speech2face train shards/pairs --out runs/voice
Several machines (run on each, with its --node-rank):
    torchrun --nnodes 2 --node-rank 0 --nproc-per-node 8 --rdzv-backend c10d \
        --rdzv-endpoint HOST:29500 --no-python speech2face train shards/avspeech --variant paper --out runs/paper
"""

from __future__ import annotations

import argparse
import json

from ..voice_config import add_arguments  # noqa: F401 (the train flags, importable without torch)


def run(args: argparse.Namespace) -> int:
    from ..voice import run_from_args

    result = run_from_args(args, getattr(args, "command_line", None))
    if result:  # rank 0 only, in a torchrun
        print(json.dumps(result, indent=1))
    return 0
