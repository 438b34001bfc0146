"""Command line: argument parsing only; each sub-command calls one library function."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import InputError, WeightsError


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
        ray_address=args.ray,
    )
    brief = {k: summary[k] for k in ("items_listed", "written", "written_with_audio", "skipped", "speakers",
                                     "shards_complete", "shards_expected", "skipped_by_reason", "this_run")}
    print(json.dumps(brief, indent=1))
    print(f"summary with every skipped item and its reason: {Path(args.out) / 'index.json'}", file=sys.stderr)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluation import EvalConfig, evaluate

    config = EvalConfig(data=Path(args.data), out=Path(args.out), images=Path(args.images) if args.images else None,
                        model=args.model, decoder_weights=args.decoder_weights,
                        attributes_weights=args.attributes_weights, steer=not args.no_steer, bfloat16=args.bf16,
                        split=args.split, limit=args.limit, pool=args.pool, repeats=args.repeats, seed=args.seed,
                        cache=None if args.no_cache else Path(args.cache).expanduser(),
                        baselines=not args.no_baselines, progress=not args.quiet)
    metrics = evaluate(config)
    from .evaluation.report import fmt

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


def _write_each(inputs: list[Path], outputs: list[Path], draw, report) -> tuple[list[tuple[str, object]], int]:
    """``draw(input, output) → ([(path, image), …], info)``, the input's face at its output first,
    for each input: every image saved, then ``report(input, paths written, info)``, info holding an
    ``error`` where the input could not be read or an image not written (also a line on stderr), so
    that nothing unwritten is reported as written. Returns the (stem, face) pairs written and the
    number of failed inputs."""
    done, failed = [], 0
    for src, dst in zip(inputs, outputs):
        try:
            images, info = draw(src, dst)
        except InputError as exc:
            failed += 1
            reason = str(exc).removeprefix(f"{src}: ")  # the message may name the file already
            print(f"{src}: skipped: {reason}", file=sys.stderr)
            report(src, [], {"error": reason})
            continue
        written, errors = _save_images(images)
        for line in errors:
            print(line, file=sys.stderr)
        failed += bool(errors)
        if dst in written:
            done.append((src.stem, images[0][1]))
        report(src, written, {**info, "error": "; ".join(errors)} if errors else info)
    return done, failed


def _save_images(images: list[tuple[Path, object]]) -> tuple[list[Path], list[str]]:
    """Save each (path, image array): the paths written, and a line for each that could not be."""
    from PIL import Image

    written, errors = [], []
    for path, image in images:
        try:
            Image.fromarray(image).save(path)
        except OSError as exc:
            errors.append(f"{path}: could not be written: {exc.strerror or exc}")
            continue
        written.append(path)
    return written, errors


def _print_paths(src: Path, written: list[Path], info: dict) -> None:
    """Plain output: the files written, one a line (what went wrong is on stderr already)."""
    for path in written:
        print(path)


def _existing_inputs(patterns: list[str], suffixes) -> tuple[list[Path], list[tuple[str, str]]]:
    """The input files, and (pattern, why) for each input that names no file: a missing file among
    others is skipped like an unreadable one, not the end of the batch. Where nothing at all is
    found there is nothing to do: an InputError (exit status 2)."""
    from .files import expand_inputs

    present, missing = [], []
    for pattern in patterns:
        try:
            if not Path(pattern).is_dir():  # a folder without such files adds nothing, as before
                expand_inputs([pattern], suffixes)
        except InputError as exc:
            missing.append((pattern, str(exc).removeprefix(f"{pattern}: ")))
            continue
        present.append(pattern)
    try:
        return expand_inputs(present, suffixes), missing
    except InputError:
        if not missing:
            raise
        more = f" (nor do {len(missing) - 1} more of the inputs)" if len(missing) > 1 else ""
        raise InputError(f"{missing[0][0]}: {missing[0][1]}{more}") from None


def _skip_missing(missing: list[tuple[str, str]], report) -> None:
    """A line on stderr, and the report with its error, for each input that names no file."""
    for pattern, why in missing:
        print(f"{pattern}: skipped: {why}", file=sys.stderr)
        report(Path(pattern), [], {"error": why})


def _check_image_types(outputs: list[Path]) -> None:
    """Fail before any work where Pillow cannot write an RGB image of an output's type (-o face.xyz,
    face.xbm): one line, not a traceback after the drawing."""
    for path in {p.suffix.lower(): p for p in outputs}.values():
        if not _writes_rgb(path.suffix):
            raise InputError(f"{path}: cannot write an image of type {path.suffix or '(none)'!r}; "
                             "name it .png, .jpg or .webp")


def _writes_rgb(suffix: str) -> bool:
    """Whether Pillow writes an RGB image to a file of this suffix (tried in memory: some types it
    knows hold no RGB, or lack their encoder)."""
    import io

    from PIL import Image

    Image.init()
    kind = Image.registered_extensions().get(suffix.lower())
    if kind is None:
        return False
    try:
        Image.new("RGB", (8, 8)).save(io.BytesIO(), format=kind)
    except (ValueError, KeyError, OSError):
        return False
    return True


def _normalize(args: argparse.Namespace) -> int:
    from .files import IMAGE_SUFFIXES
    from .files import check_writable, output_paths
    from .engines.pytorch import load_decoder

    inputs, missing = _existing_inputs(args.inputs, IMAGE_SUFFIXES)
    outputs = output_paths(inputs, args.output)
    _check_image_types(outputs)
    check_writable(outputs)
    _skip_missing(missing, _print_paths)
    renderer = load_decoder(args.weights, args.device)
    _, failed = _write_each(inputs, outputs, lambda src, dst: ([(dst, renderer.normalize(src)[0])], {}), _print_paths)
    return 1 if failed or missing else 0


BATCH = 32  # clips reconstructed together by `reconstruct` on many files
SHEET = "contact_sheet.png"  # beside the faces, when there are several inputs


def variation_path(output: Path, k: int) -> Path:
    """Where the k-th face (k ≥ 2) of an input drawn to ``output`` goes: face.png → face_v2.png."""
    return output.with_name(f"{output.stem}_v{k}{output.suffix}")


def _unique_outputs(faces: list[Path], variations: int, sheet: Path | None) -> tuple[list[list[Path]], Path | None]:
    """Every output of a run at its own path, decided before drawing: the faces of the inputs keep
    their names (``output_paths`` makes those unique), and a variation or the contact sheet whose name
    another output takes gets the first free -2, -3, … (face_v2-2.png beside the face of face_v2.opus,
    contact_sheet-2.png beside that of contact_sheet.opus). Names differing only in case count as one,
    as on macOS and Windows. Returns each face's variation paths and the sheet's path."""
    taken = {str(p).casefold() for p in faces}

    def claim(path: Path) -> Path:
        candidate, n = path, 2
        while str(candidate).casefold() in taken:
            candidate, n = path.with_name(f"{path.stem}-{n}{path.suffix}"), n + 1
        taken.add(str(candidate).casefold())
        return candidate

    extra = [[claim(variation_path(face, k)) for k in range(2, variations + 1)] for face in faces]
    return extra, claim(sheet) if sheet else None


def _print_json(src: Path, written: list[Path], info: dict) -> None:
    """--json: one line per input, listing only the faces written, with an ``error`` where it failed."""
    print(json.dumps({"input": str(src), "faces": [str(p) for p in written], **info}), flush=True)


def _reconstruct(args: argparse.Namespace) -> int:
    from .files import AUDIO_SUFFIXES
    from .files import check_writable, output_paths
    from .pipeline import load_model
    from .voice_attributes import describe

    inputs, missing = _existing_inputs(args.inputs, AUDIO_SUFFIXES)
    outputs = output_paths(inputs, args.output)
    _check_image_types(outputs)
    extras, sheet = _unique_outputs(outputs, args.variations, outputs[0].parent / SHEET if len(inputs) > 1 else None)
    extra_of = dict(zip(outputs, extras))
    check_writable(outputs)
    report = _print_json if args.json else _print_paths
    _skip_missing(missing, report)
    model = load_model(voice_weights=args.weights, decoder_weights=args.decoder_weights, device=args.device)
    results: dict = {}

    def draw(src: Path, dst: Path):
        if src not in results:  # reconstruct this input's batch in one go (batched embedding and drawing)
            start = inputs.index(src)
            batch = inputs[start:start + BATCH]
            results.update(zip(batch, model.reconstruct_each(batch, duration=args.duration, variations=args.variations)))
        result = results.pop(src)
        if isinstance(result, InputError):
            raise result
        images = [(dst, result.image), *zip(extra_of[dst], result.variations[1:])]
        if args.json:
            return images, {"used": result.used, "notes": result.notes, "voice_attributes": result.voice_attributes}
        if result.input_seconds > args.duration + 0.05 or result.notes:  # more than one clip: say which part
            print(f"{src}: used {result.used}" + "".join(f"; {n}" for n in result.notes), file=sys.stderr)
        if result.voice_attributes is not None and len(inputs) == 1:
            print(f"{src}: the voice: {describe(result.voice_attributes)}", file=sys.stderr)
        return images, {}

    done, failed = _write_each(inputs, outputs, draw, report)
    if sheet and done and not _write_sheet(sheet, done):
        failed += 1
    return 1 if failed or missing else 0


def _write_sheet(path: Path, done: list[tuple[str, object]]) -> bool:
    """The contact sheet of the faces drawn; False (and a line) where it could not be written."""
    from .sheets import contact_sheet

    try:
        contact_sheet([img for _, img in done], [name for name, _ in done]).save(path)
    except OSError as exc:
        print(f"{path}: could not be written: {exc.strerror or exc}", file=sys.stderr)
        return False
    print(f"contact sheet: {path}", file=sys.stderr)
    return True


def _match(args: argparse.Namespace) -> int:
    from .files import IMAGE_SUFFIXES
    from .files import expand_inputs
    from .matching import rank_faces
    from .pipeline import load_model

    photos = expand_inputs(args.faces, IMAGE_SUFFIXES)
    model = load_model(voice_weights=args.weights, device=args.device)
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


def _export(args: argparse.Namespace) -> int:
    from .extras import require

    require("torch", "speech2face export")
    require("onnx", "speech2face export")
    from .export.writer import export_onnx

    manifest = export_onnx(Path(args.out) if args.out else None)
    print(json.dumps({name: g["sha256"][:12] for name, g in manifest["graphs"].items()}, indent=1))
    return 0


def _site(args: argparse.Namespace) -> int:
    from .serve.site import write_site

    print(json.dumps(write_site(Path(args.out)), indent=1))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .serve.app import serve

    serve(args.host, args.port, args.timeout, bfloat16=args.bf16, upload_timeout=args.upload_timeout)
    return 0


class _HelpWithDefaults(argparse.HelpFormatter):
    """Every option's help ends with its default, where it has one and does not say it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        has_default = not (action.default is None or action.default is False or action.default == argparse.SUPPRESS)
        if action.option_strings and has_default and "default" not in text:
            text += " (default: %(default)s)"
        return text


def _train(args: argparse.Namespace) -> int:
    import shlex

    from .training.voice import run_from_args

    result = run_from_args(args, "speech2face " + shlex.join(args.argv))
    print(json.dumps(result, indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrors(prog="speech2face", formatter_class=_HelpWithDefaults,
                                     description="Hear a few seconds of speech, draw a canonical face of the speaker.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__import__('speech2face').__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineErrors)

    p = sub.add_parser("reconstruct", formatter_class=_HelpWithDefaults, help="speech → a canonical face of the speaker")
    p.add_argument("inputs", nargs="+", help="audio files (wav flac ogg opus mp3 m4a aac webm mp4), folders or globs; one "
                                             "that is missing or unreadable is skipped with a line, the others are "
                                             "drawn, and the exit status is 1")
    p.add_argument("-o", "--output", required=True,
                   help="face.png (or .jpg, .webp, …) for one clip, or a folder (DIR/<stem>.png + contact_sheet.png); "
                        "the faces of the inputs always keep their names, and a variation or the contact sheet whose "
                        "name another output of the run takes gets the first free -2, -3, … (face_v2-2.png, "
                        "contact_sheet-2.png): no output overwrites another")
    from .limits import CLIP_SECONDS, PREPARED_CLIP_SECONDS

    p.add_argument("--duration", type=_clip_seconds, default=CLIP_SECONDS,
                   help="seconds per clip, 3 to 6 (as the HTTP API takes); longer input is cut into clips of this length and the clips that "
                        "hold speech and sound like one voice are averaged")
    p.add_argument("--variations", type=_variations, default=1, metavar="N",
                   help="draw N plausible faces of the voice, 1 to 12: the most likely (-o) first, then samples "
                        "(face_v2.png, …)")
    p.add_argument("--json", action="store_true",
                   help="one JSON line per input on stdout: the faces written, the part used, notes, and what the voice "
                        "tells (voice_attributes: gender, age, ethnicity with confidences); an input that failed, "
                        "or a face that could not be written, has an 'error' (and lists only the faces written)")
    p.add_argument("--device", help="cpu or cuda (default: cuda if available, else cpu)")
    p.add_argument("--weights", help="voice encoder weights (default: the shipped ones)")
    p.add_argument("--decoder-weights", help="face decoder weights (default: the shipped ones)")
    p.set_defaults(func=_reconstruct)

    p = sub.add_parser("prepare", formatter_class=_HelpWithDefaults, help="turn audio-visual material into training shards")
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
    p.set_defaults(func=_prepare)

    kinds = "; ".join(f"'{c} {k}': {what}" for (c, k), (_, what) in DELEGATED.items() if c == "evaluate")
    p = sub.add_parser("evaluate", formatter_class=_HelpWithDefaults,
                       help="score reconstructions with the paper's protocol; write a report",
                       description=f"Score any system's reconstructions with the paper's protocol (this page). Also: {kinds} "
                                   "(each with its own --help).")
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
    from .files import default_score_cache

    p.add_argument("--cache", default=str(default_score_cache()),
                   help="file of image scores by content hash, reused across runs ($XDG_CACHE_HOME/speech2face/"
                        "image_scores.jsonl, ~/.cache when XDG_CACHE_HOME is unset)")
    p.add_argument("--no-cache", action="store_true", help="score every image afresh and keep nothing")
    p.add_argument("--no-baselines", action="store_true", help="skip the mean-face and voice-gender baselines")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("normalize", formatter_class=_HelpWithDefaults, help="photo → face descriptor → canonical frontal face")
    p.add_argument("inputs", nargs="+", help="image files, folders or globs; one that is missing or unreadable is "
                                             "skipped with a line, the others are drawn, and the exit status is 1")
    p.add_argument("-o", "--output", required=True, help="face.png for one input, or a folder (DIR/<stem>.png)")
    p.add_argument("--weights", help="face decoder weights (default: the shipped ones)")
    p.add_argument("--device", help="cpu or cuda (default: cuda if available, else cpu)")
    p.set_defaults(func=_normalize)

    p = sub.add_parser("match", formatter_class=_HelpWithDefaults, help="rank face photos by how well they fit a voice")
    p.add_argument("voice", help="a speech clip")
    p.add_argument("faces", nargs="+", help="face photos, folders or globs")
    p.add_argument("--json", action="store_true", help="print the ranking as JSON")
    p.add_argument("--weights", help="voice encoder weights (default: the shipped ones)")
    p.add_argument("--device", help="cpu or cuda (default: cuda if available, else cpu)")
    p.set_defaults(func=_match)

    p = sub.add_parser("serve", formatter_class=_HelpWithDefaults, help="the web page and HTTP API")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000, help="TCP port, 1–65535")
    from .limits import SERVE_TIMEOUT_SECONDS

    p.add_argument("--timeout", type=float, default=SERVE_TIMEOUT_SECONDS,
                   help="seconds a request may wait and run before it is answered 503 (server busy)")
    p.add_argument("--upload-timeout", type=float, default=20.0,
                   help="seconds from a request's start by which its upload must have arrived (else 408)")
    p.add_argument("--bf16", action="store_true",
                   help="run GE2E's LSTM in bfloat16: up to 1.5x the requests/s on CPUs with AMX or AVX512-BF16, slower on "
                        "others; voice embeddings within cosine 0.998 of the float32 ones (README: Benchmarks)")
    p.set_defaults(func=_serve)

    p = sub.add_parser("export", formatter_class=_HelpWithDefaults,
                       help="write the ONNX graphs the runtime and the page run, from the shipped weights "
                            "(needs speech2face[train])")
    p.add_argument("format", choices=["onnx"], help="what to write")
    p.add_argument("--out", help="folder (default: the package's own assets/onnx, which the runtime loads)")
    p.set_defaults(func=_export)

    p = sub.add_parser("site", formatter_class=_HelpWithDefaults,
                       help="write the web page as a static folder that draws faces on the visitor's device")
    p.add_argument("out", help="folder to write (index.html, static/, models/)")
    p.set_defaults(func=_site)

    from .training.voice_config import add_arguments

    kinds = "; ".join(f"'{c} {k}': {what}" for (c, k), (_, what) in DELEGATED.items() if c == "train")
    p = sub.add_parser("train", formatter_class=_HelpWithDefaults,
                       help="train a voice encoder (speech → face descriptor; also 'train voice'); torchrun-ready",
                       description=f"Train the voice encoder (this page; 'train voice' is the same). Also: {kinds} "
                                   "(each with its own --help).")
    add_arguments(p)
    p.set_defaults(func=_train)
    return parser


def _clip_seconds(text: str) -> float:
    """--duration: a number of seconds from MIN_CLIP_SECONDS to MAX_CLIP_SECONDS (argparse type)."""
    from .limits import MAX_CLIP_SECONDS, MIN_CLIP_SECONDS

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not MIN_CLIP_SECONDS <= value <= MAX_CLIP_SECONDS:
        raise argparse.ArgumentTypeError(f"{value:g} s is outside {MIN_CLIP_SECONDS:g}–{MAX_CLIP_SECONDS:g} s")
    return value


def _variations(text: str) -> int:
    """--variations: a whole number of faces from 1 to MAX_VARIATIONS (argparse type)."""
    from .limits import MAX_VARIATIONS

    if not text.strip().isdigit() or not 1 <= int(text) <= MAX_VARIATIONS:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number of faces from 1 to {MAX_VARIATIONS}")
    return int(text)


class _OneLineErrors(argparse.ArgumentParser):
    """A bad flag is one line on stderr (and exit 2), not the usage block argparse prints."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _files_as_files(argv: list[str], options: set[str]) -> list[str]:
    """Arguments that start with '-' but name an existing file ('-1nRm4tQL0A_024.76-029.96.opus',
    as AVSpeech names clips) are files, not flags: written './-…' for argparse. One of the
    command's own ``options`` (a file named '--json' beside it) stays the option; './--json'
    names the file. After '--' everything is a file already."""
    end = argv.index("--") if "--" in argv else len(argv)
    return [f"./{a}" if k < end and a.startswith("-") and len(a) > 2 and a.split("=")[0] not in options
            and Path(a).is_file() else a for k, a in enumerate(argv)]


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every flag of ``parser`` and of its sub-commands."""
    found = set()
    for action in parser._actions:
        found.update(action.option_strings)
        for sub in getattr(action, "choices", None) or {}:
            if isinstance(action.choices, dict) and isinstance(action.choices[sub], argparse.ArgumentParser):
                found |= _option_strings(action.choices[sub])
    return found


# sub-commands whose own module parses the rest of the line (imported only when dispatched, so
# `speech2face --help` never waits for torch): (command, kind) → (module, what it does)
DELEGATED = {
    ("train", "face-decoder"): ("speech2face.training.face_decoder", "train the face decoder on face shards"),
    ("train", "voice-attributes"): ("speech2face.training.voice_attributes",
                                    "fit and calibrate what the voice tells (gender, age, ethnicity)"),
    ("train", "ethnicity"): ("speech2face.evaluation.attributes", "train the UTKFace ethnicity classifier of the scorer"),
    ("evaluate", "decoder"): ("speech2face.evaluation.decoder", "face-to-face check of a face decoder on dev identities"),
    ("evaluate", "seeds"): ("speech2face.evaluation.seeds", "mean ± sd over several evaluation reports"),
    ("evaluate", "steering"): ("speech2face.training.choose_steering",
                               "score drawing settings (exaggeration, steering) on val drawings"),
}


def _delegate(argv: list[str]) -> int | None:
    """Run ``speech2face train face-decoder …`` and the like by their module's own parser; None
    when ``argv`` is not such a command. ``train voice …`` is ``train …`` (the voice encoder)."""
    if len(argv) < 2 or (argv[0], argv[1]) not in DELEGATED:
        return None
    import importlib

    module = importlib.import_module(DELEGATED[argv[0], argv[1]][0])
    try:
        module.main(argv[2:], prog=f"speech2face {argv[0]} {argv[1]}")
    except (InputError, WeightsError) as exc:
        print(f"speech2face {argv[0]} {argv[1]}: error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    argv = _files_as_files(argv, _option_strings(parser))
    if argv[:2] == ["train", "voice"]:
        argv = ["train"] + argv[2:]
    delegated = _delegate(argv)
    if delegated is not None:
        return delegated
    args = parser.parse_args(argv)
    args.argv = argv  # the line as given, for the weights' reproduce line
    try:
        return args.func(args)
    except (InputError, WeightsError) as exc:
        print(f"speech2face {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
