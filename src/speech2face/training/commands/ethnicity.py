"""speech2face train ethnicity: the UTKFace ethnicity classifier the scorer reads drawings with
(``speech2face.training.ethnicity``)."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ...ethnicity import ETHNICITY_WEIGHTS
    from ...weights import shipped

    parser.add_argument("shards", help="UTKFace prepared as face shards (speech2face prepare faces:.../utkface)")
    parser.add_argument("--out", default=str(shipped(ETHNICITY_WEIGHTS)), help="weights file to write")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..ethnicity import train_ethnicity

    print(json.dumps(train_ethnicity(Path(args.shards), Path(args.out)), indent=1))
    return 0
