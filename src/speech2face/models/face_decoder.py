"""Face decoder after Cole et al. (2017): descriptor → landmarks + shape-free texture → warped face.

An MLP predicts the 68 landmarks of the canonical (frontal, aligned) frame as offsets from the
mean shape; a CNN predicts the face's texture warped to the mean shape; a thin-plate spline moves
the texture onto the predicted landmarks. Separating shape from texture lets the texture network
learn from few faces without averaging misaligned features into blur.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .warp import tps_warp

N_LANDMARKS = 68


@dataclass(frozen=True)
class FaceDecoderConfig:
    descriptor_dim: int = 128  # input: dlib face descriptor
    size: int = 128  # px, side of the output image (canonical frame scaled from the 224 crop)
    hidden: int = 512  # landmark MLP width
    channels: tuple[int, ...] = (256, 128, 64, 32, 16)  # texture CNN, 4×4 doubled per stage
    landmark_scale: float = 0.1  # offsets are predicted in units of size · landmark_scale

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FaceDecoderConfig":
        return cls(**{**d, "channels": tuple(d["channels"])})


def _up_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.GroupNorm(min(8, c_out), c_out),
        nn.LeakyReLU(0.2),
    )


class FaceDecoder(nn.Module):
    def __init__(self, config: FaceDecoderConfig = FaceDecoderConfig(), mean_landmarks: torch.Tensor | None = None):
        super().__init__()
        self.config = config
        start = config.size // 2 ** len(config.channels)
        if start * 2 ** len(config.channels) != config.size:
            raise ValueError(f"size {config.size} is not 2^{len(config.channels)} times an integer")
        self.start = start
        # mean shape of the canonical frame, in output pixels: (68, 2)
        self.register_buffer("mean_landmarks", mean_landmarks if mean_landmarks is not None else torch.zeros(N_LANDMARKS, 2))
        d, h = config.descriptor_dim, config.hidden
        self.landmarks_head = nn.Sequential(nn.Linear(d, h), nn.LeakyReLU(0.2), nn.Linear(h, h), nn.LeakyReLU(0.2),
                                            nn.Linear(h, N_LANDMARKS * 2))
        c0 = config.channels[0]
        self.texture_fc = nn.Sequential(nn.Linear(d, c0 * start * start), nn.LeakyReLU(0.2))
        blocks = [_up_block(c0, config.channels[0])]
        blocks += [_up_block(a, b) for a, b in zip(config.channels[:-1], config.channels[1:])]
        self.texture_cnn = nn.Sequential(*blocks)  # (B, c0, s, s) → (B, c_last, size, size)
        self.to_rgb = nn.Conv2d(config.channels[-1], 3, 3, padding=1)

    def landmarks(self, desc: torch.Tensor) -> torch.Tensor:
        # desc (B, D) → (B, 68, 2) output pixels
        offsets = self.landmarks_head(desc).view(-1, N_LANDMARKS, 2)
        return self.mean_landmarks + offsets * (self.config.size * self.config.landmark_scale)

    def texture(self, desc: torch.Tensor) -> torch.Tensor:
        # desc (B, D) → (B, 3, size, size) in [0, 1], face in the mean shape
        x = self.texture_fc(desc).view(-1, self.config.channels[0], self.start, self.start)
        return torch.sigmoid(self.to_rgb(self.texture_cnn(x)))

    def first_layer(self, desc: torch.Tensor) -> torch.Tensor:
        """f_dec of the Speech2Face loss: the decoder's first linear layers, (B, D) → (B, hidden + C·s²)."""
        desc = desc / desc.norm(dim=1, keepdim=True).clamp_min(1e-6)
        return torch.cat([self.landmarks_head[0](desc), self.texture_fc[0](desc)], dim=1)

    def forward(self, desc: torch.Tensor) -> dict[str, torch.Tensor]:
        """desc (B, D) → image (B, 3, size, size) in [0, 1], texture, landmarks (B, 68, 2)."""
        desc = desc / desc.norm(dim=1, keepdim=True).clamp_min(1e-6)  # dlib descriptors have norm ≈ 1
        landmarks = self.landmarks(desc)
        texture = self.texture(desc)
        mean = self.mean_landmarks.expand(desc.shape[0], -1, -1)
        image = tps_warp(texture, mean, landmarks)
        return {"image": image, "texture": texture, "landmarks": landmarks}
