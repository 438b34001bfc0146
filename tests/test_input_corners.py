"""Corners of the audio input that used to be refused, mis-scaled or misnamed: quiet speech,
channels in antiphase, bfloat16 tensors, uint64 and empty arrays, bad ``max_seconds``, files
cut short, pictures given as audio, and paths that are not regular files."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest

from speech2face import audio
from speech2face.errors import AudioError, FaceError, InputError

from conftest import PAIRS


@pytest.fixture(scope="module")
def model():
    import speech2face

    return speech2face.load_model(device="cpu")


@pytest.fixture(scope="module")
def speech(shared_data) -> np.ndarray:
    wave, rate, _, _ = audio.decode_audio(sorted((PAIRS / "audio").glob("*.opus"))[7])
    return audio.resample(wave, rate)  # (96000,) 16 kHz


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


# --- quiet and antiphase audio (item 10) --------------------------------------------------------
def test_speech_peaking_at_minus_40_dbfs_is_drawn_as_if_recorded_at_a_typical_level(model, speech):
    """Raised to QUIET_TARGET_DBFS (the loudest frame), not refused as silent; the encoder is
    level-sensitive, so the face is that of the same speech at the typical level."""
    quiet = speech / np.abs(speech).max() * 10 ** (-40 / 20)  # peak −40 dBFS
    typical = quiet * 10 ** ((audio.QUIET_TARGET_DBFS - audio.loudest_frame_dbfs(quiet)) / 20)
    drawn = model.reconstruct(quiet, sample_rate=16000).descriptor
    np.testing.assert_allclose(drawn, model.reconstruct(typical, sample_rate=16000).descriptor, atol=1e-3)
    center = model.center
    loud = model.reconstruct(speech, sample_rate=16000).descriptor
    assert _cosine(drawn - center, loud - center) > 0.9  # level changes faces about as much as between
    # the levels the training clips were recorded at


def test_stereo_in_antiphase_is_not_cancelled_to_silence(model, speech, tmp_path):
    import soundfile as sf

    path = tmp_path / "antiphase.wav"
    sf.write(path, np.stack([speech, -speech], axis=1), 16000)
    wave, _, _, _ = audio.decode_audio(path)
    assert audio.loudest_frame_dbfs(wave) > -40  # one channel, not their cancelling mean
    from_file = model.reconstruct(path).descriptor
    from_array = model.reconstruct(np.stack([speech, -speech]), sample_rate=16000).descriptor  # (channels, N)
    expected = model.reconstruct(speech, sample_rate=16000).descriptor
    np.testing.assert_allclose(from_array, expected, atol=1e-4)
    assert np.corrcoef(from_file, expected)[0, 1] > 0.99


def test_true_silence_and_one_bit_dither_are_still_silent():
    for wave in (np.zeros(48000, np.float32), np.random.default_rng(0).choice([-1, 0, 1], 48000) / 32768):
        with pytest.raises(AudioError, match="silent"):
            audio.check_speech(wave.astype(np.float32))


# --- Python API corners (item 15) -----------------------------------------------------------------
@pytest.mark.parametrize("max_seconds", [float("inf"), float("nan"), -1, 0, "5", True])
def test_bad_max_seconds_is_an_input_error_naming_it(model, speech, max_seconds):
    with pytest.raises(InputError, match="max_seconds must be a positive, finite number"):
        model.reconstruct(speech, sample_rate=16000, max_seconds=max_seconds)


def test_max_seconds_none_means_the_default(model, speech):
    assert model.reconstruct(speech, sample_rate=16000, max_seconds=None).analysed_seconds == pytest.approx(6.0)


def test_a_bfloat16_tensor_and_a_uint64_array_draw_the_face_of_the_wave_they_hold(model, speech):
    import torch

    expected = model.reconstruct(speech, sample_rate=16000).descriptor
    as_bf16 = model.reconstruct(torch.from_numpy(speech).bfloat16(), sample_rate=16000).descriptor
    assert np.corrcoef(as_bf16, expected)[0, 1] > 0.99  # bfloat16 keeps 8 bits of mantissa
    pcm16 = np.round(speech * 20000).astype(np.int64)
    as_uint64 = model.reconstruct((pcm16 + 32768).astype(np.uint64), sample_rate=16000).descriptor  # uint16 PCM
    np.testing.assert_allclose(as_uint64, model.reconstruct(pcm16.astype(np.int16), sample_rate=16000).descriptor,
                               atol=1e-4)


def test_an_empty_two_channel_array_says_it_holds_no_samples(model, recwarn):
    with pytest.raises(AudioError, match=r"holds no samples \(shape \(0, 2\)\)"):
        model.reconstruct(np.zeros((0, 2), np.float32), sample_rate=16000)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]  # no numpy warnings on the way


def test_a_refusal_of_a_file_names_the_file(model, tmp_path):
    import soundfile as sf

    (tmp_path / "a").mkdir()
    path = tmp_path / "a" / "noise.wav"
    sf.write(path, np.random.default_rng(1).uniform(-0.3, 0.3, 64000).astype(np.float32), 16000)
    with pytest.raises(AudioError, match=r"a/noise\.wav: no speech found"):
        model.reconstruct(path)


# --- messages that misled (item 16) -----------------------------------------------------------------
def test_a_truncated_wav_is_drawn_with_a_note_of_what_its_header_claimed(model, speech, tmp_path):
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, speech, 16000, format="WAV", subtype="PCM_16")
    path = tmp_path / "cut.wav"
    path.write_bytes(buf.getvalue()[:44 + 2 * 32000])  # the header says 6 s, 2 s follow
    result = model.reconstruct(path)
    assert result.input_seconds == pytest.approx(2.0)
    assert "the file is cut short: its header gives 6.0 s, only 2.0 s could be read" in result.notes
    whole = tmp_path / "whole.wav"
    whole.write_bytes(buf.getvalue())
    assert not any("cut short" in n for n in model.reconstruct(whole).notes)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP"])
def test_a_picture_given_as_audio_is_called_a_picture(fmt, tmp_path):
    from PIL import Image

    path = tmp_path / f"photo.{fmt.lower()}"
    Image.new("RGB", (64, 48), (120, 90, 80)).save(path, fmt)
    with pytest.raises(AudioError, match=r"photo\.\w+: a picture, not audio"):
        audio.decode_audio(path)
    with pytest.raises(AudioError, match="a picture, not audio"):
        audio.decode_audio(path.read_bytes())


@pytest.mark.parametrize("kind, expected", [
    ("fifo", "a named pipe \\(FIFO\\), not a regular file"),
    ("device", "a character device, not a regular file"),
    ("loop", "a symbolic link that loops back on itself"),
    ("dangling", "a symbolic link to nowhere.wav, which does not exist"),
    ("missing", "no such file"),
])
def test_paths_that_are_not_regular_files_say_what_they_are(kind, expected, tmp_path):
    from speech2face import faces
    from speech2face.files import expand_inputs

    path = tmp_path / f"{kind}.wav"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path = "/dev/zero"
    elif kind == "loop":
        path.symlink_to(path)
    elif kind == "dangling":
        path.symlink_to("nowhere.wav")
    with pytest.raises(AudioError, match=expected):
        audio.decode_audio(path)
    with pytest.raises(FaceError, match=expected):  # an open() of a FIFO would wait for a writer forever
        faces.load_image(path)
    with pytest.raises(InputError, match=expected):
        expand_inputs([str(path)], [".wav"])


def test_a_file_named_like_a_flag_does_not_take_the_flag_over(shared_data, tmp_path):
    """`reconstruct clip --json` beside a file named '--json' still gives JSON; './--json' and
    AVSpeech's '-id…' names are files."""
    import json
    import shutil
    import subprocess
    import sys

    clip = sorted((PAIRS / "audio").glob("*.opus"))[7]
    shutil.copy(clip, tmp_path / "--json")
    shutil.copy(clip, tmp_path / "-1nRm4tQL0A_024.76-029.96.opus")

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "speech2face", "reconstruct", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)

    run = cli(str(clip), "--json", "-o", "out")
    assert run.returncode == 0, run.stderr
    (line,) = run.stdout.splitlines()
    assert json.loads(line)["input"] == str(clip)
    run = cli("./--json", "-1nRm4tQL0A_024.76-029.96.opus", "-o", "named")
    assert run.returncode == 0, run.stderr
    drawn = {p.name for p in (tmp_path / "named").iterdir()}
    assert {"--json.png", "-1nRm4tQL0A_024.76-029.96.png"} <= drawn, drawn


# --- two voices within one window (item 9) ------------------------------------------------------------
def test_two_voices_taking_turns_every_3_s_within_one_window_get_a_note(model, pair_rows):
    import soundfile as sf

    def first(gender):
        row = next(r for r in pair_rows if r["gender"] == gender)
        wave, rate = sf.read(PAIRS / "audio" / f"{row['stem']}.opus", dtype="float32")
        return audio.fix_length(audio.resample(wave if wave.ndim == 1 else wave.mean(axis=1), rate), 96000)

    her, him = first("f"), first("m")
    turns = np.concatenate([her[:48000], him[48000:]])  # 3 s of her, then 3 s of him: one 6 s window
    result = model.reconstruct(turns, sample_rate=16000)
    assert any(n.startswith("two voices within 0.0–6.0 s") for n in result.notes), result.notes
    assert not any("two voices" in n for n in model.reconstruct(her, sample_rate=16000).notes)


def test_a_3_gb_wav_is_decoded_without_reading_it_whole(tmp_path):
    """Only what is listened to (600 s) is read: a 3 GB file (sparse here) costs its 600 s, not 3 GB."""
    import struct
    import subprocess
    import sys

    path = tmp_path / "huge.wav"
    size = 3 * 1024 ** 3
    rate = 16_000
    header = (b"RIFF" + struct.pack("<I", size - 8) + b"WAVE" + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate,
              2 * rate, 2, 16) + b"data" + struct.pack("<I", size - 44))
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(size)
    code = f"""
import tracemalloc
from speech2face import audio
tracemalloc.start()
wave, rate, seconds, notes = audio.decode_audio({str(path)!r})
print(wave.size / rate, round(seconds), tracemalloc.get_traced_memory()[1] // 2 ** 20)
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    analysed, whole, peak_mb = run.stdout.split()
    assert float(analysed) == pytest.approx(600.0) and int(whole) == round((size - 44) / (2 * rate))
    assert int(peak_mb) < 400, peak_mb  # numpy's allocations while decoding; the whole file would be 3,072 MB
