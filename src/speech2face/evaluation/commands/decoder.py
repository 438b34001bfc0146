"""speech2face evaluate decoder: face-to-face check of a face decoder on dev identities
(``speech2face.evaluation.decoder``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ...files import default_score_cache

    parser.add_argument("shards", nargs="+", help="face shard folders (speech2face prepare)")
    parser.add_argument("--weights", help="decoder weights (default: shipped)")
    parser.add_argument("--out", default="reports/face_decoder", help="report folder (metrics.json, grid.png)")
    parser.add_argument("--limit", type=int, help="at most N faces (default: all)")
    parser.add_argument("--split", default="dev", choices=("dev", "val"),
                        help="dev (report) or val (training identities held out to choose between models)")
    parser.add_argument("--cache", default=str(default_score_cache()), help="image scores by content hash")


def run(args: argparse.Namespace) -> int:
    from ..decoder import evaluate_decoder

    print(json.dumps(evaluate_decoder(args.shards, args.weights, Path(args.out), args.limit, Path(args.cache),
                                      split=args.split), indent=1))
    return 0
