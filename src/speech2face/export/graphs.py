"""The torch functions the ONNX graphs are traced from: each is the shipped module itself, or a
thin wrapper that fixes what a graph needs fixed (uint8 output, one entry point, the int8 texture
map kept int8 in the file).

- ``MelGraph``: 16 kHz wave (N,) → GE2E's mel power frames (1 + N // 160, 40), via ONNX's STFT.
- ``Ge2eGraph``: mel frames of partials (P, 160, 40) → partial embeddings (P, 256).
- ``VoiceGraph``: GE2E embeddings (N, 256) → the descriptors drawn (N, 128): head, then exaggeration.
- ``AttributesGraph``: (descriptors (N, 128), embeddings (N, 256)) → what the voice tells and the
  descriptors steered to it: the numpy ``VoiceAttributes`` written in torch, for the browser.
- ``ShapeGraph`` / ``DrawGraph``: the face decoder in two halves around the thin-plate spline's
  (K + 3)² linear solve, which ONNX has no operator for; the caller solves it in between.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.face_decoder import FaceDecoder
from ..models.speaker_encoder import SpeakerEncoder
from ..models.voice_encoder import VoiceEncoder
from ..speaker import MEL_HOP, MEL_N_FFT
from ..voice_attributes import VoiceAttributes


class MelGraph(nn.Module):
    """(N,) → (1 + N // MEL_HOP, N_MELS): ``SpeakerEncoder.mel_frames`` as one graph."""

    def __init__(self, encoder: SpeakerEncoder) -> None:
        super().__init__()
        self.register_buffer("mel_basis", encoder.mel_basis.clone())  # (40, 201)
        self.register_buffer("window", encoder.window.clone())  # (400,)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        padded = F.pad(wave[None], (MEL_N_FFT // 2, MEL_N_FFT // 2))  # torch.stft's center=True, zeros
        spec = torch.stft(padded, MEL_N_FFT, MEL_HOP, window=self.window, center=False, return_complex=False)
        power = spec[0].pow(2).sum(-1)  # (201, T)
        return (self.mel_basis @ power).T


class Ge2eGraph(nn.Module):
    def __init__(self, encoder: SpeakerEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        return self.encoder(mels)  # (P, 256), unit rows


class VoiceGraph(nn.Module):
    def __init__(self, encoder: VoiceEncoder, center: torch.Tensor, exaggeration: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.register_buffer("center", center.float().clone())
        self.exaggeration = float(exaggeration)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.center + self.exaggeration * (self.encoder(embedding) - self.center)


class AttributesGraph(nn.Module):
    """``VoiceAttributes.read``'s numbers and ``.steer`` in float32: (descriptors (N, 128),
    embeddings (N, 256)) → steered (N, 128), male (N,), age (N, 3) years/low/high, posterior
    (N, C), drawn (N,) int64. Steering's loops are unrolled at their most steps; a row already
    steered takes steps of zero, which is what the numpy loop's early exit amounts to."""

    def __init__(self, attributes: VoiceAttributes) -> None:
        super().__init__()
        t, c = attributes.t, attributes.ethnicity
        for name in ("voice.mean", "voice.std", "gender.weight", "gender.bias", "gender.temperature", "age.weight",
                     "age.bias", "age.interval", "ethnicity.weight", "ethnicity.bias", "ethnicity.temperature",
                     "ethnicity.log_prior", "ethnicity.prior_weight", "ethnicity.draw_prior_weight",
                     "face.gender.weight", "face.gender.bias", "face.age.weight", "face.age.bias",
                     "face.age.direction"):
            self.register_buffer(name.replace(".", "_"), torch.tensor(np.asarray(t[name]), dtype=torch.float32))
        for name in ("weight", "bias", "mean", "std"):
            self.register_buffer(f"group_{name}", torch.tensor(getattr(c, name), dtype=torch.float32))
        self.steer_config = attributes.steer_config

    def forward(self, descriptors: torch.Tensor, embeddings: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = (embeddings - self.voice_mean) / self.voice_std
        male = torch.sigmoid((x @ self.gender_weight + self.gender_bias) / self.gender_temperature)
        years = x @ self.age_weight + self.age_bias
        age = torch.stack([years, (years + self.age_interval[0]).clamp_min(1.0), years + self.age_interval[1]], 1)
        logits = (x @ self.ethnicity_weight.T + self.ethnicity_bias) / self.ethnicity_temperature
        posterior = torch.softmax(logits + self.ethnicity_prior_weight * self.ethnicity_log_prior, 1)
        drawn = (logits + self.ethnicity_draw_prior_weight * self.ethnicity_log_prior).argmax(1)
        return self.steer(descriptors, male >= 0.5, drawn, years), male, age, posterior, drawn

    def steer(self, d: torch.Tensor, male: torch.Tensor, group: torch.Tensor, years: torch.Tensor) -> torch.Tensor:
        cfg = self.steer_config
        if cfg.age_strength > 0:
            gap = years - (d @ self.face_age_weight + self.face_age_bias)
            d = d + cfg.age_strength * gap[:, None] * self.face_age_direction
        sign = torch.where(male, 1.0, -1.0)
        for _ in range(cfg.rounds):
            d = self.steer_group(d, group, cfg.group_margin)
            logit = d @ self.face_gender_weight + self.face_gender_bias
            target = sign * cfg.gender_margin
            # short of the target on the voice's side (as floats: onnxruntime-web has no Where on booleans)
            short = torch.where(male, (logit < target).float(), (logit > target).float())
            step = short * (target - logit) / (self.face_gender_weight @ self.face_gender_weight)
            d = d + step[:, None] * self.face_gender_weight
        return d

    def steer_group(self, d: torch.Tensor, group: torch.Tensor, margin: float) -> torch.Tensor:
        w = self.group_weight / self.group_std  # (C, 128)
        classes = w.shape[0]
        wanted = F.one_hot(group, classes).bool()  # (N, C)
        for _ in range(classes - 1):
            z = ((d - self.group_mean) / self.group_std) @ self.group_weight.T + self.group_bias  # (N, C)
            rival_z = torch.where(wanted, torch.full_like(z, -1e9), z)
            rival = rival_z.argmax(1)
            lead = (z * wanted).sum(1) - rival_z.max(1).values
            u = w[group] - w[rival]  # (N, 128)
            step = torch.where(lead < margin, margin - lead, torch.zeros_like(lead)) / (u * u).sum(1)
            d = d + step[:, None] * u
        return d


class ShapeGraph(nn.Module):
    """descriptors (M, 128) → x, landmarks, texture, look, controls, system, rhs (``FaceDecoder.shape_free``)."""

    NAMES = ("x", "landmarks", "texture", "look", "controls", "system", "rhs")

    def __init__(self, decoder: FaceDecoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, descriptors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        state = self.decoder.shape_free(descriptors)
        return tuple(state[k] for k in self.NAMES)


class DrawGraph(nn.Module):
    """(x, landmarks, texture, look, controls, coef) → faces (M, S, S, 3) uint8 (``FaceDecoder.finish``)."""

    NAMES = ("x", "landmarks", "texture", "look", "controls", "coef")

    def __init__(self, decoder: FaceDecoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, x, landmarks, texture, look, controls, coef) -> torch.Tensor:
        state = {"x": x, "landmarks": landmarks, "texture": texture, "look": look, "controls": controls}
        image = self.decoder.finish(state, coef)["image"]  # (M, 3, S, S) in [0, 1]
        return (image * 255).round().to(torch.uint8).permute(0, 2, 3, 1)


class Int8Linear(nn.Module):
    """``nn.Linear`` whose weight is kept as int8 and one scale per output (as the safetensors file
    stores it), transposed to (in, out) as MatMul reads it: the graph file is a quarter of
    float32's, and ONNX Runtime folds the dequantisation into a float32 weight once, when the
    session is made (stored (out, in), the fold also transposed 100 MB: 0.3 s of every cold start)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach().float()  # (out, in)
        scale = (w.abs().amax(dim=1, keepdim=True) / 127).clamp_min(1e-12)  # (out, 1)
        self.register_buffer("columns", (w / scale).round().clamp(-127, 127).to(torch.int8).T.contiguous())  # (in, out)
        self.register_buffer("scale", scale.T.contiguous())  # (1, out)
        self.register_buffer("bias", linear.bias.detach().float().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ (self.columns.float() * self.scale) + self.bias
