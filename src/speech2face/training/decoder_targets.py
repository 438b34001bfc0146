"""What the face decoder learns to draw: portrait crops with the head cut out (GrabCut, in
``training.heads``), the photographed part of each frame, landmarks with the lips together, and
shape-free textures (each photo warped from its own landmarks onto the mean shape)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..data import ShardDataset
from ..faces import FACE_SIZE
from ..landmarks import LOWER_INNER_LIP, LOWER_OUTER_LIP, UPPER_INNER_LIP
from ..models.warp import tps_warp


def load_faces(shards: list[str], size: int, limit: int | None = None, keep=None) -> dict:
    """Every face sample's portrait crop (the whole head) → uint8 images (N, 3, S, S), landmarks
    (N, 68, 2) in S px, descriptors (N, D), speakers. ``keep(speaker)`` → bool: only those."""
    from PIL import Image

    image_field, landmark_field = "portrait", "portrait_lm68"
    images, landmarks, descs, speakers = [], [], [], []
    for sample in ShardDataset(shards, fields=[image_field, landmark_field, "desc"]):
        if keep is not None and not keep(sample["json"]["speaker"]):
            continue
        if image_field not in sample:
            raise SystemExit(f"{sample['__key__']}: these shards have no {image_field}.jpg; prepare them again "
                             "with this version (speech2face prepare)")
        face = Image.fromarray(sample[image_field]).resize((size, size), Image.Resampling.LANCZOS)
        images.append(np.asarray(face).transpose(2, 0, 1))
        landmarks.append(sample[landmark_field] * (size / FACE_SIZE))
        descs.append(sample["desc"])
        speakers.append(sample["json"]["speaker"])
        if limit and len(images) >= limit:
            break
    return {
        "images": torch.from_numpy(np.stack(images)),
        "landmarks": torch.from_numpy(np.stack(landmarks)).float(),
        "desc": torch.from_numpy(np.stack(descs)).float(),
        "speakers": speakers,
    }


def border_connected(flat: torch.Tensor) -> torch.Tensor:
    """(N, S, S) bool → the flat pixels connected to the image border (8-neighbourhood): the fill
    grows in from the border through flat pixels only, so skin of the fill's colour stays."""
    import cv2

    out = torch.zeros_like(flat)
    for i, mask in enumerate(flat.numpy().astype(np.uint8)):
        _, labels = cv2.connectedComponents(mask, connectivity=8)
        edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        out[i] = torch.from_numpy(np.isin(labels, edge[edge != 0]))
    return out


def photographed_area(images: torch.Tensor) -> torch.Tensor:
    """Where the aligned crop shows the photo, not the flat fill that alignment adds outside it:
    (N, 3, S, S) uint8 → (N, 1, S, S) soft mask, feathered. The fill is the exact colour shared by ≥ 2 corners."""
    x = images.float()
    corners = torch.stack([x[:, :, 0, 0], x[:, :, 0, -1], x[:, :, -1, 0], x[:, :, -1, -1]], 1)  # (N, 4, 3)
    same = (corners[:, :, None] - corners[:, None]).abs().amax(-1) < 0.5  # (N, 4, 4)
    votes = same.sum(-1)  # how many corners share each corner's colour
    fill = corners[torch.arange(len(x)), votes.argmax(1)]  # (N, 3)
    has_fill = votes.amax(1) >= 2
    flat = ((x - fill[:, :, None, None]).abs().amax(1, keepdim=True) < 2.5) & has_fill[:, None, None, None]
    valid = 1 - border_connected(flat[:, 0])[:, None].float()  # (N, 1, S, S)
    # erode (drop the resampled seam), then feather inwards over 2r px: where a crop ends, the fit
    # on faces that show a pixel meets the fit that also has the cropped ones, and their difference
    # has to fade in rather than draw a line across the forehead
    r = max(2, x.shape[-1] // 32)
    valid = -F.max_pool2d(-valid, 2 * r + 1, 1, r)
    return F.avg_pool2d(valid, 2 * r + 1, 1, r, count_include_pad=False)


CHIN = {6: 0.25, 7: 0.4, 8: 0.5, 9: 0.4, 10: 0.25}  # jaw points and how much of the lips' closing they follow


def close_mouths(landmarks: torch.Tensor, gap: float) -> torch.Tensor:
    """(N, 68, 2) landmarks of talking faces → the same faces with the mouth closed: the lower lip
    moves up until the inner lips are ``gap`` × mouth width apart, the chin follows part of the
    way (a jaw drops less than the lips part). The landmark map learns closed mouths, and textures
    warped onto a closed mean shape squeeze teeth and open mouths into the line between the lips."""
    lm = landmarks.clone()
    upper, lower = lm[:, UPPER_INNER_LIP, 1], lm[:, LOWER_INNER_LIP, 1]  # (N, 3) y, down is +
    width = (lm[:, 54] - lm[:, 48]).norm(dim=1, keepdim=True)  # (N, 1)
    shift = ((upper + gap * width) - lower).clamp(max=0)  # (N, 3) ≤ 0: up, each inner point onto its partner
    lm[:, LOWER_INNER_LIP, 1] += shift
    mean_shift = shift.mean(dim=1)  # (N,)
    lm[:, LOWER_OUTER_LIP, 1] += mean_shift[:, None]
    for point, share in CHIN.items():
        lm[:, point, 1] += share * mean_shift
    return lm


def _head_mask_job(args) -> np.ndarray:
    from .heads import head_mask

    image, landmarks, photographed, shoulders = args
    return head_mask(image, landmarks, photographed, shoulders)


def head_masks(images: torch.Tensor, landmarks: torch.Tensor, photographed: torch.Tensor, workers: int,
               work_size: int = 128, shoulders: bool = False) -> torch.Tensor:
    """GrabCut head masks (``speech2face.training.heads``) of every face: uint8 images (N, 3, S, S),
    landmarks (N, 68, 2) px, photographed (N, 1, S, S) uint8 (soft, 255 = photographed) →
    (N, 1, S, S) uint8 in {0, 255}; with ``shoulders`` the whole person in the frame.
    Cut at ``work_size`` px (GrabCut's cost grows with the pixels; the silhouette does not need
    more) on ``workers`` processes, then scaled back to S."""
    import multiprocessing as mp

    from tqdm import tqdm

    size = images.shape[-1]
    small = F.interpolate(images.float(), size=(work_size, work_size), mode="area").round().byte()
    seen = F.interpolate(photographed.float() / 255, size=(work_size, work_size), mode="area") > 0.5
    scale = work_size / size
    jobs = ((small[i].permute(1, 2, 0).numpy(), (landmarks[i] * scale).numpy(), seen[i, 0].numpy(), shoulders)
            for i in range(len(images)))
    with mp.get_context("spawn").Pool(workers) as pool:
        masks = list(tqdm(pool.imap(_head_mask_job, jobs, chunksize=16), total=len(images), desc="head masks",
                          unit="face", mininterval=10))
    masks = torch.from_numpy(np.stack(masks))[:, None]  # (N, 1, w, w)
    return (F.interpolate(masks, size=(size, size), mode="bilinear", align_corners=False) > 0.5).byte() * 255


def head_targets(images: torch.Tensor, heads: torch.Tensor, photographed: torch.Tensor, region: torch.Tensor,
                 color: tuple[int, int, int], batch: int = 512) -> dict[str, torch.Tensor]:
    """What the decoder learns from portraits with head masks (uint8, S px; ``region`` bool: where a
    head can be, ``training.heads.plausible_region``):

    * ``targets`` (N, 3): the head on the plain background — what the refiner restores;
    * ``known`` (N, 1): where that is known (the photographed area);
    * ``textures`` (N, 4): the photo's colours and the head mask as the 4th channel;
    * ``known_textures`` (N, 4): colours are known inside the head only (so hair is not averaged
      with background: the silhouette decides where the head ends), the mask wherever photographed
      and wherever no head can be (there it is known to be 0, photographed or not).
    """
    out = {k: [] for k in ("targets", "known", "textures", "known_textures")}
    bg = torch.tensor(color, dtype=torch.float32).view(1, 3, 1, 1)
    for i in range(0, len(images), batch):
        x, head = images[i:i + batch].float(), heads[i:i + batch].float() / 255
        seen = photographed[i:i + batch].float() / 255
        nowhere = (~region[i:i + batch]).float()
        soft = F.avg_pool2d(head, 3, 1, 1, count_include_pad=False)  # a 1 px anti-aliased edge
        inner = -F.max_pool2d(-head, 5, 1, 2)  # eroded 2 px: edge pixels mix head and background
        out["targets"].append((x * soft + bg * (1 - soft)).round().byte())
        out["known"].append((seen * 255).round().byte())
        out["textures"].append(torch.cat([x, head * 255], 1).round().byte())
        mask_known = torch.maximum(seen, nowhere)
        out["known_textures"].append(torch.cat([(seen * inner * 255).expand(-1, 3, -1, -1), mask_known * 255], 1).round().byte())
    return {k: torch.cat(v) for k, v in out.items()}


def shape_free_textures(images: torch.Tensor, landmarks: torch.Tensor, mean: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Each face warped so its landmarks sit on the mean shape: uint8 (N, 3, S, S)."""
    out = []
    for i in range(0, len(images), batch):
        x = images[i : i + batch].float() / 255
        lm = landmarks[i : i + batch]
        out.append((tps_warp(x, lm, mean.expand(len(x), -1, -1)) * 255).round().byte())
    return torch.cat(out)
