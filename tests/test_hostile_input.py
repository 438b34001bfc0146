"""Input a hostile but realistic user sends. Images: huge faceless ones, tiny ones, sideways phone
photos, 16-bit greys, non-images — each a clear FaceError (or the right face), with time and memory
bounded. The Python API: None, numbers, strings, lists, tensors, bad durations and rates — each an
InputError that names what is wrong, before any work."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from speech2face import faces
from speech2face.errors import FaceError

from conftest import PAIRS


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("size", [(1, 1), (5, 5), (9, 9), (1, 3000), (3000, 1), (20, 200)])
def test_tiny_images_are_a_clear_error_not_a_dlib_crash(size, face_analyzer):
    data = png_bytes(Image.new("RGB", size, (120, 90, 80)))
    with pytest.raises(FaceError, match="too small to hold a face"):
        face_analyzer.descriptor(data)
    assert face_analyzer.detect(np.zeros((size[1], size[0], 3), np.uint8)) == []  # arrays too: no crash


def test_images_beyond_the_size_limit_are_refused_before_decoding(face_analyzer):
    data = png_bytes(Image.new("L", (12000, 12000), 200))  # 144 MP, a few hundred kB as PNG
    start = time.perf_counter()
    with pytest.raises(FaceError, match="too large"):
        faces.load_image(data)
    assert time.perf_counter() - start < 1.0
    with pytest.raises(FaceError, match="too large"):  # beyond Pillow's own bomb limit, too
        faces.load_image(png_bytes(Image.new("1", (20000, 20000), 1)))


@pytest.mark.slow
def test_a_large_faceless_image_costs_bounded_time_and_memory(tmp_path):
    """A 4000 × 4000 solid PNG (16 MP, under the limit): 'no face found' within 5 s and 1 GB."""
    path = tmp_path / "solid.png"
    Image.new("RGB", (4000, 4000), (200, 180, 160)).save(path)
    code = f"""
import resource, time
from speech2face.faces import FaceAnalyzer
from speech2face.errors import FaceError
a = FaceAnalyzer()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
try:
    a.descriptor({str(path)!r})
except FaceError as exc:
    print("error:", exc)
print("seconds", time.perf_counter() - t)
print("peak_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "before_mb", before / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    lines = dict(line.split(" ", 1) for line in out.strip().splitlines())
    assert "no face" in lines["error:"]
    assert float(lines["seconds"]) < 5.0
    peak, before = (float(v) for v in lines["peak_mb"].split(" before_mb "))
    assert peak - before < 1024


def test_exif_rotated_phone_photo_is_turned_upright(shared_data, face_analyzer):
    """A real face stored sideways with EXIF Orientation 6 (as phones write it) is found and gives
    the same descriptor as the upright photo."""
    photo = Image.open(sorted((PAIRS / "faces").glob("*.jpg"))[3]).convert("RGB").resize((448, 448))
    upright = face_analyzer.descriptor(np.asarray(photo))
    stored = photo.transpose(Image.Transpose.ROTATE_90)  # orientation 6: the viewer rotates 90° clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    stored.save(buf, format="JPEG", quality=95, exif=exif)
    turned = face_analyzer.descriptor(buf.getvalue())
    assert float(np.dot(upright, turned)) / (np.linalg.norm(upright) * np.linalg.norm(turned)) > 0.97


def test_16_bit_grey_png_is_scaled_not_washed_out(shared_data):
    grey8 = np.asarray(Image.open(sorted((PAIRS / "faces").glob("*.jpg"))[3]).convert("L"))
    grey16 = grey8.astype(np.uint16) * 257
    buf = io.BytesIO()
    Image.fromarray(grey16).save(buf, format="PNG")  # mode I;16
    loaded = faces.load_image(buf.getvalue())
    assert loaded.dtype == np.uint8 and loaded.shape == (*grey8.shape, 3)
    assert np.abs(loaded[..., 0].astype(int) - grey8).max() <= 1
    assert np.abs(faces.load_image(grey16).astype(int)[..., 0] - grey8).max() <= 1  # the array too


def test_a_non_image_names_no_python_objects():
    with pytest.raises(FaceError) as info:
        faces.load_image(b"this is not an image at all")
    assert "BytesIO" not in str(info.value) and "0x" not in str(info.value)
    assert "not a readable image" in str(info.value)


@pytest.fixture(scope="module")
def model():
    import speech2face

    return speech2face.load_model(device="cpu")


# --- the Python API's corners: every bad argument an InputError that names it ---------------------
@pytest.mark.parametrize("source, kwargs, message", [
    (None, {}, "got NoneType"),
    (5, {}, "got int"),
    (np.float64(0.3), {"sample_rate": 16000}, "1-D"),
    (np.array(["a", "b"]), {"sample_rate": 16000}, "must hold numbers"),
    (np.zeros(96000, np.float32), {"sample_rate": 16000, "duration": 0}, "duration must be"),
    (np.zeros(96000, np.float32), {"sample_rate": 16000, "duration": -1}, "duration must be"),
    (np.zeros(96000, np.float32), {"sample_rate": 16000, "duration": 100}, "duration must be"),
    (np.zeros(96000, np.float32), {"sample_rate": 16000, "duration": 0.01}, "duration must be"),
    (np.zeros(96000, np.float32), {"sample_rate": 16000, "duration": float("nan")}, "duration must be"),
    (np.zeros(96000, np.float32), {"sample_rate": 1}, "sample_rate must lie"),
    (np.zeros(96000, np.float32), {"sample_rate": 16000.5}, "whole number"),
    (np.zeros(96000, np.float32), {}, "needs its sample_rate"),
])
def test_bad_api_arguments_are_input_errors_naming_them(model, source, kwargs, message):
    from speech2face.errors import InputError

    start = time.perf_counter()
    with pytest.raises(InputError, match=message):
        model.reconstruct(source, **kwargs)
    assert time.perf_counter() - start < 5  # refused up front, not after minutes of work


def test_lists_tensors_and_int64_arrays_are_waves_like_any_array(shared_data, model):
    """A torch tensor, a list of floats and an int64 array (what np.array makes of a list of ints)
    draw the same face as the int16 array they hold; int64 is not mistaken for silence."""
    import soundfile as sf
    import torch

    wave, rate = sf.read(sorted((PAIRS / "audio").glob("*.opus"))[0], dtype="int16")
    expected = model.reconstruct(wave, sample_rate=rate).descriptor
    as_float = wave.astype(np.float32) / 32768
    for source in (wave.astype(np.int64), torch.from_numpy(as_float), as_float.tolist()):
        np.testing.assert_allclose(model.reconstruct(source, sample_rate=rate).descriptor, expected, atol=1e-4)


def test_a_wave_array_is_capped_like_a_file():
    """An array longer than MAX_INPUT_SECONDS is cut there, as decoding a file is."""
    from speech2face import audio
    from speech2face.limits import MAX_INPUT_SECONDS

    wave = audio.wave_from_array(np.zeros(round((MAX_INPUT_SECONDS + 60) * 8000), np.int16), 8000)
    assert wave.size == round(MAX_INPUT_SECONDS * 8000)


# --- lengths: the true length reported, and which part was listened to ---------------------------
def _speech_wave(seconds_silence: float, speech_seconds: float) -> tuple[np.ndarray, int]:
    import soundfile as sf

    speech, rate = sf.read(sorted((PAIRS / "audio").glob("*.opus"))[0], dtype="float32")
    reps = int(np.ceil(speech_seconds * rate / speech.size))
    return np.concatenate([np.zeros(round(seconds_silence * rate), np.float32), np.tile(speech, reps)]), rate


def test_a_recording_longer_than_the_cap_reports_its_true_length(shared_data, model, tmp_path):
    import soundfile as sf

    wave, rate = _speech_wave(0, 1200)  # 20 minutes
    path = tmp_path / "long.wav"
    sf.write(path, wave[:1200 * rate], rate)
    result = model.reconstruct(path)
    assert result.input_seconds == pytest.approx(1200, abs=0.1)
    assert result.analysed_seconds == pytest.approx(600, abs=0.1)
    assert result.used.endswith("of 1200.0 s (the first 600.0 s analysed)")


def test_silence_before_the_analysed_part_ends_says_only_that_part_was_examined(shared_data, model):
    import soundfile as sf
    from speech2face.errors import AudioError

    wave, rate = _speech_wave(31, 60)
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format="WAV")
    with pytest.raises(AudioError, match=r"only the first 30\.0 s of 9\d\.\d s were examined"):
        model.reconstruct(buf.getvalue(), max_seconds=30)
    ok = model.reconstruct(buf.getvalue(), max_seconds=120)  # listened to further, the speech is found
    assert ok.analysed_seconds == pytest.approx(ok.input_seconds, abs=0.1)


# --- speech under music or noise is drawn; non-speech is not --------------------------------------
def _synthetic_non_speech() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(6 * 16000) / 16000
    sounds = {f"white noise {a}": rng.standard_normal(t.size) * a for a in (0.01, 0.1, 0.5)}
    brown = np.cumsum(rng.standard_normal(t.size))
    sounds["brown noise"] = 0.3 * (brown - np.convolve(brown, np.ones(400) / 400, "same")) / np.abs(brown).max()
    sounds.update({f"tone {f} Hz": 0.3 * np.sin(2 * np.pi * f * t) for f in (50, 110, 220, 440, 1000, 3000)})
    sounds["chirp"] = 0.3 * np.sin(2 * np.pi * (100 * t + 200 * t ** 2))
    chords = np.zeros_like(t)
    for k, f0 in enumerate([220, 262, 330, 392, 294, 349, 440, 523] * 2):  # plucked harmonic notes on a beat
        note = (t >= k * 0.375) & (t < (k + 1) * 0.375)
        chords[note] = sum(np.sin(2 * np.pi * f0 * h * t[note]) / h for h in range(1, 6)) * np.exp(-(t[note] - k * 0.375) * 4)
    sounds["plucked chords"] = 0.2 * chords / np.abs(chords).max()
    sounds["clicks"] = np.zeros_like(t)
    sounds["clicks"][::4000] = 0.9
    for f0, depth in ((130, 0.03), (220, 0.03), (300, 0.05)):  # a sung, vibrato tone: harmonics, 5.5 Hz vibrato
        phase = 2 * np.pi * np.cumsum(f0 * (1 + depth * np.sin(2 * np.pi * 5.5 * t))) / 16000
        sung = sum(np.sin(h * phase) / h for h in range(1, 9)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2
        sounds[f"vibrato tone {f0} Hz"] = 0.3 * sung / np.abs(sung).max()
    sounds["amplitude-modulated noise"] = rng.standard_normal(t.size) * 0.2 * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return {k: v.astype(np.float32) for k, v in sounds.items()}


def test_synthetic_non_speech_is_all_refused():
    from speech2face.clips import speech_clips
    from speech2face.errors import AudioError

    for name, wave in _synthetic_non_speech().items():
        with pytest.raises(AudioError, match="no speech|too little speech|silent"):
            speech_clips(wave, 16000)
        assert name  # every one refused


@pytest.mark.slow
def test_no_real_speech_clip_is_refused(shared_data):
    """Every clip of ../shared is speech (some under music or room noise): none of the 1,050 is
    refused; the ones only the weak threshold accepts carry a note."""
    import soundfile as sf

    from speech2face.clips import speech_clips
    from speech2face.errors import AudioError

    refused, noted = [], 0
    paths = sorted((PAIRS / "audio").glob("*.opus"))
    for path in paths:
        wave, rate = sf.read(path, dtype="float32")
        try:
            clips = speech_clips(wave, rate)
            noted += any("faint or under music" in n for n in clips.notes)
        except AudioError as exc:
            refused.append((path.name, str(exc)))
    assert len(paths) == 1050
    assert refused == []
    assert noted >= 1  # the weak-speech path is taken, and says so


# --- the CLI: one line and exit 2 for what a user got wrong, never a traceback -------------------------
def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speech2face", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_training_on_a_missing_or_empty_folder_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    for folder, message in ((tmp_path / "nowhere", "no such file or folder"), (tmp_path / "empty", "no shards")):
        result = _cli("train", str(folder), "--out", str(tmp_path / "run"))
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr


@pytest.mark.slow
def test_a_malformed_weights_file_with_a_matching_checksum_is_one_line(shared_data, tmp_path):
    import hashlib

    bad = tmp_path / "voice.safetensors"
    bad.write_bytes(np.random.default_rng(0).bytes(100))
    (tmp_path / "voice.safetensors.sha256").write_text(hashlib.sha256(bad.read_bytes()).hexdigest() + "  voice.safetensors\n")
    clip = sorted((PAIRS / "audio").glob("*.opus"))[0]
    result = _cli("reconstruct", str(clip), "-o", str(tmp_path / "f.png"), "--weights", str(bad))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "not a readable safetensors" in result.stderr


@pytest.mark.slow
def test_a_7_1_m4a_is_drawn_by_the_cli_and_the_api_on_bytes(speech_wave, model, tmp_path):
    """A 7.1 AAC .m4a of speech once crashed the CLI (exit 139) and the Python API on its bytes."""
    from media import write_audio

    path = write_audio(tmp_path / "surround.m4a", np.repeat(speech_wave[:, None], 8, axis=1), 16_000)
    result = _cli("reconstruct", str(path), "-o", str(tmp_path / "face.png"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "face.png").is_file()
    assert model.reconstruct(path.read_bytes()).image.shape == (224, 224, 3)


# --- no file a user passes runs code ---------------------------------------------------------------
class _RunsCode:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_malicious_pickle_is_refused_everywhere_torch_loads(tmp_path):
    """Run caches, checkpoints and `evaluate steering FILE` load with weights_only=True: a crafted
    .pt that would run os.system is refused (nothing runs), while the caches training writes,
    numpy arrays and RNG states included, still load."""
    import pickle

    import torch

    from speech2face.training.runs import Run
    from speech2face.training.voice_attributes import collect_pairs

    marker = tmp_path / "ran"
    bad = tmp_path / "pairs_table.pt"
    torch.save({"split": _RunsCode(marker)}, bad)
    with pytest.raises(pickle.UnpicklingError):
        collect_pairs([], tmp_path, bad)
    run = Run(tmp_path / "run", {})
    torch.save({"model": _RunsCode(marker)}, run.checkpoint_path)
    with pytest.raises(pickle.UnpicklingError):
        run.load_checkpoint()
    assert not marker.exists()

    table = {"stem": np.asarray(["a", "b"]), "ge2e": np.zeros((2, 4), np.float32), "age": np.asarray([30.0, 40.0]),
             "ethnicity": np.asarray([1, 2]), "gender": np.asarray(["m", "f"])}
    torch.save(table, tmp_path / "good.pt")
    loaded = collect_pairs([], tmp_path, tmp_path / "good.pt")
    assert all(np.array_equal(loaded[k], v) for k, v in table.items())
    run.save_checkpoint({"model": torch.nn.Linear(2, 2).state_dict(), "epoch": 3})
    assert run.load_checkpoint()["epoch"] == 3


@pytest.mark.slow
def test_evaluate_steering_refuses_a_crafted_table_in_one_line(tmp_path):
    import torch

    marker = tmp_path / "ran"
    bad = tmp_path / "table.pt"
    torch.save({"split": _RunsCode(marker)}, bad)
    result = _cli("evaluate", "steering", str(bad))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "could run code" in result.stderr
    assert "posix.system" in result.stderr and not marker.exists()


# --- onnxruntime's telemetry is off: nothing left in the temp or cache folders ------------------------
def test_a_vad_run_leaves_no_onnxruntime_telemetry_files(tmp_path):
    """onnxruntime's telemetry used to leave an empty mat-debug-<pid>.log in the temp folder and
    queue events in Microsoft/DeveloperTools/.onnxruntime/onnxruntime.db under the cache folder."""
    import os

    folders = {name: tmp_path / name for name in ("tmp", "home", "cache")}
    for folder in folders.values():
        folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}  # as a user's shell has it
    env.update(TMPDIR=str(folders["tmp"]), HOME=str(folders["home"]), XDG_CACHE_HOME=str(folders["cache"]))
    code = """
import numpy as np
from speech2face import vad
wave = (0.1 * np.random.default_rng(0).standard_normal(3 * 16000)).astype(np.float32)
print(vad.speech_probabilities(wave).shape)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(94,)"  # the VAD ran
    assert not list(folders["tmp"].glob("mat-debug-*.log"))
    left = [p for folder in folders.values() for p in folder.rglob("*") if "onnxruntime" in p.name or p.name == "Microsoft"]
    assert not left, left


# --- `reconstruct`: no output overwrites another, every input gets its line, one line for a bad -o ---
def _clips_named(folder, *stems):
    """Real speech clips of ../shared linked under the given names (``stem.opus``)."""
    folder.mkdir(exist_ok=True)
    clips = sorted((PAIRS / "audio").glob("*.opus"))
    for stem, clip in zip(stems, clips):
        (folder / f"{stem}.opus").symlink_to(clip)
    return [folder / f"{stem}.opus" for stem in stems]


def test_an_input_named_contact_sheet_keeps_its_face(shared_data, tmp_path):
    _clips_named(tmp_path / "in", "contact_sheet", "other")
    result = _cli("reconstruct", str(tmp_path / "in"), "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["contact_sheet-2.png", "contact_sheet.png", "other.png"]
    assert Image.open(out / "contact_sheet.png").size == (224, 224)  # the face, not the sheet
    assert Image.open(out / "contact_sheet-2.png").size != (224, 224)
    assert f"contact sheet: {out / 'contact_sheet-2.png'}" in result.stderr


def test_a_variation_never_takes_the_name_of_another_inputs_face(shared_data, tmp_path):
    """face.opus --variations 2 beside face_v2.opus: face_v2.png had been listed twice, one face lost."""
    import json

    _clips_named(tmp_path / "in", "face", "face_v2")
    result = _cli("reconstruct", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--variations", "2", "--json")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    lines = {Path(d["input"]).name: d["faces"] for d in map(json.loads, result.stdout.splitlines())}
    assert lines == {"face.opus": [str(out / "face.png"), str(out / "face_v2-2.png")],
                     "face_v2.opus": [str(out / "face_v2.png"), str(out / "face_v2_v2.png")]}
    assert sorted(p.name for p in out.iterdir()) == ["contact_sheet.png", "face.png", "face_v2-2.png", "face_v2.png",
                                                     "face_v2_v2.png"]


def test_json_lists_only_faces_written_and_gives_failed_inputs_a_line(shared_data, tmp_path):
    import json

    (clip,) = _clips_named(tmp_path / "in", "a")
    broken = tmp_path / "in" / "broken.wav"
    broken.write_text("not audio at all\n" * 40)
    (tmp_path / "out" / "a_v2.png").mkdir(parents=True)  # a face that cannot be written
    missing = tmp_path / "in" / "missing.wav"
    result = _cli("reconstruct", str(clip), str(broken), str(missing), "-o", str(tmp_path / "out"), "--variations", "2",
                  "--json")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = {d["input"]: d for d in map(json.loads, result.stdout.splitlines())}
    assert set(lines) == {str(clip), str(broken), str(missing)}  # one line per input
    assert lines[str(clip)]["faces"] == [str(tmp_path / "out" / "a.png")] and (tmp_path / "out" / "a.png").is_file()
    assert "a_v2.png: could not be written" in lines[str(clip)]["error"]
    assert lines[str(broken)]["faces"] == [] and "not a readable audio file" in lines[str(broken)]["error"]
    assert lines[str(missing)] == {"input": str(missing), "faces": [], "error": "no such file or folder"}


def test_a_missing_file_among_many_is_skipped_like_an_unreadable_one(shared_data, tmp_path):
    a, b = _clips_named(tmp_path / "in", "a", "b")
    missing = tmp_path / "in" / "missing.wav"
    result = _cli("reconstruct", str(a), str(missing), str(b), "-o", str(tmp_path / "out"))
    assert result.returncode == 1, result.stderr
    assert f"{missing}: skipped: no such file or folder" in result.stderr.splitlines()
    assert result.stdout.splitlines() == [str(tmp_path / "out" / "a.png"), str(tmp_path / "out" / "b.png")]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png", "contact_sheet.png"]


def test_an_output_type_pillow_cannot_write_is_one_line(shared_data, tmp_path):
    """-o face.xyz had been a traceback (unknown file extension) after the drawing; face.xbm (a type
    that holds no RGB) a write failure after it."""
    (clip,) = _clips_named(tmp_path / "in", "clip")
    for name in ("face.xyz", "face.xbm"):
        result = _cli("reconstruct", str(clip), "-o", str(tmp_path / name))
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and f"{tmp_path / name}: cannot write an image" in result.stderr
        assert not (tmp_path / name).exists()
