"""The paper's 12 craniofacial measurements from 68 facial landmarks (iBUG 300-W indices).

Every measurement is a ratio, so it does not depend on image size; lengths are divided by the
distance between the eye centres (IOD). Landmark choices follow the anthropometric definitions
(Farkas) as closely as the 68-point set allows: subnasale ≈ 33, nasion ≈ 27, labrale superius
≈ 51, stomion ≈ midpoint of 62 and 66, labrale inferius ≈ 57, gnathion ≈ 8, gonia ≈ 4 and 12,
cheilia ≈ 48 and 54, alaria ≈ 31 and 35, endocanthia ≈ 39 and 42, exocanthia ≈ 36 and 45.
"""

from __future__ import annotations

import numpy as np

from ..landmarks import LEFT_EYE, RIGHT_EYE

MEASUREMENTS = (
    "upper_lip_height",
    "lateral_upper_lip_heights",
    "jaw_width",
    "nose_height",
    "nose_width",
    "labio_oral_region",
    "mandibular_index",
    "intercanthal_index",
    "nasal_index",
    "vermilion_height_index",
    "mouth_face_width_index",
    "nose_area",
)


def _d(lm: np.ndarray, a, b) -> float:
    pa = lm[a] if np.ndim(a) == 0 else np.mean([lm[i] for i in a], axis=0)
    pb = lm[b] if np.ndim(b) == 0 else np.mean([lm[i] for i in b], axis=0)
    return float(np.linalg.norm(pa - pb))


def polygon_area(points: np.ndarray) -> float:
    """Shoelace area of a simple polygon (N, 2)."""
    x, y = points[:, 0], points[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def measurements(landmarks68: np.ndarray) -> dict[str, float]:
    """(68, 2) landmarks → the 12 measurements (dimensionless)."""
    lm = np.asarray(landmarks68, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {lm.shape}")
    iod = _d(lm, LEFT_EYE, RIGHT_EYE)
    stomion = (62, 66)
    jaw_width = _d(lm, 4, 12)
    nose_height = _d(lm, 27, 33)
    nose_width = _d(lm, 31, 35)
    return {
        "upper_lip_height": _d(lm, 33, 51) / iod,
        "lateral_upper_lip_heights": (_d(lm, 31, 50) + _d(lm, 35, 52)) / 2 / iod,
        "jaw_width": jaw_width / iod,
        "nose_height": nose_height / iod,
        "nose_width": nose_width / iod,
        "labio_oral_region": _d(lm, 33, 57) / iod,
        "mandibular_index": _d(lm, stomion, 8) / jaw_width,
        "intercanthal_index": _d(lm, 39, 42) / _d(lm, 36, 45),
        "nasal_index": nose_width / nose_height,
        "vermilion_height_index": _d(lm, 51, 62) / max(_d(lm, 66, 57), 1e-6),
        "mouth_face_width_index": _d(lm, 48, 54) / _d(lm, 0, 16),
        "nose_area": polygon_area(lm[[27, 31, 32, 33, 34, 35]]) / iod**2,
    }
