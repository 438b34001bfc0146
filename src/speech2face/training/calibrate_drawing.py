"""Stage 3 of the face decoder: make what dlib reads from a drawing match what it was drawn from.

The decoder's maps are fitted to pixels, not to what a face network sees in them: averaging,
the crisp silhouette and the refiner each move the drawing's descriptor a little, and not at
random — dark skin is drawn a shade lighter, faces a little more average — so the ethnicity and
identity read from drawings drift towards the mean. Drawing a few thousand training faces and
reading them with the torch port of dlib's network gives pairs (input x, read y) in the centred
descriptor space; a ridge regression from y back to x says which input draws a face that reads
as y. Applying that inverse map Q to every input (x → x Q) draws faces that read as the
descriptor asked for. Q is folded into the two linear heads (W → W Qᵀ), so drawing costs nothing
more. Two rounds: the second corrects what the first, linear, step missed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..dlib_weights import dlib_face_net
from ..models.drawn import DrawnDescriptor
from ..models.face_decoder import FaceDecoder


@torch.no_grad()
def read_drawings(drawn: DrawnDescriptor, desc: torch.Tensor, batch: int = 32) -> torch.Tensor:
    """(N, D) descriptors → (N, D) unit dlib descriptors of their drawings (refiner on, as shipped)."""
    return torch.cat([F.normalize(drawn(part, refine=True)["descriptor"], dim=1) for part in desc.split(batch)])


@torch.no_grad()
def fold_input_map(model: FaceDecoder, q: torch.Tensor, c: torch.Tensor) -> None:
    """Replace both heads' inputs x by x Q + c (Q: (D, D), c: (D,)): b ← b + W c, W ← W Qᵀ."""
    for head in (model.landmarks_head, model.texture_head):
        w = head.weight
        head.bias.add_(w @ c.to(w.dtype))
        head.weight.copy_(w @ q.T.to(w.dtype))


@torch.no_grad()
def calibrate_drawing(model: FaceDecoder, desc: torch.Tensor, rounds: int = 2, lam: float = 1e-2,
                      log=print) -> list[dict]:
    """Fit and fold the inverse read-out map on training descriptors ``desc`` (N, D). Returns, per
    round, the mean cosine between what was asked for and what the drawings read as, before it."""
    drawn = DrawnDescriptor(model, dlib_face_net())
    unit = F.normalize(desc.float(), dim=1)
    x = model.centred(unit).double()  # (N, D): what the heads receive
    history = []
    for r in range(rounds + 1):
        read = read_drawings(drawn, unit)
        cosine = float((read * unit).sum(1).mean())
        history.append({"round": r, "cosine_read_to_asked": cosine})
        log(f"drawing calibration round {r}: mean cosine of the drawings' descriptors to the asked ones {cosine:.4f}")
        if r == rounds:
            break
        y = (read.double() - model.descriptor_mean.double()) @ model.projection.double()  # centred, in the subspace
        # the current heads see x Q_total; the inputs that drew `read` are x (in the heads' current frame),
        # so the inverse is a ridge map y → x, applied on top of what is folded already
        y_mean, x_mean = y.mean(0), x.mean(0)
        yc = y - y_mean
        ridge = lam * len(y) * float(yc.var(0).sum()) / y.shape[1] * torch.eye(y.shape[1], dtype=y.dtype)
        q = torch.linalg.solve(yc.T @ yc + ridge, yc.T @ (x - x_mean))  # (D, D)
        fold_input_map(model, q.float(), (x_mean - y_mean @ q).float())
    return history
