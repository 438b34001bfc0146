"""The paper's metrics on descriptors and labels: feature similarity, retrieval recall@K in pools
of other speakers, agreement and confusion, correlation, and the image sharpness measure."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..face_reading import decade  # noqa: F401 (the paper's age bands)

SHARPNESS_SIZE = 224  # px, the image is resized to this before the Laplacian
SHARPNESS_CENTER = 134  # px, side of the central region the variance is taken over


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def feature_similarity(pred: np.ndarray, true: np.ndarray) -> dict:
    """Cosine similarity, L1 and L2 distance between paired descriptors (N, D): mean and std."""
    cos = np.sum(_unit(pred) * _unit(true), axis=1)
    l1 = np.abs(pred - true).sum(axis=1)
    l2 = np.linalg.norm(pred - true, axis=1)
    return {name: {"mean": float(v.mean()), "std": float(v.std())} for name, v in
            (("cosine", cos), ("l1", l1), ("l2", l2))}


def retrieval_recall(
    pred: np.ndarray,
    true: np.ndarray,
    identities: Sequence[str],
    ks: Sequence[int] = (1, 2, 5, 10),
    pool_size: int = 100,
    repeats: int = 10,
    seed: int = 0,
    valid: Optional[np.ndarray] = None,
) -> dict:
    """Rank each clip's true face among a pool of faces of other speakers by cosine similarity to
    its reconstruction; recall@K averaged over ``repeats`` random pools (fixed seed).

    A pool holds the true face plus ``pool_size - 1`` faces of distinct other identities (one face
    each). ``valid[i] = False`` marks a reconstruction with no usable descriptor: it counts as a
    miss at every K. Ties are broken against the true face.
    """
    ids = np.asarray(identities)
    n = len(ids)
    valid = np.ones(n, bool) if valid is None else np.asarray(valid, bool)
    unique = np.unique(ids)
    pool_size = min(pool_size, len(unique))
    if pool_size < 2:
        raise ValueError("retrieval needs faces of at least two identities")
    members = {u: np.flatnonzero(ids == u) for u in unique}
    sims = _unit(pred) @ _unit(true).T  # (N, N): reconstruction i vs true face j
    rng = np.random.default_rng(seed)
    hits = np.zeros((repeats, n, len(ks)))
    for r in range(repeats):
        for i in range(n):
            if not valid[i]:
                continue
            others = unique[unique != ids[i]]
            chosen = rng.choice(others, size=pool_size - 1, replace=False)
            distractors = np.array([rng.choice(members[u]) for u in chosen])
            rank = int(np.sum(sims[i, distractors] >= sims[i, i]))  # 0 = retrieved first
            hits[r, i] = [rank < k for k in ks]
    per_query = hits.mean(axis=0)  # (N, len(ks)): hit rate of each clip over the pools
    recall = hits.mean(axis=1).mean(axis=0)  # (len(ks),)
    spread = hits.mean(axis=1).std(axis=0)
    # 95 % bootstrap interval over the clips (resampled with replacement; the pools stay as drawn)
    boot = per_query[np.random.default_rng(seed).integers(0, n, size=(1000, n))].mean(axis=1)  # (1000, len(ks))
    low, high = np.percentile(boot, [2.5, 97.5], axis=0)
    return {
        "pool_size": pool_size,
        "repeats": repeats,
        "n": n,
        "recall": {str(k): float(100 * v) for k, v in zip(ks, recall)},
        "recall_std_over_pools": {str(k): float(100 * v) for k, v in zip(ks, spread)},
        "recall_ci95": {str(k): [float(100 * a), float(100 * b)] for k, a, b in zip(ks, low, high)},
        "chance": {str(k): float(100 * min(k, pool_size) / pool_size) for k in ks},
        "per_query": per_query,
    }


def confusion(true_labels: Sequence, pred_labels: Sequence, classes: Sequence) -> dict:
    """Confusion matrix (rows: true-face label, columns: reconstruction label), counts and row shares."""
    index = {c: i for i, c in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)), int)
    for t, p in zip(true_labels, pred_labels):
        if t in index and p in index:
            counts[index[t], index[p]] += 1
    rows = counts.sum(axis=1, keepdims=True)
    return {"classes": list(classes), "counts": counts.tolist(), "balanced": balanced_recall(counts),
            "row_share": np.where(rows > 0, counts / np.maximum(rows, 1), 0).round(4).tolist(),
            "agreement": float(np.trace(counts) / max(counts.sum(), 1)), "n": int(counts.sum())}


def balanced_recall(counts: np.ndarray, groups: Optional[Sequence[int]] = None) -> float:
    """Mean over the ``groups`` (row indices; default all) present of each group's recall, from a
    confusion matrix (rows true, columns predicted). A row's recall is its diagonal over the whole
    row: predictions into classes outside ``groups`` count as misses."""
    counts = np.asarray(counts)
    groups = list(range(len(counts))) if groups is None else list(groups)
    rows = counts[groups].sum(axis=1)
    present = rows > 0
    if not present.any():
        return float("nan")
    return float(np.mean(counts[groups, groups][present] / rows[present]))


def pearson(x: Sequence[float], y: Sequence[float]) -> dict:
    """Pearson r with its two-sided p-value (NaN where a side is constant or n < 3)."""
    from scipy import stats

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"r": float("nan"), "p": float("nan"), "n": int(len(x))}
    result = stats.pearsonr(x, y)
    return {"r": float(result.statistic), "p": float(result.pvalue), "n": int(len(x))}


def sharpness(image: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of the greyscale image resized to 224×224, over its
    central 134×134 pixels (0–255 scale). Real face photos score ~50, blurry averages ~2."""
    from PIL import Image

    grey = Image.fromarray(image).convert("L").resize((SHARPNESS_SIZE, SHARPNESS_SIZE), Image.Resampling.BILINEAR)
    g = np.asarray(grey, dtype=np.float64)
    lap = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4 * g[1:-1, 1:-1]  # (222, 222), pixel (1,1) first
    start = (SHARPNESS_SIZE - SHARPNESS_CENTER) // 2 - 1  # index of pixel 45 in lap's frame
    return float(lap[start : start + SHARPNESS_CENTER, start : start + SHARPNESS_CENTER].var())


DECADES = [decade(a) for a in range(0, 80, 10)]


def group_figures(drawn: np.ndarray, truth: np.ndarray) -> dict:
    """Agreement, balanced recall over the four main groups, and each group's drawn / true share."""
    present = [k for k in range(4) if np.any(truth == k)]
    from ..ethnicity import ETHNICITIES

    shares = {ETHNICITIES[k]: {"true": float(np.mean(truth == k)), "drawn": float(np.mean(drawn == k))}
              for k in range(len(ETHNICITIES))}
    return {"agreement": float(np.mean(drawn == truth)),
            "balanced": float(np.mean([np.mean(drawn[truth == k] == k) for k in present])),
            "shares": shares,
            "max_share_ratio": max(s["drawn"] / s["true"] for s in shares.values() if s["true"] > 0)}
