"""Voice encoders: speech → predicted face descriptor. Two variants, one config switch apart.

* ``paper``: the Speech2Face encoder of Oh et al. (2019), Table 1, on the (2, 598, 257) power-law
  spectrogram. Every conv is 4×4 followed by ReLU and batch norm; max-pools pool time only;
  after the last conv the feature map is averaged over all time (and the remaining frequency
  bins) and two fully connected layers predict the face descriptor. Meant for AVSpeech-scale
  data and GPUs.
* ``speaker`` (default): a trained MLP head on the frozen pretrained GE2E speaker embedding
  (256-D). Learns from the little paired data there is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..audio import HOP_LENGTH, N_FFT, POWER_LAW, WIN_LENGTH
from ..errors import AudioError
from ..sizes import DESCRIPTOR_DIM, SPEAKER_DIM


def spectrogram(wave) -> torch.Tensor:
    """The paper encoder's input, a power-law compressed complex STFT: (..., N) samples (numpy or
    torch) → (..., 2, T, 257) float32.

    Frames of WIN_LENGTH samples every HOP_LENGTH, no centre padding, Hann-windowed and
    zero-padded to N_FFT; channel 0 = real part, 1 = imaginary part, each ``sign(x)·|x|^0.3``.
    A 6 s clip gives T = 598.
    """
    x = torch.as_tensor(wave, dtype=torch.float32)
    if x.shape[-1] < WIN_LENGTH:
        raise AudioError(f"{x.shape[-1]} samples is shorter than one {WIN_LENGTH}-sample window")
    frames = x.unfold(-1, WIN_LENGTH, HOP_LENGTH)  # (..., T, WIN_LENGTH)
    window = torch.hann_window(WIN_LENGTH, periodic=True, dtype=torch.float32, device=x.device)
    spec = torch.fft.rfft(frames * window, n=N_FFT)  # (..., T, N_FREQ) complex
    parts = torch.stack((spec.real, spec.imag), dim=-3)  # (..., 2, T, N_FREQ)
    return torch.sign(parts) * parts.abs().pow(POWER_LAW)



@dataclass(frozen=True)
class VoiceEncoderConfig:
    variant: str = "speaker"  # "speaker" | "paper"
    descriptor_dim: int = DESCRIPTOR_DIM  # output: 128 for dlib, 4096 for VGG-Face fc7
    # paper variant: (channels, stride, max-pool time by 2 after) per conv, as in Table 1
    paper_convs: tuple[tuple[int, int, bool], ...] = (
        (64, 1, False), (64, 1, False), (128, 1, True), (128, 1, True), (128, 1, True),
        (256, 1, True), (512, 1, False), (512, 2, False), (512, 2, False),
    )
    paper_fc: int = 4096
    # speaker variant: MLP widths and dropout
    head_hidden: tuple[int, ...] = (512, 512)
    dropout: float = 0.2
    members: int = 1  # independently initialised heads, trained side by side; their mean is the prediction

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "VoiceEncoderConfig":
        d = dict(d)
        for key in ("paper_convs", "head_hidden"):
            if key in d:
                d[key] = tuple(tuple(x) if isinstance(x, list) else x for x in d[key])
        return cls(**d)


class PaperVoiceEncoder(nn.Module):
    """(B, 2, T, 257) spectrogram → (B, descriptor_dim)."""

    def __init__(self, config: VoiceEncoderConfig) -> None:
        super().__init__()
        layers, c_in = [], 2
        for c_out, stride, pool in config.paper_convs:
            # 4×4 kernel: 'same' size at stride 1 (pad 1 before, 2 after), 1 pixel each side at stride 2
            pad = nn.ZeroPad2d((1, 2, 1, 2) if stride == 1 else (1, 1, 1, 1))
            layers += [pad, nn.Conv2d(c_in, c_out, 4, stride=stride), nn.ReLU(), nn.BatchNorm2d(c_out)]
            if pool:
                layers.append(nn.MaxPool2d(kernel_size=(2, 1)))  # time only
            c_in = c_out
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Linear(c_in, config.paper_fc), nn.ReLU(), nn.Linear(config.paper_fc, config.descriptor_dim))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        x = self.convs(spec)  # (B, 512, T', F')
        return self.fc(x.mean(dim=(2, 3)))  # average over all time and frequency → (B, 512) → (B, D)


def _mlp(config: VoiceEncoderConfig) -> nn.Sequential:
    layers, c_in = [], SPEAKER_DIM
    for width in config.head_hidden:
        layers += [nn.Linear(c_in, width), nn.LayerNorm(width), nn.GELU(), nn.Dropout(config.dropout)]
        c_in = width
    layers.append(nn.Linear(c_in, config.descriptor_dim))
    return nn.Sequential(*layers)


class SpeakerHead(nn.Module):
    """(B, 256) GE2E embedding → (B, descriptor_dim); in training mode with several members,
    (members, B, descriptor_dim) so that each member gets its own loss (an ensemble, not a wider net).

    With a few hundred training speakers one MLP's prediction depends a lot on its random init;
    the mean of independently initialised members does not.
    """

    def __init__(self, config: VoiceEncoderConfig) -> None:
        super().__init__()
        if config.members == 1:
            self.mlp = _mlp(config)  # the single-member layout of earlier weight files
        else:
            self.members = nn.ModuleList(_mlp(config) for _ in range(config.members))

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        if not hasattr(self, "members"):
            return self.mlp(embedding)
        each = torch.stack([m(embedding) for m in self.members])  # (members, B, D)
        return each if self.training else each.mean(0)


class VoiceEncoder(nn.Module):
    """The switch: ``config.variant`` picks the network and what it reads (``input_kind``)."""

    def __init__(self, config: VoiceEncoderConfig = VoiceEncoderConfig()) -> None:
        super().__init__()
        if config.variant not in ("speaker", "paper"):
            raise ValueError(f"unknown voice encoder variant {config.variant!r} (speaker or paper)")
        self.config = config
        self.net = SpeakerHead(config) if config.variant == "speaker" else PaperVoiceEncoder(config)

    @property
    def input_kind(self) -> str:
        """Which shard field feeds it: 'spk' (speaker embedding) or 'spec' (spectrogram)."""
        return "spk" if self.config.variant == "speaker" else "spec"

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)
