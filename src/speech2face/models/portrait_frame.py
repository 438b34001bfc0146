"""The portrait frame: the drawn head a little smaller in the picture, on a neck that widens into
shoulders in plain dark clothes, as a portrait photograph (and the paper's drawings) show it.

The decoder draws in the frame of its training crops, which end a finger's width under the chin:
no photo there shows shoulders, so no average of photos can draw them. The frame is a fixed
geometric drawing instead, placed from the drawn landmarks — nothing in it comes from a photo:
the head is scaled by ``scale`` about a point near the top edge; below the chin a neck of the
drawn skin tone runs into shoulders whose curve follows the head's width, in one dark neutral.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CLOTHES = (46, 48, 54)  # plain dark neutral clothing (as the looks' training photos are dressed)
NECK_HALF_WIDTH = 0.36  # face widths, each side of the midline
COLLAR_BELOW_CHIN = 0.18  # face widths: where the clothes begin under the chin
SHOULDER_REACH = 1.4  # face widths the shoulders reach out beyond the neck, each side
SHOULDER_DROP = 0.4  # face widths under the chin by which the shoulders have spread most of their reach
EDGE_PX = 1.2  # softness of the outline


def place(landmarks: torch.Tensor, size: int, scale: float, anchor: float) -> torch.Tensor:
    """(B, 68, 2) px in the drawn frame → the same in the portrait frame (scaled about (S/2, anchor))."""
    centre = torch.tensor([size / 2, anchor], dtype=landmarks.dtype, device=landmarks.device)
    return centre + scale * (landmarks - centre)


def shrink(image: torch.Tensor, scale: float, anchor: float) -> torch.Tensor:
    """(B, C, S, S) → (B, C, S, S): the picture scaled by ``scale`` about (S/2, anchor), zero outside."""
    b, _, s, _ = image.shape
    ty = (2 * anchor / s - 1) * (1 - 1 / scale)  # the anchor stays where it is
    centres = (2 * torch.arange(s, dtype=image.dtype, device=image.device) + 1) / s - 1  # grid_sample's units
    ys, xs = torch.meshgrid(centres / scale + ty, centres / scale, indexing="ij")  # affine_grid's, written out
    grid = torch.stack([xs, ys], -1).expand(b, s, s, 2)  # (B, S, S, 2): exports to ONNX as a constant
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def body(landmarks: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 68, 2) landmarks in the portrait frame → soft masks (B, 1, S, S) of the neck and
    shoulders (all of the person below the chin) and of the clothes on them."""
    jaw = (landmarks[:, 16, 0] - landmarks[:, 0, 0]).clamp_min(1.0)[:, None, None]  # (B, 1, 1)
    mid = landmarks[:, 27:31, 0].mean(1)[:, None, None]
    chin = landmarks[:, 8, 1][:, None, None]
    ys, xs = torch.meshgrid(torch.arange(size, dtype=landmarks.dtype, device=landmarks.device) + 0.5,
                            torch.arange(size, dtype=landmarks.dtype, device=landmarks.device) + 0.5, indexing="ij")
    collar = chin + COLLAR_BELOW_CHIN * jaw
    below = (ys - chin).clamp_min(0)  # a straight neck, then the trapezius and the shoulders spreading
    half = jaw * (NECK_HALF_WIDTH + SHOULDER_REACH * (1 - torch.exp(-(below / (SHOULDER_DROP * jaw)) ** 2)))
    person = torch.sigmoid((half - (xs - mid).abs()) / EDGE_PX) * torch.sigmoid((ys - (chin - 0.3 * jaw)) / EDGE_PX)
    # the collar: a shallow curve under the neck, lower at the middle
    neckline = collar + 0.12 * jaw * (1 - ((xs - mid) / (NECK_HALF_WIDTH * jaw)).clamp(-1, 1) ** 2)
    clothes = person * torch.sigmoid((ys - neckline) / EDGE_PX)
    return person[:, None], clothes[:, None]


def long_hair(landmarks: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 68, 2) landmarks in the portrait frame → (B, 1, S, S) soft mask of long hair falling
    past the chin onto the shoulders, either side of the neck, ending in rounded tips: the head's
    own frame ends just under the chin, so this part of a long hairstyle is drawn here."""
    jaw = (landmarks[:, 16, 0] - landmarks[:, 0, 0]).clamp_min(1.0)[:, None, None]
    mid = landmarks[:, 27:31, 0].mean(1)[:, None, None]
    chin = landmarks[:, 8, 1][:, None, None]
    ys, xs = torch.meshgrid(torch.arange(size, dtype=landmarks.dtype, device=landmarks.device) + 0.5,
                            torch.arange(size, dtype=landmarks.dtype, device=landmarks.device) + 0.5, indexing="ij")
    dx = (xs - mid).abs()
    centre, half = (HAIR_INNER + HAIR_OUTER) / 2 * jaw, (HAIR_OUTER - HAIR_INNER) / 2 * jaw
    top, bottom = chin - 0.1 * jaw, chin + HAIR_BELOW_CHIN * jaw  # from behind the head's own hair
    tip = (ys - (bottom - half)).clamp_min(0)  # rounded ends: the lock narrows over its last half-width
    inside = half * torch.sqrt((1 - (tip / half) ** 2).clamp_min(0)) - (dx - centre).abs()
    return (torch.sigmoid(inside / EDGE_PX) * torch.sigmoid((ys - top) / EDGE_PX))[:, None]


HAIR_INNER, HAIR_OUTER = 0.36, 0.69  # face widths from the midline: where long hair falls on the shoulders
HAIR_BELOW_CHIN = 0.45  # face widths: how far below the chin it reaches


def frame(image: torch.Tensor, alpha: torch.Tensor, landmarks: torch.Tensor, skin: torch.Tensor,
          background: torch.Tensor, scale: float, anchor: float, hair: torch.Tensor | None = None,
          long: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The drawn head image (B, 3, S, S) with its silhouette alpha (B, 1, S, S), landmarks
    (B, 68, 2), skin tone (B, 3) and background (3,) in [0, 1] → the portrait (B, 3, S, S) and its
    landmarks (B, 68, 2). With ``hair`` (B, 3) colours and ``long`` (B,) in [0, 1], long hair
    falls onto the shoulders (``long_hair``) where ``long`` is 1."""
    size = image.shape[-1]
    placed = place(landmarks, size, scale, anchor)
    person, clothes = body(placed, size)
    clothes_rgb = torch.tensor(CLOTHES, dtype=image.dtype, device=image.device).view(1, 3, 1, 1) / 255
    neck_rgb = 0.85 * skin.view(-1, 3, 1, 1)  # the neck lies in the chin's shadow
    canvas = background.view(1, 3, 1, 1) * (1 - person) + person * (clothes * clothes_rgb + (1 - clothes) * neck_rgb)
    if hair is not None and long is not None:
        falls = long_hair(placed, size) * long.view(-1, 1, 1, 1).to(image.dtype)
        canvas = canvas * (1 - falls) + falls * 0.9 * hair.view(-1, 3, 1, 1)
    head = shrink(torch.cat([image, alpha], 1), scale, anchor)
    a = head[:, 3:]
    return a * head[:, :3] + (1 - a) * canvas, placed
