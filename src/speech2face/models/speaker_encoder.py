"""GE2E as a torch module: 3-layer LSTM over 40-band mel power frames, for training, evaluation
and exporting the ONNX graphs the runtime uses (see ``speech2face.speaker`` for what is shared).

bfloat16 (``embed_many(..., bfloat16=True)``): the LSTM is ~3× faster on CPUs with bfloat16
units (Intel AMX or AVX512-BF16: Xeon Sapphire Rapids and later, AMD Zen 4 and later) and slower
on others; its window embeddings stay within cosine 0.998 of float32, but the heads were trained
on float32 ones, so it is an opt-in, off by default.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..speaker import (EMBEDDING_SIZE, GE2E_WEIGHTS, HIDDEN_SIZE, MEL_HOP, MEL_N_FFT, N_MELS, NUM_LAYERS,
                       PARTIAL_FRAMES, mel_filterbank, partial_starts, partial_wave, resemblyzer_weights_path,
                       utterance_embeddings)
from ..weights import shipped

class SpeakerEncoder(nn.Module):
    """GE2E: 3-layer LSTM over 40-band mel power frames → ReLU(linear) → L2-normalised 256-D."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(N_MELS, HIDDEN_SIZE, NUM_LAYERS, batch_first=True)
        self.linear = nn.Linear(HIDDEN_SIZE, EMBEDDING_SIZE)
        self.register_buffer("mel_basis", torch.from_numpy(mel_filterbank()), persistent=False)
        self.register_buffer("window", torch.hann_window(MEL_N_FFT, periodic=True), persistent=False)

    def forward(self, mels: torch.Tensor, bfloat16: bool = False) -> torch.Tensor:
        # mels: (B, PARTIAL_FRAMES, N_MELS) → (B, EMBEDDING_SIZE), unit norm
        hidden = None
        if bfloat16 and bfloat16_lstm_works():
            try:
                with torch.autocast(mels.device.type, dtype=torch.bfloat16):
                    _, (hidden, _) = self.lstm(mels)  # hidden: (NUM_LAYERS, B, HIDDEN_SIZE)
            except RuntimeError as exc:  # oneDNN has no bfloat16 LSTM for this shape on this CPU
                _bfloat16_failed(exc)
        if hidden is None:
            _, (hidden, _) = self.lstm(mels)
        embeds = torch.relu(self.linear(hidden[-1].float()))
        return embeds / embeds.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def mel_frames(self, wave: torch.Tensor) -> torch.Tensor:
        """(N,) samples → (1 + N // MEL_HOP, N_MELS) mel power, centred frames, zero padding."""
        spec = torch.stft(
            wave, MEL_N_FFT, MEL_HOP, window=self.window, center=True, pad_mode="constant", return_complex=True
        )  # (MEL_N_FFT // 2 + 1, T)
        return (self.mel_basis @ spec.abs().pow(2)).T  # (T, N_MELS)

    partial_starts = staticmethod(partial_starts)

    def partials(self, wave: np.ndarray, normalize_volume: bool = True) -> torch.Tensor:
        """16 kHz mono wave (N,) → its 1.6 s partial utterances as mel frames: (P, 160, 40)."""
        padded, starts = partial_wave(wave, normalize_volume)
        mel = self.mel_frames(torch.from_numpy(padded).to(self.mel_basis.device))  # (T, N_MELS)
        return torch.stack([mel[s : s + PARTIAL_FRAMES] for s in starts])

    @torch.no_grad()
    def embed_many(self, waves: list[np.ndarray], normalize_volume: bool = True, workers: int = 1,
                   bfloat16: bool = False) -> np.ndarray:
        """Several waves → (N, 256) embeddings. The partials of all waves go through the LSTM
        together, split into ``workers`` chunks run side by side (one intra-op thread each);
        ``bfloat16``: the LSTM in bfloat16 (see the module's docstring)."""
        return utterance_embeddings(self.embed_partials(waves, normalize_volume, workers, bfloat16))

    @torch.no_grad()
    def embed_partials(self, waves: list[np.ndarray], normalize_volume: bool = True, workers: int = 1,
                       bfloat16: bool = False) -> list[np.ndarray]:
        """Several waves → each one's partial embeddings, (P_i, 256) unit vectors, 1.6 s apiece
        every 0.77 s: what is heard within a wave, for telling two voices in one clip apart."""
        parts = [self.partials(w, normalize_volume) for w in waves]
        counts = [len(p) for p in parts]
        stacked = torch.cat(parts)  # (sum P, 160, 40)
        chunks = torch.tensor_split(stacked, min(workers, len(stacked)))
        if len(chunks) == 1:
            embeds = self(stacked, bfloat16)
        else:
            from concurrent.futures import ThreadPoolExecutor

            def run(chunk: torch.Tensor) -> torch.Tensor:
                with torch.no_grad():  # grad mode is per thread
                    return self(chunk, bfloat16)

            with ThreadPoolExecutor(len(chunks)) as pool:  # the LSTM releases the GIL
                embeds = torch.cat(list(pool.map(run, chunks)))
        return [e.cpu().numpy().astype(np.float32) for e in torch.split(embeds, counts)]


_BFLOAT16_BROKEN: list[str] = []  # why the bfloat16 LSTM failed on this machine, once it has


def bfloat16_lstm_works() -> bool:
    """Whether torch here runs the LSTM in bfloat16 at all: on some CPUs oneDNN has no bfloat16
    LSTM primitive ("could not create a primitive descriptor"); there the float32 LSTM is used."""
    return not _BFLOAT16_BROKEN


def _bfloat16_failed(exc: Exception) -> None:
    import warnings

    _BFLOAT16_BROKEN.append(str(exc).splitlines()[0])
    warnings.warn(f"bfloat16 LSTM unavailable on this CPU ({_BFLOAT16_BROKEN[0]}); GE2E runs in float32",
                  RuntimeWarning, stacklevel=3)


def cpu_has_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AMX tiles or AVX512-BF16), as torch sees it."""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    return any(probe() for probe in probes if probe is not None)


def convert_resemblyzer_weights(out: Path) -> str:
    """resemblyzer's pretrained.pt → our safetensors file (LSTM and linear layer only); its sha256."""
    from ..weights import save_weights

    checkpoint = torch.load(resemblyzer_weights_path(), map_location="cpu", weights_only=True)
    state = {k: v for k, v in checkpoint["model_state"].items() if k.startswith(("lstm.", "linear."))}
    SpeakerEncoder().load_state_dict(state, strict=True)  # it fits
    config = {"model": "SpeakerEncoder", "source": "resemblyzer 0.1.x pretrained.pt (GE2E, Wan et al. 2018)",
              "licence": "Apache-2.0, Resemble AI (see NOTICE)", "reproduce": "speech2face export ge2e"}
    return save_weights(out, state, config)


@functools.lru_cache(maxsize=None)
def speaker_encoder(device: str = "cpu") -> SpeakerEncoder:
    """The pretrained encoder (the shipped, checksum-verified GE2E weights), loaded once per process and device."""
    from ..weights import load_module

    model, _, _ = load_module(shipped(GE2E_WEIGHTS), lambda c: SpeakerEncoder(), "SpeakerEncoder")
    return model.eval().to(device)

