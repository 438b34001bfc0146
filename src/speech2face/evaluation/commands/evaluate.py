"""speech2face evaluate: score any system's reconstructions with the paper's protocol and write a
report (``speech2face.evaluation.protocol``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ...files import default_score_cache

    p.add_argument("--data", required=True, help="paired folder (pairs.csv, audio/, faces/) with the true faces")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--images", help="folder of any system's reconstructions named <stem>.png|jpg")
    which.add_argument("--model", help="voice encoder weights to reconstruct every clip with ('shipped' for ours)")
    p.add_argument("--decoder-weights", help="with --model: face decoder weights (default: the shipped ones)")
    p.add_argument("--attributes-weights", help="with --model: voice attributes weights (default: the shipped ones)")
    p.add_argument("--no-steer", action="store_true",
                   help="with --model: draw the head's predictions unmoved (not steered to the voice's gender and group)")
    p.add_argument("--bf16", action="store_true",
                   help="with --model: GE2E's LSTM in bfloat16, as `serve --bf16` runs it (to measure what it changes)")
    p.add_argument("--out", required=True, help="report folder (metrics.json, index.html, plots)")
    p.add_argument("--pool", type=int, default=100, help="retrieval pool size")
    p.add_argument("--repeats", type=int, default=10, help="random pools per clip")
    p.add_argument("--seed", type=int, default=0, help="seed of the retrieval pools and of --limit's sample")
    p.add_argument("--limit", type=int, help="score a seeded random sample of N pairs; with --images, drawn among "
                                             "the pairs that have an image (default: all pairs)")
    p.add_argument("--split", choices=("dev", "val", "train"),
                   help="only the speakers of this identity split (dev: never trained or tuned on; default: all)")
    p.add_argument("--cache", default=str(default_score_cache()),
                   help="file of image scores by content hash, reused across runs ($XDG_CACHE_HOME/speech2face/"
                        "image_scores.jsonl, ~/.cache when XDG_CACHE_HOME is unset)")
    p.add_argument("--no-cache", action="store_true", help="score every image afresh and keep nothing")
    p.add_argument("--no-baselines", action="store_true", help="skip the mean-face and voice-gender baselines")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from .. import EvalConfig, evaluate
    from ..report import fmt

    config = EvalConfig(data=Path(args.data), out=Path(args.out), images=Path(args.images) if args.images else None,
                        model=args.model, decoder_weights=args.decoder_weights,
                        attributes_weights=args.attributes_weights, steer=not args.no_steer, bfloat16=args.bf16,
                        split=args.split, limit=args.limit, pool=args.pool, repeats=args.repeats, seed=args.seed,
                        cache=None if args.no_cache else Path(args.cache).expanduser(),
                        baselines=not args.no_baselines, progress=not args.quiet)
    metrics = evaluate(config)
    for name, s in metrics["systems"].items():
        r, d = s["retrieval"]["recall"], s["demographics"]
        print(f"{name}: R@1 {fmt(r['1'], 1)}  R@5 {fmt(r['5'], 1)}  R@10 {fmt(r['10'], 1)}  "
              f"gender {fmt(d['gender']['agreement'], 1, 100)} %  age r {fmt(d['age_correlation']['r'], 2)}  "
              f"sharpness {fmt(s['quality']['sharpness_median'], 1)}  "
              f"face found {fmt(s['quality']['face_detected_share'], 0, 100)} %  "
              f"mouth closed {fmt(s['quality'].get('mouth_closed_share'), 0, 100)} %  "
              f"plain background {fmt(s['quality'].get('plain_background_share'), 0, 100)} %")
    told = metrics.get("voice_attributes")
    if told:
        print(f"what the voice tells: gender {fmt(told['gender']['accuracy'], 1, 100)} % (ECE {fmt(told['gender']['ece'], 3)}), "
              f"age r {fmt(told['age']['r'], 2)} (80 % interval holds {fmt(told['age']['interval_80_coverage'], 0, 100)} %), "
              f"ethnicity {fmt(told['ethnicity']['accuracy'], 1, 100)} % (ECE {fmt(told['ethnicity']['ece'], 3)})")
    pool = next(iter(metrics["systems"].values()))["retrieval"]["pool_size"]
    if pool < args.pool:
        print(f"note: only {metrics['speakers_scored']} speakers were scored, so each retrieval pool holds {pool} "
              f"faces, not {args.pool}: chance is R@1 {100 / pool:.1f} %, R@10 {100 * min(10, pool) / pool:.1f} %, "
              "and the figures are not comparable with pools of 100", file=sys.stderr)
    print(f"report: {Path(args.out) / 'index.html'}", file=sys.stderr)
    return 0
