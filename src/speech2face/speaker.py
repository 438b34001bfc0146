"""Pretrained speaker embedding (resemblyzer's GE2E): what every runtime shares — the mel front
end's constants and filters, the volume rule, where the 1.6 s partial utterances start, and how
their embeddings make one utterance's. No torch here: the network is run by ONNX Runtime
(``engines.ort``) or by its torch module (``models.speaker_encoder``, for training and export).

The weights are resemblyzer's (``resemblyzer/pretrained.pt``, Apache-2.0; see ``assets/NOTICE``),
converted once to ``assets/speaker_encoder_ge2e.safetensors`` (``speech2face
export ge2e``, with resemblyzer installed). Resemblyzer itself is
not needed at run time (importing it pulls librosa and numba, ~10 s cold); the mel front end and
the network are re-implemented and checked against resemblyzer in the tests. Its webrtcvad
silence trimming is not applied: clips here are short speech segments.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

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



@functools.lru_cache(maxsize=1)
def _mel_constants() -> tuple[np.ndarray, np.ndarray]:
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(MEL_N_FFT) / MEL_N_FFT)).astype(np.float32)  # periodic Hann
    return window, mel_filterbank()


def mel_frames(wave: np.ndarray) -> np.ndarray:
    """(N,) samples → (1 + N // MEL_HOP, N_MELS) mel power: centred 25 ms frames (zero padding)
    every 10 ms, as ``torch.stft(center=True, pad_mode="constant")`` frames them. numpy's FFT
    takes 1 ms for 6 s here, where ONNX Runtime's STFT of a 400-point frame takes 20."""
    window, basis = _mel_constants()
    padded = np.pad(np.asarray(wave, np.float32), (MEL_N_FFT // 2, MEL_N_FFT // 2))
    frames = np.lib.stride_tricks.sliding_window_view(padded, MEL_N_FFT)[::MEL_HOP]  # (T, 400)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2  # (T, 201)
    return (power.astype(np.float32) @ basis.T).astype(np.float32)


def partial_starts(n_samples: int) -> list[int]:
    """Start frames of the 1.6 s partial utterances that cover ``n_samples`` (resemblyzer's rule)."""
    n_frames = int(np.ceil((n_samples + 1) / MEL_HOP))
    step = int(np.round(SAMPLE_RATE / PARTIALS_PER_SECOND / MEL_HOP))
    starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step))
    coverage = (n_samples - starts[-1] * MEL_HOP) / (PARTIAL_FRAMES * MEL_HOP)
    if coverage < MIN_COVERAGE and len(starts) > 1:
        starts.pop()
    return starts


def partial_wave(wave: np.ndarray, normalize_volume: bool = True) -> tuple[np.ndarray, list[int]]:
    """16 kHz mono wave (N,) → the wave the mel frames are taken of (quiet input raised to
    TARGET_DBFS, zero-padded to cover the last partial) and the partials' start frames."""
    wave = np.asarray(wave, dtype=np.float32)
    if normalize_volume:
        rms = np.sqrt(np.mean((wave.astype(np.float64) * INT16_MAX) ** 2))
        change_db = TARGET_DBFS - 20 * np.log10(max(rms, 1e-10) / INT16_MAX)
        if change_db > 0:
            wave = wave * np.float32(10 ** (change_db / 20))
    starts = partial_starts(wave.size)
    padded_len = (starts[-1] + PARTIAL_FRAMES) * MEL_HOP
    return np.pad(wave, (0, max(0, padded_len - wave.size))), starts


def utterance_embeddings(partials: list[np.ndarray]) -> np.ndarray:
    """Each wave's partial embeddings (P_i, 256) → its utterance embedding, the renormalised mean: (N, 256)."""
    means = np.stack([p.mean(axis=0) for p in partials])
    return (means / np.linalg.norm(means, axis=1, keepdims=True)).astype(np.float32)


GE2E_WEIGHTS = "speaker_encoder_ge2e.safetensors"


def resemblyzer_weights_path() -> Path:
    """Where the installed resemblyzer wheel keeps its GE2E weights (found without importing it)."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the 'resemblyzer' package (which ships the speaker-encoder weights) is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "pretrained.pt"
    if not path.is_file():
        raise RuntimeError(f"resemblyzer is installed but its weights are missing: {path}")
    return path
