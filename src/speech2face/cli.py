"""Command line: argument parsing only; each sub-command calls one library function."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import InputError


def _prepare(args: argparse.Namespace) -> int:
    from .data import PrepareOptions, open_source, prepare

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
    )
    brief = {k: summary[k] for k in ("items_listed", "written", "written_with_audio", "skipped", "speakers",
                                     "shards_complete", "shards_expected", "skipped_by_reason", "this_run")}
    print(json.dumps(brief, indent=1))
    print(f"summary with every skipped item and its reason: {Path(args.out) / 'index.json'}", file=sys.stderr)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate

    cache = None if args.no_cache else Path(args.cache).expanduser()
    metrics = evaluate(Path(args.data), Path(args.images), Path(args.out), pool=args.pool, repeats=args.repeats,
                       seed=args.seed, limit=args.limit, cache=cache, baselines=not args.no_baselines,
                       progress=not args.quiet)
    for name, s in metrics["systems"].items():
        r, d = s["retrieval"]["recall"], s["demographics"]
        print(f"{name}: R@1 {r['1']:.1f}  R@5 {r['5']:.1f}  R@10 {r['10']:.1f}  "
              f"gender {100 * d['gender']['agreement']:.1f} %  age r {d['age_correlation']['r']:.2f}  "
              f"sharpness {s['quality']['sharpness_median']:.1f}  face found {100 * s['quality']['face_detected_share']:.0f} %")
    print(f"report: {Path(args.out) / 'index.html'}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speech2face", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__import__('speech2face').__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="turn audio-visual material into training shards")
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="[kind:]path — a paired folder (pairs.csv), an AVSpeech CSV, a VoxCeleb root "
                        "(wav/ or aac/), or a folder of face images (faces:)")
    p.add_argument("--out", required=True, help="output folder for shard-*.tar and index.json")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes (default 1)")
    p.add_argument("--shard-size", type=int, default=100, help="items per shard (default 100)")
    p.add_argument("--shard-id", type=int, default=0, help="this machine's part, 0-based (default 0)")
    p.add_argument("--num-shards", type=int, default=1, help="machines sharing the job (default 1)")
    p.add_argument("--duration", type=float, default=6.0, choices=(3.0, 6.0), help="clip length in s (default 6)")
    p.add_argument("--videos", help="AVSpeech: folder of downloaded <youtube_id>.mp4 (default: beside the CSV)")
    p.add_argument("--faces", help="VoxCeleb: folder of face images <id>/<video>/*.jpg (default: ROOT/faces)")
    p.add_argument("--vox-meta", help="VoxCeleb: vox1_meta.csv for gender and nationality")
    p.add_argument("--limit", type=int, help="only the first N items (in key order), for a quick look")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_prepare)

    p = sub.add_parser("evaluate", help="score reconstructions with the paper's protocol; write a report")
    p.add_argument("--data", required=True, help="paired folder (pairs.csv, audio/, faces/) with the true faces")
    p.add_argument("--images", required=True, help="folder of reconstructions named <stem>.png|jpg")
    p.add_argument("--out", required=True, help="report folder (metrics.json, index.html, plots)")
    p.add_argument("--pool", type=int, default=100, help="retrieval pool size (default 100)")
    p.add_argument("--repeats", type=int, default=10, help="random pools per clip (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="a seeded random subset of N pairs")
    p.add_argument("--cache", default="~/.cache/speech2face/image_scores.jsonl",
                   help="image scores by content hash, reused across runs")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--no-baselines", action="store_true", help="skip the mean-face and voice-gender baselines")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:
        print(f"speech2face {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
