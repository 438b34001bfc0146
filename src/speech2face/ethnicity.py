"""The UTKFace ethnicity classifier on dlib face descriptors: what group a face — drawn or
photographed — is read as. Softmax regression on standardised 128-D descriptors, numpy only,
so the runtime steers drawings with it and the evaluation scores them with the same weights
(shipped in ``assets``; reproduce with ``speech2face train ethnicity shards/utkface``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from .weights import load_weights, shipped

ETHNICITIES = ("white", "black", "asian", "indian", "other")  # UTKFace's labels
ETHNICITY_WEIGHTS = "ethnicity_utkface.safetensors"


def softmax(z: np.ndarray) -> np.ndarray:
    """Rows of logits → rows of probabilities (stable)."""
    z = np.asarray(z, float)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class EthnicityClassifier:
    """Softmax regression on standardised 128-D descriptors."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, mean: np.ndarray, std: np.ndarray, config: dict) -> None:
        self.weight, self.bias, self.mean, self.std, self.config = weight, bias, mean, std, config
        self.classes = tuple(config["classes"])

    def logits(self, descriptors: np.ndarray) -> np.ndarray:
        """(N, 128) → (N, classes)."""
        return ((descriptors - self.mean) / self.std) @ self.weight.T + self.bias

    def probabilities(self, descriptors: np.ndarray) -> np.ndarray:
        """(N, 128) → (N, classes)."""
        return softmax(self.logits(descriptors))

    def predict(self, descriptors: np.ndarray) -> list[str]:
        return [self.classes[i] for i in self.probabilities(np.atleast_2d(descriptors)).argmax(axis=1)]

    @classmethod
    def load(cls, path: Optional[Path] = None) -> "EthnicityClassifier":
        tensors, config = load_weights(Path(path) if path else shipped(ETHNICITY_WEIGHTS), framework="numpy")
        return cls(*(tensors[k] for k in ("weight", "bias", "mean", "std")), config)
