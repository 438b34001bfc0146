"""Is a drawn face a canonical portrait? Four measures on the image and the 68 landmarks dlib finds
on it, defined as the independent scorer defines them (``../shared/docs/ANCHORS.md``):

* **Eyes apart** (framing): the distance between the means of points 36–41 and 42–47, in pixels of
  the 224 px image. The paper's faces and the video frames they come from: ~55 px.
* **Inner-face detail**: the image scaled so the eyes are 64 px apart, grey, then the variance of
  the 4-neighbour Laplacian inside the polygon through the brows (17–26) and back along the lower
  lip (54–59, 48). It counts eyes, brows, nose, lips and skin — not the silhouette's edge, which a
  whole-image sharpness would count. Photos: ~40; the paper's decoder: ~15.
* **Mouth closed**: the mean distance of the inner-lip pairs 61–67, 62–66, 63–65 below
  ``MOUTH_CLOSED_BELOW`` of the eye distance.
* **Plain light background**: the top ``BAND_PX`` rows and the ``BAND_PX`` side strips of the upper
  half — where a portrait shows background, never the face — have a mean grey level of at least
  ``BACKGROUND_MIN_LEVEL`` and a spread of at most ``BACKGROUND_MAX_SD`` (grey levels, 0–255).
"""

from __future__ import annotations

import numpy as np

from ..landmarks import BROWS, LEFT_EYE, LOWER_INNER_LIP, LOWER_OUTER_LIP, RIGHT_EYE, UPPER_INNER_LIP

MOUTH_CLOSED_BELOW = 0.06  # inner-lip gap / eye distance
BAND_PX = 8  # rows at the top and columns at the sides inspected for the background
BACKGROUND_MIN_LEVEL = 200.0  # mean grey level of a light background
BACKGROUND_MAX_SD = 12.0  # grey-level spread of a plain one
DETAIL_EYE_DISTANCE = 64.0  # px: the scale at which inner-face detail is measured

INNER_FACE = (*BROWS, 54, *LOWER_OUTER_LIP, 48)  # brows, then back along the lower lip
GREY = np.array([0.299, 0.587, 0.114])


def eye_distance(landmarks68: np.ndarray) -> float:
    """(68, 2) landmarks → distance between the two eyes' mean points, px."""
    lm = np.asarray(landmarks68, dtype=np.float64)
    return float(np.linalg.norm(lm[RIGHT_EYE].mean(0) - lm[LEFT_EYE].mean(0)))


def inner_lip_gap(landmarks68: np.ndarray) -> float:
    """(68, 2) landmarks → mean distance of the inner-lip pairs, as a share of the eye distance."""
    lm = np.asarray(landmarks68, dtype=np.float64)
    gap = np.linalg.norm(lm[LOWER_INNER_LIP] - lm[UPPER_INNER_LIP], axis=1).mean()
    return float(gap / max(eye_distance(lm), 1e-6))


def mouth_closed(landmarks68: np.ndarray) -> bool:
    return gap_is_closed(inner_lip_gap(landmarks68))


def gap_is_closed(gap: float) -> bool:
    return gap < MOUTH_CLOSED_BELOW


def laplacian(grey: np.ndarray) -> np.ndarray:
    """(H, W) → (H - 2, W - 2): the 4-neighbour Laplacian of the interior pixels."""
    return (grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4 * grey[1:-1, 1:-1])


def inner_face_detail(image: np.ndarray, landmarks68: np.ndarray) -> float:
    """(H, W, 3) uint8 image and its (68, 2) landmarks → Laplacian variance inside the inner face,
    the image first scaled so the eyes are DETAIL_EYE_DISTANCE px apart."""
    from PIL import Image, ImageDraw

    lm = np.asarray(landmarks68, dtype=np.float64)
    scale = DETAIL_EYE_DISTANCE / max(eye_distance(lm), 1e-6)
    h, w = image.shape[:2]
    size = (max(3, round(w * scale)), max(3, round(h * scale)))
    scaled = np.asarray(Image.fromarray(np.asarray(image, np.uint8)).resize(size, Image.Resampling.BICUBIC))
    grey = scaled.astype(np.float64) @ GREY
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).polygon([tuple(p) for p in lm[list(INNER_FACE)] * scale], fill=1)
    inside = np.asarray(mask, bool)[1:-1, 1:-1]
    if inside.sum() < 2:
        return 0.0
    return float(laplacian(grey)[inside].var())


def is_plain_light(level: float, sd: float) -> bool:
    """A background band of this mean grey level and spread is plain and light."""
    return level >= BACKGROUND_MIN_LEVEL and sd <= BACKGROUND_MAX_SD


def background_band(image: np.ndarray) -> np.ndarray:
    """The grey levels of the top rows and the upper side strips of an (H, W, 3) uint8 image: (n,)."""
    grey = np.asarray(image, dtype=np.float64) @ GREY
    h, w = grey.shape
    b = min(BAND_PX, h // 2, w // 2) or 1
    parts = [grey[:b], grey[b:h // 2, :b], grey[b:h // 2, w - b:]]
    return np.concatenate([p.ravel() for p in parts])


def background_stats(image: np.ndarray) -> dict:
    """Mean and spread of the background band, and whether it is plain and light."""
    band = background_band(image)
    level, sd = float(band.mean()), float(band.std())
    return {"level": level, "sd": sd, "plain_light": is_plain_light(level, sd)}
