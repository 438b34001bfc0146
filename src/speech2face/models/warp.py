"""Differentiable thin-plate-spline warp: move an image so that its landmarks land elsewhere.

Cole et al. (2017) decode a face as a shape-free texture plus landmarks, then warp the texture
onto the landmarks. ``tps_warp(texture, src, dst)`` returns an image in which the content found
at ``src`` in ``texture`` sits at ``dst``: a backward map ``dst → src`` is fitted (a TPS through
the landmarks, optionally pinned at the border) and sampled with ``grid_sample``. Gradients
flow to the texture and to both point sets. Points are in pixel coordinates (x, y), pixel
centres at integers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _radial(d2: torch.Tensor) -> torch.Tensor:
    """TPS kernel U(r) = r² log r², written on r² (0 at r = 0)."""
    return d2 * torch.log(d2.clamp_min(1e-12))


def border_points(height: int, width: int, per_side: int = 3, device=None) -> torch.Tensor:
    """Fixed points along the image border (K, 2), pixel coordinates, to pin the background."""
    t = torch.linspace(0, 1, per_side + 1, device=device)[:-1]
    w, h = width - 1, height - 1
    top = torch.stack([t * w, torch.zeros_like(t)], 1)
    right = torch.stack([torch.full_like(t, w), t * h], 1)
    bottom = torch.stack([(1 - t) * w, torch.full_like(t, h)], 1)
    left = torch.stack([torch.zeros_like(t), (1 - t) * h], 1)
    return torch.cat([top, right, bottom, left])


def to_normalized(points: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel (x, y) → grid_sample's [-1, 1] (align_corners=False)."""
    size = points.new_tensor([width, height])
    return (2 * points + 1) / size - 1


def tps_system(ctrl: torch.Tensor, values: torch.Tensor, reg: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """The linear system whose solution is the TPS with f(ctrl_i) = values_i: ctrl (B, N, 2),
    values (B, N, 2) → matrix (B, N + 3, N + 3), right-hand side (B, N + 3, 2). Kept apart from the
    solve because ONNX has no linear solver: exported decoders solve it between two graphs."""
    b, n, _ = ctrl.shape
    k = _radial(torch.cdist(ctrl, ctrl).pow(2)) + reg * torch.eye(n, device=ctrl.device)  # (B, N, N)
    p = torch.cat([torch.ones_like(ctrl[..., :1]), ctrl], dim=2)  # (B, N, 3)
    top = torch.cat([k, p], dim=2)  # (B, N, N + 3)
    bottom = torch.cat([p.transpose(1, 2), torch.zeros_like(p[:, :3]).expand(-1, -1, 3)], dim=2)  # (B, 3, N + 3)
    rhs = torch.cat([values, torch.zeros_like(values[:, :3])], dim=1)  # (B, N + 3, 2)
    return torch.cat([top, bottom], dim=1), rhs


def tps_fit(ctrl: torch.Tensor, values: torch.Tensor, reg: float = 1e-6) -> torch.Tensor:
    """Coefficients of the TPS with f(ctrl_i) = values_i: ctrl (B, N, 2), values (B, N, 2) → (B, N + 3, 2)."""
    return torch.linalg.solve(*tps_system(ctrl, values, reg))


def tps_apply(ctrl: torch.Tensor, coef: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Evaluate the TPS at query (B, Q, 2) → (B, Q, 2)."""
    n = ctrl.shape[1]
    u = _radial(torch.cdist(query, ctrl).pow(2))  # (B, Q, N)
    p = torch.cat([torch.ones_like(query[..., :1]), query], dim=2)  # (B, Q, 3)
    return u @ coef[:, :n] + p @ coef[:, n:]


def warp_controls(src: torch.Tensor, dst: torch.Tensor, height: int, width: int,
                  pin_border: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """src, dst (B, N, 2) pixels → both in grid_sample units, with the border pins appended: (B, N + K, 2)."""
    src_n, dst_n = to_normalized(src, height, width), to_normalized(dst, height, width)
    if pin_border:
        pins = to_normalized(border_points(height, width, device=src.device), height, width).expand(src.shape[0], -1, -1)
        src_n, dst_n = torch.cat([src_n, pins.to(src_n.dtype)], 1), torch.cat([dst_n, pins.to(dst_n.dtype)], 1)
    return src_n, dst_n


def warp_with(texture: torch.Tensor, dst_n: torch.Tensor, coef: torch.Tensor, grid_size: int | None = 32) -> torch.Tensor:
    """texture (B, C, H, W) sampled through the fitted backward TPS (controls dst_n (B, N, 2),
    coefficients (B, N + 3, 2)) → (B, C, H, W). The TPS is evaluated on a ``grid_size``² lattice
    and bilinearly upsampled to every pixel (a smooth map loses nothing; ~50× cheaper at 224²);
    ``grid_size=None`` evaluates it exactly."""
    b, _, h, w = texture.shape
    gh, gw = (h, w) if grid_size is None else (min(grid_size, h), min(grid_size, w))
    ys, xs = torch.meshgrid(torch.linspace(-1 + 1 / h, 1 - 1 / h, gh, device=texture.device),
                            torch.linspace(-1 + 1 / w, 1 - 1 / w, gw, device=texture.device), indexing="ij")
    lattice = torch.stack([xs, ys], -1).reshape(1, -1, 2).to(texture.dtype)  # (1, gh*gw, 2), pixel centres
    grid = tps_apply(dst_n, coef, lattice.expand(b, -1, -1)).reshape(b, gh, gw, 2)
    if (gh, gw) != (h, w):  # corner-aligned lattice → every pixel centre
        grid = F.interpolate(grid.permute(0, 3, 1, 2), size=(h, w), mode="bilinear", align_corners=True).permute(0, 2, 3, 1)
    return F.grid_sample(texture, grid, mode="bilinear", padding_mode="border", align_corners=False)


def tps_warp(texture: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, pin_border: bool = True,
             grid_size: int | None = 32) -> torch.Tensor:
    """texture (B, C, H, W); src, dst (B, N, 2) pixels → (B, C, H, W) with src content moved to dst
    (a backward map dst → src is fitted and sampled, see ``warp_with``)."""
    src_n, dst_n = warp_controls(src, dst, texture.shape[2], texture.shape[3], pin_border)
    return warp_with(texture, dst_n, tps_fit(dst_n, src_n), grid_size)
