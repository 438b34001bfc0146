"""Voice encoder and training: shapes of both variants, the loss on hand-computed examples,
overfitting a handful of real pairs, kill-and-resume equivalence, a 2-process torchrun run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from speech2face.models.losses import LossConfig, distillation, speech2face_loss
from speech2face.models.voice_encoder import VoiceEncoder, VoiceEncoderConfig
from speech2face.training.voice import ensemble_loss

from conftest import PAIRS, link_paired_folder


def test_paper_encoder_shapes_follow_table_1():
    model = VoiceEncoder(VoiceEncoderConfig(variant="paper")).eval()
    assert model.input_kind == "spec"
    convs = [m for m in model.net.convs if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 128, 256, 512, 512, 512]
    assert all(c.kernel_size == (4, 4) for c in convs) and [c.stride[0] for c in convs][-2:] == [2, 2]
    pools = [m for m in model.net.convs if isinstance(m, torch.nn.MaxPool2d)]
    assert len(pools) == 4 and all(p.kernel_size == (2, 1) for p in pools)  # time only
    assert model.net.fc[0].out_features == 4096 and model.net.fc[2].out_features == 128
    with torch.no_grad():
        assert model(torch.randn(1, 2, 298, 257)).shape == (1, 128)  # 3 s clip; 6 s works the same
    vgg = VoiceEncoder(VoiceEncoderConfig(variant="paper", descriptor_dim=4096, paper_convs=((8, 1, True), (8, 2, False))))
    assert vgg(torch.randn(2, 2, 598, 257)).shape == (2, 4096)


def test_speaker_encoder_shapes():
    model = VoiceEncoder()
    assert model.config.variant == "speaker" and model.input_kind == "spk"
    assert model(torch.randn(5, 256)).shape == (5, 128)
    with pytest.raises(ValueError, match="unknown voice encoder variant"):
        VoiceEncoder(VoiceEncoderConfig(variant="gan"))


def test_speaker_ensemble_trains_each_member_and_predicts_their_mean():
    model = VoiceEncoder(VoiceEncoderConfig(members=3, dropout=0.0))
    x = torch.randn(5, 256)
    each = model.train()(x)
    assert each.shape == (3, 5, 128)  # one prediction per member, each with its own loss
    torch.testing.assert_close(model.eval()(x), each.mean(0))
    a, b = (m[0].weight for m in model.net.members[:2])
    assert not torch.equal(a, b)  # independently initialised
    target = torch.randn(5, 128)
    terms = ensemble_loss(each, target, None, None, LossConfig())
    expected = torch.stack([speech2face_loss(p, target)["total"] for p in each]).mean()
    torch.testing.assert_close(terms["total"], expected)


def test_loss_on_hand_computed_examples():
    pred = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    target = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    terms = speech2face_loss(pred, target, config=LossConfig(l2_weight=0.025))
    # L1: mean |diff| = (1 + 1 + 0 + 1) / 4; L2 on unit vectors: (2 + 0) / 2
    assert terms["l1"].item() == pytest.approx(0.75)
    assert terms["l2"].item() == pytest.approx(1.0)
    assert terms["total"].item() == pytest.approx(0.75 + 0.025 * 1.0)
    # f_dec: errors are measured after the decoder's first layer
    double = speech2face_loss(pred, target, f_dec=lambda x: 2 * x)
    assert double["l1"].item() == pytest.approx(1.5)
    # distillation with T = 2: CE(softmax(t / 2), log_softmax(s / 2)) = log 2 for equal logits
    assert distillation(torch.zeros(1, 2), torch.zeros(1, 2), 2.0).item() == pytest.approx(np.log(2))
    t = torch.tensor([[2.0, 0.0]])
    p_t = torch.softmax(t / 2, -1)
    expected = -(p_t * torch.log_softmax(torch.tensor([[0.0, 2.0]]) / 2, -1)).sum()
    assert distillation(torch.tensor([[0.0, 2.0]]), t, 2.0).item() == pytest.approx(expected.item())
    with_cls = speech2face_loss(pred, target, classifier=lambda d: d, config=LossConfig(distill_weight=200.0))
    assert with_cls["total"].item() == pytest.approx(0.775 + 200 * with_cls["distill"].item())


def test_overfits_a_handful_of_real_pairs(voice_shards):
    from speech2face.data import ShardDataset

    samples = [s for s in ShardDataset(voice_shards, fields=["spk", "desc"])][:8]
    x = torch.from_numpy(np.stack([s["spk"] for s in samples]))
    y = torch.from_numpy(np.stack([s["desc"] for s in samples]))
    torch.manual_seed(0)
    model = VoiceEncoder(VoiceEncoderConfig(dropout=0.0))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = speech2face_loss(model(x), y)["total"].item()
    for _ in range(300):
        loss = speech2face_loss(model(x), y)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    pred = model(x).detach()
    cos = torch.nn.functional.cosine_similarity(pred[:, None], y[None], dim=-1)  # (8, 8)
    assert (cos.argmax(1) == torch.arange(8)).all()  # every voice maps to its own face
    assert loss.item() < 0.15 * first


@pytest.fixture(scope="session")
def voice_shards(shared_data, tmp_path_factory) -> Path:
    """24 real pairs of 24 speakers as shards."""
    import csv

    from speech2face.data import PairedFolder, prepare

    root = tmp_path_factory.mktemp("voice_pairs")
    with open(PAIRS / "pairs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    chosen, seen = [], set()
    for r in rows:
        if r["identity"] not in seen:
            chosen.append(r)
            seen.add(r["identity"])
        if len(chosen) == 24:
            break
    link_paired_folder(root, chosen)
    out = tmp_path_factory.mktemp("voice_shards")
    prepare([PairedFolder(root)], out, shard_size=6, progress=False)
    return out


def _train_cmd(shards: Path, out: Path, epochs: int, objective: str = "speech2face") -> list[str]:
    cmd = [sys.executable, "-m", "speech2face", "train", str(shards), "--out", str(out), "--epochs", str(epochs),
           "--batch-size", "4", "--seed", "3"]
    if objective == "drawn":  # a linear head trained through the shipped decoder and dlib's network
        return cmd + ["--objective", "drawn", "--head", "linear"]
    return cmd + ["--decoder-weights", str(out / "no-decoder")]


def _final_weights(out: Path) -> dict:
    return torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["speech2face", "drawn"])
def test_kill_and_resume_reaches_the_same_weights(voice_shards, tmp_path, objective):
    epochs = 60 if objective == "speech2face" else 16
    straight = tmp_path / "straight"
    subprocess.run(_train_cmd(voice_shards, straight, epochs, objective), check=True, capture_output=True, timeout=600)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(voice_shards, killed, epochs, objective), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    metrics = killed / "metrics.jsonl"
    deadline = time.time() + 300
    kill_after = min(10, epochs // 2)
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < kill_after):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(metrics.read_text().splitlines())
    assert kill_after <= done_before < epochs, "the run was not killed midway"
    subprocess.run(_train_cmd(voice_shards, killed, epochs, objective), check=True, capture_output=True, timeout=600)
    a, b = _final_weights(straight), _final_weights(killed)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(voice_shards, tmp_path):
    """`torchrun --no-python … speech2face train …`: two gloo processes on the CPU share the data,
    and the weights record the `speech2face train` line as their reproduce line."""
    from speech2face.weights import load_weights

    program = shutil.which("speech2face", path=str(Path(sys.executable).parent)) or shutil.which("speech2face")
    if program is None:
        pytest.skip("the speech2face command is not installed (pip install -e .)")
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "--no-python",
           program, "train", str(voice_shards), "--out", str(out), "--epochs", "3",
           "--batch-size", "4", "--device", "cpu", "--decoder-weights", str(out / "no-decoder"),
           "--export", str(out / "voice.safetensors")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if "epoch" in r and "stage" not in r]
    assert [r["epoch"] for r in epochs] == [0, 1, 2]  # rank 0 logs once per epoch
    assert epochs[0]["world_size"] == 2
    data = torch.load(out / "pairs_spk_all.pt", weights_only=True)  # written once, by rank 0
    split = np.array(data["split"])
    train, val = set(np.flatnonzero(split == "train").tolist()), np.flatnonzero(split == "val")
    assert len(data["speakers"]) == 24  # every pair loaded, not one rank's half
    parts = [set(json.loads((out / f"rank_samples_{r}.json").read_text())["samples"]) for r in (0, 1)]
    assert parts[0] | parts[1] == train  # together the whole train split …
    assert len(parts[0] & parts[1]) <= 1 and len(parts[0]) == len(parts[1])  # … disjoint but for padding, equal steps
    assert epochs[0]["train_samples"] == len(train) and epochs[0]["samples_per_rank"] == -(-len(train) // 2)
    assert epochs[0]["val_samples"] == len(val) > 0  # validation on all of val
    assert (out / "voice.safetensors").is_file() and json.loads((out / "config.json").read_text())["epochs"] == 3
    assert load_weights(out / "voice.safetensors")[1]["reproduce"].startswith(f"speech2face train {voice_shards} ")


@pytest.mark.slow
def test_release_fit_on_every_pair_is_reproduced_by_its_recorded_command(voice_shards, tmp_path):
    """--fit-on all trains on every pair (no val left: the last epoch and a fixed exaggeration);
    the weights record the exact command, and running that command again from nothing writes a
    file with the same sha256."""
    import shlex

    from speech2face.weights import load_weights

    out, export = tmp_path / "release", tmp_path / "voice.safetensors"
    cmd = ["speech2face", "train", str(voice_shards), "--out", str(out), "--epochs", "3", "--batch-size", "4",
           "--seed", "1", "--decoder-weights", str(tmp_path / "no-decoder"), "--fit-on", "all",
           "--exaggeration", "1.25", "--export", str(export)]
    run = lambda argv: subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, timeout=600)  # noqa: E731
    first = run(cmd)
    assert first.returncode == 0, first.stderr[-2000:]
    _, config = load_weights(export)
    assert config["reproduce"] == shlex.join(cmd)
    assert config["exaggeration"] == 1.25 and config["training"]["fit_on"] == "all"
    assert config["training"]["n_train"] == 24  # train, val and dev speakers alike
    sha = export.with_name(export.name + ".sha256").read_text().split()[0]
    shutil.rmtree(out)
    export.unlink()
    again = run(shlex.split(config["reproduce"]))
    assert again.returncode == 0, again.stderr[-2000:]
    assert export.with_name(export.name + ".sha256").read_text().split()[0] == sha
    no_factor = run(cmd[:-4] + ["--out", str(tmp_path / "x")])
    assert no_factor.returncode != 0 and "--fit-on all needs --exaggeration" in no_factor.stderr


def test_the_torch_free_train_config_matches_the_models_defaults():
    from dataclasses import asdict

    from speech2face.training.voice_config import VoiceTrainConfig

    cfg = VoiceTrainConfig()
    assert cfg.loss == asdict(LossConfig(distill_weight=0.1))
    assert cfg.encoder == VoiceEncoderConfig().to_dict()
