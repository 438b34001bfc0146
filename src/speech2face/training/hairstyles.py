"""The hairstyles the looks draw (``models.looks``), as geometry around the decoder's mean shape.

Nothing here comes from a photo: each style is a few curves placed in units of the mean face's
jaw width (``w``) from its landmarks, and its strands are seeded noise smoothed along the
direction hair falls (line integral convolution), so no training person's hair can ship.

- the skull: an ellipse round the eyes' height reaching 0.62 w above the brows;
- hair over it down to a hairline 0.30 w above the brows (lower at the temples), sideburns to the
  ears; *receding*: the hairline 0.45 w up; *bald*: a horseshoe of hair
  at the sides and back only;
- *medium*: hair falling past the ears to the mouth's height; *long*: down to the frame's bottom
  edge beside the neck, and on over the shoulders in the portrait frame;
- ears where the hair leaves them bare, and a neck under the jaw.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

from ..landmarks import BROWS, LEFT_EYE, RIGHT_EYE
from ..models.looks import STYLES

EDGE_PX = 1.2  # softness of the head's outline
HAIR_OUTLINE_PX = 1.8  # softness of the head's outline against the background
HAIRLINE_PX = 4.0  # softness of where hair meets skin
STRANDS = 0.05  # contrast of the strands in the hair's shading
STRAND_LENGTH = 20  # px along which strand noise is smoothed


def geometry(mean: np.ndarray) -> dict:
    """Mean landmarks (68, 2) px → the lengths the styles are drawn in."""
    return {"w": float(mean[16, 0] - mean[0, 0]), "mid": float(mean[27:31, 0].mean()),
            "brow": float(mean[BROWS, 1].min()), "eye": float(mean[LEFT_EYE + RIGHT_EYE, 1].mean()),
            "nose": float(mean[33, 1]), "mouth": float(mean[48:68, 1].mean()), "chin": float(mean[8, 1]),
            "ear_x": float(mean[16, 0] - mean[0, 0]) / 2}


def soft(inside: np.ndarray, px: float = EDGE_PX) -> np.ndarray:
    """A boolean region → its soft-edged share in [0, 1]."""
    return np.clip(gaussian_filter(inside.astype(np.float32), px), 0, 1)


def jaw_region(mean: np.ndarray, size: int, half_width: float, top: float) -> np.ndarray:
    """(S, S) bool: the head below the eye line, from the skull's width there down the jaw line
    to the chin, so the head narrows into the jaw instead of ending in a box."""
    from PIL import Image, ImageDraw

    mid = float(mean[27:31, 0].mean())
    outline = [(mid - half_width, top)] + [tuple(p) for p in mean[0:17]] + [(mid + half_width, top)]
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).polygon(outline, fill=255)
    return np.asarray(mask) > 127


def style_regions(style: str, mean: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """One style's boolean regions (S, S): 'skull', 'hair', 'ears', 'neck'."""
    g = geometry(mean)
    w, mid = g["w"], g["mid"]
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dx = np.abs(xs - mid)
    volume = 0.10 * w if style in ("medium", "long") else 0.07 * w
    top = max(g["brow"] - 0.62 * w, 0.04 * size + volume)  # the hair's top stays a few px inside the frame
    cy = g["eye"]
    ax, ay = 0.54 * w, cy - top
    skull = (((dx / ax) ** 2 + ((ys - cy) / ay) ** 2 <= 1) & (ys <= cy)) | jaw_region(mean, size, ax, cy)
    over = ((dx / (ax + volume)) ** 2 + ((ys - cy) / (ay + volume)) ** 2 <= 1) & (ys <= cy)
    temple = np.clip(dx / (0.42 * w), 0, 1)
    if style == "receding":
        hairline = g["brow"] - (0.45 * w - 0.10 * w * temple ** 2)
    else:
        hairline = g["brow"] - (0.30 * w - 0.14 * w * temple ** 2)
    hair = over & (ys < hairline)
    side_top = g["brow"] - (0.38 if style == "receding" else 0.2) * w  # receding temples: the sides reach up to the hair
    sideburn = (dx > 0.44 * w) & (dx < ax + 0.03 * w) & (ys >= side_top) & (ys < g["eye"] + 0.12 * w)
    hair |= sideburn & (over | (ys > cy - 0.1 * w))  # inside the hair's outline
    if style == "bald":  # a thin horseshoe at the sides and back, close to the head: the crown is skin
        hair = over & (dx > 0.44 * w) & (ys > g["brow"] - 0.28 * w) & (ys < g["eye"] + 0.05 * w)
        hair &= ((dx / (ax + 0.04 * w)) ** 2 + ((ys - cy) / (ay + 0.04 * w)) ** 2 <= 1)
    if style == "medium":  # from the face's edge out, down to the mouth, ending rounded
        bottom = g["mouth"] + 0.05 * w
        end = ((ys - bottom) / (0.14 * w)) ** 2 + ((dx - 0.5 * w) / (0.2 * w)) ** 2 <= 1
        hair |= ((dx < ax + volume) & (ys >= cy) & (ys < bottom)) | ((dx > 0.3 * w) & end)
    if style == "long":  # past the chin onto the shoulders, fuller lower down, ending in rounded tips
        # to the frame's bottom edge, where the head fades into the portrait frame's shoulders and
        # the rest of the hair (models.portrait_frame.long_hair)
        width = ax + volume + 0.08 * w * np.clip((ys - cy) / (size - cy), 0, 1)
        hair |= (dx < width) & (ys >= cy)
    hair = gaussian_filter(hair.astype(np.float32), 4.0) > 0.5  # rounded: no corners, notches or gaps
    ears = np.zeros_like(hair)
    if style in ("short", "receding", "bald"):
        ey = 0.5 * (g["eye"] + g["nose"])
        ears = ((dx - (g["ear_x"] + 0.02 * w)) / (0.07 * w)) ** 2 + ((ys - ey) / (0.14 * w)) ** 2 <= 1
    neck = (dx < 0.36 * w) & (ys > g["nose"])
    hair &= ~(neck & (ys > g["chin"] - 0.05 * w))  # the neck in front of long hair
    if style == "receding":  # the bare temples keep the hair's outline: no notch between crown and sides
        skull |= over & (ys > side_top - 0.1 * w)
    return {"skull": skull, "hair": hair, "ears": ears, "neck": neck}


def strand_noise(hair: np.ndarray, mean: np.ndarray, seed: int) -> np.ndarray:
    """(S, S) noise, zero-mean and unit spread, smoothed along the way hair falls: out from the
    crown on top, straight down at the sides below the eyes."""
    g = geometry(mean)
    size = hair.shape[0]
    rng = np.random.default_rng(seed)
    noise = gaussian_filter(rng.standard_normal((size, size)), 0.6)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    crown_y = g["brow"] - 1.1 * g["w"]  # far above the head: the strands fan out gently, no star
    vx, vy = xs - g["mid"], ys - crown_y
    norm = np.hypot(vx, vy) + 1e-6
    down = 1 / (1 + np.exp(-(ys - g["eye"]) / (0.08 * g["w"])))  # 0 above the eyes, 1 below
    vx, vy = (1 - down) * vx / norm, (1 - down) * vy / norm + down
    norm = np.hypot(vx, vy) + 1e-6
    vx, vy = vx / norm, vy / norm
    total = np.zeros_like(noise)
    for t in range(-STRAND_LENGTH // 2, STRAND_LENGTH // 2 + 1):
        total += map_coordinates(noise, [ys + t * vy, xs + t * vx], order=1, mode="reflect")
    total -= total.mean()
    return total / (total.std() + 1e-6)


def draw_style(style: str, mean: np.ndarray, size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """One style → float32 (S, S) maps: person, hair (soft-edged shares) and shading (≈ 1)."""
    r = style_regions(style, mean, size)
    person = soft(r["skull"] | r["hair"] | r["ears"] | r["neck"], HAIR_OUTLINE_PX)
    # the hair's edge on the skin (hairline, sideburns) is soft and broken by strands, not a cut
    strands = strand_noise(r["hair"], mean, seed)
    share = soft(r["hair"], HAIRLINE_PX)
    hair = np.clip(share + 1.0 * share * (1 - share) * strands.clip(-1, 1), 0, 1) * person  # broken at the edge only
    g = geometry(mean)
    ys = np.mgrid[0:size, 0:size][0].astype(np.float32)
    # hair: strands, darker towards its edges and under the crown, a sheen across the crown
    depth = gaussian_filter(r["hair"].astype(np.float32), 5.0)
    sheen = np.exp(-(((ys - (g["brow"] - 0.5 * g["w"])) / (0.15 * g["w"])) ** 2))
    clumps = gaussian_filter(np.random.default_rng(seed + 100).standard_normal((size, size)), 6.0)
    clumps /= clumps.std() + 1e-6  # locks of hair catching more or less light
    hair_shade = (1 + STRANDS * strands + 0.06 * clumps) * (0.8 + 0.2 * depth) * (1 + 0.08 * sheen)
    # skin: a rounded head, darker towards the outline; the neck in the chin's shadow
    skin_body = gaussian_filter((r["skull"] | r["ears"]).astype(np.float32), 6.0)
    skin_shade = 0.86 + 0.14 * skin_body
    skin_shade = np.where(r["neck"] & (ys > g["chin"] - 0.1 * g["w"]), 0.82, skin_shade)
    shading = hair * hair_shade + (1 - hair) * gaussian_filter(skin_shade, 1.5)
    return {"person": person, "hair": hair, "shading": shading.astype(np.float32)}


def draw_styles(mean: np.ndarray, size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Every style in STYLES order → person, hair, shading, each (K, 1, S, S) float32."""
    drawn = [draw_style(s, mean, size, seed + k) for k, s in enumerate(STYLES)]
    return {name: np.stack([d[name] for d in drawn])[:, None] for name in ("person", "hair", "shading")}
