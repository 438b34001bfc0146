"""Where the speech is: Silero VAD's batched ("sequence") ONNX model, run by ONNX Runtime (one
call per 16 s of audio, ~7 ms per 6 s clip on one core), and Silero's rule from frame
probabilities to speech spans, written out here so that neither torch nor the ``silero-vad``
package (which requires torch) is needed at run time. The model file ships in ``assets``,
copied from the silero-vad wheel (MIT; see ``assets/NOTICE``) with its sha256; the browser
runs the same file and the same rule (``serve/static/runtime.js``).

A GE2E embedding is computed from anything, so white noise or a 440 Hz tone used to draw a face;
the VAD is what tells speech from non-speech, and where in a long recording the speech is.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

from .audio import SAMPLE_RATE
from .weights import shipped

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


VAD_MODEL = "silero_vad_16k_sequence.onnx"
FRAME_SAMPLES, CONTEXT_SAMPLES = 512, 64  # 32 ms frames, each seen with the previous frame's last 4 ms
BLOCK_FRAMES = 512  # frames per ONNX call (16.4 s)


@functools.lru_cache(maxsize=None)
def _model():
    """The sequence model's ONNX Runtime session (one thread; sessions run concurrently), loaded once."""
    from .engines.sessions import session

    return session(shipped(f"onnx/{VAD_MODEL}"))


def frame_blocks(wave: np.ndarray):
    """(N,) → blocks (frames ≤ BLOCK_FRAMES, CONTEXT_SAMPLES + FRAME_SAMPLES): each 32 ms frame
    prefixed with the previous frame's last samples (zeros before the first), the last frame
    zero-padded, as Silero's streaming model sees them."""
    count = -(-wave.size // FRAME_SAMPLES)
    frames = np.zeros((count, FRAME_SAMPLES), dtype=np.float32)
    frames.reshape(-1)[: wave.size] = wave
    context = np.zeros((count, CONTEXT_SAMPLES), dtype=np.float32)
    context[1:] = frames[:-1, -CONTEXT_SAMPLES:]
    both = np.concatenate([context, frames], axis=1)
    return [both[k : k + BLOCK_FRAMES] for k in range(0, count, BLOCK_FRAMES)]


def speech_probabilities(wave: np.ndarray) -> np.ndarray:
    """16 kHz mono wave (N,) → speech probability of each 32 ms frame: (ceil(N / 512),) float32."""
    session = _model()
    hidden = cell = np.zeros((1, 1, 128), dtype=np.float32)  # the LSTM's state, carried across blocks
    probs = []
    for block in frame_blocks(np.ascontiguousarray(wave, dtype=np.float32).reshape(-1)):
        p, hidden, cell = session.run(["speech_probs", "hn", "cn"], {"input": block, "h": hidden, "c": cell})
        probs.append(p.reshape(-1))
    return np.concatenate(probs) if probs else np.zeros(0, np.float32)


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
    ``threshold``: Silero's hysteresis (a span ends where the probability stays 0.15 below it for
    MIN_SILENCE_MS), spans shorter than MIN_SPEECH_MS dropped, each widened by PAD_MS (halfway
    into a shorter gap). Silero's ``get_speech_timestamps_from_probs`` without a longest span."""
    negative = max(0.01, threshold - 0.15)
    min_speech, min_silence = SAMPLE_RATE * MIN_SPEECH_MS / 1000, SAMPLE_RATE * MIN_SILENCE_MS / 1000
    pad = SAMPLE_RATE * PAD_MS / 1000
    spans, start, silence_from = [], None, 0  # start: the open span's first sample; silence_from: 0 or where a pause began
    for i, p in enumerate(np.asarray(probs, dtype=np.float64)):
        at = FRAME_SAMPLES * i
        if p >= threshold and silence_from:
            silence_from = 0
        if p >= threshold and start is None:
            start = at
            continue
        if p < negative and start is not None:
            silence_from = silence_from or at
            if at - silence_from < min_silence:
                continue
            if silence_from - start > min_speech:
                spans.append([start, silence_from])
            start, silence_from = None, 0
    if start is not None and n_samples - start > min_speech:
        spans.append([start, n_samples])
    for k, span in enumerate(spans):
        if k == 0:
            span[0] = int(max(0, span[0] - pad))
        if k < len(spans) - 1:
            gap = spans[k + 1][0] - span[1]
            if gap < 2 * pad:
                span[1] += int(gap // 2)
                spans[k + 1][0] = int(max(0, spans[k + 1][0] - gap // 2))
            else:
                span[1] = int(min(n_samples, span[1] + pad))
                spans[k + 1][0] = int(max(0, spans[k + 1][0] - pad))
        else:
            span[1] = int(min(n_samples, span[1] + pad))
    return [Segment(a / SAMPLE_RATE, min(b, n_samples) / SAMPLE_RATE) for a, b in spans]


def speech_seconds(segments: list[Segment], start: float = 0.0, end: float = float("inf")) -> float:
    """Seconds of speech among ``segments`` that fall inside [start, end)."""
    return sum(max(0.0, min(s.end, end) - max(s.start, start)) for s in segments)
