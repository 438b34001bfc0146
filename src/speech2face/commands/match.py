"""speech2face match: rank face photos by how well they fit a voice."""

from __future__ import annotations

import argparse
import json

from .outputs import add_engine


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("voice", help="a speech clip")
    p.add_argument("faces", nargs="+", help="face photos, folders or globs")
    p.add_argument("--json", action="store_true", help="print the ranking as JSON")
    p.add_argument("--weights", help="voice encoder weights (default: the shipped ones)")
    p.add_argument("--device", help="cpu or cuda (default: cuda if available, else cpu)")
    add_engine(p)


def run(args: argparse.Namespace) -> int:
    from ..files import IMAGE_SUFFIXES, expand_inputs
    from ..matching import rank_faces
    from ..pipeline import load_model

    photos = expand_inputs(args.faces, IMAGE_SUFFIXES)
    model = load_model(voice_weights=args.weights, device=args.device, engine=args.engine)
    ranking = rank_faces(model, args.voice, [(str(p), p) for p in photos])
    if args.json:
        print(json.dumps(ranking, indent=1))
        return 0
    for r in ranking:
        if not r.get("rank"):
            print(f"   –  no face   {r['name']}: {r['error']}")
            continue
        print(f"{r['rank']:>4}  {r['score']:+.3f}  {r['name']}" + (f"  ({r['note']})" if r.get("note") else ""))
    return 0
