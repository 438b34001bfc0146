"""speech2face normalize: photo → face descriptor → canonical frontal face, for each input image."""

from __future__ import annotations

import argparse

from .outputs import (add_engine, planned, print_paths, save_and_report, skip_failed,
                      skip_missing)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", help="image files, folders or globs; one that is missing or unreadable is "
                                             "skipped with a line, the others are drawn, and the exit status is 1")
    p.add_argument("-o", "--output", required=True, help="face.png for one input, or a folder (DIR/<stem>.png)")
    p.add_argument("--weights", help="face decoder weights (default: the shipped ones)")
    p.add_argument("--device", help="cpu or cuda (default: cpu; with --engine torch, cuda if available)")
    add_engine(p)


def run(args: argparse.Namespace) -> int:
    from ..pipeline import load_decoder
    from ..errors import InputError
    from ..files import IMAGE_SUFFIXES, check_writable

    inputs, missing, outputs = planned(args.inputs, IMAGE_SUFFIXES, args.output)
    check_writable(outputs)
    skip_missing(missing, print_paths)
    renderer = load_decoder(args.weights, args.device, engine=args.engine)
    failed = 0
    for src, dst in zip(inputs, outputs):
        try:
            face = renderer.normalize(src)[0]
        except InputError as exc:
            skip_failed(src, exc, print_paths)
            failed += 1
            continue
        failed += save_and_report(src, [(dst, face)], {}, print_paths)[1]
    return 1 if failed or missing else 0
