"""What a new user meets in the first hour, each with the exact input that once went wrong:
wave arrays of every dtype, noise and tones, a minute of two speakers, bad flags, the batch path,
help texts, contact-sheet labels, and the install that must not run twice."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import PAIRS

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speech2face", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The error a failed command printed: exit 2, exactly one line, no traceback."""
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def model():
    import speech2face

    return speech2face.load_model(device="cpu")


def clips_of(identity: str, n: int) -> list[Path]:
    with open(PAIRS / "pairs.csv", newline="") as f:
        stems = [r["stem"] for r in csv.DictReader(f) if r["identity"] == identity][:n]
    return [PAIRS / "audio" / f"{s}.opus" for s in stems]


# --- 1. integer arrays ------------------------------------------------------------------------------
def test_scipy_int16_array_draws_the_same_face_as_the_file(shared_data, model, tmp_path):
    from scipy.io import wavfile

    from media import write_audio
    from speech2face import audio

    wave, rate, _, _ = audio.decode_audio(sorted((PAIRS / "audio").glob("*.opus"))[7])
    path = write_audio(tmp_path / "clip.wav", wave, rate)  # 16-bit PCM
    rate, pcm = wavfile.read(path)
    assert pcm.dtype == np.int16
    from_file = model.reconstruct(path).descriptor
    cosine = lambda d: float(d @ from_file / np.linalg.norm(d) / np.linalg.norm(from_file))
    for array in (pcm, pcm.astype(np.int32) * 65536, (pcm // 256 + 128).astype(np.uint8),
                  pcm / 32768.0, (pcm / 32768.0).astype(np.float32), np.stack([pcm, pcm]), np.stack([pcm, pcm], 1)):
        assert cosine(model.reconstruct(array, sample_rate=rate).descriptor) > (0.95 if array.dtype == np.uint8 else 0.999), array.dtype  # 8-bit: audible noise


# --- 2. non-speech, and 3. a minute of two speakers -----------------------------------------------
@pytest.mark.parametrize("kind", ["noise", "tone"])
def test_noise_and_tone_are_refused_by_api_and_cli(model, tmp_path, kind):
    from media import write_audio
    from speech2face.errors import AudioError

    t = np.arange(6 * 16_000) / 16_000
    wave = 0.1 * np.random.default_rng(1).standard_normal(t.size) if kind == "noise" else 0.3 * np.sin(2 * np.pi * 440 * t)
    with pytest.raises(AudioError, match="no speech found"):
        model.reconstruct(wave.astype(np.float32), sample_rate=16_000)
    path = write_audio(tmp_path / f"{kind}.wav", wave, 16_000)
    result = run_cli("reconstruct", str(path), "-o", str(tmp_path / "face.png"))
    assert result.returncode == 1 and f"{kind}.wav: skipped: no speech found" in result.stderr
    assert not (tmp_path / "face.png").exists()


def test_a_minute_of_two_speakers_says_which_seconds_it_used(shared_data, model, tmp_path):
    from media import write_audio
    from speech2face import audio

    first, second = clips_of("Hector_Elizondo", 6), clips_of("Tinsel_Korey", 4)
    wave = np.concatenate([audio.decode_audio(p)[0] for p in first + second])  # 60 s: 36 s of him, 24 s of her
    result = model.reconstruct(wave, sample_rate=16_000)
    assert result.input_seconds == pytest.approx(60.0, abs=0.1)
    assert result.notes and "more than one voice" in result.notes[0]
    assert 4 <= len(result.spans) <= 6 and all(end <= 36.01 for _, end in result.spans)  # only his windows
    path = write_audio(tmp_path / "meeting.flac", wave, 16_000)
    cli = run_cli("reconstruct", str(path), "-o", str(tmp_path / "face.png"))
    assert cli.returncode == 0, cli.stderr
    assert "meeting.flac: used 0.0–6.0 s" in cli.stderr and "of 60.0 s" in cli.stderr and "more than one voice" in cli.stderr


def test_a_long_recording_of_one_voice_averages_its_windows(shared_data, model):
    from speech2face import audio

    clips = clips_of("Hector_Elizondo", 3)
    wave = np.concatenate([audio.decode_audio(p)[0] for p in clips])
    result = model.reconstruct(wave, sample_rate=16_000)
    assert result.spans == [(0.0, 6.0), (6.0, 12.0), (12.0, 18.0)] and result.notes == []
    singles = [model.reconstruct(p).descriptor for p in clips]
    center = model.center
    spread = np.mean([np.linalg.norm(s - result.descriptor) for s in singles])
    assert spread < np.mean([np.linalg.norm(s - center) for s in singles])  # between the windows, not beyond


# --- 4. bad flags: one line, exit 2 -----------------------------------------------------------------
@pytest.fixture(scope="module")
def speech_file(shared_data) -> Path:
    return sorted((PAIRS / "audio").glob("*.opus"))[2]


def test_bad_device_flags(speech_file, tmp_path):
    import torch

    line = one_line_error(run_cli("reconstruct", str(speech_file), "-o", str(tmp_path / "f.png"), "--device", "gpu"))
    assert "unknown device 'gpu'" in line
    if not torch.cuda.is_available():
        line = one_line_error(run_cli("reconstruct", str(speech_file), "-o", str(tmp_path / "f.png"), "--device", "cuda"))
        assert "no CUDA GPU" in line and "--device cpu" in line
    line = one_line_error(run_cli("normalize", str(PAIRS / "faces" / (speech_file.stem + ".jpg")), "-o",
                                  str(tmp_path / "n.png"), "--device", "tpu"))
    assert "tpu" in line


def test_unwritable_output(speech_file):
    line = one_line_error(run_cli("reconstruct", str(speech_file), "-o", "/proc/nope.png"))
    assert line.startswith("speech2face reconstruct: error: /proc: cannot write output there")


def test_bad_and_busy_ports():
    assert "1–65535" in one_line_error(run_cli("serve", "--port", "99999"))
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        line = one_line_error(run_cli("serve", "--port", str(port)))
    assert f"cannot listen on 127.0.0.1:{port}" in line


# --- 5. paths as typed ------------------------------------------------------------------------------
def test_messages_name_inputs_as_typed(tmp_path):
    (tmp_path / "notes.wav").write_text("meeting notes, not audio\n" * 40)
    result = run_cli("reconstruct", "notes.wav", "-o", "out.png", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("notes.wav: skipped: not a readable audio file"), result.stderr  # named once
    assert str(tmp_path) not in result.stderr and "<_io" not in result.stderr and "Errno" not in result.stderr


# --- 8. the batch path ------------------------------------------------------------------------------
def test_batch_matches_one_by_one_and_keeps_going_past_bad_input(shared_data, model, tmp_path):
    from speech2face.errors import InputError

    clips = sorted((PAIRS / "audio").glob("*.opus"))[10:15]
    (tmp_path / "bad.wav").write_bytes(b"RIFF" + b"\0" * 100)
    results = model.reconstruct_each(clips[:2] + [tmp_path / "bad.wav"] + clips[2:])
    assert isinstance(results[2], InputError) and "bad.wav" in str(results[2])
    good = results[:2] + results[3:]
    for clip, batched in zip(clips, good):
        single = model.reconstruct(clip)
        assert np.allclose(single.descriptor, batched.descriptor, atol=1e-4)
        assert np.abs(single.image.astype(int) - batched.image.astype(int)).max() <= 2


def test_available_cpus_follows_affinity():
    from speech2face.runtime import available_cpus

    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity on this platform")
    code = "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); " \
           "from speech2face.runtime import available_cpus; print(available_cpus())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "1" and 1 <= available_cpus() <= (os.cpu_count() or 1)


def test_inference_runs_one_intra_op_thread_and_restores_the_callers(shared_data):
    import torch

    import speech2face

    model = speech2face.load_model(device="cpu", engine="torch")
    seen = []
    hook = model.voice.encoder.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model.reconstruct(sorted((PAIRS / "audio").glob("*.opus"))[0])
        assert seen == [1] and torch.get_num_threads() == 2 and model.workers >= 1
    finally:
        hook.remove()
        torch.set_num_threads(before)


# --- 10. make: no reinstall when nothing changed ---------------------------------------------------
def test_make_run_does_not_reinstall_when_nothing_changed():
    stamp = REPO / ".venv" / ".installed"
    if shutil.which("make") is None or not stamp.is_file():
        pytest.skip("needs make and an environment installed by `make` (.venv/.installed)")
    if any((REPO / f).stat().st_mtime > stamp.stat().st_mtime for f in ("pyproject.toml", "scripts/install.sh")):
        pytest.skip("pyproject.toml or scripts/install.sh changed since the last install: make rightly reinstalls")
    plan = subprocess.run(["make", "-n", "run"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "install.sh" not in plan and "speech2face reconstruct" in plan


def test_browser_tests_fail_rather_than_skip_under_ci(monkeypatch):
    from conftest import need_chromium

    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="cannot run under CI"):
        need_chromium()
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="chromium is not installed"):
        need_chromium()


# --- 11. help and output ----------------------------------------------------------------------------
def test_every_flag_has_help_with_its_default():
    import argparse

    from speech2face.cli import COMMANDS, command_parser

    for name, (module, _) in COMMANDS.items():
        if module is None:
            continue
        sub = command_parser(name)
        text = sub.format_help()
        formatter = sub._get_formatter()
        one_required = {a for g in sub._mutually_exclusive_groups if g.required for a in g._group_actions}
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction) or not action.option_strings:
                continue
            flag = action.option_strings[-1]
            assert action.help, f"{name} {flag} has no help"
            if not (action.required or action in one_required or isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction))):
                assert "default" in formatter._get_help_string(action), f"{name} {flag}: no default in its help"
        assert "%(default)" not in text
    evaluate = command_parser("evaluate").format_help()
    assert "XDG_CACHE_HOME" in evaluate and "image_scores.jsonl" in evaluate


def test_contact_sheet_labels_are_wrapped_not_cut():
    from speech2face.sheets import caption_lines, contact_sheet

    name = "1011Tinsel_Korey_9jq2l0AMcNA_0000003"
    lines = caption_lines(name, 26)
    assert "".join(lines) == name and all(len(ln) <= 26 for ln in lines) and len(lines) == 2
    long = "x" * 200
    lines = caption_lines(long, 26)
    assert len(lines) == 3 and "..." in "".join(lines)
    faces = [np.full((224, 224, 3), 200, np.uint8)] * 3
    sheet = contact_sheet(faces, [name, "short", long])
    assert sheet.size == (3 * 160, 160 + 2 + 3 * 12)


def test_help_and_bad_flags_do_not_import_torch():
    """`--help` and a bad flag answer before torch is imported (it takes ~0.9 s)."""
    code = ("import sys\nfrom speech2face.cli import main\n"
            "for argv in (['--help'], ['reconstruct', '--help'], ['train', '--help'], ['evaluate', '--help'], "
            "['reconstruct', 'a.wav', '-o', 'x.png', '--variations', 'abc'], ['nonsense']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip().splitlines()[-1] == "False", r.stderr[-2000:]
