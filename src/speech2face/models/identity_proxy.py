"""A small differentiable stand-in for dlib's face descriptor, distilled on our aligned faces.

dlib's ResNet cannot be back-propagated through; this CNN learns to predict its 128-D descriptor
from a canonical face crop so that the face decoder can be trained to keep identity. It is only a
training signal: every reported number uses the real dlib descriptor.
"""

from __future__ import annotations

import torch
from torch import nn


def _down(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())


class IdentityProxy(nn.Module):
    def __init__(self, descriptor_dim: int = 128, channels: tuple[int, ...] = (32, 64, 128, 192, 256)) -> None:
        super().__init__()
        layers, c = [], 3
        for c_out in channels:
            layers.append(_down(c, c_out))
            c = c_out
        self.features = nn.Sequential(*layers)  # (B, 3, S, S) → (B, C, S / 32, S / 32)
        self.head = nn.Linear(c, descriptor_dim)

    def feature_maps(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Activations after each down block, for a perceptual loss: [(B, C_i, S / 2^i, S / 2^i), ...]."""
        maps, x = [], image * 2 - 1
        for block in self.features:
            x = block(x)
            maps.append(x)
        return maps

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        # image (B, 3, S, S) in [0, 1] → (B, D), unit norm
        x = self.features(image * 2 - 1).mean(dim=(2, 3))
        out = self.head(x)
        return out / out.norm(dim=1, keepdim=True).clamp_min(1e-6)
