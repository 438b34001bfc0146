"""Stage 4 of the face decoder: the looks (``speech2face.models.looks``) — hair, hairline, ears
and neck drawn as one hairstyle in one colour, both following the descriptor.

1. The styles are drawn once around the decoder's mean shape (``training.hairstyles``).
2. Ridge maps from the centred descriptor predict what picks and colours them:
   - the hair colour, as CIELAB of the evaluation's hair patch (``evaluation.canonical.hair_lab``),
     on the portrait frames (the paired and face-only frames: UTKFace crops stop at the forehead);
   - whether the person is a woman and their age, on UTKFace's labels.
   Out-of-fold predictions (by speaker) give the spread that drawing stretches them to.
3. The style thresholds are quantiles of the portraits' stretched predicted ages, so that the
   styles are drawn at ``STYLE_SHARES`` among the people predicted to be men and to be women.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ..landmarks import BROWS, JAW
from ..models.face_decoder import FaceDecoder
from ..models.looks import FEATURES, STYLES, Looks
from .hairstyles import draw_styles, geometry

# the styles' shares. Men: short, receding from the 60th percentile of predicted age, bald from
# the 85th; women: long, medium from the 75th. Set by eye on the train portraits (the crops are
# too tight and cluttered to measure hair length in; see models.looks), not tuned on a measure.
STYLE_SHARES = {"receding_age": 0.60, "bald_age": 0.85, "medium_age": 0.75}


OWN_SKIN_ABOVE_BROWS = 0.15  # face widths: bare skin from here down keeps the linear map's texture


@dataclass
class LooksConfig:
    grid: int = 224  # px side at which the styles are stored (strands need the full resolution)
    seed: int = 0


def inner_face(mean_landmarks: np.ndarray, size: int, feather: float = 4.0) -> torch.Tensor:
    """(1, 1, S, S) in [0, 1]: 1 − the inner face (the hull of jaw and brows) of the mean shape,
    feathered over a few px: where looks apply."""
    from PIL import Image, ImageDraw, ImageFilter

    hull = np.concatenate([mean_landmarks[JAW], mean_landmarks[BROWS][::-1]])
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).polygon([tuple(p) for p in hull], fill=255)
    soft = np.asarray(mask.filter(ImageFilter.GaussianBlur(feather)), np.float32) / 255
    return torch.from_numpy(1 - soft)[None, None]


def cheek_region(mean_landmarks: np.ndarray, size: int) -> np.ndarray:
    """(S, S) bool: both cheeks of the mean shape (under the eyes, beside the nose), where skin
    tone is read."""
    from PIL import Image, ImageDraw

    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    for ids in ((1, 2, 3, 48, 31, 39), (15, 14, 13, 54, 35, 42)):
        draw.polygon([tuple(mean_landmarks[i]) for i in ids], fill=255)
    return np.asarray(mask) > 127


def rgb2lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 sRGB (..., 3) → CIELAB (..., 3), D65."""
    from ..evaluation.canonical import srgb_to_lab

    return srgb_to_lab(np.asarray(rgb, np.uint8))


def fit_ridge(x: np.ndarray, y: np.ndarray, groups: np.ndarray | None, seed: int) -> dict:
    """Centred descriptors (N, D) → one feature y (N,): ridge weights, the mean and spread of its
    out-of-fold predictions (by speaker) and the correlation they reach."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import GroupKFold, KFold, cross_val_predict

    ridge = RidgeCV(alphas=np.logspace(-3, 2, 12))
    folds = GroupKFold(5) if groups is not None else KFold(5, shuffle=True, random_state=seed)
    held_out = cross_val_predict(ridge, x, y, groups=groups, cv=folds)
    ridge.fit(x, y)
    return {"weight": ridge.coef_, "bias": float(ridge.intercept_), "mean": float(held_out.mean()),
            "sd": float(held_out.std() + 1e-6), "feature_mean": float(y.mean()), "feature_sd": float(y.std() + 1e-6),
            "r": float(np.corrcoef(held_out, y)[0, 1])}


SKIN_DELTA_E = 15.0  # a hair patch this close (CIELAB ΔE) to the person's cheeks is skin: a bald crown or forehead


def hair_colours(images: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Portraits (N, S, S, 3) uint8 with landmarks (N, 68, 2) → (N, 3) the hair's CIELAB (the
    evaluation's hair patch), NaN where the patch lies outside the frame or shows skin (its
    colour then says where the hairline is, which the style draws, not what colour the hair is) or
    the wall behind (the top corners' colour: thin hair, or the patch beyond the head)."""
    from PIL import Image, ImageDraw

    from ..evaluation.canonical import hair_lab

    out = np.full((len(images), 3), np.nan, np.float32)
    for i, (image, lm) in enumerate(zip(images, landmarks)):
        lab = hair_lab(image, lm)
        if lab is None:
            continue
        mask = Image.new("L", image.shape[1::-1], 0)
        for ids in ((1, 2, 3, 48, 31, 39), (15, 14, 13, 54, 35, 42)):
            ImageDraw.Draw(mask).polygon([tuple(lm[j]) for j in ids], fill=255)
        cheeks = np.asarray(mask) > 127
        if cheeks.sum() < 20:
            continue
        skin = np.median(rgb2lab(image[cheeks]), axis=0)
        corners = np.concatenate([image[:8, :8].reshape(-1, 3), image[:8, -8:].reshape(-1, 3)])
        background = np.median(rgb2lab(corners), axis=0)
        if np.linalg.norm(lab - skin) >= SKIN_DELTA_E and np.linalg.norm(lab - background) >= SKIN_DELTA_E:
            out[i] = lab
    return out


@torch.no_grad()
def fit_looks(model: FaceDecoder, portraits: dict, labelled: dict, cfg: LooksConfig) -> dict:
    """Attach the looks to ``model`` (after its linear maps).

    ``portraits``: 'images' uint8 (N, 3, S, S), 'landmarks' (N, 68, 2) px, 'desc' (N, D),
    'speakers' (N,) — the hair colour is fit on these. ``labelled``: 'desc' (M, D), 'female' (M,)
    0/1, 'age' (M,) years, 'speakers' (M,) — gender and age are fit on these. Returns a summary."""
    size, mean = model.config.size, model.mean_landmarks.numpy()
    x = model.centred(portraits["desc"].float()).numpy()
    colours = hair_colours(portraits["images"].permute(0, 2, 3, 1).numpy(), portraits["landmarks"].numpy())
    shown = ~np.isnan(colours[:, 0])
    groups = np.asarray(portraits["speakers"])
    fits = [fit_ridge(x[shown], colours[shown, j], groups[shown], cfg.seed) for j in range(3)]
    for f in fits[1:]:  # hue is drawn as predicted, not stretched: a stretched error paints dark hair pink
        f["mean"], f["sd"] = f["feature_mean"], f["feature_sd"]
    xl = model.centred(labelled["desc"].float()).numpy()
    lgroups = np.asarray(labelled["speakers"])
    for key in ("female", "age"):
        fits.append(fit_ridge(xl, np.asarray(labelled[key], np.float64), lgroups, cfg.seed))
    maps = draw_styles(mean, size, cfg.seed)
    looks = Looks(len(STYLES), size, cfg.grid, x.shape[1], len(FEATURES))
    for name in ("person", "hair", "shading"):
        m = torch.from_numpy(maps[name])
        if cfg.grid != size:
            m = torch.nn.functional.interpolate(m, size=(cfg.grid, cfg.grid), mode="area")
        getattr(looks, name).copy_(m)
    looks.outer.copy_(inner_face(mean, size))
    ys = torch.arange(size, dtype=torch.float32)[:, None].expand(size, size)
    g = geometry(mean)
    looks.own_skin.copy_(torch.sigmoid((ys - (g["brow"] - OWN_SKIN_ABOVE_BROWS * g["w"])) / 3.0)[None, None])
    cheeks = cheek_region(mean, size)
    looks.cheeks.copy_(torch.from_numpy(cheeks / cheeks.sum()).float()[None, None])
    for name, key in (("predictor_bias", "bias"), ("prediction_mean", "mean"), ("prediction_sd", "sd"),
                      ("feature_mean", "feature_mean"), ("feature_sd", "feature_sd")):
        getattr(looks, name).copy_(torch.tensor([f[key] for f in fits]).float())
    looks.predictor_weight.copy_(torch.from_numpy(np.stack([f["weight"] for f in fits])).float())
    # the thresholds: quantiles of the portraits' own stretched predicted ages, by predicted gender
    predicted = looks.predict(torch.from_numpy(x)).numpy()
    female = predicted[:, 3] > 0.5
    men, women = predicted[~female, 4], predicted[female, 4]
    looks.receding_age.fill_(float(np.quantile(men, STYLE_SHARES["receding_age"])))
    looks.bald_age.fill_(float(np.quantile(men, STYLE_SHARES["bald_age"])))
    looks.medium_age.fill_(float(np.quantile(women, STYLE_SHARES["medium_age"])) if len(women) else 200.0)
    model.looks = looks
    model.config = replace(model.config, looks=len(STYLES), looks_grid=cfg.grid, looks_features=len(FEATURES))
    styles = np.bincount(looks.choose(torch.from_numpy(x)).numpy(), minlength=len(STYLES))
    return {"styles": dict(zip(STYLES, styles.tolist())), "feature_r": dict(zip(FEATURES, [f["r"] for f in fits])),
            "portraits": len(x), "labelled": len(xl), "hair_patches": int(shown.sum()),
            "thresholds": {k: float(getattr(looks, k)) for k in STYLE_SHARES}}
