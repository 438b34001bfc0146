"""Every metric of Oh et al.'s protocol for one set of reconstructions, aligned with the true faces:
retrieval, feature similarity, demographics, craniofacial measures, image quality, portrait
measures, and the same by group."""

from __future__ import annotations

import numpy as np

from . import canonical, craniofacial
from .attributes import ETHNICITIES
from .metrics import DECADES, balanced_recall, confusion, decade, feature_similarity, pearson, retrieval_recall
from .scoring import ImageScore

KS = (1, 2, 5, 10)


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
