"""The Speech2Face loss (Oh et al. 2019, eq. 1), on whatever face descriptor is in use.

    L = ‖f_dec(v_f) − f_dec(v_s)‖₁ + λ₁‖v_f/‖v_f‖ − v_s/‖v_s‖‖₂² + λ₂ L_distill(f_cls(v_f), f_cls(v_s))

v_f: the true face's descriptor, v_s: the voice's prediction, f_dec: the face decoder's first
layer (so errors are weighed as the decoder sees them), f_cls: a classifier on descriptors,
L_distill: cross-entropy between temperature-softened class distributions. The L1 term is
averaged over feature dimensions (a normalised L1), so its scale does not grow with the width
of f_dec. With dlib descriptors there are no VGG-Face identity logits; any classifier on
descriptors (e.g. our UTKFace ethnicity classifier) can stand in, or the term is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F

Features = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class LossConfig:
    l2_weight: float = 0.025  # λ₁
    distill_weight: float = 200.0  # λ₂ (used only when a classifier is given)
    temperature: float = 2.0


def distillation(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cross-entropy of softmax(teacher / T) against log-softmax(student / T), averaged over the batch."""
    target = F.softmax(teacher_logits / temperature, dim=-1)
    return -(target * F.log_softmax(student_logits / temperature, dim=-1)).sum(-1).mean()


def speech2face_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    f_dec: Optional[Features] = None,
    classifier: Optional[Features] = None,
    config: LossConfig = LossConfig(),
) -> dict[str, torch.Tensor]:
    """pred, target: (B, D) descriptors → {'total', 'l1', 'l2', 'distill'} scalars."""
    f_dec = f_dec or (lambda x: x)
    l1 = (f_dec(pred) - f_dec(target)).abs().mean()
    l2 = (F.normalize(pred, dim=-1) - F.normalize(target, dim=-1)).pow(2).sum(-1).mean()
    terms = {"l1": l1, "l2": l2}
    total = l1 + config.l2_weight * l2
    if classifier is not None:
        terms["distill"] = distillation(classifier(pred), classifier(target), config.temperature)
        total = total + config.distill_weight * terms["distill"]
    terms["total"] = total
    return terms


def ranking_loss(pred: torch.Tensor, bank: torch.Tensor, positive: torch.Tensor, temperature: float = 0.05,
                 weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Listwise retrieval loss (InfoNCE): each prediction should be closer, in cosine, to its own
    face than to every other face of the bank.

    pred (B, D); bank (N, D) faces to rank (the batch's and a memory of training faces);
    positive (B, N) bool, True for faces of the prediction's own speaker (at least one per row);
    weight (B,) per-sample weights (e.g. class balance), normalised to mean 1. Returns
    −log(Σ_pos exp(s/τ) / Σ_all exp(s/τ)) averaged over the batch, s = cosine similarity."""
    logits = F.normalize(pred, dim=-1) @ F.normalize(bank, dim=-1).T / temperature  # (B, N)
    loss = torch.logsumexp(logits, 1) - torch.logsumexp(logits.masked_fill(~positive, float("-inf")), 1)
    if weight is None:
        return loss.mean()
    return (loss * weight).sum() / weight.sum()


def balanced_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, class_weight: torch.Tensor) -> torch.Tensor:
    """Cross-entropy in which every class counts as much as every other, however rare:
    logits (B, C), labels (B,), class_weight (C,) ∝ 1 / class frequency in training."""
    return F.cross_entropy(logits, labels, weight=class_weight)
