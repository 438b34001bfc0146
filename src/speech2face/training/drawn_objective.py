"""Training a voice head on what is finally compared: the dlib descriptor of its drawing.

voice → predicted descriptor p → frozen face decoder → image → dlib (torch port) → r. The loss
ranks r among the true faces of the training speakers (retrieval, not regression towards the
mean), asks r to carry the ethnicity of the true face with every group weighted alike (so that the
majority is not drawn for everyone), and keeps p near the true descriptor as a regulariser (so
the drawing stays a face the decoder knows). A linear head starts from the ridge regression
GE2E → descriptor, the best closed-form start measured on val.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..evaluation.attributes import EthnicityLogits
from ..evaluation.metrics import retrieval_recall
from ..dlib_weights import dlib_face_net
from ..models.drawn import DrawnDescriptor
from ..models.face_decoder import FaceDecoder
from ..models.losses import balanced_cross_entropy, ranking_loss


@dataclass(frozen=True)
class DrawnObjectiveConfig:
    temperature: float = 0.05  # of the ranking softmax over cosine similarities
    ethnicity_weight: float = 0.5  # balanced cross-entropy of the drawing's ethnicity
    regression_weight: float = 1.0  # ‖p/‖p‖ − v/‖v‖‖² of the prediction itself
    refine: bool = False  # draw with the refiner while training (≈10× slower; scored with it anyway)
    ridge: float = 1.0  # λ of the closed-form start of a linear head

    @classmethod
    def from_dict(cls, d: Optional[dict]) -> "DrawnObjectiveConfig":
        return cls(**(d or {}))

    def to_dict(self) -> dict:
        return asdict(self)


def ridge_start(linear: torch.nn.Linear, features: torch.Tensor, targets: torch.Tensor, lam: float) -> None:
    """Set a Linear (in → out) to the ridge regression of targets (N, out) on features (N, in)."""
    x, y = features.double(), targets.double()
    xm, ym = x.mean(0), y.mean(0)
    xc = x - xm
    w = torch.linalg.solve(xc.T @ xc + lam * torch.eye(x.shape[1], dtype=x.dtype), xc.T @ (y - ym))  # (in, out)
    with torch.no_grad():
        linear.weight.copy_(w.T.float())
        linear.bias.copy_((ym - xm @ w).float())


class DrawnObjective:
    """The loss of a batch of predictions (B, D) for training samples ``idx``."""

    def __init__(self, config: DrawnObjectiveConfig, decoder: FaceDecoder, data: dict, train_idx: np.ndarray,
                 device: str = "cpu") -> None:
        self.config = config
        self.drawn = DrawnDescriptor(decoder.to(device), dlib_face_net(), refine=config.refine)
        self.classify = EthnicityLogits().to(device)
        self.desc = data["desc"].to(device)
        self.bank = self.desc[train_idx]  # (N, D): every training face is ranked against
        speakers = np.asarray(data["speakers"])
        self.same = torch.from_numpy(speakers[:, None] == speakers[train_idx][None, :]).to(device)  # (all, N)
        with torch.no_grad():
            self.labels = self.classify(self.desc).argmax(1)  # the true face's ethnicity, as the scorer reads it
        counts = torch.bincount(self.labels[train_idx], minlength=self.classify.bias.numel()).float()
        self.class_weight = torch.where(counts > 0, counts.sum() / counts.clamp_min(1) / (counts > 0).sum(), 0.0)

    def __call__(self, pred: torch.Tensor, idx: np.ndarray) -> dict[str, torch.Tensor]:
        """pred (B, D) for the samples ``idx`` → {'rank', 'ethnicity', 'regression', 'total'}."""
        idx_t = torch.as_tensor(idx, device=pred.device)
        drawn = self.drawn(pred)["descriptor"]
        terms = {
            "rank": ranking_loss(drawn, self.bank, self.same[idx_t], self.config.temperature),
            "ethnicity": balanced_cross_entropy(self.classify(drawn), self.labels[idx_t], self.class_weight),
            "regression": (F.normalize(pred, dim=-1) - F.normalize(self.desc[idx_t], dim=-1)).pow(2).sum(-1).mean(),
        }
        terms["total"] = (terms["rank"] + self.config.ethnicity_weight * terms["ethnicity"]
                          + self.config.regression_weight * terms["regression"])
        return terms

    @torch.no_grad()
    def drawn_descriptors(self, pred: torch.Tensor, refine: bool = True, batch: int = 64) -> torch.Tensor:
        """(N, D) predictions → (N, D) dlib descriptors of their drawings (with the refiner by default,
        as the product draws them)."""
        return torch.cat([self.drawn(p, refine)["descriptor"] for p in pred.split(batch)]) if len(pred) else pred


def drawn_recall(objective: DrawnObjective, pred: torch.Tensor, data: dict, idx: np.ndarray) -> dict:
    """Retrieval of the true faces by the drawings' descriptors (the image scorer's protocol, with
    the torch port standing in for reading PNGs): {'1', '5', '10'} in %, and the drawings' balanced
    ethnicity agreement over the four main groups."""
    ids = [data["speakers"][i] for i in idx]
    if len(set(ids)) < 2:
        return {"1": float("nan"), "5": float("nan"), "10": float("nan"), "ethnicity_balanced": float("nan")}
    drawn = objective.drawn_descriptors(pred.to(objective.desc.device)).cpu()
    recall = retrieval_recall(drawn.numpy(), data["desc"][idx].numpy(), ids, (1, 5, 10), 100, 5, 0)["recall"]
    truth = objective.labels[torch.as_tensor(idx)].cpu()
    guess = objective.classify(drawn.to(objective.desc.device)).argmax(1).cpu()
    per_group = [float((guess[truth == k] == k).float().mean()) for k in range(4) if (truth == k).any()]
    return {**recall, "ethnicity_balanced": 100 * float(np.mean(per_group)) if per_group else float("nan")}
