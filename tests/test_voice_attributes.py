"""What the voice tells (calibrated), the drawing that shows it, and several faces per voice."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from speech2face.errors import InputError
from speech2face.evaluation.calibration import (binary_logits, expected_calibration_error, fit_temperature,
                                                interval_coverage, log_loss, reliability, softmax)
from speech2face.voice_attributes import SteerConfig, VoiceAttributes, describe

from conftest import PAIRS


# --- calibration on hand-computed examples ------------------------------------------------------
def test_reliability_bins_and_ece_by_hand():
    confidence = np.array([0.95, 0.95, 0.65, 0.65, 0.65, 0.15])
    correct = np.array([1, 0, 1, 1, 1, 0])
    bins = reliability(confidence, correct, bins=10)
    assert [(round(b["low"], 6), b["count"], b["accuracy"]) for b in bins] == [(0.1, 1, 0.0), (0.6, 3, 1.0), (0.9, 2, 0.5)]
    # ECE = 1/6·|0 − 0.15| + 3/6·|1 − 0.65| + 2/6·|0.5 − 0.95| = 0.025 + 0.175 + 0.15
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.35)
    assert expected_calibration_error(np.array([1.0, 1.0]), np.array([1, 1])) == 0.0  # 1.0 lands in the last bin


def test_log_loss_softmax_and_coverage_by_hand():
    p = softmax(np.array([[0.0, np.log(3.0)]]))
    assert p == pytest.approx(np.array([[0.25, 0.75]]))
    assert log_loss(p, np.array([1])) == pytest.approx(-np.log(0.75))
    assert binary_logits(np.array([2.0])).tolist() == [[0.0, 2.0]]
    assert interval_coverage(np.array([0, 0, 0, 0]), np.array([1, 1, 1, 1]), np.array([0.5, 1.0, 1.5, -1])) == 0.5


def test_temperature_recovers_an_overconfident_models_scale():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 3))
    labels = np.array([rng.choice(3, p=q) for q in softmax(logits / 2.5)])  # the truth is 2.5× less sure
    t = fit_temperature(logits, labels)
    assert 2.2 < t < 2.8
    assert log_loss(softmax(logits / t), labels) < log_loss(softmax(logits), labels)


# --- the shipped read-outs ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def attributes() -> VoiceAttributes:
    return VoiceAttributes.load()


def _embeddings(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, 256))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_read_gives_probabilities_and_an_interval(attributes):
    told = attributes.read(_embeddings(5))
    for t in told:
        assert t["gender"]["male"] + t["gender"]["female"] == pytest.approx(1, abs=2e-3)
        assert sum(t["ethnicity"][c] for c in attributes.classes) == pytest.approx(1, abs=5e-3)
        assert t["age"]["interval_80"][0] < t["age"]["years"] < t["age"]["interval_80"][1]
        assert t["ethnicity"]["drawn_as"] in attributes.classes
    assert attributes.config["calibrated_on"].startswith("val speakers")


def test_describe_in_words():
    told = {"gender": {"male": 0.97, "female": 0.03, "most_likely": "male"},
            "age": {"years": 37.4, "interval_80": [29.2, 46.0]},
            "ethnicity": {"white": 0.48, "black": 0.04, "asian": 0.15, "indian": 0.22, "other": 0.11,
                          "most_likely": "white", "drawn_as": "white"}}
    assert describe(told) == ("male voice (97 %), about 37 (80 %: 29–46), "
                              "ethnicity uncertain: white 48 %, Indian 22 %, Asian 15 %")
    told["gender"] = {"male": 0.6, "female": 0.4, "most_likely": "male"}
    told["ethnicity"] = {"white": 0.05, "black": 0.9, "asian": 0.02, "indian": 0.02, "other": 0.01,
                         "most_likely": "black", "drawn_as": "black"}
    assert describe(told).startswith("gender uncertain (male 60 %)")
    assert describe(told).endswith("ethnicity: Black (90 %)")


def test_steering_draws_the_voices_gender_and_group(attributes):
    c = attributes.ethnicity
    rng = np.random.default_rng(1)
    desc = c.mean + 0.8 * c.std * rng.standard_normal((40, 128))  # faces around the mean face
    emb = _embeddings(40, 1)
    steered = attributes.steer(desc, emb).astype(np.float64)
    group = attributes.drawn_group(emb)
    assert np.array_equal(np.argmax(c.probabilities(steered), axis=1), group)
    male = attributes.male_probability(emb) >= 0.5
    face_male = steered @ attributes.t["face.gender.weight"] + attributes.t["face.gender.bias"] > 0
    assert np.array_equal(face_male, male)
    again = attributes.steer(steered, emb).astype(np.float64)  # already there: barely moves
    assert np.linalg.norm(again - steered, axis=1).max() < 0.25 * np.linalg.norm(steered - desc, axis=1).mean()


def test_age_steering_moves_along_the_mean_faces_path_by_the_gap(attributes):
    c = attributes.ethnicity
    desc = c.mean + 0.5 * c.std * np.random.default_rng(2).standard_normal((6, 128))
    emb = _embeddings(6, 2)
    t = attributes.t
    moved = attributes.steer(desc, emb, SteerConfig(age_strength=0.5, rounds=0)).astype(np.float64)  # the age move alone
    gap = attributes.age(emb)[0] - (desc @ t["face.age.weight"] + t["face.age.bias"])  # years
    assert moved - desc == pytest.approx(0.5 * gap[:, None] * t["face.age.direction"][None], abs=1e-6)


def test_variations_first_is_the_prediction_then_steered_samples(attributes):
    c = attributes.ethnicity
    desc = (c.mean + 0.5 * c.std).astype(np.float32)
    emb = _embeddings(1, 3)[0]
    faces = attributes.variations(desc, emb, 5)
    assert faces.shape == (5, 128) and np.array_equal(faces[0], desc)
    assert np.array_equal(faces, attributes.variations(desc, emb, 5))  # the same voice, the same faces
    assert len({f.tobytes() for f in faces}) == 5
    group = attributes.drawn_group(emb[None])[0]
    assert (np.argmax(c.probabilities(faces[1:].astype(np.float64)), axis=1) == group).all()
    spread = attributes.config["spread"]  # calibrated on val: samples lie as far out as the true faces
    assert spread["sample_distance_q10_50_90"][1] == pytest.approx(spread["true_distance_q10_50_90"][1], rel=1e-3)


# --- through the product -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model(shared_data):
    from speech2face import load_model

    return load_model(device="cpu")


def test_reconstruct_with_variations(model, speech_wave):
    one = model.reconstruct(speech_wave, sample_rate=16_000)
    three = model.reconstruct(speech_wave, sample_rate=16_000, variations=3)
    assert len(one.variations) == 1 and np.array_equal(one.variations[0], one.image)
    assert len(three.variations) == 3 and np.array_equal(three.descriptor, one.descriptor)
    assert np.abs(three.image.astype(int) - one.image).max() <= 1  # drawn in a larger batch: within a grey level
    assert three.voice_attributes == one.voice_attributes and one.voice_attributes["gender"]["most_likely"]


@pytest.mark.parametrize("value", [0, 100, "3", 2.0, True, None, -1])
def test_bad_variations_are_an_input_error(model, speech_wave, value):
    with pytest.raises(InputError, match="variations must be a whole number from 1 to 12"):
        model.reconstruct(speech_wave, sample_rate=16_000, variations=value)


def test_steering_can_be_turned_off(shared_data, speech_wave):
    from speech2face import load_model

    plain = load_model(device="cpu", steer=False).reconstruct(speech_wave, sample_rate=16_000)
    steered = load_model(device="cpu").reconstruct(speech_wave, sample_rate=16_000)
    assert plain.voice_attributes == steered.voice_attributes  # what the voice tells does not depend on the drawing
    assert not np.array_equal(plain.descriptor, steered.descriptor)


@pytest.mark.slow
def test_cli_variations_and_json(shared_data, tmp_path):
    clip = sorted((PAIRS / "audio").glob("*.opus"))[3]
    r = subprocess.run([sys.executable, "-m", "speech2face", "reconstruct", str(clip), "-o", str(tmp_path / "face.png"),
                        "--variations", "3", "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    line = json.loads(r.stdout)
    assert line["faces"] == [str(tmp_path / n) for n in ("face.png", "face_v2.png", "face_v3.png")]
    assert all((tmp_path / n).stat().st_size > 5000 for n in ("face.png", "face_v2.png", "face_v3.png"))
    assert set(line["voice_attributes"]) == {"gender", "age", "ethnicity"}
    for bad in ("0", "13", "abc"):
        r = subprocess.run([sys.executable, "-m", "speech2face", "reconstruct", str(clip), "-o", str(tmp_path / "x.png"),
                            "--variations", bad], capture_output=True, text=True, timeout=300)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
        assert "a whole number of faces from 1 to 12" in r.stderr
