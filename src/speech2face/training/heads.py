"""Where the head is in a canonical face crop: OpenCV's GrabCut, seeded by the 68 landmarks.

The decoder should draw a whole head — hair, ears, jaw, the top of the neck — on a plain
background, so its targets are the training photos with everything but the head replaced. No
segmentation model ships offline; GrabCut separates a head from its background well when told
where both surely are: the face inside the landmarks' hull is head, the throat under the chin is
neck, what lies far beside or above the head is background, and what lies between (hair, ears,
neck) is for GrabCut's colour models to
decide. Nothing outside the photographed area (the flat fill that alignment adds around tight
crops) is sure; the fit treats the mask there as unknown.
"""

from __future__ import annotations

import numpy as np
import torch

from ..landmarks import INNER_LIP, OUTER_LIP

ITERATIONS = 4  # GrabCut refinements
HAIR_ABOVE_BROWS = 0.68  # face widths: the highest a head may reach above the brows (plausible_region)


def head_mask(image: np.ndarray, landmarks68: np.ndarray, photographed: np.ndarray | None = None,
              shoulders: bool = False) -> np.ndarray:
    """(S, S, 3) uint8 RGB crop, (68, 2) landmarks in its pixels, optional (S, S) bool photographed
    area → (S, S) float32 head mask in {0, 1}. With ``shoulders`` the whole person in the frame:
    the shoulders are probably person and the chest under the chin surely is."""
    import cv2

    size = image.shape[0]
    lm = np.asarray(landmarks68, dtype=np.float32)
    mask = np.full((size, size), cv2.GC_PR_BGD, np.uint8)
    jaw = float(lm[16, 0] - lm[0, 0])  # face width, px
    mid_x = float(lm[27:31, 0].mean())  # the nose bridge: the head's midline
    brows_y, chin_y = float(lm[17:27, 1].min()), float(lm[8, 1])
    # probably head: an ellipse around face and hair (hair reaches ~0.8 face widths above the brows)
    center = (round(mid_x), round((brows_y - 0.8 * jaw + chin_y) / 2))
    axes = (round(0.72 * jaw), round((chin_y - brows_y + 0.8 * jaw) / 2))
    cv2.ellipse(mask, center, axes, 0, 0, 360, cv2.GC_PR_FGD, -1)
    # probably neck: a column under the chin
    neck = np.array([[lm[4, 0], chin_y - 0.1 * jaw], [lm[12, 0], chin_y - 0.1 * jaw], [lm[12, 0], size],
                     [lm[4, 0], size]], np.int32)
    cv2.fillConvexPoly(mask, neck, cv2.GC_PR_FGD)
    # surely head: the face inside the jaw and up to the forehead, and the neck just under the chin
    core = np.concatenate([lm[2:15], lm[17:27][::-1] - [0, 0.15 * jaw]])
    cv2.fillConvexPoly(mask, cv2.convexHull(core.astype(np.int32)), cv2.GC_FGD)
    throat = np.array([[lm[6, 0], chin_y], [lm[10, 0], chin_y], [lm[10, 0], chin_y + 0.25 * jaw],
                       [lm[6, 0], chin_y + 0.25 * jaw]], np.int32)
    cv2.fillConvexPoly(mask, throat, cv2.GC_FGD)
    if shoulders:  # the neck widening into the shoulders, and the chest in the middle of the bottom rows
        ys_, xs_ = np.mgrid[0:size, 0:size]
        half_width = 0.42 * jaw + 1.2 * np.clip(ys_ - (chin_y + 0.25 * jaw), 0, None)
        mask[(np.abs(xs_ - mid_x) < half_width) & (ys_ > chin_y) & (mask != cv2.GC_FGD)] = cv2.GC_PR_FGD
        mask[(np.abs(xs_ - mid_x) < 0.45 * jaw) & (ys_ > chin_y + 0.6 * jaw)] = cv2.GC_FGD
    # surely background: beside the head above the shoulders, far from the midline
    xs = np.arange(size)[None, :]
    ys = np.arange(size)[:, None]
    beside = (np.abs(xs - mid_x) > 1.15 * jaw) & (ys < chin_y)
    above = ys < brows_y - 1.2 * jaw
    sure_bg = beside | above
    if photographed is not None:
        sure_bg &= photographed  # outside the photo nothing is sure; the fit treats it as unknown
    mask[sure_bg & (mask != cv2.GC_FGD)] = cv2.GC_BGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    bgr = np.ascontiguousarray(image[..., ::-1])
    cv2.grabCut(bgr, mask, None, bgd, fgd, ITERATIONS, cv2.GC_INIT_WITH_MASK)
    head = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
    # keep the component holding the face; fill holes (eyes, teeth GrabCut may call background)
    count, labels = cv2.connectedComponents(head)
    if count > 2:
        face_label = labels[int(lm[30, 1]), int(lm[30, 0])]
        head = (labels == face_label).astype(np.uint8) if face_label else head
    inverse = 1 - head
    count, labels = cv2.connectedComponents(inverse)
    outside = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))) - {0}
    holes = inverse.astype(bool) & ~np.isin(labels, list(outside))
    head[holes] = 1
    return head.astype(np.float32)


def plausible_region(landmarks: torch.Tensor, size: int) -> torch.Tensor:
    """Where a head can be at all, from (N, 68, 2) landmarks: an ellipse around face and hair
    (at most 0.85 face widths to each side of the midline, HAIR_ABOVE_BROWS above the brows:
    in the portrait frame that ends a few px below the top edge, so the background shows above
    even the fullest hair, as in the paper's portraits), the neck from
    under the chin to the frame's lower edge, widening into the shoulders below it. (N, 1, S, S)
    bool. GrabCut keeps background it has no sure sample of (tight crops show little of it);
    cutting its masks to this region keeps walls and screens out, and outside it the decoder knows
    there is no head, even where the photo does not reach. The neck runs off the bottom of the
    frame, as in a photograph, rather than ending in a cut."""
    jaw = (landmarks[:, 16, 0] - landmarks[:, 0, 0]).clamp_min(1.0)[:, None, None]  # (N, 1, 1)
    mid_x = landmarks[:, 27:31, 0].mean(1)[:, None, None]
    top = landmarks[:, 17:27, 1].amin(1)[:, None, None] - HAIR_ABOVE_BROWS * jaw
    chin = landmarks[:, 8, 1][:, None, None]
    bottom = chin + 0.1 * jaw
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    ellipse = ((xs - mid_x) / (0.85 * jaw)) ** 2 + ((ys - (top + bottom) / 2) / ((bottom - top) / 2)) ** 2 <= 1
    # neck 0.42 face widths to each side, then the shoulders' slope from 0.25 face widths under the chin
    half_width = 0.42 * jaw + 1.2 * (ys - (chin + 0.25 * jaw)).clamp_min(0)
    neck = ((xs - mid_x).abs() < half_width) & (ys > chin - 0.2 * jaw)
    return (ellipse | neck)[:, None]


def fill_mouths(images: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, S, S) photos, (N, 68, 2) landmarks → the same photos with the inside of each
    mouth (the inner-lip polygon, widened 1 px) painted in the colour of its lips.

    The decoder draws closed mouths by warping every photo onto a closed-mouth shape; a talking
    mouth's teeth and dark inside are squeezed into the line between the lips, and averaged over
    thousands of faces that line reads to a landmark detector as parted lips. Painted over first,
    the lips meet."""
    from PIL import Image, ImageDraw, ImageFilter

    out = images.clone()
    size = images.shape[-1]
    for i in range(len(images)):
        lm = landmarks[i].numpy()
        inner, lips = Image.new("L", (size, size), 0), Image.new("L", (size, size), 0)
        ImageDraw.Draw(inner).polygon([tuple(p) for p in lm[INNER_LIP]], fill=255, outline=255)
        ImageDraw.Draw(lips).polygon([tuple(p) for p in lm[OUTER_LIP]], fill=255)
        inner = np.asarray(inner.filter(ImageFilter.MaxFilter(3))) > 0
        ring = (np.asarray(lips) > 0) & ~inner
        if not inner.any() or ring.sum() < 4:
            continue
        photo = images[i].numpy()
        colour = np.median(photo[:, ring], axis=1)  # (3,) the lips' colour
        out[i, :, torch.from_numpy(inner)] = torch.from_numpy(colour.round().astype(np.uint8))[:, None]
    return out
