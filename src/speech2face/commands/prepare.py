"""speech2face prepare: turn audio-visual material into training shards (``speech2face.data``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..limits import CLIP_SECONDS, PREPARED_CLIP_SECONDS

    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="[kind:]path — a paired folder (pairs.csv), an AVSpeech CSV, a VoxCeleb root "
                        "(wav/ or aac/), or a folder of face images (faces:)")
    p.add_argument("--out", required=True, help="output folder for shard-*.tar and index.json")
    p.add_argument("--workers", type=int, help="parallel worker processes (default: 1); with --ray local, the CPUs "
                   "Ray may use (default: all)")
    p.add_argument("--shard-size", type=int, default=100, help="items per shard")
    p.add_argument("--shard-id", type=int, default=0, help="this machine's part, 0-based")
    p.add_argument("--num-shards", type=int, default=1, help="machines sharing the job")
    p.add_argument("--duration", type=float, default=CLIP_SECONDS, choices=PREPARED_CLIP_SECONDS, help="clip length in s")
    p.add_argument("--videos", help="AVSpeech: folder of downloaded <youtube_id>.mp4 (default: beside the CSV)")
    p.add_argument("--faces", help="VoxCeleb: folder of face images <id>/<video>/*.jpg (default: ROOT/faces)")
    p.add_argument("--vox-meta", help="VoxCeleb: vox1_meta.csv for gender and nationality (default: none, no labels)")
    p.add_argument("--limit", type=int, help="only the first N items (in key order), for a quick look (default: all)")
    p.add_argument("--ray", metavar="ADDRESS",
                   help="run the items as tasks on a Ray cluster (pip install 'speech2face[ray]'): 'local' starts "
                        "Ray here, 'auto' joins the cluster `ray start` runs here, 'ray://host:port' a remote one; "
                        "every node needs speech2face and the sources at the same paths (default: no Ray)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..data import PrepareOptions, open_source, prepare

    sources = [open_source(s, videos=args.videos, faces=args.faces, meta=args.vox_meta) for s in args.sources]
    summary = prepare(
        sources,
        Path(args.out),
        workers=args.workers,
        shard_size=args.shard_size,
        shard_id=args.shard_id,
        num_shards=args.num_shards,
        options=PrepareOptions(seconds=args.duration),
        progress=not args.quiet,
        limit=args.limit,
        ray_address=args.ray,
    )
    brief = {k: summary[k] for k in ("items_listed", "written", "written_with_audio", "skipped", "speakers",
                                     "shards_complete", "shards_expected", "skipped_by_reason", "this_run")}
    print(json.dumps(brief, indent=1))
    print(f"summary with every skipped item and its reason: {Path(args.out) / 'index.json'}", file=sys.stderr)
    return 0
