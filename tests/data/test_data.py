"""Data sources and shard preparation on real material: paired folder, AVSpeech videos, VoxCeleb
layout, face-only folders; skips with reasons; resume, kill-and-resume, split across machines;
the shard reader across loader workers and ranks."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from speech2face import audio
from speech2face.data import (AVSpeech, FaceFolder, PairedFolder, ShardDataset, VoxCeleb, iter_shard, open_source,
                              prepare)
from speech2face.data.shards import list_shards
from speech2face.models.voice_encoder import spectrogram

from conftest import embed, PAIRS, UTKFACE
from media import write_audio, write_video

REPO = Path(__file__).resolve().parents[2]


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(src, dst)


@pytest.fixture()
def paired_folder(tmp_path, pair_rows) -> Path:
    """10 real pairs (linked, not copied) plus one of each kind of broken item."""
    root = tmp_path / "pairs"
    rows = [r for r in pair_rows if r["source"] == "voxceleb1"][:5] + [r for r in pair_rows if r["source"] == "avspeech"][:5]
    for r in rows:
        _link(PAIRS / "audio" / f"{r['stem']}.opus", root / "audio" / f"{r['stem']}.opus")
        _link(PAIRS / "faces" / f"{r['stem']}.jpg", root / "faces" / f"{r['stem']}.jpg")
    face = PAIRS / "faces" / f"{rows[0]['stem']}.jpg"
    speech = PAIRS / "audio" / f"{rows[0]['stem']}.opus"
    bad = {
        "zz_empty": lambda: ((root / "audio" / "zz_empty.wav").write_bytes(b""), _link(face, root / "faces" / "zz_empty.jpg")),
        "zz_text": lambda: ((root / "audio" / "zz_text.wav").write_text("not audio\n" * 50), _link(face, root / "faces" / "zz_text.jpg")),
        "zz_short": lambda: (write_audio(root / "audio" / "zz_short.wav", np.full(3200, 0.2, np.float32), 16000), _link(face, root / "faces" / "zz_short.jpg")),
        "zz_silent": lambda: (write_audio(root / "audio" / "zz_silent.wav", np.zeros(64000, np.float32), 16000), _link(face, root / "faces" / "zz_silent.jpg")),
        "zz_noface": lambda: (_link(speech, root / "audio" / "zz_noface.opus"),
                              Image.new("RGB", (224, 224), (90, 140, 200)).save(root / "faces" / "zz_noface.jpg")),
        "zz_nofile": lambda: _link(speech, root / "audio" / "zz_nofile.opus"),
    }
    for make in bad.values():
        make()
    with open(root / "pairs.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["stem", "source", "identity", "gender", "extra_column"])
        writer.writeheader()
        for r in rows:
            writer.writerow({"stem": r["stem"], "source": r["source"], "identity": r["identity"], "gender": r["gender"]})
        for stem in bad:
            writer.writerow({"stem": stem, "source": "test", "identity": stem})
    return root


def test_paired_folder_prepare_skips_with_reasons_and_resumes(paired_folder, tmp_path):
    out = tmp_path / "shards"
    summary = prepare([PairedFolder(paired_folder)], out, shard_size=4, progress=False)
    assert summary["items_listed"] == 16 and summary["complete"]
    assert summary["written"] == 10 and summary["skipped"] == 6
    reasons = {s["key"]: s["reason"] for s in summary["skipped_items"]}
    assert "empty" in reasons["zz_empty"]
    assert "not a readable audio file" in reasons["zz_text"]
    assert "too short" in reasons["zz_short"]
    assert "silent" in reasons["zz_silent"]
    assert "no face found" in reasons["zz_noface"]
    assert "no such file" in reasons["zz_nofile"]
    assert json.loads((out / "index.json").read_text())["skipped"] == 6
    # every written sample holds every file, with the documented shapes
    samples = [s for shard in list_shards(out) for s in iter_shard(shard)]
    assert len(samples) == 10
    s = samples[0]
    assert s["spec"].shape == (2, 598, 257) and s["spec"].dtype == np.float16
    assert s["spk"].shape == (256,) and s["desc"].shape == (128,) and s["lm68"].shape == (68, 2)
    assert s["face"].shape == (224, 224, 3) and s["audio"].shape == (96_000,)
    assert s["json"]["has_audio"] and s["json"]["meta"]["stem"]
    # the stored clip is 16-bit FLAC: quantisation noise only, amplified near 0 by |x|^0.3
    diff = np.abs(s["spec"].astype(np.float32) - spectrogram(s["audio"]).numpy())
    assert diff.mean() < 2e-3 and np.percentile(diff, 99) < 0.02
    # a second run does no work
    again = prepare([PairedFolder(paired_folder)], out, shard_size=4, progress=False)
    assert again["this_run"] == {**again["this_run"], "shards_written": 0, "items": 0}
    assert again["written"] == 10


def test_split_across_machines(paired_folder, tmp_path):
    out = tmp_path / "split"
    first = prepare([PairedFolder(paired_folder)], out, shard_size=3, shard_id=0, num_shards=2, progress=False)
    assert not first["complete"] and first["shards_complete"] == 3  # shards 0, 2, 4 of 6
    second = prepare([PairedFolder(paired_folder)], out, shard_size=3, shard_id=1, num_shards=2, progress=False)
    assert second["complete"] and second["written"] == 10


def test_kill_and_resume(paired_folder, tmp_path):
    """kill -9 in the middle; no corrupt shard is left; a re-run finishes the rest."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "speech2face", "prepare", str(paired_folder), "--out", str(out),
           "--shard-size", "2", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "shard-000002.json").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "shard-000002.json").exists(), "the run did not get far enough to be killed midway"
    assert not (out / "shard-000007.json").exists(), "the run finished before it was killed"
    for tar_path in out.glob("shard-*.tar"):  # whatever is there under a final name is whole
        with tarfile.open(tar_path) as tar:
            tar.getmembers()
    done_before = {p.name for p in out.glob("shard-*.json")}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "index.json").read_text())
    assert summary["complete"] and summary["written"] == 10 and summary["skipped"] == 6
    assert summary["this_run"]["shards_written"] == 8 - len(done_before)
    assert not list(out.glob("*.tmp"))


def test_avspeech_source_from_a_real_video(tmp_path, pair_rows, face_analyzer):
    """An MP4 built from a real face and real speech; a missing video; a range outside the video."""
    row = next(r for r in pair_rows if r["source"] == "voxceleb1")
    speech, rate, _, _ = audio.decode_audio(PAIRS / "audio" / f"{row['stem']}.opus")
    face = np.asarray(Image.open(PAIRS / "faces" / f"{row['stem']}.jpg").convert("RGB"))
    other = np.asarray(Image.open(sorted((PAIRS / "faces").glob("*.jpg"))[7]).convert("RGB"))
    frame = np.full((240, 480, 3), 128, np.uint8)
    frame[8:232, 8:232], frame[8:232, 248:472] = other, face  # the speaker is on the right
    videos = tmp_path / "videos"
    videos.mkdir()
    silence = np.zeros(rate, np.float32)
    write_video(videos / "vidAAAAAAA.mp4", frame, np.concatenate([silence, speech, silence]), rate)
    csv_path = tmp_path / "avspeech_test.csv"
    csv_path.write_text(
        "vidAAAAAAA,1.000000,7.000000,0.75,0.5\n"
        "vidMISSING,0.000000,3.000000,0.5,0.5\n"
        "vidAAAAAAA,20.000000,23.000000,0.75,0.5\n"
    )
    source = open_source(str(csv_path), videos=str(videos))
    assert isinstance(source, AVSpeech)
    out = tmp_path / "av"
    summary = prepare([source], out, progress=False)
    assert summary["written"] == 1 and summary["skipped"] == 2
    reasons = sorted(s["reason"] for s in summary["skipped_items"])
    assert "lies outside the video" in reasons[0] and "video not found" in reasons[1]
    (sample,) = list(iter_shard(list_shards(out)[0]))
    # the right person was chosen and the right stretch of audio was cut
    true_desc = face_analyzer.descriptor(face)
    assert np.linalg.norm(sample["desc"] - true_desc) < 0.3
    expected = embed(audio.fix_length(speech, 96_000))
    assert float(sample["spk"] @ expected) > 0.95
    assert abs(sample["json"]["speech_seconds"] - 6.0) < 0.1
    assert sample["json"]["meta"]["face_x"] == 0.75


def test_voxceleb_layout(tmp_path, pair_rows):
    rows = [r for r in pair_rows if r["source"] == "voxceleb1"][:2]
    root = tmp_path / "vox"
    for i, r in enumerate(rows):
        wave, rate, _, _ = audio.decode_audio(PAIRS / "audio" / f"{r['stem']}.opus")
        write_audio(root / "wav" / r["vox1_id"] / f"video{i}" / "00001.wav", wave, rate)
        _link(PAIRS / "faces" / f"{r['stem']}.jpg", root / "faces" / r["vox1_id"] / f"video{i}" / "0001.jpg")
    write_audio(root / "wav" / "id99999" / "videoX" / "00001.wav", wave, rate)  # no face images for it
    source = open_source(str(root), meta=str(PAIRS.parent / "meta" / "vox1_meta.csv"))
    assert isinstance(source, VoxCeleb)
    summary = prepare([source], tmp_path / "vox_out", progress=False)
    assert summary["written"] == 2 and summary["skipped"] == 1
    samples = [s for shard in list_shards(tmp_path / "vox_out") for s in iter_shard(shard)]
    assert {s["json"]["meta"]["gender"] for s in samples} <= {"m", "f"}
    assert {s["json"]["speaker"] for s in samples} == {r["vox1_id"] for r in rows}


def test_face_only_folders(tmp_path, shared_data):
    root = tmp_path / "utk"
    with open(UTKFACE / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:4]
    for r in rows:
        _link(UTKFACE / "faces" / r["file"], root / "faces" / r["file"])
    with open(root / "labels.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plain = tmp_path / "plain"
    for p in sorted((PAIRS / "faces_without_audio").glob("*.jpg"))[:3]:
        _link(p, plain / p.name)
    sources = [open_source(f"faces:{root}"), open_source(str(plain))]
    assert all(isinstance(s, FaceFolder) for s in sources)
    summary = prepare(sources, tmp_path / "faces_out", progress=False)
    assert summary["written"] + summary["skipped"] == 7 and summary["written"] >= 5
    assert summary["written_with_audio"] == 0
    samples = [s for shard in list_shards(tmp_path / "faces_out") for s in iter_shard(shard)]
    assert all("spec" not in s and s["desc"].shape == (128,) for s in samples)
    assert any(s["json"]["meta"].get("race") for s in samples)


def test_shard_dataset_splits_across_workers_and_ranks(tmp_path, paired_folder, monkeypatch):
    from torch.utils.data import DataLoader

    out = tmp_path / "reader"
    prepare([PairedFolder(paired_folder)], out, shard_size=2, progress=False)
    all_keys = sorted(s["__key__"] for shard in list_shards(out) for s in iter_shard(shard, fields={"json"}))
    assert len(all_keys) == 10
    dataset = ShardDataset(out, fields=["spk", "desc"])
    loader = DataLoader(dataset, batch_size=None, num_workers=2)
    keys = [s["__key__"] for s in loader]
    assert sorted(keys) == all_keys  # each sample once, none lost
    first = next(iter(dataset))
    assert set(first) == {"__key__", "json", "spk", "desc"}  # only the fields asked for are decoded
    # asked to (by_rank): two ranks (by shard) and, with more consumers than shards, by sample
    import speech2face.data.shards as shards_mod

    for world in (2, 16):
        seen = []
        for rank in range(world):
            monkeypatch.setattr(shards_mod, "_rank_and_world", lambda r=rank, w=world: (r, w))
            part = [s["__key__"] for s in ShardDataset(out, fields=["desc"], by_rank=True)]
            assert len(part) < len(all_keys)
            seen += part
        assert sorted(seen) == all_keys


def test_shard_dataset_reads_everything_in_each_process_by_default(tmp_path, paired_folder, monkeypatch):
    """Under torchrun (rank and world in the environment, torch.distributed initialised) a plain
    ShardDataset still yields every sample once: no caller wants a silent rank split."""
    import speech2face.data.shards as shards_mod

    out = tmp_path / "reader"
    prepare([PairedFolder(paired_folder)], out, shard_size=2, progress=False)
    all_keys = sorted(s["__key__"] for shard in list_shards(out) for s in iter_shard(shard, fields={"json"}))
    for name, value in (("RANK", "1"), ("LOCAL_RANK", "1"), ("WORLD_SIZE", "4"), ("LOCAL_WORLD_SIZE", "4")):
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(shards_mod, "_rank_and_world", lambda: (1, 4))
    for shuffle in (False, True):
        keys = [s["__key__"] for s in ShardDataset(out, fields=["desc"], shuffle=shuffle)]
        assert sorted(keys) == all_keys


def test_shards_read_by_webdataset(tmp_path, paired_folder):
    wds = pytest.importorskip("webdataset")
    out = tmp_path / "wds"
    prepare([PairedFolder(paired_folder)], out, shard_size=5, progress=False)
    urls = [str(p) for p in list_shards(out)]
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode())
    assert len(samples) == 10
    assert samples[0]["spec.npy"].shape == (2, 598, 257) and samples[0]["json"]["speaker"]


def test_bad_sources(tmp_path):
    from speech2face.errors import InputError

    with pytest.raises(InputError, match="no such file"):
        open_source(str(tmp_path / "nothing"))
    (tmp_path / "bad.csv").write_text("abc,not-a-number\n")
    with pytest.raises(InputError, match="expected 'youtube_id,start,end,x,y'"):
        list(AVSpeech(tmp_path / "bad.csv").items())
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "pairs.csv").write_text("file,who\nx,y\n")
    with pytest.raises(InputError, match="needs a 'stem' column"):
        list(PairedFolder(tmp_path / "p").items())


def test_cli_prepare_reports_bad_source(tmp_path):
    result = subprocess.run([sys.executable, "-m", "speech2face", "prepare", str(tmp_path / "nowhere"), "--out",
                             str(tmp_path / "o")], capture_output=True, text=True)
    assert result.returncode == 2 and "no such file or folder" in result.stderr


@pytest.mark.parametrize("flags, message", [(["--shard-id", "5"], "--shard-id must be in [0, 1), got 5"),
                                            (["--workers", "0"], "--workers must be at least 1, got 0"),
                                            (["--workers", "0", "--ray", "local"], "--workers must be at least 1")])
def test_cli_prepare_reports_bad_settings(tmp_path, flags, message):
    """Impossible settings are one line and exit 2, before any work (Ray given no CPU would hang)."""
    if not (PAIRS / "pairs.csv").is_file():
        pytest.skip(f"no paired data at {PAIRS}")
    result = subprocess.run([sys.executable, "-m", "speech2face", "prepare", str(PAIRS), "--out", str(tmp_path / "o"),
                             "--limit", "2", *flags], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not list((tmp_path / "o").glob("shard-*"))
