"""Pretrained speaker embedding: resemblyzer's GE2E LSTM, run by our own small module.

The weights are resemblyzer's (``resemblyzer/pretrained.pt``, Apache-2.0; see
``assets/NOTICE``), converted once to ``assets/speaker_encoder_ge2e.safetensors`` with a pinned
sha256 (``python -m speech2face.speaker --convert``, with resemblyzer installed) and loaded like
every other weights file. Resemblyzer itself is not needed at run time (importing it pulls
librosa and numba, ~10 s cold); the mel front end and the network are re-implemented here (torch
only) and checked against resemblyzer in the tests. Resemblyzer's webrtcvad silence trimming is
not applied: clips here are short speech segments.

bfloat16 (``embed_many(..., bfloat16=True)``, ``serve --bf16``): the LSTM is ~3× faster on CPUs
with bfloat16 units (Intel AMX or AVX512-BF16: Xeon Sapphire Rapids and later, AMD Zen 4 and
later) and slower on others; its window embeddings stay within cosine 0.998 of float32, but the
heads were trained on float32 ones, so it is an opt-in for servers, off by default.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .audio import SAMPLE_RATE
from .sizes import SPEAKER_DIM

# --- resemblyzer's hyper-parameters, with units ---------------------------------------------
MEL_WINDOW_SECONDS = 0.025  # s
MEL_HOP_SECONDS = 0.010  # s
N_MELS = 40
PARTIAL_FRAMES = 160  # mel frames per partial utterance (1.6 s)
PARTIALS_PER_SECOND = 1.3  # rate of partial utterances
MIN_COVERAGE = 0.75  # keep a zero-padded last partial if it is at least this full
TARGET_DBFS = -30.0  # quiet input is raised to this level (never lowered)
HIDDEN_SIZE = 256
EMBEDDING_SIZE = SPEAKER_DIM
NUM_LAYERS = 3

MEL_N_FFT = round(MEL_WINDOW_SECONDS * SAMPLE_RATE)  # 400
MEL_HOP = round(MEL_HOP_SECONDS * SAMPLE_RATE)  # 160
INT16_MAX = 2**15 - 1


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (linear below 1 kHz, logarithmic above), as librosa's default."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / logstep, hz / f_sp)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def mel_filterbank(sample_rate: int = SAMPLE_RATE, n_fft: int = MEL_N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """Slaney-normalised triangular mel filters: (n_mels, n_fft // 2 + 1) float32."""
    fft_hz = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    mel_hz = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), n_mels + 2))
    widths = np.diff(mel_hz)
    ramps = mel_hz[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_hz[2:] - mel_hz[:-2]))[:, None]  # equal area per filter
    return weights.astype(np.float32)


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

    @staticmethod
    def partial_starts(n_samples: int) -> list[int]:
        """Start frames of the 1.6 s partial utterances that cover ``n_samples`` (resemblyzer's rule)."""
        n_frames = int(np.ceil((n_samples + 1) / MEL_HOP))
        step = int(np.round(SAMPLE_RATE / PARTIALS_PER_SECOND / MEL_HOP))
        starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step))
        coverage = (n_samples - starts[-1] * MEL_HOP) / (PARTIAL_FRAMES * MEL_HOP)
        if coverage < MIN_COVERAGE and len(starts) > 1:
            starts.pop()
        return starts

    def partials(self, wave: np.ndarray, normalize_volume: bool = True) -> torch.Tensor:
        """16 kHz mono wave (N,) → its 1.6 s partial utterances as mel frames: (P, 160, 40)."""
        wave = np.asarray(wave, dtype=np.float32)
        if normalize_volume:
            rms = np.sqrt(np.mean((wave.astype(np.float64) * INT16_MAX) ** 2))
            change_db = TARGET_DBFS - 20 * np.log10(max(rms, 1e-10) / INT16_MAX)
            if change_db > 0:
                wave = wave * np.float32(10 ** (change_db / 20))
        starts = self.partial_starts(wave.size)
        padded_len = (starts[-1] + PARTIAL_FRAMES) * MEL_HOP
        x = torch.from_numpy(np.pad(wave, (0, max(0, padded_len - wave.size)))).to(self.mel_basis.device)
        mel = self.mel_frames(x)  # (T, N_MELS)
        return torch.stack([mel[s : s + PARTIAL_FRAMES] for s in starts])

    @torch.no_grad()
    def embed(self, wave: np.ndarray, normalize_volume: bool = True) -> np.ndarray:
        """16 kHz mono wave (N,) → utterance embedding (256,) float32: mean of partials, renormalised."""
        return self.embed_many([wave], normalize_volume)[0]

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


def utterance_embeddings(partials: list[np.ndarray]) -> np.ndarray:
    """Each wave's partial embeddings (P_i, 256) → its utterance embedding, the renormalised mean: (N, 256)."""
    means = np.stack([p.mean(axis=0) for p in partials])
    return (means / np.linalg.norm(means, axis=1, keepdims=True)).astype(np.float32)


GE2E_WEIGHTS = "speaker_encoder_ge2e.safetensors"


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


def resemblyzer_weights_path() -> Path:
    """Where the installed resemblyzer wheel keeps its GE2E weights (found without importing it)."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the 'resemblyzer' package (which ships the speaker-encoder weights) is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "pretrained.pt"
    if not path.is_file():
        raise RuntimeError(f"resemblyzer is installed but its weights are missing: {path}")
    return path


def convert_resemblyzer_weights(out: Path) -> str:
    """resemblyzer's pretrained.pt → our safetensors file (LSTM and linear layer only); its sha256."""
    from .weights import save_weights

    checkpoint = torch.load(resemblyzer_weights_path(), map_location="cpu", weights_only=True)
    state = {k: v for k, v in checkpoint["model_state"].items() if k.startswith(("lstm.", "linear."))}
    SpeakerEncoder().load_state_dict(state, strict=True)  # it fits
    config = {"model": "SpeakerEncoder", "source": "resemblyzer 0.1.x pretrained.pt (GE2E, Wan et al. 2018)",
              "licence": "Apache-2.0, Resemble AI (see NOTICE)", "reproduce": "python -m speech2face.speaker --convert"}
    return save_weights(out, state, config)


@functools.lru_cache(maxsize=None)
def speaker_encoder(device: str = "cpu") -> SpeakerEncoder:
    """The pretrained encoder (the shipped, checksum-verified GE2E weights), loaded once per process and device."""
    from .pipeline import asset_path
    from .weights import load_module

    model, _, _ = load_module(asset_path(GE2E_WEIGHTS), lambda c: SpeakerEncoder(), "SpeakerEncoder")
    return model.eval().to(device)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Convert resemblyzer's GE2E weights to the shipped safetensors file.")
    parser.add_argument("--convert", action="store_true", required=True)
    parser.add_argument("--out", default=str(Path(__file__).parent / "assets" / GE2E_WEIGHTS))
    print(convert_resemblyzer_weights(Path(parser.parse_args().out)))
