"""Stage 4's fitting on hand-made inputs: a hair patch that shows skin or the wall says nothing of
the hair's colour, the ridge maps' held-out spread is what drawing stretches by, and the fitted
looks draw the styles at the chosen shares, following gender and age."""

from __future__ import annotations

import numpy as np
import torch

from speech2face.models.face_decoder import FaceDecoder, FaceDecoderConfig
from speech2face.models.looks import STYLES
from speech2face.training.looks import STYLE_SHARES, LooksConfig, fit_looks, fit_ridge, hair_colours


def portrait_landmarks(size: int = 64) -> np.ndarray:
    """(68, 2) a plausible face in a size px frame: jaw, brows, eyes, nose, mouth."""
    lm = np.zeros((68, 2), np.float32)
    t = np.linspace(0, np.pi, 17)
    lm[:17] = np.stack([size / 2 - 0.3 * size * np.cos(t), 0.45 * size + 0.4 * size * np.sin(t) * 0.9], 1)
    lm[17:27] = np.stack([np.linspace(0.25, 0.75, 10) * size, np.full(10, 0.38 * size)], 1)
    lm[36:42] = [0.35 * size, 0.45 * size]
    lm[42:48] = [0.65 * size, 0.45 * size]
    lm[27:36] = [0.5 * size, 0.6 * size]
    lm[48:68] = [0.5 * size, 0.72 * size]
    return lm


def test_a_hair_patch_of_skin_or_wall_gives_no_hair_colour():
    size = 224
    lm = portrait_landmarks(size)
    skin, wall, hair = (200, 150, 120), (90, 140, 200), (40, 30, 25)
    images = np.zeros((3, size, size, 3), np.uint8)
    images[:] = wall
    images[:, int(0.2 * size):] = skin  # the face and forehead below the top fifth
    images[0, :int(0.33 * size), int(0.2 * size):int(0.8 * size)] = hair  # dark hair over the patch
    images[2, :int(0.33 * size), int(0.2 * size):int(0.8 * size)] = wall  # the patch on the wall: nothing
    images[2, :8] = wall
    images[1, :int(0.33 * size), int(0.2 * size):int(0.8 * size)] = skin  # a bald crown: nothing
    colours = hair_colours(images, np.stack([lm] * 3))
    assert colours[0, 0] < 20 and not np.isnan(colours[0]).any()
    assert np.isnan(colours[1]).all() and np.isnan(colours[2]).all()


def test_the_ridge_map_keeps_its_held_out_spread_to_stretch_by():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 8))
    y = x[:, 0] + rng.normal(size=400)  # r ≈ 0.7: predictions spread less than the truth
    fit = fit_ridge(x, y, None, 0)
    assert 0.6 < fit["r"] < 0.8
    assert fit["sd"] < 0.85 * fit["feature_sd"]


def test_fitted_looks_draw_the_styles_at_their_shares_following_gender_and_age():
    rng = np.random.default_rng(1)
    model = FaceDecoder(FaceDecoderConfig(size=64, refiner=(), alpha=True))
    with torch.no_grad():
        model.mean_landmarks.copy_(torch.from_numpy(portrait_landmarks(64)))
    n, d = 300, 128
    desc = torch.from_numpy(rng.normal(size=(n, d))).float()
    x = model.centred(desc).numpy()
    female = (x[:, 0] > 0).astype(np.float32)
    age = 45 + 300 * x[:, 1]
    images = torch.from_numpy(rng.integers(0, 255, (n, 3, 64, 64), dtype=np.uint8))
    portraits = {"images": images, "landmarks": torch.from_numpy(np.stack([portrait_landmarks(64)] * n)),
                 "desc": desc, "speakers": [f"s{i % 100}" for i in range(n)]}
    labelled = {"desc": desc, "female": female, "age": age, "speakers": [f"u{i}" for i in range(n)]}
    summary = fit_looks(model, portraits, labelled, LooksConfig(grid=64))
    assert model.looks is not None and model.config.looks == len(STYLES)
    assert summary["feature_r"]["female"] > 0.5 and summary["feature_r"]["age"] > 0.9
    styles = model.looks.choose(model.centred(desc)).numpy()
    women, men = female == 1, female == 0
    womens = np.isin(styles, [STYLES.index("long"), STYLES.index("medium")])
    assert womens[women].mean() > 0.85 and womens[men].mean() < 0.15
    medium_share = (styles[womens] == STYLES.index("medium")).mean()
    assert abs(medium_share - (1 - STYLE_SHARES["medium_age"])) < 0.1
    bald = styles == STYLES.index("bald")
    assert age[bald].mean() > age[~womens & ~bald].mean() + 20  # the bald are the oldest men
    out = model(desc[:4])
    assert out["image"].shape == (4, 3, 64, 64) and torch.isfinite(out["image"]).all()
