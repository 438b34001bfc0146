"""From a decoded recording to the fixed-length clips the voice encoder reads, and a record of
which seconds of the input they came from. The one rule for cutting a clip: inference, the
training shards and the evaluation's voice baselines all use it.

The encoder was trained on 6 s segments of talking (shorter speech looped, as Oh et al. do).
A recording of up to 6 s is used whole, as before. A longer one is cut into 6 s windows; the
windows in which the VAD hears speech at least half of the time are kept (or, where none is, the
one with the most speech). Several windows are averaged by the pipeline only where they sound
like one voice. Too little speech anywhere is an error, not a face.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import audio, vad
from .errors import AudioError

MIN_SPEECH_SECONDS = 1.0  # s of speech the VAD must find
MIN_WINDOW_SPEECH_SHARE = 0.5  # a window of a long recording is used if speech fills this share of it


@dataclass
class SpeechClips:
    """The clips cut from one input, and what was heard in it."""

    clips: list[np.ndarray]  # each (clip_samples,) float32, 16 kHz
    spans: list[tuple[float, float]]  # (start s, end s) of the input each clip covers
    input_seconds: float  # the whole input's length
    speech_seconds: float  # VAD speech in the part analysed
    analysed_seconds: float = 0.0  # how much of the input was decoded and listened to (≤ input_seconds)
    notes: list[str] = field(default_factory=list)
    clip_speech: list[float] = field(default_factory=list)  # s of VAD speech in each clip

    def most_speech(self) -> np.ndarray:
        """The clip with the most speech (the first of equals): a training sample's one clip."""
        return self.clips[int(np.argmax(self.clip_speech))] if self.clip_speech else self.clips[0]


def speech_clips(wave: np.ndarray, rate: int, seconds: float = audio.CLIP_SECONDS,
                 input_seconds: float | None = None) -> SpeechClips:
    """A decoded mono wave at ``rate`` → the clips to encode. AudioError when it is too short,
    silent, or holds too little speech. ``input_seconds``: the whole input's length where only
    its beginning was decoded; the error then says that only that part was examined."""
    analysed = wave.size / rate
    whole = max(input_seconds or 0.0, analysed)
    try:
        out = _speech_clips(wave, rate, seconds)
    except AudioError as exc:
        if whole > analysed + 0.5:
            raise AudioError(f"{exc} — only the first {analysed:.1f} s of {whole:.1f} s were examined") from None
        raise
    out.input_seconds, out.analysed_seconds = whole, analysed
    return out


def _speech_clips(wave: np.ndarray, rate: int, seconds: float) -> SpeechClips:
    wave = audio.resample(np.asarray(wave, dtype=np.float32), rate)
    audio.check_speech(wave)
    wave = audio.raise_quiet(wave)
    probs = vad.speech_probabilities(wave)
    segments = vad.segments_from_probabilities(probs, wave.size)
    found = vad.speech_seconds(segments)
    notes = []
    if found < MIN_SPEECH_SECONDS:  # speech under music or noise: listen again, less strictly
        weak = vad.segments_from_probabilities(probs, wave.size, vad.WEAK_THRESHOLD)
        sure = float(probs.max())
        if vad.speech_seconds(weak) < MIN_SPEECH_SECONDS:  # and then in the speech band alone
            band = vad.speech_probabilities(vad.speech_band(wave))
            weak = vad.segments_from_probabilities(band, wave.size, vad.WEAK_THRESHOLD)
            sure = max(sure, float(band.max()))
        if vad.speech_seconds(weak) < MIN_SPEECH_SECONDS:
            what = "no speech found" if found == 0 else f"too little speech: {found:.1f} s found"
            raise AudioError(f"{what} (at least {MIN_SPEECH_SECONDS:.0f} s of someone talking is needed; "
                             "noise, music, tones and silence are not used)")
        segments, found = weak, vad.speech_seconds(weak)
        notes.append(f"the speech is faint or under music or noise (the speech detector is at most "
                     f"{sure:.0%} sure): the face may follow the voice less closely")
    total = wave.size / audio.SAMPLE_RATE
    n = audio.clip_samples(seconds)
    if wave.size <= n:  # the whole recording, looped up to the clip length
        return SpeechClips([audio.fix_length(wave, n)], [(0.0, total)], total, found, notes=notes, clip_speech=[found])
    count = int(total // seconds)
    first = (total - count * seconds) / 2  # windows tile the middle of the recording
    starts = [first + k * seconds for k in range(count)]
    speech = [vad.speech_seconds(segments, s, s + seconds) for s in starts]
    keep = [k for k in range(count) if speech[k] >= MIN_WINDOW_SPEECH_SHARE * seconds]
    keep = keep or [int(np.argmax(speech))]
    clips = [wave[round(starts[k] * audio.SAMPLE_RATE):][:n] for k in keep]
    clips = [audio.fix_length(c, n) for c in clips]
    return SpeechClips(clips, [(starts[k], starts[k] + seconds) for k in keep], total, found, notes=notes,
                       clip_speech=[speech[k] for k in keep])


def describe_spans(spans: list[tuple[float, float]]) -> str:
    """[(0, 6), (12, 18)] → '0.0–6.0 s, 12.0–18.0 s'."""
    return ", ".join(f"{a:.1f}–{b:.1f} s" for a, b in spans)

