"""Looks: everything outside the inner face (hair, hairline, ears, neck) drawn as one hairstyle
with its own colour, instead of the average of all the heads a descriptor could belong to.

The decoder's linear texture map gives, for a descriptor, the *mean* of the photos it could come
from. Inside the face that mean is sharp (textures of different people line up pixel by pixel),
but hair does not line up: long, short, blond, grey and bald heads average into one brown dome,
and the training crops are too tight and too cluttered for an average of hair masks to be any
better (tried: GrabCut masks grouped into looks gave the dome again). So a look here is drawn, not
averaged: a few hairstyles (short, receding, bald, medium, long) drawn once as geometry around
the decoder's mean shape (``training.hairstyles``; no photo goes into them), each stored as

- ``person``: where the person is (skull, hair, ears, neck) in the shape-free frame, crisp;
- ``hair``: where its hair is, with soft edges;
- ``shading``: light and shade (strands, a sheen, darker edges) multiplying the hair's colour,
  and the rounded shading of bare skin.

Which style and which colour follow the descriptor: ridge maps predict the hair colour (CIELAB
of the evaluation's hair patch), whether the person is a woman and their age. The predictions
are stretched to the photos' spread (a least-squares prediction is shrunk towards the average
head, and the average head is the helmet again). Style: women long hair, or medium from
``medium_age``; men short, receding from ``receding_age``, bald from ``bald_age`` — the ages are
quantiles of the training faces' stretched predictions, so the styles are drawn at the shares
chosen in ``training.hairstyles``. Outside the inner face, the texture becomes that hair in that
colour where the style has hair; bare skin keeps the linear map's own texture from the brows down
(forehead, ears, neck: it carries the person's skin), and takes the skin tone read on its cheeks
above (a bald crown).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STYLES = ("short", "receding", "bald", "medium", "long")
FEATURES = ("hair_l", "hair_a", "hair_b", "female", "age")  # what the ridge maps predict


def lab_to_srgb(lab: torch.Tensor) -> torch.Tensor:
    """CIELAB (B, 3) (D65) → sRGB (B, 3) in [0, 1]."""
    fy = (lab[:, 0] + 16) / 116
    f = torch.stack([fy + lab[:, 1] / 500, fy, fy - lab[:, 2] / 200], 1)
    xyz = torch.where(f > 6 / 29, f ** 3, 3 * (6 / 29) ** 2 * (f - 4 / 29))
    xyz = xyz * torch.tensor([0.95047, 1.0, 1.08883], dtype=lab.dtype, device=lab.device)
    m = torch.tensor([[3.2404542, -1.5371385, -0.4985314], [-0.9692660, 1.8760108, 0.0415560],
                      [0.0556434, -0.2040259, 1.0572252]], dtype=lab.dtype, device=lab.device)
    linear = (xyz @ m.T).clamp(0, 1)
    return torch.where(linear > 0.0031308, 1.055 * linear.clamp_min(1e-8) ** (1 / 2.4) - 0.055, 12.92 * linear)


class Looks(nn.Module):
    """K hairstyles at ``grid`` px, in the decoder's shape-free frame of side ``size``, chosen and
    coloured from descriptors of ``descriptor_dim`` by ``features`` predicted head features.

    Buffers: ``person``, ``hair``, ``shading`` (K, 1, G, G); ``outer`` (1, 1, S, S) where looks
    apply (1 outside the inner face, feathered); ``cheeks`` (1, 1, S, S) where skin tone is read,
    summing to 1; ``own_skin`` (1, 1, S, S) where bare skin keeps the linear map's own texture (from
    just above the brows down: forehead, temples, ears, neck — not the crown, where that texture is
    the averaged hair); ``predictor_weight`` (F, D), ``predictor_bias`` (F,) on centred descriptors;
    ``prediction_mean``, ``prediction_sd`` (F,) of the out-of-fold predictions and
    ``feature_mean``, ``feature_sd`` (F,) of the photos, which stretch one onto the other;
    ``medium_age``, ``receding_age``, ``bald_age`` the style thresholds (years, stretched)."""

    def __init__(self, count: int, size: int, grid: int, descriptor_dim: int, features: int) -> None:
        super().__init__()
        self.size = size
        for name in ("person", "hair", "shading"):
            self.register_buffer(name, torch.zeros(count, 1, grid, grid))
        self.register_buffer("outer", torch.zeros(1, 1, size, size))
        self.register_buffer("cheeks", torch.zeros(1, 1, size, size))
        self.register_buffer("own_skin", torch.zeros(1, 1, size, size))
        self.register_buffer("predictor_weight", torch.zeros(features, descriptor_dim))
        for name, value in (("predictor_bias", 0.0), ("prediction_mean", 0.0), ("prediction_sd", 1.0),
                            ("feature_mean", 0.0), ("feature_sd", 1.0)):
            self.register_buffer(name, torch.full((features,), value))
        for name, value in (("medium_age", 50.0), ("receding_age", 45.0), ("bald_age", 60.0)):
            self.register_buffer(name, torch.tensor(value))

    @property
    def count(self) -> int:
        return self.person.shape[0]

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Centred descriptors (B, D) → (B, F) head features in the photos' units (L*, a*, b*,
        female 0…1, age in years), stretched to the photos' spread."""
        predicted = x @ self.predictor_weight.T + self.predictor_bias
        z = (predicted - self.prediction_mean) / self.prediction_sd
        return self.feature_mean + self.feature_sd * z

    def choose(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D) → (B,) the index into STYLES of the hairstyle drawn for each descriptor."""
        f = self.predict(x)
        female, age = f[:, 3] > 0.5, f[:, 4]
        style = lambda name: torch.full_like(age, STYLES.index(name), dtype=torch.long)  # noqa: E731
        women = torch.where(age >= self.medium_age, style("medium"), style("long"))
        men = torch.where(age >= self.bald_age, style("bald"),
                          torch.where(age >= self.receding_age, style("receding"), style("short")))
        return torch.where(female, women, men)

    def hair_rgb(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D) → (B, 3) sRGB in [0, 1]: the predicted hair colour."""
        return lab_to_srgb(self.predict(x)[:, :3].clamp(torch.tensor([0.0, -40, -40], device=x.device),
                                                        torch.tensor([100.0, 40, 60], device=x.device)))

    def maps(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B,) style indices → person, hair, shading, each (B, 1, S, S)."""
        stack = torch.cat([self.person, self.hair, self.shading], 1)[index]
        if stack.shape[-1] != self.size:
            stack = F.interpolate(stack, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return stack[:, :1], stack[:, 1:2], stack[:, 2:]

    def forward(self, texture: torch.Tensor, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """Shape-free texture (B, 4, S, S) (RGB + silhouette) of centred descriptors x (B, D) → the
        same with the chosen (or given) hairstyle drawn outside the inner face."""
        index = self.choose(x) if index is None else index
        person, hair, shading = (m.to(texture.dtype) for m in self.maps(index))
        rgb, alpha = texture[:, :3], texture[:, 3:4]
        skin_tone = (rgb * self.cheeks).sum((2, 3), keepdim=True)  # (B, 3, 1, 1)
        hair_rgb = self.hair_rgb(x).to(texture.dtype)[:, :, None, None]
        # light and shade multiply the colour; a sheen adds a little light even to black hair
        drawn_hair = (hair_rgb * shading + 0.03 * (shading - 1).clamp_min(0)).clamp(0, 1)
        own = ((alpha - 0.3) / 0.4).clamp(0, 1) * self.own_skin.to(texture.dtype)  # the linear map's own skin
        bare = own * rgb + (1 - own) * (skin_tone * shading).clamp(0, 1)
        outside = hair * drawn_hair + (1 - hair) * bare
        outer = self.outer.to(texture.dtype)
        return torch.cat([outer * outside + (1 - outer) * rgb, outer * person + (1 - outer) * alpha], 1)
