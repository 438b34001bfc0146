"""Stage 4 of the face decoder: the looks (``speech2face.models.looks``) — hair, hairline, ears,
neck and shoulders as one of K modes, chosen from the descriptor.

Only the portrait frames show hair and shoulders (the paired frames and the face-only frames;
UTKFace crops stop at the forehead), so the looks are fit on those:

1. Each portrait's person (head, hair, neck, shoulders) is cut out by GrabCut seeded with the
   landmarks (``training.heads.head_mask(shoulders=True)``), and its clothes are repainted in one
   plain dark neutral, keeping only their shading: the paper's portraits wear dark clothes, and a
   look must not carry anyone's shirt.
2. Everything is warped onto the decoder's mean shape (shape-free frame), where hair of similar
   people lines up.
3. A few numbers say what a head looks like around the face: the hair patch's colour (CIELAB, the
   evaluation's patch), how much hair there is on the crown, at the temples and beside the jaw
   (long hair), and how much of the bottom rows is shoulders. K-means on these (standardised)
   groups the portraits into looks; looks with fewer than ``min_members`` people are merged into
   their nearest neighbour, so every stored image averages many people.
4. A look's maps are averages over its members in that frame, filled from ever wider
   neighbourhoods where few members show a pixel: where the person is, where its hair is (person
   but not the member's own cheek colour), and the hair's colour.
5. A ridge map from the descriptor predicts the head features; its out-of-fold predictions (by
   speaker) give the spread that the choice stretches them by (``models.looks``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from ..landmarks import BROWS, JAW, LEFT_EYE, RIGHT_EYE
from ..models.face_decoder import FaceDecoder
from ..models.looks import Looks
from ..models.warp import tps_warp
from .heads import plausible_region

CLOTHES_RGB = (46, 48, 54)  # plain dark neutral clothing
CLOTHES_SHADING = 0.25  # share of the photo's own light and shade kept on the clothes


@dataclass
class LooksConfig:
    count: int = 16  # looks before merging the small ones
    min_members: int = 25  # people a look must average at least
    grid: int = 112  # px side at which corrections are stored (they are smooth)
    shrink: float = 8.0  # pseudo-count pulling a pixel's mean correction to 0 where few members show it
    seed: int = 0


def face_geometry(lm: np.ndarray) -> dict:
    """(68, 2) landmarks → the lengths and lines the regions below are cut by."""
    jaw = float(lm[16, 0] - lm[0, 0])
    return {"jaw": jaw, "mid": float(lm[27:31, 0].mean()), "brow": float(lm[BROWS, 1].min()),
            "eye": float(lm[LEFT_EYE + RIGHT_EYE, 1].mean()), "nose": float(lm[33, 1]), "chin": float(lm[8, 1]),
            "iod": float(np.linalg.norm(lm[RIGHT_EYE].mean(0) - lm[LEFT_EYE].mean(0))),
            "x36": float(lm[36, 0]), "x45": float(lm[45, 0])}


def regions(lm: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """Boolean (S, S) regions around a face with landmarks (68, 2): the hair patch (as the
    evaluation measures it), the crown, the temples, beside the jaw (long hair), the bottom rows."""
    g = face_geometry(lm)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    dx = np.abs(xs - g["mid"])
    w = g["jaw"]
    return {
        "patch": (xs >= g["x36"]) & (xs <= g["x45"]) & (ys >= g["brow"] - 1.15 * g["iod"]) & (ys <= g["brow"] - 0.75 * g["iod"]),
        "crown": (dx < 0.35 * w) & (ys >= g["brow"] - 0.62 * w) & (ys < g["brow"] - 0.4 * w),
        "temples": (dx > 0.45 * w) & (dx < 0.62 * w) & (ys >= g["brow"] - 0.15 * w) & (ys < g["eye"]),
        "beside_jaw": (dx > 0.55 * w) & (dx < 0.85 * w) & (ys >= g["nose"]) & (ys < g["chin"]),
        "bottom": ys >= size - 24,
    }


def inner_face(mean_landmarks: np.ndarray, size: int, feather: float = 4.0) -> torch.Tensor:
    """(1, 1, S, S) in [0, 1]: 1 − the inner face (the hull of jaw and brows) of the mean shape,
    feathered over a few px: where looks apply."""
    from PIL import Image, ImageDraw, ImageFilter

    hull = np.concatenate([mean_landmarks[JAW], mean_landmarks[BROWS][::-1]])
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).polygon([tuple(p) for p in hull], fill=255)
    soft = np.asarray(mask.filter(ImageFilter.GaussianBlur(feather)), np.float32) / 255
    return torch.from_numpy(1 - soft)[None, None]


def dress(images: torch.Tensor, masks: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, S, S) portraits, (N, 1, S, S) uint8 person masks, (N, 68, 2) → the same
    portraits with the clothes (the person below the collar line, ~0.35 face widths under the
    chin) in CLOTHES_RGB, keeping CLOTHES_SHADING of their own light and shade."""
    out = images.clone()
    size = images.shape[-1]
    ys = torch.arange(size, dtype=torch.float32)[:, None]
    base = torch.tensor(CLOTHES_RGB, dtype=torch.float32).view(3, 1, 1)
    for i in range(len(images)):
        jaw = float(landmarks[i, 16, 0] - landmarks[i, 0, 0])
        collar = float(landmarks[i, 8, 1]) + 0.35 * jaw
        clothes = (masks[i, 0] > 127) & (ys > collar)  # (S, S)
        if clothes.sum() < 8:
            continue
        x = images[i].float()
        lum = x.mean(0)
        shade = CLOTHES_SHADING * (lum - lum[clothes].mean())
        dressed = (base + shade).clamp(0, 255).round().byte()
        out[i][:, clothes] = dressed[:, clothes]
    return out


def shape_free(x: torch.Tensor, landmarks: torch.Tensor, mean: torch.Tensor, batch: int = 128) -> torch.Tensor:
    """Float (N, C, S, S) images warped from their landmarks (N, 68, 2) onto the mean shape (68, 2)."""
    return torch.cat([tps_warp(x[i:i + batch], landmarks[i:i + batch], mean.expand(len(x[i:i + batch]), -1, -1))
                      for i in range(0, len(x), batch)])


def look_features(photos: np.ndarray, photo_landmarks: np.ndarray, rgb: np.ndarray, person: np.ndarray,
                  seen: np.ndarray, mean_landmarks: np.ndarray) -> np.ndarray:
    """(N, 8) what the head around each face looks like, NaN where the photo does not show it:
    the hair patch's L*, a*, b* as the evaluation measures it (on the photos (N, S, S, 3) uint8
    with their landmarks (N, 68, 2)); from the shape-free portraits rgb (N, S, S, 3), person and
    seen (N, S, S) in [0, 1]: the crown's L*, the person share on the crown, at the temples, beside
    the jaw, in the bottom rows."""
    from ..evaluation.canonical import hair_lab

    size = rgb.shape[1]
    reg = regions(mean_landmarks, size)
    out = np.full((len(rgb), 8), np.nan, np.float32)
    for i in range(len(rgb)):
        patch = hair_lab(photos[i], photo_landmarks[i])
        if patch is not None:
            out[i, :3] = patch

        def shown(r):
            return seen[i][reg[r]].mean() > 0.5
        if shown("crown"):
            on = reg["crown"] & (person[i] > 0.5) & (seen[i] > 0.5)
            out[i, 3] = np.median(rgb2lab(rgb[i][on][None])[0][:, 0]) if on.sum() > 10 else 100.0
            out[i, 4] = person[i][reg["crown"]].mean()
        for j, r in enumerate(("temples", "beside_jaw", "bottom")):
            if shown(r):
                out[i, 5 + j] = person[i][reg[r]].mean()
    return out


def rgb2lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 sRGB (..., 3) → CIELAB (..., 3), D65."""
    c = np.asarray(rgb, np.float64) / 255
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = c @ np.array([[0.4124564, 0.2126729, 0.0193339], [0.3575761, 0.7151522, 0.1191920],
                        [0.1804375, 0.0721750, 0.9503041]]) / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


FEATURE_WEIGHTS = np.array([2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.5, 0.5], np.float32)  # hair colour and length lead


def cluster_looks(features: np.ndarray, cfg: LooksConfig) -> np.ndarray:
    """(N, F) features (NaN: not shown) → (N,) look labels 0…K'−1, every look ≥ min_members."""
    from sklearn.cluster import KMeans

    z = standardised(features) * FEATURE_WEIGHTS
    km = KMeans(cfg.count, n_init=10, random_state=cfg.seed).fit(z)
    labels, centres = km.labels_.copy(), km.cluster_centers_.copy()
    while True:
        sizes = np.bincount(labels, minlength=len(centres))
        alive = np.flatnonzero(sizes > 0)
        small = [k for k in alive if sizes[k] < cfg.min_members]
        if not small:
            break
        k = min(small, key=lambda j: sizes[j])
        others = [j for j in alive if j != k]
        target = others[int(np.argmin(((centres[others] - centres[k]) ** 2).sum(1)))]
        labels[labels == k] = target
        centres[target] = z[labels == target].mean(0)
    _, labels = np.unique(labels, return_inverse=True)
    return labels


MAX_PERSON_OUTSIDE = 0.25  # a mask covering more of where no head can be than this failed
MAX_RING_COVER = 0.85  # … or more of the whole ring around the face where hair can be: the wall taken for hair
COLOUR_BLUR = 3.0  # px: a look's hair colour is a colour and its shading, not anyone's strands
SKIN_DELTA_E = 20.0  # a person pixel this close (CIELAB ΔE) to the member's cheeks is skin, not hair


def cheek_region(mean_landmarks: np.ndarray, size: int) -> np.ndarray:
    """(S, S) bool: both cheeks of the mean shape (under the eyes, beside the nose), where skin
    tone is read."""
    from PIL import Image, ImageDraw

    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    for ids in ((1, 2, 3, 48, 31, 39), (15, 14, 13, 54, 35, 42)):
        draw.polygon([tuple(mean_landmarks[i]) for i in ids], fill=255)
    return np.asarray(mask) > 127


def skin_masks(rgb: np.ndarray, seen: np.ndarray, cheeks: np.ndarray) -> np.ndarray:
    """Shape-free portraits rgb (N, S, S, 3) uint8, seen (N, S, S) → (N, S, S) bool: pixels whose
    colour is the member's own cheek colour."""
    lab = rgb2lab(rgb)  # (N, S, S, 3)
    out = np.zeros(rgb.shape[:3], bool)
    for i in range(len(rgb)):
        on = cheeks & (seen[i] > 0.5)
        if on.sum() < 20:
            continue
        ref = np.median(lab[i][on], axis=0)
        out[i] = np.linalg.norm(lab[i] - ref, axis=-1) < SKIN_DELTA_E
    return out


def fill(mean: np.ndarray, count: np.ndarray, shrink: float, scales=(2, 4, 8, 16, 32, 64)) -> np.ndarray:
    """A map of means (C, H, W) over ``count`` (H, W) members each → the same, filled where few
    members show a pixel from ever wider neighbourhoods (normalised convolution), so unseen
    corners continue what is seen nearby instead of falling to zero."""
    total = mean * count
    blurred = [(gaussian_filter(total, (0, s, s)), gaussian_filter(count, s)) for s in scales]
    out = blurred[-1][0] / np.maximum(blurred[-1][1], 1e-6)
    for num, den in reversed(blurred[:-1]):
        conf = den / (den + shrink)
        out = conf * num / np.maximum(den, 1e-6) + (1 - conf) * out
    conf = count / (count + shrink)
    return conf * mean + (1 - conf) * out


def look_maps(rgb: np.ndarray, person: np.ndarray, seen: np.ndarray, hair: np.ndarray, labels: np.ndarray,
              count: int, shrink: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Members' shape-free maps (N, S, S[, 3]) and look labels (N,) → person (K, 1, S, S), hair
    (K, 1, S, S) shares and hair colour (K, 3, S, S) in [0, 1], each filled where unseen."""
    size = rgb.shape[1]
    person_k, hair_k, colour_k = (np.zeros((count, c, size, size), np.float32) for c in (1, 1, 3))
    for k in range(count):
        m = labels == k
        s = (seen[m] > 0.5).astype(np.float64)  # (n, S, S)
        shown = s.sum(0)
        person_k[k] = fill((s * (person[m] > 0.5)).sum(0)[None] / np.maximum(shown, 1), shown, shrink)
        hair_k[k] = fill((s * hair[m]).sum(0)[None] / np.maximum(shown, 1), shown, shrink)
        w = s * hair[m]
        hair_count = w.sum(0)
        colour = np.einsum("nhw,nhwc->chw", w, rgb[m] / 255.0) / np.maximum(hair_count, 1e-6)
        colour_k[k] = gaussian_filter(fill(colour, hair_count, shrink), (0, COLOUR_BLUR, COLOUR_BLUR))
    return person_k, hair_k, colour_k


def fit_predictor(x: np.ndarray, z: np.ndarray, groups: np.ndarray | None, seed: int) -> dict:
    """Centred descriptors (N, D) → standardised head features z (N, F): ridge weights, and the
    mean and spread of its out-of-fold predictions (by speaker), which the choice stretches to
    unit spread."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import GroupKFold, KFold, cross_val_predict

    ridge = RidgeCV(alphas=np.logspace(-3, 2, 12))
    folds = GroupKFold(5) if groups is not None else KFold(5, shuffle=True, random_state=seed)
    held_out = cross_val_predict(ridge, x, z, groups=groups, cv=folds)
    ridge.fit(x, z)
    return {"weight": ridge.coef_, "bias": ridge.intercept_, "mean": held_out.mean(0),
            "sd": held_out.std(0) + 1e-6, "r": [float(np.corrcoef(held_out[:, j], z[:, j])[0, 1]) for j in range(z.shape[1])]}


@torch.no_grad()
def fit_looks(model: FaceDecoder, images: torch.Tensor, landmarks: torch.Tensor, desc: torch.Tensor,
              photographed: torch.Tensor, persons: torch.Tensor, cfg: LooksConfig,
              groups: np.ndarray | None = None) -> dict:
    """Fit the looks on portraits (uint8 (N, 3, S, S), landmarks (N, 68, 2) px, descriptors (N, D),
    photographed and person masks (N, 1, S, S) uint8, speakers (N,) for the held-out spread) and
    attach them to ``model`` (after its linear maps). Returns a summary."""
    size, mean = model.config.size, model.mean_landmarks
    dressed = dress(images, persons, landmarks)
    stack = torch.cat([dressed.float() / 255, persons.float() / 255, photographed.float() / 255], 1)
    sf = shape_free(stack, landmarks, mean)  # (N, 5, S, S): RGB, person, seen
    rgb = (sf[:, :3].clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    person, seen = sf[:, 3].numpy(), sf[:, 4].numpy()
    del sf, stack
    region = plausible_region(mean[None], size)[0, 0].numpy()  # (S, S): where a head can be at all
    ring = region & (inner_face(mean.numpy(), size)[0, 0].numpy() > 0.5)  # where hair can be
    failed = (((person > 0.5) & ~region & (seen > 0.5)).sum((1, 2)) > MAX_PERSON_OUTSIDE * (~region).sum()) | (
        ((person > 0.5) & ring).sum((1, 2)) > MAX_RING_COVER * ring.sum())
    person = person * region
    seen = seen * ~failed[:, None, None]  # a GrabCut that took the wall for the person shows nothing
    cheeks = cheek_region(mean.numpy(), size)
    hair = (person > 0.5) & ~skin_masks(rgb, seen, cheeks)
    hair = gaussian_filter(hair.astype(np.float32), (0, 1.5, 1.5))  # single stray pixels are not hair
    features = look_features(images.permute(0, 2, 3, 1).numpy(), landmarks.numpy(), rgb, person, seen, mean.numpy())
    labels = cluster_looks(features, cfg)
    count = int(labels.max()) + 1
    maps = look_maps(rgb, person, seen, hair, labels, count, cfg.shrink)
    soft_region = gaussian_filter(region.astype(np.float32), 2.0)
    maps = (maps[0] * soft_region, maps[1] * soft_region, maps[2])  # no look reaches where no head can be
    maps = [F.interpolate(torch.from_numpy(m), size=(cfg.grid, cfg.grid), mode="area") for m in maps]

    x = model.centred(desc.float()).numpy()
    z = standardised(features)
    predictor = fit_predictor(x, z, groups, cfg.seed)
    looks = Looks(count, size, cfg.grid, x.shape[1], z.shape[1])
    looks.person.copy_(maps[0]), looks.hair.copy_(maps[1]), looks.colour.copy_(maps[2])
    looks.outer.copy_(inner_face(mean.numpy(), size))
    looks.cheeks.copy_(torch.from_numpy(cheeks / cheeks.sum()).float()[None, None])
    for name, key in (("predictor_weight", "weight"), ("predictor_bias", "bias"),
                      ("prediction_mean", "mean"), ("prediction_sd", "sd")):
        getattr(looks, name).copy_(torch.from_numpy(np.asarray(predictor[key])).float())
    # a feature the descriptor does not predict would only add noise to the choice once stretched
    weight = FEATURE_WEIGHTS * np.clip(predictor["r"], 0, None).astype(np.float32)
    looks.feature_weight.copy_(torch.from_numpy(weight))
    centres = np.stack([z[labels == k].mean(0) for k in range(count)]) * weight
    looks.centres.copy_(torch.from_numpy(centres).float())
    model.looks = looks
    model.config = replace(model.config, looks=count, looks_grid=cfg.grid, looks_features=z.shape[1])
    return {"looks": count, "members": np.bincount(labels).tolist(), "failed_masks": int(failed.sum()), "labels": labels, "features": features,
            "feature_r": predictor["r"]}


def standardised(features: np.ndarray) -> np.ndarray:
    """(N, F) head features, NaN where not shown → z-scores, 0 (the average) where not shown."""
    mean, sd = np.nanmean(features, 0), np.nanstd(features, 0) + 1e-6
    return np.nan_to_num((features - mean) / sd).astype(np.float32)
