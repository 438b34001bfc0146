"""The two baselines every system is compared with: one mean face for everyone, and the mean face
of the gender predicted from the voice alone (out of fold, identity-disjoint)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..data.sources import AUDIO_SUFFIXES, find_with_suffix
from ..errors import InputError
from ..faces import align_face, load_image
from .scoring import ImageScore, ImageScorer
from .systems import score_system


def mean_face(images: list[np.ndarray]) -> np.ndarray:
    return np.mean(np.stack(images).astype(np.float64), axis=0).round().astype(np.uint8)


def voice_gender_out_of_fold(rows: list[dict], data: Path, genders: list[str], seed: int) -> Optional[list[str]]:
    """Gender predicted from the voice alone: logistic regression on speaker embeddings, trained on
    the true faces' gender, out-of-fold over 5 identity-disjoint folds (no clip sees its speaker)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    from .. import audio
    from ..clips import speech_clips
    from ..models.speaker_encoder import speaker_encoder

    embeddings = []
    for row in rows:
        path = find_with_suffix(Path(data) / "audio", row["stem"], AUDIO_SUFFIXES)
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



def score_baselines(rows: list[dict], true_scores: list[ImageScore], data: Path, scorer: ImageScorer, pool: int,
                    repeats: int, seed: int) -> tuple[dict[str, dict], dict[str, np.ndarray]]:
    """The baselines' metrics by name (aligned with ``rows``, which hold each true face's
    ``true_path``) and their images by file stem (mean_face, mean_face_f, mean_face_m). The
    voice-gender baseline is left out where a clip has no readable audio."""
    systems: dict[str, dict] = {}
    images: dict[str, np.ndarray] = {}
    aligned = [align_face(load_image(r["true_path"]), np.asarray(s.landmarks68))[0] for r, s in zip(rows, true_scores)]
    genders = [s.gender for s in true_scores]
    images["mean_face"] = mean_face(aligned)
    mean_score = scorer.score_array(images["mean_face"])
    systems["baseline: one mean face"] = score_system([mean_score] * len(rows), true_scores, rows, pool, repeats, seed)
    voice_gender = voice_gender_out_of_fold(rows, data, genders, seed)
    if voice_gender is not None:
        by_gender = {}
        for g in ("f", "m"):
            members = [a for a, t in zip(aligned, genders) if t == g] or aligned
            images[f"mean_face_{g}"] = mean_face(members)
            by_gender[g] = scorer.score_array(images[f"mean_face_{g}"])
        name = "baseline: mean face of the voice's gender"
        systems[name] = score_system([by_gender[g] for g in voice_gender], true_scores, rows, pool, repeats, seed)
        systems[name]["voice_gender_accuracy"] = float(np.mean([v == t for v, t in zip(voice_gender, genders)]))
    return systems, images
