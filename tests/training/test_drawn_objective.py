"""Training through the drawing: the objective on hand-computed examples, gradients from the dlib
descriptor of the drawing back to the voice head, kill-and-resume of a 'drawn' run."""

from __future__ import annotations

import math

import numpy as np
import torch

from speech2face.models.losses import balanced_cross_entropy, ranking_loss

from conftest import embed, speech_clip
from speech2face.models.voice_encoder import VoiceEncoder, VoiceEncoderConfig
from speech2face.training.drawn_objective import DrawnObjective, DrawnObjectiveConfig, ridge_start


def test_ranking_loss_on_hand_computed_examples():
    pred = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])  # cosines: row 0 → (1, 0, −1), row 1 → (0, 1, 0)
    positive = torch.tensor([[True, False, False], [False, True, True]])
    t = 0.5
    expect0 = -math.log(math.exp(2) / (math.exp(2) + 1 + math.exp(-2)))
    expect1 = -math.log((math.exp(2) + 1) / (1 + math.exp(2) + 1))  # two positives: their sum counts
    got = ranking_loss(pred, bank, positive, t)
    assert math.isclose(got.item(), (expect0 + expect1) / 2, rel_tol=1e-5)
    weighted = ranking_loss(pred, bank, positive, t, weight=torch.tensor([3.0, 1.0]))
    assert math.isclose(weighted.item(), (3 * expect0 + expect1) / 4, rel_tol=1e-5)


def test_balanced_cross_entropy_counts_every_class_alike():
    logits = torch.log(torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.9, 0.1], [0.2, 0.8]]))
    labels = torch.tensor([0, 0, 0, 1])
    counts = torch.tensor([3.0, 1.0])
    weight = counts.sum() / counts / 2  # (2/3, 2)
    got = balanced_cross_entropy(logits, labels, weight)
    # each class's mean loss, averaged over the classes: the one class-1 sample weighs as much as the three others
    expect = (-math.log(0.9) + -math.log(0.8)) / 2
    assert math.isclose(got.item(), expect, rel_tol=1e-5)


def test_ridge_start_solves_the_normal_equations():
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(50, 4)), dtype=torch.float32)
    w = torch.tensor(rng.normal(size=(4, 3)), dtype=torch.float32)
    y = x @ w + 0.5
    linear = torch.nn.Linear(4, 3)
    ridge_start(linear, x, y, 1e-6)
    torch.testing.assert_close(linear(x), y, atol=1e-3, rtol=0)


def _real_pairs(n: int) -> dict:
    """n real pairs: GE2E embeddings of their clips and dlib descriptors of their faces."""
    import csv

    from conftest import PAIRS, need_shared_data
    from speech2face import audio
    from speech2face.faces import FaceAnalyzer
    from speech2face.models.speaker_encoder import speaker_encoder

    need_shared_data()
    with open(PAIRS / "pairs.csv", newline="") as f:
        rows = list(csv.DictReader(f))[::131][:n]
    analyzer = FaceAnalyzer()
    spk = [embed(speech_clip(PAIRS / "audio" / f"{r['stem']}.opus")) for r in rows]
    desc = [analyzer.descriptor(PAIRS / "faces" / f"{r['stem']}.jpg") for r in rows]
    return {"features": torch.tensor(np.stack(spk))[:, None], "desc": torch.tensor(np.stack(desc)),
            "speakers": [r["identity"] for r in rows]}


def test_gradients_reach_the_voice_head_through_decoder_and_descriptor():
    from speech2face.pipeline import load_decoder

    data = _real_pairs(6)
    train = np.arange(6)
    model = VoiceEncoder(VoiceEncoderConfig(head_hidden=()))
    ridge_start(model.net.mlp[0], data["features"][:, 0], data["desc"], 1.0)
    objective = DrawnObjective(DrawnObjectiveConfig(refine=True), load_decoder().decoder, data, train)
    terms = objective(model(data["features"][:, 0]), train)
    # only the rank term reaches the head through decoder + dlib; check it on its own
    terms["rank"].backward()
    grad = model.net.mlp[0].weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert all(p.grad is None for p in objective.drawn.parameters())  # decoder and dlib stay frozen
    # and a few steps on it lower the loss: the gradient points somewhere useful
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = None
    for _ in range(8):
        loss = objective(model(data["features"][:, 0]), train)["total"]
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert objective(model(data["features"][:, 0]), train)["total"].item() < first
