"""speech2face reconstruct: speech → a canonical face of the speaker, for each input file (in
batches of BATCH clips), with variations, a contact sheet of several, and --json lines."""

from __future__ import annotations

import argparse
import sys

from .outputs import (SHEET, add_engine, planned, print_json, print_paths, save_and_report,
                      skip_failed, skip_missing, unique_outputs, write_sheet)

BATCH = 32  # clips reconstructed together on many files


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..limits import CLIP_SECONDS

    p.add_argument("inputs", nargs="+", help="audio files (wav flac ogg opus mp3 m4a aac webm mp4), folders or globs; one "
                                             "that is missing or unreadable is skipped with a line, the others are "
                                             "drawn, and the exit status is 1")
    p.add_argument("-o", "--output", required=True,
                   help="face.png (or .jpg, .webp, …) for one clip, or a folder (DIR/<stem>.png + contact_sheet.png); "
                        "the faces of the inputs always keep their names, and a variation or the contact sheet whose "
                        "name another output of the run takes gets the first free -2, -3, … (face_v2-2.png, "
                        "contact_sheet-2.png): no output overwrites another")
    p.add_argument("--duration", type=clip_seconds, default=CLIP_SECONDS,
                   help="seconds per clip, 3 to 6 (as the HTTP API takes); longer input is cut into clips of this length and the clips that "
                        "hold speech and sound like one voice are averaged")
    p.add_argument("--variations", type=variations, default=1, metavar="N",
                   help="draw N plausible faces of the voice, 1 to 12: the most likely (-o) first, then samples "
                        "(face_v2.png, …)")
    p.add_argument("--json", action="store_true",
                   help="one JSON line per input on stdout: the faces written, the part used, notes, and what the voice "
                        "tells (voice_attributes: gender, age, ethnicity with confidences); an input that failed, "
                        "or a face that could not be written, has an 'error' (and lists only the faces written)")
    p.add_argument("--device", help="cpu or cuda (default: cuda if available, else cpu)")
    p.add_argument("--weights", help="voice encoder weights (default: the shipped ones)")
    p.add_argument("--decoder-weights", help="face decoder weights (default: the shipped ones)")
    add_engine(p)


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..files import AUDIO_SUFFIXES, check_writable
    from ..pipeline import load_model
    from ..voice_attributes import describe

    inputs, missing, outputs = planned(args.inputs, AUDIO_SUFFIXES, args.output)
    extras, sheet = unique_outputs(outputs, args.variations, outputs[0].parent / SHEET if len(inputs) > 1 else None)
    check_writable(outputs)
    report = print_json if args.json else print_paths
    skip_missing(missing, report)
    model = load_model(voice_weights=args.weights, decoder_weights=args.decoder_weights, device=args.device,
                       engine=args.engine)
    done, failed = [], 0  # (stem, face) of each face written, for the sheet; inputs that failed
    for start in range(0, len(inputs), BATCH):  # a batch's clips are embedded and drawn together
        batch = slice(start, start + BATCH)
        results = model.reconstruct_each(inputs[batch], duration=args.duration, variations=args.variations)
        for src, dst, extra, result in zip(inputs[batch], outputs[batch], extras[batch], results):
            if isinstance(result, InputError):
                skip_failed(src, result, report)
                failed += 1
                continue
            info = {}
            if args.json:
                info = {"used": result.used, "notes": result.notes, "voice_attributes": result.voice_attributes}
            else:
                if result.input_seconds > args.duration + 0.05 or result.notes:  # more than one clip: say which part
                    print(f"{src}: used {result.used}" + "".join(f"; {n}" for n in result.notes), file=sys.stderr)
                if result.voice_attributes is not None and len(inputs) == 1:
                    print(f"{src}: the voice: {describe(result.voice_attributes)}", file=sys.stderr)
            written, unwritten = save_and_report(src, [(dst, result.image), *zip(extra, result.variations[1:])],
                                                 info, report)
            failed += unwritten
            if dst in written:
                done.append((src.stem, result.image))
    if sheet and done and not write_sheet(sheet, done):
        failed += 1
    return 1 if failed or missing else 0


def clip_seconds(text: str) -> float:
    """--duration: a number of seconds from MIN_CLIP_SECONDS to MAX_CLIP_SECONDS (argparse type)."""
    from ..limits import MAX_CLIP_SECONDS, MIN_CLIP_SECONDS

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not MIN_CLIP_SECONDS <= value <= MAX_CLIP_SECONDS:
        raise argparse.ArgumentTypeError(f"{value:g} s is outside {MIN_CLIP_SECONDS:g}–{MAX_CLIP_SECONDS:g} s")
    return value


def variations(text: str) -> int:
    """--variations: a whole number of faces from 1 to MAX_VARIATIONS (argparse type)."""
    from ..limits import MAX_VARIATIONS

    if not text.strip().isdigit() or not 1 <= int(text) <= MAX_VARIATIONS:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number of faces from 1 to {MAX_VARIATIONS}")
    return int(text)
