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

Two more compare a drawing with the photo it was drawn from (``portrait_agreement``):

* **Hair patch**: the median CIELAB (L*, a*, b*) of the rectangle from landmark 36 to 45 in x and
  from ``HAIR_TOP`` to ``HAIR_BOTTOM`` eye distances above the highest brow point in y — hair, or
  the scalp where there is none; only where the patch lies inside the frame. Over a set: Pearson r
  of drawn L* against photo L*, the spread (std drawn ÷ std photo), and the share of light-haired
  photos (L* ≥ ``LIGHT_HAIR_L``) drawn light too.
* **Person rows**: in the bottom ``PERSON_ROWS`` rows, the share of pixels whose RGB sum differs
  from the top-left ``CORNER_PX``² corner's mean by more than ``PERSON_DIFF`` — shoulders drawn,
  not background.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..landmarks import BROWS, LEFT_EYE, LOWER_INNER_LIP, LOWER_OUTER_LIP, RIGHT_EYE, UPPER_INNER_LIP

MOUTH_CLOSED_BELOW = 0.06  # inner-lip gap / eye distance
BAND_PX = 8  # rows at the top and columns at the sides inspected for the background
BACKGROUND_MIN_LEVEL = 200.0  # mean grey level of a light background
BACKGROUND_MAX_SD = 12.0  # grey-level spread of a plain one
DETAIL_EYE_DISTANCE = 64.0  # px: the scale at which inner-face detail is measured
HAIR_TOP, HAIR_BOTTOM = 1.15, 0.75  # eye distances above the highest brow point
# L* from which a hair patch is light (blond, grey, white hair, a bald scalp or forehead): chosen by
# eye on the 502 s2f-pairs photos whose patch is in frame, sorted by L* — below 35 nearly all dark or
# brown hair, 35–45 mostly brown with a few dimly lit grey heads, from 45 on nearly all blond, grey,
# bald or bare forehead (a third of those photos)
LIGHT_HAIR_L = 45.0
PERSON_ROWS = 24  # bottom rows of the 224 px image inspected for the person
CORNER_PX = 8  # top-left corner taken as the background's colour
PERSON_DIFF = 60.0  # RGB-sum difference from the corner counted as the person

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


def hair_box(landmarks68: np.ndarray, shape: tuple) -> Optional[tuple[int, int, int, int]]:
    """(68, 2) landmarks and an image's (H, W, ...) shape → the hair patch's pixel rows and columns
    [y0, y1) × [x0, x1) (pixel centres inside the rectangle), or None when it leaves the frame."""
    lm = np.asarray(landmarks68, dtype=np.float64)
    d = eye_distance(lm)
    brow = lm[BROWS, 1].min()  # highest brow point: smallest y
    left, right = lm[36, 0], lm[45, 0]
    top, bottom = brow - HAIR_TOP * d, brow - HAIR_BOTTOM * d
    h, w = shape[:2]
    if left < 0 or top < 0 or right > w - 1 or bottom > h - 1:
        return None
    y0, y1, x0, x1 = int(np.ceil(top)), int(np.floor(bottom)) + 1, int(np.ceil(left)), int(np.floor(right)) + 1
    return (y0, y1, x0, x1) if y1 > y0 and x1 > x0 else None


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 sRGB → (..., 3) CIELAB (D65): skimage's conversion where installed, else the
    same standard formulas here."""
    try:
        from skimage.color import rgb2lab
    except ImportError:
        pass
    else:
        return rgb2lab(np.asarray(rgb, np.uint8))
    c = np.asarray(rgb, np.float64) / 255.0
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = c @ np.array([[0.412453, 0.357580, 0.180423],
                        [0.212671, 0.715160, 0.072169],
                        [0.019334, 0.119193, 0.950227]]).T
    t = xyz / np.array([0.95047, 1.0, 1.08883])  # D65 white
    f = np.where(t > 0.008856, np.cbrt(t), 7.787 * t + 16.0 / 116.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])], -1)


def hair_lab(image: np.ndarray, landmarks68: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """(H, W, 3) uint8 image and its (68, 2) landmarks → (3,) median L*, a*, b* of the hair patch,
    or None (no landmarks, or the patch outside the frame)."""
    if landmarks68 is None:
        return None
    box = hair_box(landmarks68, np.shape(image))
    if box is None:
        return None
    y0, y1, x0, x1 = box
    patch = np.asarray(image, np.uint8)[y0:y1, x0:x1, :3]  # (h, w, 3)
    return np.median(srgb_to_lab(patch).reshape(-1, 3), axis=0)


def person_rows(image: np.ndarray) -> float:
    """(H, W, 3) uint8 image → share of the bottom PERSON_ROWS rows that differ from the top-left
    corner's colour: a portrait's shoulders fill them, a floating head leaves background."""
    rgb = np.asarray(image, np.float64)[..., :3].sum(-1)  # (H, W) RGB sums
    corner = rgb[:CORNER_PX, :CORNER_PX].mean()
    return float((np.abs(rgb[-PERSON_ROWS:] - corner) > PERSON_DIFF).mean())


def hair_agreement(photo_l: Sequence[Optional[float]], drawn_l: Sequence[Optional[float]]) -> dict:
    """Hair L* of photos and their drawings, aligned (None where a patch is missing) → r, spread and
    the share of light-haired photos drawn light, over the pairs where both patches exist."""
    both = [(p, q) for p, q in zip(photo_l, drawn_l) if p is not None and q is not None
            and np.isfinite(p) and np.isfinite(q)]
    p, q = (np.array([b[i] for b in both], np.float64) for i in (0, 1))
    r = float(np.corrcoef(p, q)[0, 1]) if len(both) >= 3 and np.ptp(p) > 0 and np.ptp(q) > 0 else None
    spread = float(q.std() / p.std()) if len(both) >= 2 and p.std() > 0 else None
    light = p >= LIGHT_HAIR_L
    return {"hair_lightness_r": r, "hair_spread": spread,
            "light_hair_drawn_light": float((q[light] >= LIGHT_HAIR_L).mean()) if light.any() else None,
            "hair_pairs": len(both), "light_hair_photos": int(light.sum()),
            "hair_photo_l_median": float(np.median(p)) if len(both) else None,
            "hair_drawn_l_median": float(np.median(q)) if len(both) else None}


def portrait_agreement(photo_images: Sequence[np.ndarray], photo_landmarks: Sequence[Optional[np.ndarray]],
                       drawn_images: Sequence[np.ndarray], drawn_landmarks: Sequence[Optional[np.ndarray]]) -> dict:
    """Photos and their drawings, aligned: (224, 224, 3) uint8 images and the (68, 2) landmarks dlib
    finds on each (None where it found no face) → hair agreement (``hair_agreement``) and the mean
    person rows of the drawings and, for reference, of the photos."""
    def lightness(images, landmarks):
        labs = [hair_lab(im, lm) for im, lm in zip(images, landmarks)]
        return [None if lab is None else float(lab[0]) for lab in labs]

    return {**hair_agreement(lightness(photo_images, photo_landmarks), lightness(drawn_images, drawn_landmarks)),
            "person_rows_drawn": float(np.mean([person_rows(im) for im in drawn_images])) if len(drawn_images) else None,
            "person_rows_photo": float(np.mean([person_rows(im) for im in photo_images])) if len(photo_images) else None}
