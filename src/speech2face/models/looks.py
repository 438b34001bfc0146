"""Looks: everything outside the inner face (hair, hairline, ears, neck, shoulders) drawn as one
of K modes instead of the average of all of them.

The decoder's linear texture map gives, for a descriptor, the *mean* of the photos it could come
from. Inside the face that mean is sharp (textures of different people line up pixel by pixel),
but hair does not line up: long, short, blond, grey and bald heads average into one brown dome.
A look is a group of training portraits (at least a few dozen people) that share hair colour,
hair length, hairline and what shows of the shoulders. It is stored as three maps in the
decoder's shape-free frame, each averaged over its members:

- ``person``: the share of members whose person (head, hair, neck, clothes) covers a pixel; the
  decoder's silhouette thresholds it, so the outline drawn is the look's median outline, crisp;
- ``hair``: the share whose pixel is person but not skin (hair, beard, headwear, clothes);
- ``colour``: the mean colour of those hair pixels (one colour family per look, so no ghosts).

Drawing picks *one* look for a descriptor — a mode, not the mean. Outside the inner face the
texture becomes the look's hair where the look has hair, and the descriptor's own skin (the
linear map's, which carries identity and skin tone) where it does not: ears, neck, a bald crown.

The choice: a linear map from the centred descriptor predicts what the head around the face
looks like (hair lightness and colour, how much hair on the crown, temples and beside the jaw);
the predictions are stretched to unit spread (a least-squares prediction is shrunk towards the
average head, and the nearest look to the average is the helmet again) and the nearest look wins.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

HAIR_EDGE = 0.08  # width of the hair / skin boundary, in units of the hair share


class Looks(nn.Module):
    """K looks at ``grid`` px, in the decoder's shape-free frame of side ``size``, chosen from
    descriptors of ``descriptor_dim`` by ``features`` predicted head features.

    Buffers: ``person``, ``hair`` (K, 1, G, G) shares in [0, 1]; ``colour`` (K, 3, G, G) RGB in
    [0, 1]; ``outer`` (1, 1, S, S) where looks apply (1 outside the inner face, feathered);
    ``cheeks`` (1, 1, S, S) where skin tone is read, summing to 1; ``predictor_weight`` (F, D),
    ``predictor_bias``, ``prediction_mean``, ``prediction_sd``, ``feature_weight`` (F,);
    ``centres`` (K, F) the looks in the stretched, weighted feature space."""

    def __init__(self, count: int, size: int, grid: int, descriptor_dim: int, features: int) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("person", torch.zeros(count, 1, grid, grid))
        self.register_buffer("hair", torch.zeros(count, 1, grid, grid))
        self.register_buffer("colour", torch.zeros(count, 3, grid, grid))
        self.register_buffer("outer", torch.zeros(1, 1, size, size))
        self.register_buffer("cheeks", torch.zeros(1, 1, size, size))
        self.register_buffer("predictor_weight", torch.zeros(features, descriptor_dim))
        self.register_buffer("predictor_bias", torch.zeros(features))
        self.register_buffer("prediction_mean", torch.zeros(features))
        self.register_buffer("prediction_sd", torch.ones(features))
        self.register_buffer("feature_weight", torch.ones(features))
        self.register_buffer("centres", torch.zeros(count, features))

    @property
    def count(self) -> int:
        return self.person.shape[0]

    def distances(self, x: torch.Tensor) -> torch.Tensor:
        """Centred descriptors (B, D) → (B, K) squared distances of their stretched predicted head
        features to each look."""
        predicted = x @ self.predictor_weight.T + self.predictor_bias  # (B, F)
        z = (predicted - self.prediction_mean) / self.prediction_sd * self.feature_weight
        return torch.cdist(z, self.centres) ** 2

    def choose(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D) → (B,) the index of the look drawn for each descriptor."""
        return self.distances(x).argmin(dim=1)

    def maps(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B,) look indices → person (B, 1, S, S), crisp hair weight (B, 1, S, S), colour (B, 3, S, S)."""
        stack = torch.cat([self.person, self.hair, self.colour], 1)[index]
        if stack.shape[-1] != self.size:
            stack = F.interpolate(stack, size=(self.size, self.size), mode="bilinear", align_corners=False)
        hair = torch.sigmoid((stack[:, 1:2] - 0.5) / HAIR_EDGE)
        return stack[:, :1], hair, stack[:, 2:]

    def forward(self, texture: torch.Tensor, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """Shape-free texture (B, 4, S, S) (RGB + silhouette) of centred descriptors x (B, D) → the
        same with the chosen (or given) look drawn outside the inner face."""
        index = self.choose(x) if index is None else index
        person, hair, colour = (m.to(texture.dtype) for m in self.maps(index))
        rgb, alpha = texture[:, :3], texture[:, 3:4]
        skin_tone = (rgb * self.cheeks).sum((2, 3), keepdim=True)  # (B, 3, 1, 1)
        own = ((alpha - 0.3) / 0.4).clamp(0, 1)  # where the linear map draws the person itself
        skin = own * rgb + (1 - own) * skin_tone
        outside = hair * colour + (1 - hair) * skin
        outer = self.outer.to(texture.dtype)
        return torch.cat([outer * outside + (1 - outer) * rgb, outer * person + (1 - outer) * alpha], 1)
