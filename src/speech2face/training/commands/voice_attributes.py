"""speech2face train voice-attributes: fit the voice's attribute read-outs, calibrate them on val,
report them on dev (``speech2face.training.voice_attributes``)."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pairs", help="prepared voice/face shards (speech2face prepare)")
    parser.add_argument("faces", help="UTKFace face shards with age/gender/race labels")
    parser.add_argument("--data", required=True, help="the paired folder the shards came from (its faces/ are scored)")
    parser.add_argument("--voice-weights", help="voice head whose residual spread on val sets the variations "
                                                "(default: the shipped one)")
    parser.add_argument("--out", default="runs/voice_attributes", help="run folder")
    parser.add_argument("--export", help="write the read-outs here (safetensors + sha256; default: not exported)")
    parser.add_argument("--fit-on", choices=("train", "all"), default="train",
                        help="train: train speakers only; all: refit on every pair after choosing on val")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..voice_attributes import run as fit

    report = fit([args.pairs], [args.faces], Path(args.data), Path(args.out), args.voice_weights,
                 Path(args.export) if args.export else None, args.fit_on, getattr(args, "command_line", None))
    print(json.dumps({k: report[k] for k in ("hyperparameters", "calibration", "spread")}, indent=1))
    for split in ("val", "dev"):
        r = report[split]
        print(f"{split}: gender {100 * r['gender']['accuracy']:.1f} % (ECE {r['gender']['ece']:.3f}), "
              f"age r {r['age']['r']:.2f} MAE {r['age']['mae']:.1f} 80 % coverage {100 * r['age']['interval_80_coverage']:.0f} %, "
              f"ethnicity {100 * r['ethnicity']['accuracy']:.1f} % (ECE {r['ethnicity']['ece']:.3f}), drawn group "
              f"{100 * r['ethnicity']['drawn']['agreement']:.1f} % / balanced {100 * r['ethnicity']['drawn']['balanced']:.1f} %, "
              f"max share ratio {r['ethnicity']['drawn']['max_share_ratio']:.2f}")
    return 0
