"""One rule cuts a clip everywhere: the training shards hold the clip inference would cut
(``clips.speech_clips``, the window with the most speech), not a blind centre crop; and
`rank_faces` reads the voice's descriptor without drawing a face."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from speech2face import audio
from speech2face.clips import speech_clips
from speech2face.errors import AudioError


@pytest.fixture(scope="module")
def speech_then_noise(speech_wave) -> np.ndarray:
    """6 s of real speech, then 8 s of faint noise: two 6 s windows (1–7 s and 7–13 s), speech in the first."""
    noise = np.random.default_rng(0).standard_normal(8 * 16_000).astype(np.float32) * 0.003
    return np.concatenate([speech_wave, noise])


def test_a_shard_holds_the_clip_inference_cuts(speech_then_noise):
    from speech2face.data.prepare import audio_files

    files = audio_files(speech_then_noise, 6.0)
    stored, rate = sf.read(io.BytesIO(files["audio.flac"]), dtype="float32")
    cut = speech_clips(speech_then_noise, 16_000)
    assert rate == 16_000 and cut.spans == [(1.0, 7.0)]
    np.testing.assert_allclose(stored, cut.most_speech(), atol=1 / 2**15)  # FLAC keeps 16 bits
    centre = audio.fix_length(speech_then_noise, 96_000)  # the old rule: 4–10 s, 3 s of it noise
    assert np.abs(stored - centre).mean() > 10 * np.abs(stored - cut.most_speech()).mean()
    spk = np.load(io.BytesIO(files["spk.npy"]))
    from conftest import embed

    assert float(spk @ embed(cut.most_speech())) > 0.9999


def test_a_shard_without_speech_is_refused_as_inference_refuses_it():
    from speech2face.data.prepare import audio_files

    t = np.arange(6 * 16_000) / 16_000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    with pytest.raises(AudioError, match="no speech found"):
        audio_files(tone, 6.0)


def test_most_speech_picks_the_window_with_the_most_speech(speech_then_noise):
    reversed_order = np.concatenate([speech_then_noise[6 * 16_000:], speech_then_noise[: 6 * 16_000]])
    cut = speech_clips(reversed_order, 16_000)  # noise 0–8 s, speech 8–14 s: windows 1–7 and 7–13
    assert len(cut.clip_speech) == len(cut.clips)
    assert cut.spans[int(np.argmax(cut.clip_speech))] == (7.0, 13.0)


def test_rank_faces_draws_nothing(shared_data, speech_wave, monkeypatch):
    import speech2face
    from speech2face.matching import rank_faces
    from conftest import PAIRS

    model = speech2face.load_model()
    clip = io.BytesIO()
    sf.write(clip, speech_wave, 16_000, format="WAV")
    drawn = model.reconstruct(clip.getvalue()).descriptor
    np.testing.assert_allclose(model.voice_descriptor(clip.getvalue()), drawn, atol=1e-6)

    def no_drawing(*args, **kwargs):
        raise AssertionError("rank_faces drew a face")

    monkeypatch.setattr(model.renderer, "decode", no_drawing)
    photos = [(p.name, p) for p in sorted((PAIRS / "faces").glob("*.jpg"))[:3]]
    ranking = rank_faces(model, clip.getvalue(), photos)
    assert [r["rank"] for r in ranking] == [1, 2, 3] and all(-1 <= r["score"] <= 1 for r in ranking)
