"""speech2face train face-decoder: train the face decoder on face shards
(``speech2face.training.face_decoder``)."""

from __future__ import annotations

import argparse

# FaceDecoderTrainConfig's defaults of the flags below (that module imports torch; a test holds
# these equal to it)
BATCH_SIZE, CALIBRATION_ROUNDS, FRAME_SCALE = 16, 2, 0.8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ...sizes import FACE_SIZE

    parser.add_argument("shards", nargs="+", help="face shard folders (speech2face prepare)")
    parser.add_argument("--out", default="runs/face_decoder", help="run folder")
    parser.add_argument("--export", help="write the trained decoder here (safetensors + sha256; default: not exported)")
    parser.add_argument("--refiner-minutes", type=float, default=0.0,
                        help="wall-clock budget of the detail refiner (0: linear decoder only)")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="refiner images per step")
    parser.add_argument("--limit", type=int, help="use only the first N faces (default: all)")
    parser.add_argument("--calibration-rounds", type=int, default=CALIBRATION_ROUNDS,
                        help="rounds of the drawing calibration through the dlib port (0: none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the refiner's training")
    parser.add_argument("--size", type=int, default=FACE_SIZE, help="side of the decoded face (px)")
    parser.add_argument("--fit-on", choices=("non-dev", "all"), default="non-dev",
                        help="non-dev: dev faces never seen; all: every face, for a release whose recipe is fixed")
    parser.add_argument("--looks", action="store_true",
                        help="stage 4: hair, ears and neck as one hairstyle in one colour, on neck and shoulders "
                             "(needs UTKFace's labelled faces among the shards)")
    parser.add_argument("--frame-scale", type=float, default=FRAME_SCALE,
                        help="with looks: the head drawn this much smaller, on neck and shoulders (1: as drawn)")
    parser.add_argument("--from-weights",
                        help="keep this decoder's stages 1–3 and fit only the looks (with --looks; default: none)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ...models.face_decoder import FaceDecoderConfig
    from ..face_decoder import FaceDecoderTrainConfig, train

    cfg = FaceDecoderTrainConfig(from_weights=args.from_weights, shards=args.shards, out=args.out, seed=args.seed,
                                 batch_size=args.batch_size, refiner_minutes=args.refiner_minutes, limit=args.limit,
                                 looks=args.looks, frame_scale=args.frame_scale,
                                 calibration_rounds=args.calibration_rounds, fit_on=args.fit_on,
                                 decoder={**FaceDecoderConfig().to_dict(), "size": args.size,
                                          "refiner_unshuffle": 2 if args.size >= 192 else 1})
    print(train(cfg, Path(args.export) if args.export else None))
    return 0
