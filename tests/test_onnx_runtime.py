"""The ONNX runtime: graphs re-exported from the shipped weights give the torch modules' outputs,
the shipped graphs are those of the shipped weights, the runtime imports no torch, and the two
engines draw the same faces from the same clips."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import PAIRS

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from speech2face.engines.ort import OnnxGraphs
    from speech2face.export.writer import export_onnx

    out = tmp_path_factory.mktemp("onnx")
    export_onnx(out)
    return OnnxGraphs(out)


def test_reexported_graphs_give_the_torch_modules_outputs(exported):
    from speech2face.engines.ort import OnnxDrawer, OnnxVoice
    from speech2face.engines.pytorch import load_drawer, load_voice
    from speech2face.models.speaker_encoder import speaker_encoder
    from speech2face.speaker import mel_frames, partial_wave
    from speech2face.voice_attributes import VoiceAttributes

    rng = np.random.default_rng(0)
    waves = [(rng.standard_normal(96_000) * 0.05).astype(np.float32),
             (np.sin(np.arange(50_000) / 7) * 0.2).astype(np.float32)]
    ge2e = speaker_encoder()
    for wave in waves:  # the mel graph (the browser's) and numpy's frames (Python's) against torch's
        padded, _ = partial_wave(wave)
        ours = ge2e.mel_frames(torch.from_numpy(padded)).numpy()
        (graph,) = exported["mel"].run(None, {"wave": padded})
        assert np.abs(graph - ours).max() <= 1e-4 * np.abs(ours).max()
        assert np.abs(mel_frames(padded) - ours).max() <= 1e-5 * np.abs(ours).max()
    onnx_voice, torch_voice = OnnxVoice(exported), load_voice(device="cpu")
    partials = [np.asarray(p) for p in onnx_voice.partials(waves, workers=2)]
    for ours, theirs in zip(partials, ge2e.embed_partials(waves)):
        assert _cos(ours, theirs).min() >= 0.9999
    emb = np.stack([p.mean(0) / np.linalg.norm(p.mean(0)) for p in partials]).astype(np.float32)
    desc_onnx, desc_torch = onnx_voice.descriptors(emb), torch_voice.descriptors(emb, None)
    assert _cos(desc_onnx - torch_voice.center, desc_torch - torch_voice.center).min() >= 0.9999

    attributes = VoiceAttributes.load()
    steered, male, age, posterior, drawn = exported["attributes"].run(None, {"descriptors": desc_torch, "embeddings": emb})
    assert _cos(steered - torch_voice.center, attributes.steer(desc_torch, emb) - torch_voice.center).min() >= 0.9999
    np.testing.assert_allclose(male, attributes.male_probability(emb), atol=1e-5)
    np.testing.assert_allclose(age[:, 0], attributes.age(emb)[0], atol=1e-3)
    np.testing.assert_allclose(posterior, attributes.ethnicity_posterior(emb), atol=1e-5)
    assert (drawn == attributes.drawn_group(emb)).all()

    # faces: real descriptors and voice predictions, through both decoders
    descriptors = np.concatenate([desc_torch, steered, torch_voice.center[None] + rng.standard_normal((3, 128)) * 0.03])
    faces_onnx = OnnxDrawer(exported).decode(descriptors.astype(np.float32), workers=2)
    faces_torch = load_drawer(device="cpu").decode(descriptors)
    assert faces_onnx.shape == faces_torch.shape == (len(descriptors), 224, 224, 3) and faces_onnx.dtype == np.uint8
    assert np.abs(faces_onnx.astype(int) - faces_torch.astype(int)).mean(axis=(1, 2, 3)).max() <= 1.0


def test_the_shipped_graphs_are_those_of_the_shipped_weights():
    """Re-run `speech2face export onnx` after changing a weights file: until then this fails."""
    from speech2face.engines.ort import OnnxGraphs
    from speech2face.weights import sha256_of, shipped

    graphs = OnnxGraphs()
    for name, digest in graphs.manifest["sources"].items():
        assert sha256_of(shipped(name)) == digest, f"{name} changed since the graphs were exported"
    for name, entry in graphs.manifest["graphs"].items():
        assert sha256_of(graphs.folder / entry["file"]) == entry["sha256"], name


def test_the_vad_rule_is_silero_s(shared_data):
    """Frame probabilities and speech spans as the silero-vad package gives them, on real clips."""
    from silero_vad import load_silero_vad
    from silero_vad.utils_vad import get_speech_timestamps_from_probs

    from speech2face import audio, vad

    model = load_silero_vad(sequence=True)
    for path in sorted((PAIRS / "audio").glob("*.opus"))[:12]:
        wave, rate, _, _ = audio.decode_audio(path)
        wave = audio.resample(wave, rate)
        probs = vad.speech_probabilities(wave)
        assert np.array_equal(probs, model.audio_forward(wave, sampling_rate=16_000))
        for threshold in (vad.THRESHOLD, vad.WEAK_THRESHOLD):
            theirs = get_speech_timestamps_from_probs(
                probs, sampling_rate=16_000, threshold=threshold, min_speech_duration_ms=vad.MIN_SPEECH_MS,
                min_silence_duration_ms=vad.MIN_SILENCE_MS, speech_pad_ms=vad.PAD_MS, audio_length_samples=wave.size,
                neg_threshold=max(0.01, threshold - 0.15))
            ours = vad.segments_from_probabilities(probs, wave.size, threshold)
            assert [(s.start, s.end) for s in ours] == [(t["start"] / 16_000, min(t["end"], wave.size) / 16_000)
                                                        for t in theirs]


RUNTIME = """
import json, sys
import speech2face
model = speech2face.load_model()
face = model.reconstruct(sys.argv[1]).image
heavy = sorted(m for m in sys.modules if m.split(".")[0] == "torch"
               or m.startswith(("speech2face.evaluation", "speech2face.training", "speech2face.data", "speech2face.models")))
print(json.dumps({"engine": model.engine, "shape": face.shape, "heavy": heavy}))
"""


def test_the_runtime_imports_no_torch_training_evaluation_or_data(shared_data):
    clip = sorted((PAIRS / "audio").glob("*.opus"))[0]
    out = subprocess.run([sys.executable, "-c", RUNTIME, str(clip)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen == {"engine": "onnx", "shape": [224, 224, 3], "heavy": []}


def test_both_engines_draw_the_same_faces_and_read_the_same_voice(shared_data):
    import speech2face

    onnx_model, torch_model = speech2face.load_model(engine="onnx"), speech2face.load_model(engine="torch")
    clips = sorted((PAIRS / "audio").glob("*.opus"))[:8]
    for a, b in zip(onnx_model.reconstruct_each(clips, variations=3), torch_model.reconstruct_each(clips, variations=3)):
        assert _cos(a.descriptor - onnx_model.center, b.descriptor - torch_model.center) >= 0.9999
        assert a.voice_attributes["gender"]["most_likely"] == b.voice_attributes["gender"]["most_likely"]
        assert abs(a.voice_attributes["age"]["years"] - b.voice_attributes["age"]["years"]) <= 0.2
        for x, y in zip(a.variations, b.variations):
            assert np.abs(x.astype(int) - y.astype(int)).mean() <= 1.0


def test_own_weights_or_a_gpu_ask_for_the_torch_engine():
    import speech2face
    from speech2face.errors import InputError

    with pytest.raises(InputError, match="need engine='torch'"):
        speech2face.load_model(engine="onnx", decoder_weights="x.safetensors")
    with pytest.raises(InputError, match="unknown engine"):
        speech2face.load_model(engine="tensorflow")


def test_commands_that_need_torch_say_so_in_one_line(monkeypatch, capsys):
    import importlib.util

    from speech2face import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    assert cli.main(["export", "onnx"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("speech2face export onnx: error: speech2face export needs torch, which is not installed: "
                   "pip install 'speech2face[train]'")


def test_a_missing_profile_met_inside_a_command_is_one_line(monkeypatch, capsys):
    """'train' imports torch deep inside run(); without torch that is one line naming the extra."""
    import builtins

    from speech2face import cli

    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
        return real_import(name, *args, **kwargs)

    for module in [m for m in sys.modules if m.startswith("speech2face.training")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setattr(builtins, "__import__", no_torch)
    assert cli.main(["train", "no-such-shards", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("speech2face train: error: speech2face train needs torch, which is not installed: "
                   "pip install 'speech2face[train]'")
