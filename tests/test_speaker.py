"""Pretrained speaker embedding: our torch port of resemblyzer's GE2E against resemblyzer itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speech2face import audio
from speech2face.models.speaker_encoder import speaker_encoder
from speech2face.speaker import mel_filterbank

from conftest import embed, PAIRS, speech_clip


def test_mel_filterbank_matches_librosa():
    librosa = pytest.importorskip("librosa")
    expected = librosa.filters.mel(sr=16_000, n_fft=400, n_mels=40)
    np.testing.assert_allclose(mel_filterbank(), expected, atol=1e-6)


def test_embedding_shape_and_norm(speech_wave):
    e = embed(speech_wave)
    assert e.shape == (256,) and e.dtype == np.float32
    assert abs(np.linalg.norm(e) - 1) < 1e-5 and (e >= 0).all()  # ReLU then L2: non-negative, unit


def test_matches_resemblyzer(speech_wave):
    """Same weights, same front end: resemblyzer's embed_utterance on the same wave."""
    try:
        from resemblyzer import VoiceEncoder
    except Exception as exc:  # its audio module needs webrtcvad and scipy's old ndimage path
        pytest.skip(f"resemblyzer cannot be imported here: {exc}")
    quiet = speech_wave * 0.01  # exercise the volume normalisation too
    reference = VoiceEncoder("cpu", verbose=False)
    for wave in (speech_wave, speech_wave[:40_000]):
        ours = embed(wave, normalize_volume=False)
        theirs = reference.embed_utterance(wave)
        assert float(ours @ theirs) > 0.9999
    from resemblyzer.audio import normalize_volume

    theirs = reference.embed_utterance(normalize_volume(quiet, -30, increase_only=True))
    assert float(embed(quiet) @ theirs) > 0.9999


def test_same_speaker_closer_than_different_speakers(pair_rows):
    """On real VoxCeleb clips: clips of one person are more alike than clips of two people."""
    vox = [r for r in pair_rows if r["source"] == "voxceleb1"]
    by_id: dict[str, list[str]] = {}
    for r in vox:
        by_id.setdefault(r["identity"], []).append(r["stem"])
    people = [stems for stems in by_id.values() if len(stems) >= 2][:8]
    emb = {s: embed(speech_clip(PAIRS / "audio" / f"{s}.opus")) for p in people for s in p[:2]}
    same = [float(emb[p[0]] @ emb[p[1]]) for p in people]
    different = [float(emb[a[0]] @ emb[b[0]]) for i, a in enumerate(people) for b in people[i + 1:]]
    assert np.mean(same) > np.mean(different) + 0.1


def test_shipped_weights_are_resemblyzers_converted():
    """assets/speaker_encoder_ge2e.safetensors holds exactly resemblyzer's LSTM and linear layer,
    and the runtime needs no resemblyzer to load it."""
    import importlib.util

    import torch

    from speech2face.speaker import resemblyzer_weights_path

    if importlib.util.find_spec("resemblyzer") is None:
        pytest.skip("resemblyzer (the weights' source) is not installed: pip install -e '.[test]'")
    original = torch.load(resemblyzer_weights_path(), map_location="cpu", weights_only=True)["model_state"]
    shipped = speaker_encoder().state_dict()
    assert set(shipped) == {k for k in original if k.startswith(("lstm.", "linear."))}
    for name, tensor in shipped.items():
        assert torch.equal(tensor, original[name]), name


def test_bfloat16_lstm_stays_close_to_float32(pair_rows):
    """`serve --bf16`: on real clips, GE2E embeddings with the LSTM in bfloat16 are within cosine
    0.998 of float32, and the float32 path is what it was (the same numbers with the flag off)."""
    from speech2face.models.speaker_encoder import cpu_has_bfloat16

    waves = [speech_clip(PAIRS / "audio" / f"{r['stem']}.opus") for r in pair_rows[:6]]
    encoder = speaker_encoder()
    exact = encoder.embed_many(waves)
    np.testing.assert_array_equal(encoder.embed_many(waves, bfloat16=False), exact)
    fast = encoder.embed_many(waves, bfloat16=True, workers=2)
    assert fast.dtype == np.float32 and np.allclose(np.linalg.norm(fast, axis=1), 1, atol=1e-5)
    assert (np.sum(fast * exact, axis=1) > 0.998).all()
    assert isinstance(cpu_has_bfloat16(), bool)


def test_bfloat16_falls_back_to_float32_where_onednn_has_no_bfloat16_lstm(pair_rows, monkeypatch):
    """On CPUs where oneDNN cannot build a bfloat16 LSTM ("could not create a primitive descriptor"),
    `--bf16` warns once and embeds in float32 (the same numbers) instead of failing every request."""
    import speech2face.models.speaker_encoder as speaker

    monkeypatch.setattr(speaker, "_BFLOAT16_BROKEN", [])
    waves = [speech_clip(PAIRS / "audio" / f"{r['stem']}.opus") for r in pair_rows[:2]]
    encoder = speaker.SpeakerEncoder()
    encoder.load_state_dict(speaker_encoder().state_dict())
    lstm = encoder.lstm

    class NoBfloat16(torch.nn.Module):
        def forward(self, x):
            if torch.is_autocast_enabled("cpu"):
                raise RuntimeError("could not create a primitive descriptor for the LSTM forward propagation primitive.")
            return lstm(x)

    encoder.lstm = NoBfloat16()
    exact = encoder.embed_many(waves)
    with pytest.warns(RuntimeWarning, match="GE2E runs in float32"):
        fast = encoder.embed_many(waves, bfloat16=True)
    np.testing.assert_array_equal(fast, exact)
    assert not speaker.bfloat16_lstm_works()
    np.testing.assert_array_equal(encoder.embed_many(waves, bfloat16=True), exact)  # no second try
