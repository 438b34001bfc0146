"""Audio-visual material → one sample type.

Every source lists ``SourceItem`` recipes (cheap, picklable, sorted by key) and ``load_item``
turns any of them into a ``RawSample`` (decoded audio and candidate face images). Nothing after
``load_item`` knows which source a sample came from, except through its metadata.

Sources:
  * ``PairedFolder``: ``pairs.csv`` + ``audio/<stem>.*`` + ``faces/<stem>.jpg`` (e.g. s2f-pairs)
  * ``AVSpeech``: the AVSpeech CSV (``youtube_id,start,end,x,y``, no header) + ``<videos>/<id>.mp4``
  * ``VoxCeleb``: ``wav|aac/<id>/<video>/<n>.wav|m4a`` + face images in ``<faces>/<id>/<video>/``
  * ``FaceFolder``: images only (UTKFace with ``labels.csv``, or any folder of faces)
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from .. import audio
from ..errors import InputError
from ..faces import load_image

from ..files import AUDIO_SUFFIXES, IMAGE_SUFFIXES  # noqa: E402,F401 (the sources' names for them)
FRAMES_PER_SEGMENT = 3  # video frames tried, in turn, for a face


AVSPEECH_STEM = re.compile(r"^(?P<yt>[A-Za-z0-9_\-]{11})_\d+(\.\d+)?-\d+(\.\d+)?$")


def speaker_from_stem(stem: str, fallback: str) -> str:
    """AVSpeech stems (``<youtube id>_<start>-<end>``) name their video, i.e. their speaker."""
    match = AVSPEECH_STEM.match(stem)
    return f"yt:{match.group('yt')}" if match else fallback


def sample_key(text: str) -> str:
    """A WebDataset-safe key: no dots (they separate key from field) and no path separators."""
    return re.sub(r"[^A-Za-z0-9_\-]", "_", text)


@dataclass(frozen=True)
class SourceItem:
    """Recipe for one sample: where its audio and face come from. Paths are strings."""

    key: str
    speaker: str
    source: str
    audio_path: Optional[str] = None  # a whole audio file ...
    video_path: Optional[str] = None  # ... or a segment of a video (audio and frames)
    start: Optional[float] = None  # s, segment of video_path
    end: Optional[float] = None
    image_path: Optional[str] = None  # face image; for video items frames are used instead
    face_center: Optional[tuple[float, float]] = None  # fractions of frame width, height
    meta: dict = field(default_factory=dict, hash=False, compare=False)


@dataclass
class RawSample:
    """A decoded item: 16 kHz mono audio (or None) and candidate images holding the face."""

    item: SourceItem
    wave: Optional[np.ndarray]  # (N,) float32 at audio.SAMPLE_RATE, full decoded length
    images: list[np.ndarray]  # [(H, W, 3) uint8, ...], tried in order
    # how long the speech was before looping/cropping, in s
    speech_seconds: Optional[float] = None


def load_item(item: SourceItem) -> RawSample:
    """Decode one recipe. Raises InputError (with a reason) for anything unusable."""
    if item.video_path is not None:
        from .video import read_segment

        wave, rate, frames = read_segment(Path(item.video_path), item.start, item.end, FRAMES_PER_SEGMENT)
        wave = audio.resample(wave, rate)
        return RawSample(item, wave, frames, wave.size / audio.SAMPLE_RATE)
    wave = None
    if item.audio_path is not None:
        wave, rate, _, _ = audio.decode_audio(item.audio_path)
        wave = audio.resample(wave, rate)
    images = [load_image(item.image_path)] if item.image_path is not None else []
    if wave is None and not images:
        raise InputError(f"{item.key}: neither audio nor image")
    return RawSample(item, wave, images, None if wave is None else wave.size / audio.SAMPLE_RATE)


def find_with_suffix(folder: Path, stem: str, suffixes: Sequence[str]) -> Optional[Path]:
    """``folder/<stem><suffix>`` for the first suffix that exists, else None."""
    for suffix in suffixes:
        path = folder / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


class PairedFolder:
    """A folder with ``pairs.csv`` (column ``stem``; optional ``identity``, ``source``, ...),
    ``audio/<stem>.<any audio suffix>`` and ``faces/<stem>.<image suffix>``."""

    kind = "pairs"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        if not (self.root / "pairs.csv").is_file():
            raise InputError(f"{self.root}: no pairs.csv")

    def items(self) -> Iterator[SourceItem]:
        with open(self.root / "pairs.csv", newline="") as f:
            reader = csv.DictReader(f)
            if "stem" not in (reader.fieldnames or []):
                raise InputError(f"{self.root / 'pairs.csv'}: needs a 'stem' column, has {reader.fieldnames}")
            for row in reader:
                stem = row["stem"]
                audio_path = find_with_suffix(self.root / "audio", stem, AUDIO_SUFFIXES)
                image_path = find_with_suffix(self.root / "faces", stem, IMAGE_SUFFIXES)
                meta = {k: v for k, v in row.items() if k and v not in (None, "")}
                meta["stem"] = stem
                # a missing file is listed as an item and reported by load_item as a skip
                yield SourceItem(
                    key=sample_key(stem),
                    speaker=row.get("identity") or stem,
                    source=row.get("source") or self.kind,
                    audio_path=str(audio_path or self.root / "audio" / f"{stem}.wav"),
                    image_path=str(image_path or self.root / "faces" / f"{stem}.jpg"),
                    meta=meta,
                )


class AVSpeech:
    """AVSpeech CSV rows (``youtube_id, start, end, x, y``, no header) and downloaded videos."""

    kind = "avspeech"

    def __init__(self, csv_path: Path, videos: Optional[Path] = None) -> None:
        self.csv_path = Path(csv_path)
        self.videos = Path(videos) if videos else self.csv_path.parent
        if not self.csv_path.is_file():
            raise InputError(f"{self.csv_path}: no such CSV file")

    def items(self) -> Iterator[SourceItem]:
        with open(self.csv_path, newline="") as f:
            for line_no, row in enumerate(csv.reader(f), 1):
                if not row or not "".join(row).strip():
                    continue
                try:
                    yt_id, start, end, x, y = row[0].strip(), float(row[1]), float(row[2]), float(row[3]), float(row[4])
                except (IndexError, ValueError):
                    raise InputError(f"{self.csv_path}:{line_no}: expected 'youtube_id,start,end,x,y', got {row}")
                stem = f"{yt_id}_{start:.6f}-{end:.6f}"
                video = find_with_suffix(self.videos, yt_id, (".mp4", ".mkv", ".webm"))
                yield SourceItem(
                    key=sample_key(stem),
                    speaker=f"yt:{yt_id}",
                    source=self.kind,
                    video_path=str(video or self.videos / f"{yt_id}.mp4"),
                    start=start,
                    end=end,
                    face_center=(x, y),
                    meta={"stem": stem, "youtube_id": yt_id, "start": start, "end": end, "face_x": x, "face_y": y},
                )


class VoxCeleb:
    """VoxCeleb1/2: ``<root>/wav|aac/<speaker>/<video>/<n>.wav|m4a``; face images of each video in
    ``<faces>/<speaker>/<video>/`` (the first image, in name order, is used). Optional metadata
    CSV (VoxCeleb1's ``vox1_meta.csv``, tab-separated) adds gender and nationality."""

    kind = "voxceleb"

    def __init__(self, root: Path, faces: Optional[Path] = None, meta_csv: Optional[Path] = None) -> None:
        self.root = Path(root)
        self.audio_root = next((self.root / d for d in ("wav", "aac") if (self.root / d).is_dir()), None)
        if self.audio_root is None:
            raise InputError(f"{self.root}: no wav/ or aac/ folder (VoxCeleb layout)")
        self.faces = Path(faces) if faces else self.root / "faces"
        self.meta = _read_vox_meta(meta_csv) if meta_csv else {}

    def items(self) -> Iterator[SourceItem]:
        for clip in sorted(p for p in self.audio_root.glob("*/*/*") if p.suffix.lower() in AUDIO_SUFFIXES):
            speaker, video = clip.parent.parent.name, clip.parent.name
            face_dir = self.faces / speaker / video
            images = sorted(p for p in face_dir.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if face_dir.is_dir() else []
            meta = {"stem": f"{speaker}_{video}_{clip.stem}", "video": video, **self.meta.get(speaker, {})}
            yield SourceItem(
                key=sample_key(meta["stem"]),
                speaker=speaker,
                source=self.kind,
                audio_path=str(clip),
                image_path=str(images[0] if images else face_dir / "<no face images>"),
                meta=meta,
            )


def _read_vox_meta(path: Path) -> dict[str, dict]:
    meta = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            speaker = row.get("VoxCeleb1 ID") or row.get("VoxCeleb2 ID")
            if speaker:
                meta[speaker] = {"name": row.get("VGGFace1 ID", ""), "gender": row.get("Gender", ""),
                                 "nationality": row.get("Nationality", "")}
    return meta


class FaceFolder:
    """Face images without audio. With a UTKFace-style ``labels.csv`` (``file`` column, plus
    age/gender/race) the labels become metadata; otherwise every image in the folder is used."""

    kind = "faces"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"{self.root}: not a folder")

    def items(self) -> Iterator[SourceItem]:
        labels = self.root / "labels.csv"
        if labels.is_file():
            image_dir = self.root / "faces" if (self.root / "faces").is_dir() else self.root
            with open(labels, newline="") as f:
                rows = [(image_dir / row["file"], {k: v for k, v in row.items() if k and v}) for row in csv.DictReader(f)]
        else:
            rows = [(p, {}) for p in sorted(self.root.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
        for path, meta in rows:
            meta = {"stem": path.stem, **meta}
            yield SourceItem(
                key=sample_key(f"{self.root.name}_{path.stem}"),
                # no identities in face folders: each image its own, unless the name tells the video
                speaker=meta.get("identity") or speaker_from_stem(path.stem, f"{self.root.name}:{path.stem}"),
                source=self.kind,
                image_path=str(path),
                meta=meta,
            )


def open_source(spec: str, videos: Optional[str] = None, faces: Optional[str] = None, meta: Optional[str] = None):
    """A source from a command-line argument: ``[kind:]path``, the kind guessed from the layout.

    kinds: pairs (folder with pairs.csv), avspeech (a .csv file), voxceleb (folder with wav/ or
    aac/), faces (folder of images, optionally with labels.csv).
    """
    kind, _, rest = spec.partition(":")
    if rest and kind in ("pairs", "avspeech", "voxceleb", "faces"):
        path = Path(rest)
    else:
        kind, path = "", Path(spec)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if not kind:
        if path.is_file() and path.suffix.lower() == ".csv":
            kind = "avspeech"
        elif (path / "pairs.csv").is_file():
            kind = "pairs"
        elif (path / "wav").is_dir() or (path / "aac").is_dir():
            kind = "voxceleb"
        elif path.is_dir():
            kind = "faces"
        else:
            raise InputError(f"{path}: cannot tell what kind of source this is; prefix it with pairs:, avspeech:, voxceleb: or faces:")
    if kind == "pairs":
        return PairedFolder(path)
    if kind == "avspeech":
        return AVSpeech(path, Path(videos) if videos else None)
    if kind == "voxceleb":
        return VoxCeleb(path, Path(faces) if faces else None, Path(meta) if meta else None)
    return FaceFolder(path)
