"""The voice trainer's configuration and flags, importable without torch (the CLI builds its
parser from them, and ``speech2face --help`` must not wait for torch)."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Optional


def _default_encoder() -> dict:
    from ..models.voice_encoder import VoiceEncoderConfig

    return VoiceEncoderConfig().to_dict()


@dataclass
class VoiceTrainConfig:
    shards: list[str] = field(default_factory=list)
    out: str = "runs/voice"
    variant: str = "speaker"
    decoder_weights: Optional[str] = None  # f_dec of the loss; default: the shipped face decoder
    distill: bool = True  # ethnicity classifier logits as the distillation classifier
    epochs: int = 80
    batch_size: int = 64
    lr: float = 1e-3
    lr_decay: float = 0.95  # multiplied every decay_every steps (the paper: 0.95 every 10k)
    decay_every: int = 200
    weight_decay: float = 1e-4
    seed: int = 0
    device: Optional[str] = None
    loss: dict = field(default_factory=lambda: {"l2_weight": 0.025, "distill_weight": 0.1, "temperature": 2.0})  # LossConfig
    objective: str = "speech2face"  # "speech2face": the paper's loss on descriptors; "drawn": rank the drawings
    drawn: dict = field(default_factory=dict)  # DrawnObjectiveConfig fields for objective "drawn"
    encoder: dict = field(default_factory=_default_encoder)
    limit: Optional[int] = None
    fit_on: str = "train"  # "train": train speakers, epoch and exaggeration chosen on val; "all": every pair (a release)
    exaggeration: Optional[float] = None  # fixed factor instead of choosing one on val (required with fit_on "all")
    command: Optional[str] = None  # the command line that started the run, stored as the weights' reproduce line

    @classmethod
    def from_file_and_flags(cls, path: Optional[str], **flags) -> "VoiceTrainConfig":
        base = json.loads(Path(path).read_text()) if path else {}
        known = {f.name for f in fields(cls)}
        unknown = set(base) - known
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        base.update({k: v for k, v in flags.items() if v is not None})
        return cls(**base)



def add_arguments(p: argparse.ArgumentParser) -> None:
    """The train flags. Their defaults live in VoiceTrainConfig (a --config file may set them),
    so each help text names the config default; an unset flag leaves the config's value."""
    d = VoiceTrainConfig  # the class: its plain defaults, without building the encoder default (torch)
    p.add_argument("shards", nargs="*", help="prepared shard folders with audio (speech2face prepare)")
    p.add_argument("--config", help="JSON file with VoiceTrainConfig fields; flags override it (default: none)")
    p.add_argument("--out", help=f"run folder (default: {d.out})")
    p.add_argument("--variant", choices=("speaker", "paper"),
                   help=f"speaker: pretrained GE2E + MLP head; paper: the paper's CNN (default: {d.variant})")
    p.add_argument("--epochs", type=int, help=f"passes over the training pairs (default: {d.epochs})")
    p.add_argument("--batch-size", type=int, help=f"pairs per step (default: {d.batch_size})")
    p.add_argument("--lr", type=float, help=f"Adam learning rate (default: {d.lr})")
    p.add_argument("--seed", type=int, help=f"seed of initial weights and batch order (default: {d.seed})")
    p.add_argument("--members", type=int, help="speaker variant: heads in the ensemble (default: 1)")
    p.add_argument("--head", choices=("mlp", "linear"),
                   help="speaker variant: MLP head, or one linear map started from ridge regression (default: mlp)")
    p.add_argument("--objective", choices=("speech2face", "drawn"),
                   help=f"speech2face: the paper's loss on descriptors; drawn: rank the dlib descriptors of the "
                        f"drawings, ethnicity balanced (default: {d.objective})")
    p.add_argument("--device", help="cpu, cuda (default: cuda:LOCAL_RANK if available, else cpu)")
    p.add_argument("--decoder-weights", help="face decoder for the loss's f_dec (default: the shipped one)")
    p.add_argument("--limit", type=int, help="use only the first N pairs (default: all)")
    p.add_argument("--export", help="write the trained encoder here (safetensors + sha256; default: not exported)")
    p.add_argument("--fit-on", choices=("train", "all"),
                   help="train: train speakers, epoch and exaggeration chosen on val; all: every pair, last epoch "
                        "kept, --exaggeration required — for a release whose recipe was fixed on val (default: train)")
    p.add_argument("--exaggeration", type=float, help="fixed exaggeration factor (default: chosen on val)")
