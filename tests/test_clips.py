"""Speech, not sound: the VAD rejects noise, tones and near-silence; long recordings are cut into
6 s windows of speech, and the seconds used are reported."""

from __future__ import annotations

import numpy as np
import pytest

from speech2face import audio, vad
from speech2face.clips import speech_clips
from speech2face.errors import AudioError

RATE = audio.SAMPLE_RATE


def test_real_speech_is_found(speech_wave):
    segments = vad.speech_segments(speech_wave)
    assert segments and vad.speech_seconds(segments) > 3.0
    clips = speech_clips(speech_wave, RATE)
    assert len(clips.clips) == 1 and clips.spans == [(0.0, speech_wave.size / RATE)]
    assert clips.clips[0].shape == (audio.clip_samples(),)


@pytest.mark.parametrize("kind", ["white noise", "440 Hz tone"])
def test_noise_and_tones_are_not_speech(kind):
    t = np.arange(6 * RATE) / RATE
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(t.size) if kind == "white noise" else 0.3 * np.sin(2 * np.pi * 440 * t))
    with pytest.raises(AudioError, match="no speech found"):
        speech_clips(wave.astype(np.float32), RATE)


def test_a_word_in_silence_is_too_little_speech(speech_wave):
    wave = np.zeros(8 * RATE, np.float32)
    wave[3 * RATE:3 * RATE + RATE // 2] = speech_wave[RATE:RATE + RATE // 2]  # half a second of talking
    with pytest.raises(AudioError, match="too little speech|no speech found"):
        speech_clips(wave, RATE)


def test_long_recording_uses_the_windows_with_speech(speech_wave):
    n = speech_wave.size  # 6 s
    silence = np.zeros(n, np.float32)
    wave = np.concatenate([speech_wave, silence, speech_wave[::-1].copy(), silence])  # 24 s: talk, pause, talk, pause
    clips = speech_clips(wave, RATE)
    assert clips.input_seconds == pytest.approx(24.0, abs=0.01)
    assert clips.spans == [(0.0, 6.0), (12.0, 18.0)]  # the silent windows are not used
    assert all(c.shape == (n,) for c in clips.clips)
    assert 9.0 < clips.speech_seconds < 12.5


def test_windows_follow_the_input_rate(speech_wave):
    import soxr

    wave44 = soxr.resample(np.concatenate([speech_wave] * 3), RATE, 44_100).astype(np.float32)
    clips = speech_clips(wave44, 44_100)
    assert [round(a) for a, _ in clips.spans] == [0, 6, 12]
