"""Where the speech is: Silero VAD (weights ship in the ``silero-vad`` wheel), run by its batched
ONNX model (one ONNX call per 16 s of audio, ~7 ms per 6 s clip on one core).

A GE2E embedding is computed from anything, so white noise or a 440 Hz tone used to draw a face;
the VAD is what tells speech from non-speech, and where in a long recording the speech is.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

from .audio import SAMPLE_RATE

THRESHOLD = 0.5  # speech probability above which a 32 ms frame is speech (Silero's default)
# Where too little clears THRESHOLD, speech under music or room noise: frames above WEAK_THRESHOLD
# count, and the face is drawn with a note. Chosen on the non-dev clips of ../shared: of 897 real
# (all speech), THRESHOLD alone refused 5, with WEAK_THRESHOLD 1 (its speech probability never
# exceeds 0.16); synthetic noise, tones, chirps, clicks, chords and silence peak at 0.14.
WEAK_THRESHOLD = 0.2
MIN_SPEECH_MS = 250  # shorter bursts are not speech (Silero's default)
MIN_SILENCE_MS = 100  # shorter pauses do not split a segment (Silero's default)
PAD_MS = 30  # each segment widened by this on both sides (Silero's default)


@dataclass(frozen=True)
class Segment:
    start: float  # s
    end: float  # s

    @property
    def seconds(self) -> float:
        return self.end - self.start


def _onnxruntime_without_telemetry() -> None:
    """onnxruntime's telemetry starts when the library loads: every process left an empty
    mat-debug-<pid>.log in the temp folder and queued events in Microsoft/DeveloperTools/.onnxruntime/
    onnxruntime.db under the user's cache folder. ORT_DISABLE_TELEMETRY stops both but is read only at
    load, so it is set before the import; disable_telemetry_events covers an onnxruntime loaded earlier."""
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"
    import onnxruntime

    onnxruntime.disable_telemetry_events()


@functools.lru_cache(maxsize=None)
def _model():
    """The sequence ONNX model, loaded once (without onnxruntime's telemetry). Importing
    ``silero_vad`` sets torch to one thread as a side effect; the caller's setting is put back."""
    import torch

    _onnxruntime_without_telemetry()
    threads = torch.get_num_threads()
    try:
        from silero_vad import load_silero_vad
        from silero_vad.utils_vad import get_speech_timestamps_from_probs
    finally:
        torch.set_num_threads(threads)
    return load_silero_vad(sequence=True), get_speech_timestamps_from_probs


def speech_probabilities(wave: np.ndarray) -> np.ndarray:
    """16 kHz mono wave (N,) → speech probability of each 32 ms frame: (ceil(N / 512),) float32."""
    model, _ = _model()
    return model.audio_forward(np.ascontiguousarray(wave, dtype=np.float32), sampling_rate=SAMPLE_RATE)


SPEECH_BAND_HZ = (200.0, 3800.0)  # the telephone band, where a voice's words are
BAND_EDGE_HZ = 100.0  # width of each raised-cosine edge of the band


def speech_band(wave: np.ndarray) -> np.ndarray:
    """A 16 kHz mono wave with what lies outside SPEECH_BAND_HZ (rumble, hum, hiss, cymbals)
    removed: a zero-phase FFT filter with raised-cosine edges. Speech under heavy noise that the
    VAD doubts in full band it often hears in this band: (N,) float32."""
    spectrum = np.fft.rfft(np.asarray(wave, dtype=np.float32))
    hz = np.fft.rfftfreq(wave.size, 1 / SAMPLE_RATE)
    (lo, hi), edge = SPEECH_BAND_HZ, BAND_EDGE_HZ
    rise = np.clip((hz - (lo - edge / 2)) / edge, 0, 1)
    fall = np.clip(((hi + edge / 2) - hz) / edge, 0, 1)
    gain = (0.5 - 0.5 * np.cos(np.pi * rise)) * (0.5 - 0.5 * np.cos(np.pi * fall))
    return np.fft.irfft(spectrum * gain, n=wave.size).astype(np.float32)


def speech_segments(wave: np.ndarray, threshold: float = THRESHOLD) -> list[Segment]:
    """The spans of a 16 kHz mono wave that hold speech, in seconds from its start."""
    return segments_from_probabilities(speech_probabilities(wave), wave.size, threshold)


def segments_from_probabilities(probs: np.ndarray, n_samples: int, threshold: float = THRESHOLD) -> list[Segment]:
    """Frame probabilities (speech_probabilities) of a wave of ``n_samples`` → its speech spans at
    ``threshold`` (Silero's hysteresis: a span ends 0.15 below it)."""
    _, to_timestamps = _model()
    spans = to_timestamps(probs, sampling_rate=SAMPLE_RATE, threshold=threshold,
                          min_speech_duration_ms=MIN_SPEECH_MS, min_silence_duration_ms=MIN_SILENCE_MS,
                          speech_pad_ms=PAD_MS, audio_length_samples=n_samples,
                          neg_threshold=max(0.01, threshold - 0.15))
    return [Segment(s["start"] / SAMPLE_RATE, min(s["end"], n_samples) / SAMPLE_RATE) for s in spans]


def speech_seconds(segments: list[Segment], start: float = 0.0, end: float = float("inf")) -> float:
    """Seconds of speech among ``segments`` that fall inside [start, end)."""
    return sum(max(0.0, min(s.end, end) - max(s.start, start)) for s in segments)
