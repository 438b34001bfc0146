"""Sources → WebDataset tar shards: a pure per-item function plus a resumable shard writer.

One sample = files sharing a key inside a plain tar:
  ``<key>.json``      metadata (speaker, source, face box, speech length, labels, ...)
  ``<key>.spec.npy``  (2, T, 257) float16 power-law complex spectrogram (T = 598 for 6 s)
  ``<key>.audio.flac`` the fixed-length 16 kHz clip the spectrogram was made from
  ``<key>.spk.npy``   (256,) float32 pretrained speaker embedding
  ``<key>.face.jpg``  aligned canonical face crop (224×224)
  ``<key>.desc.npy``  (128,) float32 face descriptor
  ``<key>.lm68.npy``  (68, 2) float32 landmarks in crop pixels
  ``<key>.portrait.jpg`` the same face in the zoomed-out portrait frame (whole head; 224×224)
  ``<key>.portrait_lm68.npy`` (68, 2) float32 landmarks in portrait pixels
Face-only samples carry no spec/audio/spk. Shard ``shard-NNNNNN.tar`` is complete when its
``shard-NNNNNN.json`` exists; both are written under temporary names and renamed, so a killed
run leaves no corrupt shard and a re-run redoes only unfinished shards.
"""

from __future__ import annotations

import io
import json
import multiprocessing as mp
import os
import re
import tarfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np

from .. import audio
from ..clips import speech_clips
from ..errors import InputError
from ..sizes import FACE_SIZE
from .sources import RawSample, SourceItem, load_item

FORMAT_VERSION = 1
SHARD_PATTERN = "shard-{:06d}"


@dataclass(frozen=True)
class PrepareOptions:
    seconds: float = audio.CLIP_SECONDS  # clip length in s (the paper: 6, or 3)
    jpeg_quality: int = 95
    face_size: int = FACE_SIZE  # px


@dataclass
class Prepared:
    """The files of one sample, or the reason it was skipped."""

    key: str
    speaker: str
    files: Optional[dict[str, bytes]] = None
    skipped: Optional[str] = None


# --- per-item work (runs in worker processes) --------------------------------------------------
_analyzer = None


def _face_analyzer():
    global _analyzer
    if _analyzer is None:
        from ..faces import FaceAnalyzer

        _analyzer = FaceAnalyzer()
    return _analyzer


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _flac(wave: np.ndarray) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, wave, audio.SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def _jpeg(image: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def audio_files(wave: np.ndarray, seconds: float) -> dict[str, bytes]:
    """16 kHz wave → the clip inference would cut from it (``clips.speech_clips``: the window with
    the most speech), its spectrogram and speaker embedding, as files. AudioError without speech."""
    from ..models.speaker_encoder import speaker_encoder
    from ..models.voice_encoder import spectrogram

    clip = speech_clips(wave, audio.SAMPLE_RATE, seconds).most_speech()  # (clip_samples,)
    spec = spectrogram(clip).numpy().astype(np.float16)  # (2, T, 257)
    return {
        "spec.npy": _npy(spec),
        "audio.flac": _flac(clip),
        "spk.npy": _npy(speaker_encoder().embed_many([clip])[0]),
    }


def face_files(raw: RawSample, options: PrepareOptions) -> tuple[dict[str, bytes], dict]:
    """The first candidate image with a usable face → crop, descriptor, landmarks; plus metadata."""
    from ..errors import FaceError

    analyzer = _face_analyzer()
    failure = None
    for index, image in enumerate(raw.images):
        try:
            face = analyzer.analyze(image, center=raw.item.face_center, size=options.face_size)
        except FaceError as exc:
            failure = exc
            continue
        files = {
            "face.jpg": _jpeg(face.crop, options.jpeg_quality),
            "desc.npy": _npy(face.descriptor.astype(np.float32)),
            "lm68.npy": _npy(face.landmarks68.astype(np.float32)),
            "portrait.jpg": _jpeg(face.portrait, options.jpeg_quality),
            "portrait_lm68.npy": _npy(face.portrait_landmarks68.astype(np.float32)),
        }
        meta = {"face_box": list(face.face.box), "face_frame": index, "image_size": list(image.shape[1::-1])}
        return files, meta
    raise FaceError(f"no face found in {len(raw.images)} image(s)" if failure else "no image to look for a face in")


def prepare_item(item: SourceItem, options: PrepareOptions = PrepareOptions()) -> Prepared:
    """Pure per-item function: recipe → sample files, or a skip with a reason. Never raises for bad input."""
    try:
        raw = load_item(item)
        files: dict[str, bytes] = {}
        if raw.wave is not None:
            files.update(audio_files(raw.wave, options.seconds))
        face, face_meta = face_files(raw, options)
        files.update(face)
        meta = {
            "key": item.key,
            "speaker": item.speaker,
            "source": item.source,
            "has_audio": raw.wave is not None,
            "speech_seconds": raw.speech_seconds,
            "clip_seconds": options.seconds if raw.wave is not None else None,
            **face_meta,
            "meta": item.meta,
        }
        files["json"] = json.dumps(meta, sort_keys=True).encode()
        return Prepared(item.key, item.speaker, files=files)
    except InputError as exc:
        return Prepared(item.key, item.speaker, skipped=str(exc))


# --- shard writer -------------------------------------------------------------------------------
def write_tar(path: Path, samples: Iterable[Prepared]) -> None:
    """Write samples to ``path`` atomically: a temporary file renamed when complete."""
    tmp = path.with_name(path.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for sample in samples:
            for suffix, data in sample.files.items():
                info = tarfile.TarInfo(f"{sample.key}.{suffix}")
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, path)


def write_json(path: Path, record: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _shard_done(out: Path, index: int, keys: list[str]) -> bool:
    name = SHARD_PATTERN.format(index)
    record_path, tar_path = out / f"{name}.json", out / f"{name}.tar"
    if not (record_path.is_file() and tar_path.is_file()):
        return False
    try:
        return json.loads(record_path.read_text()).get("items") == keys
    except (OSError, json.JSONDecodeError):
        return False


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def prepare(
    sources: Sequence,
    out: Path,
    workers: Optional[int] = None,
    shard_size: int = 100,
    shard_id: int = 0,
    num_shards: int = 1,
    options: PrepareOptions = PrepareOptions(),
    progress: bool = True,
    limit: Optional[int] = None,
    ray_address: Optional[str] = None,
) -> dict:
    """Prepare every item of ``sources`` into shards under ``out``; returns the summary (also ``index.json``).

    Items are sorted by key and cut into shards of ``shard_size``; this process does the shards
    whose index ≡ ``shard_id`` (mod ``num_shards``) that are not already complete. The items run
    in ``workers`` local processes (default 1), or as tasks on the Ray cluster at ``ray_address``
    (see ``ray_prepare.ray_cluster``; with ``local``, ``workers`` is the CPUs Ray may use, default
    all); the shards, keys and files are the same either way.
    """
    from tqdm import tqdm

    if not 0 <= shard_id < num_shards:
        raise InputError(f"--shard-id must be in [0, {num_shards}), got {shard_id}")
    if workers is not None and workers < 1:  # Ray given no CPU would wait for one for ever
        raise InputError(f"--workers must be at least 1, got {workers}")
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.tmp"):  # leftovers of a killed run
        stale.unlink()
    items = _unique_sorted([item for source in sources for item in source.items()])
    if limit is not None:
        items = items[:limit]
    chunks = [items[i : i + shard_size] for i in range(0, len(items), shard_size)]
    mine = [i for i in range(len(chunks)) if i % num_shards == shard_id]
    todo = [i for i in mine if not _shard_done(out, i, [it.key for it in chunks[i]])]
    work = [item for i in todo for item in chunks[i]]
    started = time.time()
    bar = tqdm(total=len(work), unit="item", desc="prepare", disable=not progress)
    with _results(work, options, workers, ray_address) as (results, runner):
        try:
            for index in todo:
                done = []
                for _ in chunks[index]:
                    done.append(next(results))
                    bar.update()
                _write_shard(out, index, done, options)
        finally:
            bar.close()
    summary = summarize(out, len(items), len(chunks))
    summary["this_run"] = {"shards_written": len(todo), "items": len(work), "seconds": round(time.time() - started, 2),
                           "runner": runner}
    write_json(out / "index.json", summary)
    return summary


@contextmanager
def _results(work: list[SourceItem], options: PrepareOptions, workers: Optional[int],
             ray_address: Optional[str]) -> Iterator[tuple[Iterator[Prepared], dict]]:
    """The items' results in the order of ``work`` — here, in a process pool, or on Ray — and where they ran."""
    if not work:
        yield iter(()), {}
    elif ray_address is not None:
        from .ray_prepare import ray_cluster, ray_map

        with ray_cluster(ray_address, num_cpus=workers) as cluster:
            yield ray_map(work, options), {"ray": ray_address, **cluster}
    elif workers is not None and workers > 1:
        pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker)
        try:
            yield pool.imap(_prepare_with, [(item, options) for item in work], chunksize=2), {"processes": workers}
        finally:
            pool.terminate()
    else:
        yield (prepare_item(item, options) for item in work), {"processes": 1}


def _prepare_with(args: tuple[SourceItem, PrepareOptions]) -> Prepared:
    return prepare_item(*args)


def _unique_sorted(items: list[SourceItem]) -> list[SourceItem]:
    seen: dict[str, int] = {}
    unique = []
    for item in sorted(items, key=lambda it: it.key):
        n = seen.get(item.key, 0)
        seen[item.key] = n + 1
        unique.append(item if n == 0 else SourceItem(**{**asdict(item), "key": f"{item.key}-{n}"}))
    return unique


def _write_shard(out: Path, index: int, done: list[Prepared], options: PrepareOptions) -> None:
    name = SHARD_PATTERN.format(index)
    written = [p for p in done if p.files is not None]
    write_tar(out / f"{name}.tar", written)
    write_json(
        out / f"{name}.json",
        {
            "format_version": FORMAT_VERSION,
            "shard": f"{name}.tar",
            "items": [p.key for p in done],
            "written": [{"key": p.key, "speaker": p.speaker, "has_audio": "spec.npy" in p.files} for p in written],
            "skipped": [{"key": p.key, "speaker": p.speaker, "reason": p.skipped} for p in done if p.files is None],
            "options": asdict(options),
        },
    )


def reason_kind(reason: str) -> str:
    """A skip reason without the file name, details or numbers, to count alike reasons together."""
    head, sep, tail = reason.partition(": ")
    if sep and ("/" in head or "<" in head or "." in head):
        reason = tail
    reason = reason.split(" (")[0]
    return re.sub(r"\d+(\.\d+)?", "N", reason)


def summarize(out: Path, n_items: int, n_shards: int) -> dict:
    """Merge the per-shard records present in ``out`` (from any machine) into one summary."""
    records = [json.loads(p.read_text()) for p in sorted(out.glob("shard-*.json"))]
    written = [w for r in records for w in r["written"]]
    skipped = [s for r in records for s in r["skipped"]]
    reasons: dict[str, int] = {}
    for s in skipped:
        kind = reason_kind(s["reason"])
        reasons[kind] = reasons.get(kind, 0) + 1
    return {
        "format_version": FORMAT_VERSION,
        "items_listed": n_items,
        "shards_expected": n_shards,
        "shards_complete": len(records),
        "complete": len(records) == n_shards,
        "written": len(written),
        "written_with_audio": sum(w["has_audio"] for w in written),
        "skipped": len(skipped),
        "skipped_by_reason": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "skipped_items": skipped,
        "speakers": len({w["speaker"] for w in written}),
        "shards": [r["shard"] for r in records],
    }
