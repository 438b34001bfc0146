"""Is a stated confidence the real one? Reliability bins, expected calibration error, temperature
fitting and interval coverage, for the attributes the product reads from a voice."""

from __future__ import annotations

import numpy as np

from ..ethnicity import softmax  # noqa: F401 (calibration's softmax is the classifier's)


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> list[dict]:
    """Equal-width bins of the stated confidence (N,) in [0, 1] → for each non-empty bin
    {'low', 'high', 'count', 'confidence' (mean stated), 'accuracy' (share correct)}."""
    confidence, correct = np.asarray(confidence, float), np.asarray(correct, float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)  # 1.0 falls in the last bin
    out = []
    for b in range(bins):
        member = which == b
        if member.any():
            out.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": int(member.sum()),
                        "confidence": float(confidence[member].mean()), "accuracy": float(correct[member].mean())})
    return out


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Σ_bins (count / N) · |accuracy − confidence| (Guo et al. 2017), 0 for a calibrated model."""
    table = reliability(confidence, correct, bins)
    n = sum(b["count"] for b in table)
    return float(sum(b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in table)) if n else float("nan")


def log_loss(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean −log p(true class): probabilities (N, C), labels (N,) ints."""
    p = np.asarray(probabilities)[np.arange(len(labels)), np.asarray(labels)]
    return float(-np.mean(np.log(np.clip(p, 1e-12, 1.0))))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, offset: np.ndarray | None = None,
                    grid: np.ndarray | None = None) -> float:
    """The T that minimises the log loss of softmax(logits / T + offset) on held-out labels: one
    number, so it keeps the ranking of the classes and fixes only how sure the model says it is."""
    grid = np.exp(np.linspace(np.log(0.2), np.log(10.0), 161)) if grid is None else grid
    offset = 0.0 if offset is None else offset
    losses = [log_loss(softmax(np.asarray(logits) / t + offset), labels) for t in grid]
    return float(grid[int(np.argmin(losses))])


def binary_logits(logit: np.ndarray) -> np.ndarray:
    """(N,) logit of class 1 → (N, 2) logits [0, logit], so binary and multi-class share the code above."""
    logit = np.asarray(logit, float)
    return np.stack([np.zeros_like(logit), logit], axis=1)


def interval_coverage(low: np.ndarray, high: np.ndarray, value: np.ndarray) -> float:
    """Share of values inside [low, high]."""
    value = np.asarray(value)
    return float(np.mean((value >= np.asarray(low)) & (value <= np.asarray(high))))


def attribute_scores(p_male: np.ndarray, male: np.ndarray, years: np.ndarray, low: np.ndarray, high: np.ndarray,
                     age: np.ndarray, posterior: np.ndarray, group: np.ndarray) -> dict:
    """Stated attributes against the truth: P(male) (N,) vs ``male`` (N,) bool; age (N,) with its
    interval [low, high] vs ``age``; the group posterior (N, C) vs ``group`` (N,) indices →
    accuracy, ECE and reliability bins for gender and group, age r, MAE and interval coverage."""
    p_male, years, age = np.asarray(p_male, float), np.asarray(years, float), np.asarray(age, float)
    posterior = np.asarray(posterior, float)
    g_conf, g_correct = np.maximum(p_male, 1 - p_male), (p_male >= 0.5) == np.asarray(male, bool)
    e_conf, e_correct = posterior.max(1), posterior.argmax(1) == np.asarray(group)
    return {
        "n": len(p_male),
        "gender": {"accuracy": float(g_correct.mean()), "ece": expected_calibration_error(g_conf, g_correct),
                   "reliability": reliability(g_conf, g_correct)},
        "age": {"r": float(np.corrcoef(years, age)[0, 1]) if len(years) > 2 else float("nan"),
                "mae": float(np.mean(np.abs(years - age))), "interval_80_coverage": interval_coverage(low, high, age)},
        "ethnicity": {"accuracy": float(e_correct.mean()), "ece": expected_calibration_error(e_conf, e_correct),
                      "reliability": reliability(e_conf, e_correct)},
    }


def voice_attribute_figures(told: list[dict], true_gender: list[str], true_age: list[float],
                            true_ethnicity: list[str], classes: tuple[str, ...]) -> dict:
    """``attribute_scores`` of what the product says about each voice (``VoiceAttributes.read``
    dicts) against the true faces as the scorer reads them."""
    low, high = np.array([t["age"]["interval_80"] for t in told], float).T
    return attribute_scores(np.array([t["gender"]["male"] for t in told]), np.array([g == "m" for g in true_gender]),
                            np.array([t["age"]["years"] for t in told]), low, high, np.asarray(true_age, float),
                            np.array([[t["ethnicity"][c] for c in classes] for t in told]),
                            np.array([classes.index(e) for e in true_ethnicity]))
