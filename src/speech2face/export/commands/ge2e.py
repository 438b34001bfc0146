"""speech2face export ge2e: resemblyzer's pretrained GE2E weights converted to the shipped
safetensors file (LSTM and linear layer only), printing its sha256."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ...speaker import GE2E_WEIGHTS
    from ...weights import shipped

    p.add_argument("--out", default=str(shipped(GE2E_WEIGHTS)), help="file to write")


def run(args: argparse.Namespace) -> int:
    from ...extras import require

    require("torch", "speech2face export")
    from ...models.speaker_encoder import convert_resemblyzer_weights

    print(convert_resemblyzer_weights(Path(args.out)))
    return 0
