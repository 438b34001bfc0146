"""speech2face evaluate seeds: mean ± sd over several evaluation reports, one per training seed
(``speech2face.evaluation.seeds``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reports", nargs="+", help="metrics.json files of `speech2face evaluate` runs")


def run(args: argparse.Namespace) -> int:
    from ..seeds import summarize

    for key, v in summarize([Path(p) for p in args.reports]).items():
        digits = 2 if key == "age r" else 1
        print(f"{key:28s} {v['mean']:.{digits}f} ± {v['sd']:.{digits}f}  (n={v['n']})")
    return 0
