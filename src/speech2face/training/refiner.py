"""Stage 2 of the face decoder: the detail refiner, trained to restore real portraits from
blurred copies (L1 on pixels and on image gradients, over random windows), checkpointed and
resumable within a wall-clock budget."""

from __future__ import annotations

from typing import TYPE_CHECKING

import time

import numpy as np
import torch
import torch.nn.functional as F

from ..models.face_decoder import FaceDecoder
from .runs import Run

if TYPE_CHECKING:
    from .face_decoder import FaceDecoderTrainConfig


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, radius: int = 6) -> torch.Tensor:
    """Separable Gaussian blur with one sigma per image: (B, C, S, S), sigma (B,) px → (B, C, S, S)."""
    b, c, h, w = images.shape
    taps = torch.arange(-radius, radius + 1, dtype=images.dtype)
    kernel = torch.exp(-taps[None] ** 2 / (2 * sigma[:, None] ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (B·C, 2r + 1)
    x = F.pad(images.reshape(1, b * c, h, w), (radius,) * 4, mode="replicate")
    x = F.conv2d(x, kernel.view(b * c, 1, 1, -1), groups=b * c)
    x = F.conv2d(x, kernel.view(b * c, 1, -1, 1), groups=b * c)
    return x.view(b, c, h, w)


def random_patches(target: torch.Tensor, known: torch.Tensor, patch: int,
                   rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random ``patch``-px window of each image and its known mask (the whole image where
    it is no larger): restoring blur is local, so the refiner learns as well from windows, at a
    fraction of the cost of whole 224 px portraits."""
    size = target.shape[-1]
    if patch <= 0 or patch >= size:
        return target, known
    corners = rng.integers(0, size - patch + 1, size=(len(target), 2))
    pick = lambda x: torch.stack([img[:, y:y + patch, x0:x0 + patch] for img, (y, x0) in zip(x, corners)])
    return pick(target), pick(known)


def restoration_loss(restored: torch.Tensor, target: torch.Tensor, known: torch.Tensor, edge_weight: float) -> torch.Tensor:
    """L1 of (B, 3, P, P) images on the known pixels (B, 1, P, P), plus ``edge_weight`` × L1 of their
    horizontal and vertical differences: a pixel loss alone is met by a restoration a little softer
    than the photo (the safe middle of the edges it could draw); matching the gradients asks for
    the edge itself."""
    loss = ((restored - target).abs() * known).mean()
    if edge_weight:
        for dim in (2, 3):
            d_restored, d_target = restored.diff(dim=dim), target.diff(dim=dim)
            both = known.narrow(dim, 0, known.shape[dim] - 1) * known.narrow(dim, 1, known.shape[dim] - 1)
            loss = loss + edge_weight * ((d_restored - d_target).abs() * both).mean()
    return loss


def train_refiner(run: Run, cfg: FaceDecoderTrainConfig, model: FaceDecoder, data: dict, train_idx: np.ndarray) -> dict:
    """Stage 2: the refiner learns to restore detail that blur took from real faces.

    Inputs are canonical training faces blurred by a Gaussian of random width (``cfg.blur_sigma``,
    which spans how blurry the linear decoding is: σ ≈ 1 px at 128 px gives its sharpness), targets
    the faces themselves, loss L1 on the known pixels. A restorer brings back what blur hides
    (edges of eyes, brows, lips, hair) as photos show it; trained on blur alone it has no way to
    invent texture, which is the point: an adversarial refiner on 2 CPU cores drew streaks instead.
    The linear maps stay fixed. Checkpointed and resumable."""
    state = run.load_checkpoint()
    opt = torch.optim.Adam(model.refiner.parameters(), lr=cfg.refiner_lr)
    step, elapsed = 0, 0.0
    if state is not None and state.get("stage") == "refiner":
        model.refiner.load_state_dict(state["refiner"])
        opt.load_state_dict(state["opt"])
        step, elapsed = state["step"], state["elapsed"]
        torch.set_rng_state(state["torch_rng"])
        print(f"resumed at step {step}", flush=True)

    def checkpoint() -> None:
        run.save_checkpoint({"stage": "refiner", "refiner": model.refiner.state_dict(), "opt": opt.state_dict(),
                             "step": step, "elapsed": elapsed + time.time() - tick, "torch_rng": torch.get_rng_state()})

    rng = np.random.default_rng(cfg.seed + step)
    lo, hi = cfg.blur_sigma
    model.refiner.train()
    tick = time.time()
    while elapsed + (time.time() - tick) < cfg.refiner_minutes * 60:
        idx = rng.choice(train_idx, cfg.batch_size, replace=False)
        target, known = data["targets"][idx].float() / 255, data["known"][idx].float() / 255  # (B, 3|1, S, S)
        target, known = random_patches(target, known, cfg.refiner_patch, rng)  # (B, 3|1, P, P)
        flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
        target[flip], known[flip] = target[flip].flip(3), known[flip].flip(3)
        sigma = torch.empty(len(idx)).uniform_(lo, hi)
        loss = restoration_loss(model.refiner(gaussian_blur(target, sigma)), target, known, cfg.edge_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 20 == 0:
            run.log(stage="refiner", step=step, l1=loss.item())
        if step % cfg.checkpoint_every == 0:
            checkpoint()
            print(f"refiner step {step}: L1 {loss.item():.4f}", flush=True)
    checkpoint()
    elapsed += time.time() - tick
    model.refiner.eval()
    return {"refiner_steps": step, "refiner_minutes": elapsed / 60, "refiner_train_faces": len(train_idx)}
