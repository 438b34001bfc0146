"""speech2face evaluate steering: score drawing settings (exaggeration, steering) on val drawings
read by the scorer (``speech2face.evaluation.steering``)."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("table", help="pairs_table.pt written by `speech2face train voice-attributes`")
    parser.add_argument("--split", default="val", choices=("val", "dev"), help="the clips drawn")
    parser.add_argument("--voice-weights", help="voice head (default: the shipped one)")
    parser.add_argument("--attributes-weights", help="voice attributes (default: the shipped ones)")


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    import numpy as np

    from ...files import default_score_cache
    from ...pipeline import load_model
    from ...weights import load_run_file
    from ..scoring import ImageScorer
    from ..steering import SETTINGS, score_setting

    table = load_run_file(args.table)
    idx = np.flatnonzero(table["split"] == args.split)
    model = load_model(voice_weights=args.voice_weights, device="cpu", attributes_weights=args.attributes_weights,
                       engine="torch")
    scorer = ImageScorer(default_score_cache())
    for exaggeration, steer in SETTINGS:
        row = score_setting(model, model.attributes, table, idx, exaggeration, steer, scorer)
        print(json.dumps({"exaggeration": exaggeration, "steer": asdict(steer) if steer else None,
                          **{k: round(v, 2) for k, v in row.items()}}), flush=True)
    return 0
