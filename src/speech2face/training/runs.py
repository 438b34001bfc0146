"""Run folders: resolved config JSON, metrics JSONL, checkpoints written atomically, resume."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..weights import load_run_file


class Run:
    def __init__(self, folder: Path, config: dict) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "config.json").write_text(json.dumps(config, indent=1, sort_keys=True, default=str))
        self.started = time.time()

    def log(self, **metrics) -> None:
        metrics = {"time_s": round(time.time() - self.started, 2), **metrics}
        with open(self.folder / "metrics.jsonl", "a") as f:
            f.write(json.dumps(metrics, default=float) + "\n")

    @property
    def checkpoint_path(self) -> Path:
        return self.folder / "checkpoint.pt"

    def save_checkpoint(self, state: dict) -> None:
        state = {**state, "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state()[1].tolist(),
                                  "python": random.getstate()[1]}}
        tmp = self.checkpoint_path.with_suffix(".pt.tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.checkpoint_path)

    def load_checkpoint(self) -> Optional[dict]:
        """Our own checkpoint from this run folder (never a user-supplied file)."""
        if not self.checkpoint_path.is_file():
            return None
        state = load_run_file(self.checkpoint_path, map_location="cpu")
        torch.set_rng_state(state["rng"]["torch"])
        return state
