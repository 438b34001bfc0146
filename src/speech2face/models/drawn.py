"""What dlib reads from a drawing: descriptor → face decoder → image → dlib descriptor, differentiable.

The decoder is faithful to real descriptors, but a voice gives it points shrunk towards the mean
(and exaggerated), and dlib reads such drawings differently from the point they were drawn from.
Chaining the frozen decoder with the torch port of dlib's network lets a voice head be trained on
the descriptor the scorer will finally compare. The chip is cut where dlib would cut it: the
decoder's own landmarks stand in for dlib's 5-point shape (on drawings they agree within 0.5 px).
Both networks are given, built (``speech2face.dlib_weights.dlib_face_net()`` for dlib's): the
constructor reads no file.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .dlib_resnet import LANDMARKS68_AS_5, DlibFaceNet, chip_transform, extract_chips
from .face_decoder import FaceDecoder


class DrawnDescriptor(nn.Module):
    """(B, 128) descriptors → (B, 128) dlib descriptors of their drawings (and the images)."""

    def __init__(self, decoder: FaceDecoder, net: DlibFaceNet, refine: bool = True) -> None:
        super().__init__()
        self.decoder = decoder.eval()
        self.net = net  # dlib's, frozen
        self.refine = refine  # False: the linear decoder only (cheaper to train through); a call may override
        for p in self.decoder.parameters():
            p.requires_grad_(False)

    def forward(self, desc: torch.Tensor, refine: Optional[bool] = None) -> dict[str, torch.Tensor]:
        refine = self.refine if refine is None else refine
        out = self.decoder(desc) if refine else self.decoder.base(desc)
        image = out["image"].clamp(0, 1) * 255  # (B, 3, S, S), 0–255 as dlib reads it
        with torch.no_grad():  # where the chip is cut is a constant of the step
            transforms = chip_transform(out["landmarks"][:, LANDMARKS68_AS_5].detach())
        return {"descriptor": self.net(extract_chips(image, transforms)), "image": image}
