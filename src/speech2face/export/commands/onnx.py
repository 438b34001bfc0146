"""speech2face export onnx: the ONNX graphs the runtime and the page run, from the shipped weights."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="folder (default: the package's own assets/onnx, which the runtime loads)")


def run(args: argparse.Namespace) -> int:
    from ...extras import require

    require("torch", "speech2face export")
    require("onnx", "speech2face export")
    from ..writer import export_onnx

    manifest = export_onnx(Path(args.out) if args.out else None)
    print(json.dumps({name: g["sha256"][:12] for name, g in manifest["graphs"].items()}, indent=1))
    return 0
