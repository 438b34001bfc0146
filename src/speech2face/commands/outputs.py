"""What the commands that draw many files share: the inputs that exist (the missing ones
reported, not the end of the batch), output paths decided before drawing, images saved with a
line for each that could not be, and the lines or JSON reported for each input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import InputError

SHEET = "contact_sheet.png"  # beside the faces, when there are several inputs


def planned(patterns: list[str], suffixes, output: str) -> tuple[list[Path], list[tuple[str, str]], list[Path]]:
    """The inputs that exist, the (pattern, reason) of those that do not, and each input's output
    path (checked to be an image type Pillow writes)."""
    from ..files import output_paths

    inputs, missing = existing_inputs(patterns, suffixes)
    outputs = output_paths(inputs, output)
    check_image_types(outputs)
    return inputs, missing, outputs


def existing_inputs(patterns: list[str], suffixes) -> tuple[list[Path], list[tuple[str, str]]]:
    """The input files, and (pattern, why) for each input that names no file: a missing file among
    others is skipped like an unreadable one, not the end of the batch. Where nothing at all is
    found there is nothing to do: an InputError (exit status 2)."""
    from ..files import expand_inputs

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


def skip_missing(missing: list[tuple[str, str]], report) -> None:
    """A line on stderr, and the report with its error, for each input that names no file."""
    for pattern, why in missing:
        print(f"{pattern}: skipped: {why}", file=sys.stderr)
        report(Path(pattern), [], {"error": why})


def skip_failed(src: Path, exc: InputError, report) -> None:
    """A line on stderr, and the report with its error, for an input that could not be read."""
    reason = str(exc).removeprefix(f"{src}: ")  # the message may name the file already
    print(f"{src}: skipped: {reason}", file=sys.stderr)
    report(src, [], {"error": reason})


def check_image_types(outputs: list[Path]) -> None:
    """Fail before any work where Pillow cannot write an RGB image of an output's type (-o face.xyz,
    face.xbm): one line, not a traceback after the drawing."""
    for path in {p.suffix.lower(): p for p in outputs}.values():
        if not writes_rgb(path.suffix):
            raise InputError(f"{path}: cannot write an image of type {path.suffix or '(none)'!r}; "
                             "name it .png, .jpg or .webp")


def writes_rgb(suffix: str) -> bool:
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


def save_images(images: list[tuple[Path, object]]) -> tuple[list[Path], list[str]]:
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


def save_and_report(src: Path, images: list[tuple[Path, object]], info: dict, report) -> tuple[list[Path], bool]:
    """Save one input's images (its face first), print a line for each that could not be written,
    then ``report(input, paths written, info)``, info holding an ``error`` where one failed, so that
    nothing unwritten is reported as written. Returns the paths written, and whether one was not."""
    written, errors = save_images(images)
    for line in errors:
        print(line, file=sys.stderr)
    report(src, written, {**info, "error": "; ".join(errors)} if errors else info)
    return written, bool(errors)


def print_paths(src: Path, written: list[Path], info: dict) -> None:
    """Plain output: the files written, one a line (what went wrong is on stderr already)."""
    for path in written:
        print(path)


def print_json(src: Path, written: list[Path], info: dict) -> None:
    """--json: one line per input, listing only the faces written, with an ``error`` where it failed."""
    print(json.dumps({"input": str(src), "faces": [str(p) for p in written], **info}), flush=True)


def variation_path(output: Path, k: int) -> Path:
    """Where the k-th face (k ≥ 2) of an input drawn to ``output`` goes: face.png → face_v2.png."""
    return output.with_name(f"{output.stem}_v{k}{output.suffix}")


def unique_outputs(faces: list[Path], variations: int, sheet: Path | None) -> tuple[list[list[Path]], Path | None]:
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


def write_sheet(path: Path, done: list[tuple[str, object]]) -> bool:
    """The contact sheet of the faces drawn; False (and a line) where it could not be written."""
    from ..sheets import contact_sheet

    try:
        contact_sheet([img for _, img in done], [name for name, _ in done]).save(path)
    except OSError as exc:
        print(f"{path}: could not be written: {exc.strerror or exc}", file=sys.stderr)
        return False
    print(f"contact sheet: {path}", file=sys.stderr)
    return True


def add_engine(parser) -> None:
    """--engine, passed to ``speech2face.load_model``."""
    parser.add_argument("--engine", choices=("auto", "onnx", "torch"), default="auto",
                        help="what runs the networks: onnx (ONNX Runtime, no torch), torch (speech2face[train]; "
                             "weights of one's own, cuda, --bf16), auto: onnx unless one of those asks for torch")
