"""End to end with the shipped weights: the CLI round trips (reconstruct, normalize) on real
clips and photos, the Python API, and bad input on those paths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import PAIRS


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speech2face", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def model():
    import speech2face

    return speech2face.load_model(device="cpu")


def test_reconstruct_cli_round_trip_on_a_real_clip(shared_data, tmp_path, face_analyzer):
    clip = sorted((PAIRS / "audio").glob("*.opus"))[3]
    result = run_cli("reconstruct", str(clip), "-o", str(tmp_path / "face.png"))
    assert result.returncode == 0, result.stderr
    face = np.asarray(Image.open(tmp_path / "face.png"))
    assert face.shape == (224, 224, 3)
    assert len(face_analyzer.detect(face)) == 1  # it draws a face dlib can find


def test_reconstruct_folder_and_glob_with_contact_sheet(shared_data, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for p in sorted((PAIRS / "audio").glob("*.opus"))[:3]:
        (clips / p.name).symlink_to(p)
    (clips / "broken.wav").write_text("not audio at all\n" * 40)
    result = run_cli("reconstruct", str(clips), "-o", str(tmp_path / "out"))
    assert result.returncode == 1  # one input failed, the others were written
    assert "broken.wav: skipped" in result.stderr and "not a readable audio file" in result.stderr
    written = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert len(written) == 4 and "contact_sheet.png" in written
    result = run_cli("reconstruct", str(clips / "*.opus"), "-o", str(tmp_path / "glob"), "--duration", "3")
    assert result.returncode == 0 and len(list((tmp_path / "glob").glob("*.png"))) == 4


def test_reconstruct_cli_bad_paths(tmp_path):
    result = run_cli("reconstruct", str(tmp_path / "missing.wav"), "-o", str(tmp_path / "f.png"))
    assert result.returncode == 2 and "no such file or folder" in result.stderr
    (tmp_path / "a.wav").write_bytes(b"")
    result = run_cli("reconstruct", str(tmp_path / "a.wav"), "-o", str(tmp_path / "f.png"))
    assert result.returncode == 1 and "empty" in result.stderr


def test_wrong_or_outdated_weights_are_a_clear_error(tmp_path):
    """A weights file of the other model, one from an older decoder layout, one whose tensors do not
    have the shapes its config says, or an altered one:
    exit status 2 and one line saying what is wrong, never a traceback."""
    import soundfile as sf
    import torch

    from speech2face.pipeline import DECODER_WEIGHTS, VOICE_WEIGHTS
    from speech2face.weights import shipped as asset_path
    from speech2face.weights import load_weights, save_weights

    rng = np.random.default_rng(0)
    t = np.arange(16000 * 3) / 16000
    sf.write(tmp_path / "voice.wav", (0.3 * np.sin(2 * np.pi * 140 * t) + 0.05 * rng.standard_normal(t.size)), 16000)
    out = str(tmp_path / "face.png")
    outdated = tmp_path / "outdated.safetensors"
    save_weights(outdated, {"texture_fc.0.weight": torch.zeros(4, 128)}, {"model": "FaceDecoder", "decoder": {}})
    tensors, config = load_weights(asset_path(DECODER_WEIGHTS))
    reshaped = tmp_path / "reshaped.safetensors"  # a config that does not describe its tensors
    save_weights(reshaped, tensors, {**config, "decoder": {**config["decoder"], "size": 64}})
    altered = tmp_path / "altered.safetensors"
    altered.write_bytes(asset_path(VOICE_WEIGHTS).read_bytes()[:-1] + b"x")
    (tmp_path / "altered.safetensors.sha256").write_text(Path(f"{asset_path(VOICE_WEIGHTS)}.sha256").read_text())
    cases = [
        (["--weights", str(asset_path(DECODER_WEIGHTS))], "holds FaceDecoder, not a VoiceEncoder"),
        (["--decoder-weights", str(outdated)], "does not fit this version's FaceDecoder"),
        (["--decoder-weights", str(reshaped)], "of another shape"),
        (["--weights", str(altered)], "checksum mismatch"),
    ]
    for flags, message in cases:
        result = run_cli("reconstruct", str(tmp_path / "voice.wav"), "-o", out, *flags)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_python_api_on_arrays_and_files(shared_data, model):
    from speech2face import audio
    from speech2face.errors import AudioError

    clip = sorted((PAIRS / "audio").glob("*.opus"))[5]
    from_file = model.reconstruct(clip)
    assert from_file.image.shape == (224, 224, 3) and from_file.descriptor.shape == (128,)
    wave, rate, _, _ = audio.decode_audio(clip)
    stereo44 = np.stack([audio.resample(wave, rate, 44_100)] * 2, axis=1)
    from_array = model.reconstruct(stereo44, sample_rate=44_100)
    assert np.corrcoef(from_file.descriptor, from_array.descriptor)[0, 1] > 0.98
    with pytest.raises(AudioError, match="silent"):
        model.reconstruct(np.zeros(48_000, np.float32), sample_rate=16_000)


def test_normalize_cli(shared_data, tmp_path, face_analyzer):
    photos = sorted((PAIRS / "faces").glob("*.jpg"))[:2]
    Image.new("RGB", (200, 200), (90, 120, 200)).save(tmp_path / "sky.jpg")
    result = run_cli("normalize", str(photos[0]), str(photos[1]), str(tmp_path / "sky.jpg"), "-o", str(tmp_path / "n"))
    assert result.returncode == 1 and "sky.jpg: skipped: no face found" in result.stderr
    outs = sorted((tmp_path / "n").glob("*.png"))
    assert [p.stem for p in outs] == sorted(p.stem for p in photos)
    face = np.asarray(Image.open(outs[0]))
    assert face.shape == (224, 224, 3) and len(face_analyzer.detect(face)) == 1


def test_evaluate_with_the_shipped_model(shared_data, tmp_path):
    """--model: every clip reconstructed, the decoder-on-true-face upper bound scored beside it."""
    from speech2face.evaluation import EvalConfig, evaluate

    m = evaluate(EvalConfig(PAIRS, tmp_path / "report", model="shipped", limit=110, baselines=False, progress=False,
                            cache=tmp_path / "cache.jsonl"))
    names = list(m["systems"])
    assert names[0] == "speech2face (shipped)" and "upper bound: decoder on the true face descriptor" in names
    ours, upper = m["systems"][names[0]], m["systems"][names[1]]
    assert ours["quality"]["face_detected_share"] > 0.9
    # decoding the true face's own descriptor must beat guessing from the voice
    assert upper["retrieval"]["recall"]["10"] > ours["retrieval"]["recall"]["10"]
    # a clip the VAD hears too little speech in draws nothing and is listed (4 of the 1,050 clips here)
    written = len(list((tmp_path / "report" / "reconstructions").glob("*.png")))
    assert written + len(m["problems"]["missing_reconstruction"]) == m["pairs_listed"] and written >= 0.97 * m["pairs_listed"]
