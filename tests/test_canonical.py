"""Canonical portraits: the closed-mouth and plain-background measures, on real talking frames
and on what the shipped decoder draws; the mouth-closing of training landmarks; and the portrait
decoder's training, killed and resumed, on real shards."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import PAIRS, link_paired_folder
from speech2face.evaluation import canonical


def test_inner_lip_gap_of_closed_and_open_mouths():
    lm = np.zeros((68, 2))
    lm[48], lm[54] = (40, 100), (80, 100)  # mouth 40 px wide
    lm[[61, 62, 63], 1] = 99
    lm[[67, 66, 65], 1] = 99.5
    assert canonical.inner_lip_gap(lm) == pytest.approx(0.5 / 40) and canonical.mouth_closed(lm)
    lm[[67, 66, 65], 1] = 111  # lips 12 px apart
    assert canonical.inner_lip_gap(lm) == pytest.approx(12 / 40) and not canonical.mouth_closed(lm)


def test_background_measure_on_a_plain_and_a_busy_frame():
    plain = np.full((224, 224, 3), 236, np.uint8)
    plain[60:200, 60:164] = (150, 110, 90)  # a head in the middle does not count
    assert canonical.background_stats(plain)["plain_light"]
    busy = np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8)
    dark = np.full((224, 224, 3), 40, np.uint8)
    assert not canonical.background_stats(busy)["plain_light"] and not canonical.background_stats(dark)["plain_light"]


def test_close_mouths_closes_talking_mouths_only(shared_data):
    from speech2face.faces import FaceAnalyzer
    from speech2face.training.face_decoder import close_mouths

    analyzer = FaceAnalyzer()
    gaps, landmarks = [], []
    for path in sorted((PAIRS / "faces").glob("*.jpg"))[:40]:
        lm = analyzer.analyze(path).portrait_landmarks68
        landmarks.append(lm)
        gaps.append(canonical.inner_lip_gap(lm))
    lm = torch.tensor(np.stack(landmarks))
    closed = close_mouths(lm, gap=0.02).numpy()
    after = np.array([canonical.inner_lip_gap(x) for x in closed])
    gaps = np.array(gaps)
    assert (gaps > 0.1).sum() >= 10  # real talking frames: many open mouths
    assert (after < canonical.MOUTH_CLOSED_BELOW).all() and (after[gaps > 0.1] < 0.03).all()  # every one closed
    assert np.allclose(closed[:, :48], lm.numpy()[:, :48], atol=0.5 * 40) and np.allclose(closed[:, 17:48], lm.numpy()[:, 17:48])
    x = lm.numpy()
    width = np.linalg.norm(x[:, 54] - x[:, 48], axis=1)
    untouched = ((x[:, [67, 66, 65], 1] - x[:, [61, 62, 63], 1]) <= 0.02 * width[:, None]).all(axis=1)  # lips together
    assert untouched.any()
    assert np.allclose(closed[untouched], lm.numpy()[untouched])


def test_shipped_decoder_draws_closed_mouths_on_plain_backgrounds(shared_data):
    """Real talking frames mostly fail both measures; the drawings made from the same photos'
    descriptors pass them."""
    from speech2face.faces import FaceAnalyzer, load_image
    from speech2face.pipeline import load_decoder

    renderer = load_decoder(device="cpu")
    analyzer = FaceAnalyzer()
    photos = sorted((PAIRS / "faces").glob("*.jpg"))[100:124]
    drawn_closed, drawn_plain, true_closed, true_plain = [], [], [], []
    for path in photos:
        image = load_image(path)
        true_closed.append(canonical.mouth_closed(analyzer.detect(image)[0].landmarks68))
        true_plain.append(canonical.background_stats(image)["plain_light"])
        face, _ = renderer.normalize(image)
        found = analyzer.detect(face)
        assert len(found) == 1
        drawn_closed.append(canonical.mouth_closed(found[0].landmarks68))
        drawn_plain.append(canonical.background_stats(face)["plain_light"])
    assert np.mean(true_closed) < 0.7 and np.mean(true_plain) < 0.2
    assert np.mean(drawn_closed) >= 0.95 and np.mean(drawn_plain) >= 0.9


def test_portrait_decoder_training_resumes_after_a_kill(shared_data, tmp_path):
    """prepare 40 real pairs; train the portrait decoder; kill it in the refiner stage; the same
    command resumes from the checkpoint (and reuses the cached head masks) and exports weights
    that draw a 224 px portrait."""
    with open(PAIRS / "pairs.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:40]
    folder = link_paired_folder(tmp_path / "pairs", rows)
    shards, run = tmp_path / "shards", tmp_path / "run"
    subprocess.run([sys.executable, "-m", "speech2face", "prepare", str(folder), "--out", str(shards), "--quiet"],
                   check=True, capture_output=True, timeout=300)
    command = [sys.executable, "-m", "speech2face.training.face_decoder", str(shards), "--out", str(run),
               "--refiner-minutes", "0.6", "--batch-size", "2", "--export", str(tmp_path / "dec.safetensors")]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while time.time() < deadline:
        if (run / "checkpoint.pt").is_file() and torch.load(run / "checkpoint.pt", weights_only=False).get("step", 0) > 0:
            break
        time.sleep(0.5)
    else:
        first.kill()
        pytest.fail("no refiner checkpoint within 4 minutes: " + first.communicate()[0][-2000:])
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert not (tmp_path / "dec.safetensors").exists()
    second = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    assert "resumed at step" in second.stdout and "cut " not in second.stdout  # head masks came from the cache
    from speech2face.pipeline import load_decoder

    renderer = load_decoder(tmp_path / "dec.safetensors", "cpu")
    assert renderer.decoder.config.portrait and renderer.decoder.config.alpha
    face = renderer.decode(np.zeros(128, np.float32) + 0.05)[0]
    assert face.shape == (224, 224, 3)
    assert json.loads((run / "config.json").read_text())["close_mouths"] is True


def test_head_masks_come_from_grabcut_within_the_plausible_region(shared_data):
    """GrabCut on a real portrait keeps the face and cuts background away; the plausible region
    holds every landmark and none of the frame's top corners."""
    from speech2face.faces import FaceAnalyzer
    from speech2face.training.heads import head_mask, plausible_region

    aligned = FaceAnalyzer().analyze(sorted((PAIRS / "faces").glob("*.jpg"))[8], size=128)
    mask = head_mask(aligned.portrait, aligned.portrait_landmarks68)
    lm = aligned.portrait_landmarks68.round().astype(int).clip(0, 127)
    assert mask[lm[17:, 1], lm[17:, 0]].mean() > 0.95  # brows, eyes, nose, mouth are head
    assert 0.1 < mask.mean() < 0.8
    region = plausible_region(torch.tensor(aligned.portrait_landmarks68)[None], 128)[0, 0].numpy()
    assert region[lm[:, 1], lm[:, 0]].all() and not region[:8, :8].any() and not region[:8, -8:].any()
