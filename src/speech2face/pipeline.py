"""The line from input to face, for the CLI, the web app and Python users.

    import speech2face
    model = speech2face.load_model()                  # shipped weights, checksums verified
    result = model.reconstruct("clip.wav")            # .image (224, 224, 3) uint8, .descriptor (128,)
    face, descriptor = model.renderer.normalize("photo.jpg")   # the face-to-face check
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from . import audio
from .errors import InputError
from .faces import FACE_SIZE, FaceAnalyzer, ImageSource
from .models.face_decoder import FaceDecoder, FaceDecoderConfig
from .models.voice_encoder import VoiceEncoder, VoiceEncoderConfig
from .weights import load_module

DECODER_WEIGHTS = "face_decoder.safetensors"
VOICE_WEIGHTS = "voice_encoder.safetensors"


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def asset_path(name: str) -> Path:
    return Path(str(resources.files("speech2face") / "assets" / name))


class FaceRenderer:
    """A trained FaceDecoder plus the face front end: descriptors or photos → canonical faces."""

    def __init__(self, decoder: FaceDecoder, device: str = "cpu", size: int = FACE_SIZE) -> None:
        self.decoder = decoder.to(device).eval()
        self.device = device
        self.size = size

    @functools.cached_property
    def analyzer(self) -> FaceAnalyzer:
        return FaceAnalyzer()

    @torch.no_grad()
    def decode(self, descriptors: np.ndarray) -> np.ndarray:
        """(N, D) or (D,) descriptors → (N, size, size, 3) uint8 canonical faces."""
        desc = torch.as_tensor(np.atleast_2d(descriptors), dtype=torch.float32, device=self.device)
        image = self.decoder(desc)["image"]  # (N, 3, s, s) in [0, 1]
        if image.shape[-1] != self.size:
            image = F.interpolate(image, size=(self.size, self.size), mode="bicubic", align_corners=False)
        return (image.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()

    def normalize(self, photo: ImageSource) -> tuple[np.ndarray, np.ndarray]:
        """Photo → (canonical face (size, size, 3) uint8, descriptor (D,)): the face-to-face check."""
        descriptor = self.analyzer.descriptor(photo)
        return self.decode(descriptor)[0], descriptor


def load_decoder(path: Optional[Union[str, Path]] = None, device: Optional[str] = None) -> FaceRenderer:
    """The face decoder from ``path`` (default: the weights shipped in the package), verified."""
    path = Path(path) if path else asset_path(DECODER_WEIGHTS)
    decoder, _, _ = load_module(path, lambda c: FaceDecoder(FaceDecoderConfig.from_dict(c["decoder"])), "FaceDecoder")
    return FaceRenderer(decoder, device or default_device())


@dataclass
class Reconstruction:
    image: np.ndarray  # (224, 224, 3) uint8 canonical face
    descriptor: np.ndarray  # (D,) predicted face descriptor


class Speech2Face:
    """Voice encoder + face decoder: speech → face descriptor → canonical face."""

    def __init__(self, encoder: VoiceEncoder, center: torch.Tensor, exaggeration: float, renderer: FaceRenderer,
                 device: str = "cpu") -> None:
        self.encoder = encoder.to(device).eval()
        self.center = center.to(device)
        self.exaggeration = exaggeration
        self.renderer = renderer
        self.device = device

    def features(self, wave: np.ndarray) -> torch.Tensor:
        """A fixed-length 16 kHz clip → what the encoder reads: (256,) embedding or (2, T, 257) spectrogram."""
        if self.encoder.input_kind == "spk":
            return torch.from_numpy(audio.speaker_embedding(wave))
        return audio.spectrogram(wave)

    @torch.no_grad()
    def descriptors(self, waves: list[np.ndarray]) -> np.ndarray:
        """Fixed-length clips → (N, D) predicted face descriptors (exaggerated as chosen in training)."""
        x = torch.stack([self.features(w) for w in waves]).to(self.device)
        pred = self.encoder(x)
        return (self.center + self.exaggeration * (pred - self.center)).cpu().numpy()

    def reconstruct(self, source: Union[str, Path, bytes, np.ndarray], sample_rate: Optional[int] = None,
                    duration: float = audio.CLIP_SECONDS) -> Reconstruction:
        """A file (any format), bytes, or a wave array with its ``sample_rate`` → Reconstruction."""
        return self.reconstruct_many([source], sample_rate, duration)[0]

    def reconstruct_many(self, sources: list, sample_rate: Optional[int] = None,
                         duration: float = audio.CLIP_SECONDS) -> list[Reconstruction]:
        # decoding and resampling release the GIL: files are read on every core at once
        with ThreadPoolExecutor(max_workers=min(len(sources), os.cpu_count() or 1) or 1) as pool:
            waves = list(pool.map(lambda s: self.load(s, sample_rate, duration), sources))
        descs = self.descriptors(waves)
        images = self.renderer.decode(descs)
        return [Reconstruction(img, d) for img, d in zip(images, descs)]

    @staticmethod
    def load(source, sample_rate: Optional[int], duration: float) -> np.ndarray:
        if isinstance(source, np.ndarray):
            if sample_rate is None:
                raise InputError("a wave array needs its sample_rate")
            wave = np.asarray(source, dtype=np.float32)
            wave = wave.mean(axis=1) if wave.ndim == 2 else wave  # (N, channels) → mono
            return audio.clip_from_wave(wave, sample_rate, duration)
        return audio.load_clip(source, seconds=duration)


def load_model(voice_weights: Optional[Union[str, Path]] = None, decoder_weights: Optional[Union[str, Path]] = None,
               device: Optional[str] = None) -> Speech2Face:
    """The voice encoder and face decoder (default: the weights shipped in the package), verified."""
    device = device or default_device()
    encoder, tensors, config = load_module(Path(voice_weights) if voice_weights else asset_path(VOICE_WEIGHTS),
                                           lambda c: VoiceEncoder(VoiceEncoderConfig.from_dict(c["encoder"])),
                                           "VoiceEncoder", prefix="encoder.")
    return Speech2Face(encoder, tensors["center"], float(config.get("exaggeration", 1.0)),
                       load_decoder(decoder_weights, device), device)


def rank_faces(model: Speech2Face, voice, photos: list[tuple[str, object]],
               max_seconds: float = audio.MAX_INPUT_SECONDS) -> list[dict]:
    """Rank face photos by how well they fit a voice: cosine, around the mean face descriptor,
    between the voice's predicted descriptor and each photo's. Photos without a face come last,
    with the reason."""
    from .errors import FaceError

    if not photos:
        raise InputError("no face photos to rank")
    wave, rate = audio.read_audio(voice, max_seconds=max_seconds)
    center = model.center.cpu().numpy()
    pred = model.reconstruct(wave, sample_rate=rate).descriptor - center
    ranked, failed = [], []
    for name, photo in photos:
        try:
            desc = model.renderer.analyzer.descriptor(photo) - center
        except FaceError as exc:
            failed.append({"name": name, "score": None, "error": str(exc).replace("<image>: ", "")})
            continue
        score = float(desc @ pred / max(np.linalg.norm(desc) * np.linalg.norm(pred), 1e-12))
        ranked.append({"name": name, "score": round(score, 4)})
    ranked.sort(key=lambda r: -r["score"])
    return [{"rank": i + 1, **r} for i, r in enumerate(ranked)] + failed
