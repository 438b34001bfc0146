"""Expand command-line inputs (files, folders, globs) and name outputs after them."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Iterable, Sequence

from .errors import InputError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a", ".aac", ".webm", ".mp4")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def expand_inputs(patterns: Iterable[str], suffixes: Sequence[str]) -> list[Path]:
    """Files named directly, files with one of ``suffixes`` inside folders, and glob matches; in order, once each."""
    found: list[Path] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in suffixes and p.is_file())
        elif path.is_file():
            found.append(path)
        elif any(c in pattern for c in "*?["):
            matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
            if not matches:
                raise InputError(f"{pattern}: no file matches")
            found += [p for p in matches if p.is_file()]
        else:
            raise InputError(f"{pattern}: {why_not_a_file(path, folders=True)}")
    seen, unique = set(), []
    for p in found:  # once each, named as the user typed it
        if p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    if not unique:
        raise InputError("no input files found")
    return unique


def why_not_a_file(path: Path, folders: bool = False) -> str:
    """Why ``path`` cannot be read as an input file, in words: missing, a link that leads nowhere or
    round in a loop, or something that exists but is not a regular file (a FIFO, a device)."""
    import stat

    try:
        mode = path.stat().st_mode  # follows links
    except OSError as exc:
        import errno

        if exc.errno == errno.ELOOP:
            return "a symbolic link that loops back on itself"
        if path.is_symlink():
            return f"a symbolic link to {os.readlink(path)}, which does not exist"
        return "no such file or folder" if folders else "no such file"
    kinds = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))
    kind = next((name for test, name in kinds if test(mode)), "not a regular file")
    return f"{kind}, not a regular file" if kind != "not a regular file" else kind


def output_paths(inputs: list[Path], out: str, suffix: str = ".png") -> list[Path]:
    """``-o face.png`` for one input; ``-o DIR`` → ``DIR/<input stem>.png`` for any number."""
    target = Path(out)
    if len(inputs) == 1 and target.suffix and not target.is_dir():
        return [target]
    if target.suffix and not target.is_dir():
        raise InputError(f"{out}: with {len(inputs)} inputs, -o must be a folder")
    stems = [p.stem for p in inputs]
    duplicates = {s for s in stems if stems.count(s) > 1}
    if duplicates:
        raise InputError(f"several inputs share the name {sorted(duplicates)[0]!r}; outputs would overwrite each other")
    return [target / f"{s}{suffix}" for s in stems]


def check_writable(outputs: list[Path]) -> None:
    """Fail before any work when an output folder cannot be made or written to."""
    import tempfile

    for folder in dict.fromkeys(p.parent for p in outputs):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".speech2face-write-test-"):
                pass
        except OSError as exc:
            raise InputError(f"{folder}: cannot write output there ({exc.strerror or exc})") from None


def default_score_cache() -> Path:
    """Where `evaluate` keeps image scores between runs: $XDG_CACHE_HOME/speech2face (default ~/.cache)."""
    import os

    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "speech2face" / "image_scores.jsonl"
