"""Stage 1 of the face decoder: its two linear maps (descriptor → landmarks; descriptor →
shape-free texture + silhouette) in closed form by ridge regression, with unknown pixels filled
by the model's own prediction (EM for missing values), and the descriptor range it is fit for."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.face_decoder import FaceDecoder


def ridge_solver(x: torch.Tensor, lam: float) -> torch.Tensor:
    """Centred inputs (N, D) float64 → (D, N), the map from centred targets to ridge weights."""
    return torch.linalg.solve(x.T @ x + lam * torch.eye(x.shape[1], dtype=x.dtype), x.T)


def fit_ridge_with_unknowns(x: torch.Tensor, y: torch.Tensor, known: torch.Tensor, lam: float, iterations: int,
                            chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Least squares ``y ≈ x W + b`` where some targets are unknown.

    x (N, D) centred float64; y, known (N, P) uint8 (known: 255 = observed). Unknown entries
    start at the observed mean of their column and are replaced by the fit's prediction
    ``iterations`` times (EM for a Gaussian model with missing values). Columns are independent,
    so they are processed ``chunk`` at a time to bound memory. Returns W (D, P), b (P,) float32.
    """
    solver = ridge_solver(x, lam)
    weights, biases = [], []
    for c in range(0, y.shape[1], chunk):
        yc, kc = y[:, c:c + chunk].double() / 255, known[:, c:c + chunk].double() / 255
        mean = (yc * kc).sum(0) / kc.sum(0).clamp_min(1e-6)
        filled = kc * yc + (1 - kc) * mean
        for _ in range(iterations + 1):
            mean = filled.mean(0)
            w = solver @ (filled - mean)
            filled = kc * yc + (1 - kc) * (x @ w + mean)
        weights.append(w.float())
        biases.append(mean.float())
    return torch.cat(weights, 1), torch.cat(biases)


@torch.no_grad()
def set_descriptor_range(model: FaceDecoder, x: torch.Tensor, variance: float = 0.99, quantile: float = 0.99) -> None:
    """The decoder's valid input range from centred training descriptors x (N, D): the principal
    axes holding ``variance`` of their variance, whitening along them, and the ``quantile`` of
    the whitened lengths."""
    evals, evecs = torch.linalg.eigh(x.T @ x / len(x))
    evals, evecs = evals.flip(0), evecs.flip(1)  # largest first
    k = int((evals.cumsum(0) / evals.sum() < variance).sum()) + 1
    axes = evecs[:, :k]  # (D, k)
    whitening = torch.zeros_like(evecs)
    whitening[:, :k] = axes / evals[:k].sqrt()
    model.projection.copy_((axes @ axes.T).float())
    model.whitening.copy_(whitening.float())
    model.max_radius.copy_(torch.quantile((x @ whitening).norm(dim=1), quantile).float())


@torch.no_grad()
def fit_linear(model: FaceDecoder, desc: torch.Tensor, landmarks: torch.Tensor, textures: torch.Tensor,
               known_textures: torch.Tensor, lam: float, iterations: int) -> None:
    """Stage 1: the closed-form fit of both linear maps on the given (training) faces.

    desc (N, D); landmarks (N, 68, 2) px; textures, known_textures (N, 3, S, S) uint8."""
    unit = F.normalize(desc.double(), dim=1)
    model.descriptor_mean.copy_(unit.mean(0).float())
    x = unit - unit.mean(0)
    set_descriptor_range(model, x)
    lm = landmarks.reshape(len(x), -1).double()
    lm_weight = ridge_solver(x, lam) @ (lm - lm.mean(0))
    model.landmarks_head.weight.copy_(lm_weight.T.float())
    model.landmarks_head.bias.copy_(lm.mean(0).float())
    n = len(x)
    tex_weight, tex_bias = fit_ridge_with_unknowns(x, textures.reshape(n, -1), known_textures.reshape(n, -1),
                                                   lam, iterations)
    model.texture_head.weight.copy_(tex_weight.T)
    model.texture_head.bias.copy_(tex_bias)
