"""The torch engine: safetensors weights run by their torch modules. For weights of one's own
(``--model``, ``--decoder-weights``), the paper's spectrogram encoder, GPUs, training and
exporting; ``pip install 'speech2face[train]'`` brings torch."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from .. import audio
from ..errors import InputError
from ..models.face_decoder import FaceDecoder, FaceDecoderConfig
from ..models.speaker_encoder import speaker_encoder
from ..models.voice_encoder import VoiceEncoder, VoiceEncoderConfig, spectrogram
from ..runtime import one_intra_op_thread
from ..sizes import FACE_SIZE
from ..weights import load_module, shipped

DECODER_WEIGHTS = "face_decoder.safetensors"
VOICE_WEIGHTS = "voice_encoder.safetensors"


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(name: Optional[str]) -> str:
    """A device name a user typed → one torch can use here, or an InputError that says why not."""
    if name is None:
        return default_device()
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise InputError(f"unknown device {name!r}: use cpu, or cuda (cuda:N) on a machine with an NVIDIA GPU") from None
    if device.type == "cpu":
        return "cpu"
    if device.type != "cuda":
        raise InputError(f"device {name!r} is not supported: use cpu or cuda")
    if not torch.cuda.is_available():
        raise InputError(f"device {name!r}: this machine or this torch build has no CUDA GPU; use --device cpu")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise InputError(f"device {name!r}: only {torch.cuda.device_count()} CUDA GPU(s) here")
    return str(device)


class TorchDrawer:
    """A FaceDecoder: descriptors → canonical faces."""

    def __init__(self, decoder: FaceDecoder, device: str = "cpu", size: int = FACE_SIZE) -> None:
        self.decoder = decoder.to(device).eval()
        self.device = device
        self.size = size

    @property
    def portrait(self) -> bool:
        return self.decoder.config.portrait

    @torch.no_grad()
    def decode(self, descriptors: np.ndarray, workers: int = 1) -> np.ndarray:
        """(N, D) or (D,) → (N, size, size, 3) uint8, in ``workers`` chunks side by side."""
        desc = torch.as_tensor(np.atleast_2d(descriptors), dtype=torch.float32, device=self.device)
        chunks = torch.tensor_split(desc, min(workers, len(desc)))
        with one_intra_op_thread():
            if len(chunks) == 1:
                return self._draw(desc)
            with ThreadPoolExecutor(len(chunks)) as pool:  # convolutions release the GIL
                return np.concatenate(list(pool.map(self._draw, chunks)))

    def _draw(self, desc: torch.Tensor) -> np.ndarray:
        with torch.no_grad():  # grad mode is per thread
            image = self.decoder(desc)["image"]  # (N, 3, s, s) in [0, 1]
        if image.shape[-1] != self.size:
            image = F.interpolate(image, size=(self.size, self.size), mode="bicubic", align_corners=False)
        return (image.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


class TorchVoice:
    """GE2E and a voice head (speaker variant on embeddings, paper variant on spectrograms)."""

    def __init__(self, encoder: VoiceEncoder, center: torch.Tensor, exaggeration: float, device: str = "cpu",
                 bfloat16: bool = False) -> None:
        self.encoder = encoder.to(device).eval()
        self.center = center.float().cpu().numpy()  # (D,)
        self.exaggeration = exaggeration
        self.device = device
        self.bfloat16 = bfloat16  # GE2E's LSTM in bfloat16 (see models.speaker_encoder)

    def partials(self, clips: list[np.ndarray], workers: int = 1) -> list[np.ndarray]:
        with one_intra_op_thread():
            return speaker_encoder(self.device).embed_partials(clips, workers=workers, bfloat16=self.bfloat16)

    @torch.no_grad()
    def descriptors(self, embeddings: np.ndarray, clips: Optional[list[list[np.ndarray]]]) -> np.ndarray:
        """(N, 256) voice embeddings (speaker variant), or each voice's clips (paper variant: the
        mean of their outputs) → the descriptors drawn (N, D), pushed away from the mean."""
        with one_intra_op_thread():
            if self.encoder.input_kind == "spk":
                pred = self.encoder(torch.from_numpy(np.asarray(embeddings, np.float32)).to(self.device))
            else:
                flat = [c for voice in clips for c in voice]
                out = self.encoder(torch.stack([spectrogram(c) for c in flat]).to(self.device))
                pred = torch.stack([p.mean(dim=0) for p in torch.split(out, [len(v) for v in clips])])
        center = torch.from_numpy(self.center).to(pred.device)
        return (center + self.exaggeration * (pred - center)).cpu().numpy()


def load_drawer(path: Optional[Union[str, Path]] = None, device: Optional[str] = None) -> TorchDrawer:
    """The face decoder from ``path`` (default: the shipped weights), verified."""
    path = Path(path) if path else shipped(DECODER_WEIGHTS)
    decoder, _, _ = load_module(path, lambda c: FaceDecoder(FaceDecoderConfig.from_dict(c["decoder"])), "FaceDecoder")
    return TorchDrawer(decoder, resolve_device(device))


def load_voice(path: Optional[Union[str, Path]] = None, device: Optional[str] = None,
               bfloat16: bool = False) -> TorchVoice:
    """The voice encoder from ``path`` (default: the shipped weights), verified."""
    encoder, tensors, config = load_module(Path(path) if path else shipped(VOICE_WEIGHTS),
                                           lambda c: VoiceEncoder(VoiceEncoderConfig.from_dict(c["encoder"])),
                                           "VoiceEncoder", prefix="encoder.")
    return TorchVoice(encoder, tensors["center"], float(config.get("exaggeration", 1.0)), resolve_device(device),
                      bfloat16)
