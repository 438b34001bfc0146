"""Is a drawn face canonical? Two measures on the image itself: a closed mouth (from the 68
landmarks dlib finds on the drawing) and a plain light background around the head.

* Mouth: the inner-lip gap — mean vertical distance between the inner upper lip (points 61, 62,
  63) and the inner lower lip (67, 66, 65) — divided by the mouth's width (48 to 54). A closed
  mouth reads 0–0.05 here (lips touch; landmark noise); talking or smiling mouths showing teeth
  read 0.1–0.4. Closed: below MOUTH_CLOSED_BELOW.
* Background: the top band (the upper 8 % of rows) and the upper sides (the outer 8 % of columns
  over the upper half) — where a portrait shows background, never the face. Plain and light: the
  band's mean grey level at least BACKGROUND_MIN_LEVEL and its standard deviation at most
  BACKGROUND_MAX_SD (grey levels, 0–255).
"""

from __future__ import annotations

import numpy as np

MOUTH_CLOSED_BELOW = 0.08  # inner-lip gap / mouth width
BAND = 0.08  # share of the height (top band) and width (sides) inspected
BACKGROUND_MIN_LEVEL = 200.0  # mean grey level of a light background
BACKGROUND_MAX_SD = 12.0  # grey-level spread of a plain one

UPPER_INNER_LIP = (61, 62, 63)
LOWER_INNER_LIP = (67, 66, 65)


def inner_lip_gap(landmarks68: np.ndarray) -> float:
    """(68, 2) landmarks → inner-lip gap as a share of mouth width."""
    lm = np.asarray(landmarks68, dtype=np.float64)
    gap = np.mean(np.abs(lm[list(LOWER_INNER_LIP), 1] - lm[list(UPPER_INNER_LIP), 1]))
    width = np.linalg.norm(lm[54] - lm[48])
    return float(gap / max(width, 1e-6))


def mouth_closed(landmarks68: np.ndarray) -> bool:
    return gap_is_closed(inner_lip_gap(landmarks68))


def gap_is_closed(gap: float) -> bool:
    return gap < MOUTH_CLOSED_BELOW


def is_plain_light(level: float, sd: float) -> bool:
    """A background band of this mean grey level and spread is plain and light."""
    return level >= BACKGROUND_MIN_LEVEL and sd <= BACKGROUND_MAX_SD


def background_band(image: np.ndarray) -> np.ndarray:
    """The grey levels of the top band and the upper sides of an (H, W, 3) uint8 image: (n,)."""
    grey = np.asarray(image, dtype=np.float64) @ np.array([0.299, 0.587, 0.114])
    h, w = grey.shape
    top, side = max(1, round(BAND * h)), max(1, round(BAND * w))
    parts = [grey[:top], grey[top:h // 2, :side], grey[top:h // 2, w - side:]]
    return np.concatenate([p.ravel() for p in parts])


def background_stats(image: np.ndarray) -> dict:
    """Mean and spread of the background band, and whether it is plain and light."""
    band = background_band(image)
    level, sd = float(band.mean()), float(band.std())
    return {"level": level, "sd": sd, "plain_light": is_plain_light(level, sd)}
