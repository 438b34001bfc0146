"""Train the ethnicity classifier the scorer reads faces with (``evaluation.attributes``): a
logistic regression on dlib face descriptors of UTKFace, 80 % fitted, 20 % held out.

    speech2face train ethnicity shards/utkface
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..ethnicity import ETHNICITIES
from ..weights import save_weights


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
