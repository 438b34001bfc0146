"""Evaluation: each metric on hand-made inputs with known answers, then the whole protocol on real
pairs (true faces score R@1 = 100 %, one mean face scores chance), bad input, and the report in
headless Chromium."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from speech2face.evaluation import craniofacial
from speech2face.evaluation.metrics import balanced_recall, confusion, decade, feature_similarity, pearson, retrieval_recall, sharpness

from conftest import BROWSER_ARGS, PAIRS, link_paired_folder, need_chromium


# --- metrics on hand-made inputs -------------------------------------------------------------------
def test_feature_similarity_known_values():
    pred = np.array([[1.0, 0.0], [0.0, 2.0]])
    true = np.array([[1.0, 0.0], [2.0, 0.0]])
    fs = feature_similarity(pred, true)
    assert fs["cosine"]["mean"] == pytest.approx(0.5)  # 1 and 0
    assert fs["l1"]["mean"] == pytest.approx(2.0)  # 0 and 4
    assert fs["l2"]["mean"] == pytest.approx(np.sqrt(8) / 2)


def test_retrieval_perfect_and_known_rank():
    rng = np.random.default_rng(0)
    true = rng.standard_normal((30, 8))
    ids = [f"p{i}" for i in range(30)]
    perfect = retrieval_recall(true, true, ids, ks=(1, 5), pool_size=10, repeats=3)
    assert perfect["recall"] == {"1": 100.0, "5": 100.0} and perfect["chance"] == {"1": 10.0, "5": 50.0}
    # three faces on a line: reconstruction 0 sits nearer face 1 than its own face 0
    true = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    pred = np.array([[0.2, 1.0], [0.0, 1.0], [-1.0, 0.0]])
    r = retrieval_recall(pred, true, ["a", "b", "c"], ks=(1, 2), pool_size=2, repeats=20)
    # clip 0 is beaten by face 1 (when drawn) and beats face 2: R@1 = (0.5 + 1 + 1) / 3
    assert 60 < r["recall"]["1"] < 95 and r["recall"]["2"] == 100.0


def test_retrieval_pools_never_hold_the_same_speaker_twice():
    true = np.array([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0]])
    pred = true.copy()
    # clips 0 and 1 are one speaker: neither may be a distractor for the other
    r = retrieval_recall(pred, true, ["a", "a", "b"], ks=(1,), pool_size=2, repeats=5)
    assert r["recall"]["1"] == 100.0


def test_invalid_reconstruction_counts_as_a_miss():
    true = np.eye(4)
    r = retrieval_recall(true, true, list("abcd"), ks=(1, 4), pool_size=4, repeats=2,
                         valid=np.array([True, True, False, True]))
    assert r["recall"]["1"] == 75.0 and r["recall"]["4"] == 75.0


def test_confusion_pearson_decade():
    c = confusion(["m", "m", "f", "f"], ["m", "f", "f", "f"], ["f", "m"])
    assert c["counts"] == [[2, 0], [1, 1]] and c["agreement"] == 0.75 and c["row_share"][1] == [0.5, 0.5]
    p = pearson([1, 2, 3, 4], [2, 4, 6, 8.5])
    assert p["r"] == pytest.approx(0.9989, abs=1e-3) and p["p"] < 0.01
    assert np.isnan(pearson([1, 1, 1], [1, 2, 3])["r"])
    assert [decade(a) for a in (3, 19, 45, 88)] == ["0-9", "10-19", "40-49", "70+"]


def test_sharpness_known_values():
    stripes = np.zeros((224, 224, 3), np.uint8)
    stripes[:, ::2] = 255  # every column alternates: the Laplacian is ±510 everywhere
    assert sharpness(stripes) == pytest.approx(510.0**2)
    assert sharpness(np.full((224, 224, 3), 77, np.uint8)) == 0.0
    ramp = np.tile(np.linspace(0, 255, 224), (224, 1))  # linear: zero second derivative
    assert sharpness(np.stack([ramp] * 3, axis=2).astype(np.uint8)) < 1.0


def synthetic_landmarks() -> np.ndarray:
    """A face drawn by hand so each ratio is known (eye centres (±2, 0): IOD = 4)."""
    lm = np.zeros((68, 2))
    lm[36:42] = [(-3, 0), (-2.5, -0.5), (-1.5, -0.5), (-1, 0), (-1.5, 0.5), (-2.5, 0.5)]
    lm[42:48] = [(1, 0), (1.5, -0.5), (2.5, -0.5), (3, 0), (2.5, 0.5), (1.5, 0.5)]
    lm[0], lm[16], lm[4], lm[12], lm[8] = (-5, 0), (5, 0), (-4, 6), (4, 6), (0, 9)
    lm[27], lm[33], lm[31], lm[35], lm[32], lm[34] = (0, 0), (0, 3), (-1, 3), (1, 3), (-0.5, 3), (0.5, 3)
    lm[48], lm[54], lm[50], lm[52], lm[51] = (-2, 5), (2, 5), (-0.5, 4.5), (0.5, 4.5), (0, 4.5)
    lm[62], lm[66], lm[57] = (0, 5), (0, 5.2), (0, 6)
    return lm


def test_craniofacial_ratios_on_a_synthetic_face():
    lm = synthetic_landmarks()
    assert lm[36:42].mean(0) == pytest.approx([-2, 0]) and lm[42:48].mean(0) == pytest.approx([2, 0])
    m = craniofacial.measurements(lm)
    assert set(m) == set(craniofacial.MEASUREMENTS) and len(m) == 12
    assert m["nose_height"] == pytest.approx(3 / 4)
    assert m["nose_width"] == pytest.approx(2 / 4)
    assert m["nasal_index"] == pytest.approx(2 / 3)
    assert m["nose_area"] == pytest.approx(3 / 16)  # triangle (0,0), (-1,3), (1,3)
    assert m["intercanthal_index"] == pytest.approx(2 / 6)
    assert m["mouth_face_width_index"] == pytest.approx(4 / 10)
    assert m["jaw_width"] == pytest.approx(8 / 4)
    assert m["upper_lip_height"] == pytest.approx(1.5 / 4)
    assert m["vermilion_height_index"] == pytest.approx(0.5 / 0.8)
    assert m["mandibular_index"] == pytest.approx(3.9 / 8)
    assert m["labio_oral_region"] == pytest.approx(3 / 4)
    assert m["lateral_upper_lip_heights"] == pytest.approx(np.hypot(0.5, 1.5) / 4)
    # ratios: unchanged by scale, rotation and shift
    angle = 0.4
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = craniofacial.measurements(3.5 * lm @ rot.T + [100, 40])
    assert all(moved[k] == pytest.approx(v) for k, v in m.items())


def test_ethnicity_classifier_ships_with_its_accuracy():
    from speech2face.evaluation.attributes import EthnicityClassifier

    clf = EthnicityClassifier.load()
    assert clf.classes == ("white", "black", "asian", "indian", "other")
    assert clf.config["held_out_accuracy"] > clf.config["majority_class_accuracy"] + 0.1
    assert clf.probabilities(np.zeros((2, 128))).shape == (2, 5)


def test_eval_config_round_trips_through_its_json(tmp_path):
    """Frozen, typed (paths as Path), every field saved and loaded back; bad values are InputErrors."""
    import dataclasses

    from speech2face.errors import InputError
    from speech2face.evaluation import EvalConfig

    config = EvalConfig("pairs", tmp_path / "out", model="shipped", split="dev", limit=50, pool=20, repeats=3, seed=4,
                        cache="~/scores.jsonl", steer=False, baselines=False)
    assert isinstance(config.data, Path) and config.cache == Path("~/scores.jsonl").expanduser()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.pool = 10
    path = config.save()
    assert path == tmp_path / "out" / "config.json"
    saved = json.loads(path.read_text())
    assert saved["data"] == "pairs" and saved["images"] is None and saved["pool"] == 20
    assert set(saved) == {f.name for f in dataclasses.fields(EvalConfig)}
    assert EvalConfig.load(path) == config == EvalConfig.from_json(config.to_json())
    assert config.replace(seed=5).seed == 5 and config.seed == 4
    with pytest.raises(InputError, match="not EvalConfig fields: colour"):
        EvalConfig.from_dict({**saved, "colour": "red"})
    with pytest.raises(InputError, match="split"):
        EvalConfig("pairs", "out", split="test")


# --- the protocol on real pairs -----------------------------------------------------------------
N_PAIRS = 160


@pytest.fixture(scope="session")
def score_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache") / "scores.jsonl"


@pytest.fixture(scope="session")
def subset(shared_data, tmp_path_factory) -> tuple[Path, list[dict]]:
    """A paired folder of N_PAIRS real pairs (linked) whose pairs.csv has columns nobody knows."""
    root = tmp_path_factory.mktemp("pairs")
    with open(PAIRS / "pairs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    rows = [rows[i] for i in sorted(np.random.default_rng(1).permutation(len(rows))[:N_PAIRS])]
    return link_paired_folder(root, rows, extra={"camera": "unknown", "notes": "x"}), rows


def test_true_faces_score_perfectly(subset, tmp_path, score_cache):
    from speech2face.evaluation import EvalConfig, evaluate

    root, rows = subset
    config = EvalConfig(root, tmp_path / "report", images=root / "faces", cache=score_cache, progress=False,
                        baselines=False)
    m = evaluate(config)
    assert EvalConfig.load(tmp_path / "report" / "config.json") == config  # written beside the results
    assert EvalConfig.load(tmp_path / "report") == config
    main = next(iter(m["systems"].values()))
    assert m["pairs_scored"] == N_PAIRS - len(m["problems"]["true_face_not_detected"])
    assert main["retrieval"]["recall"]["1"] == 100.0
    assert main["feature_similarity"]["cosine"]["mean"] == pytest.approx(1.0, abs=1e-5)
    assert main["demographics"]["gender"]["agreement"] == 1.0
    assert main["quality"]["face_detected_share"] == 1.0
    assert all(v["r"] == pytest.approx(1.0) for v in main["craniofacial"].values())
    portrait = main["portrait"]  # a photo drawn as itself: its hair and shoulders agree exactly
    assert portrait["hair_pairs"] > 20 and portrait["hair_lightness_r"] == pytest.approx(1.0)
    assert portrait["hair_spread"] == pytest.approx(1.0) and portrait["light_hair_drawn_light"] == 1.0
    assert portrait["person_rows_drawn"] == portrait["person_rows_photo"] > 0.5
    assert "photo_l" not in portrait and (tmp_path / "report" / "hair.png").is_file()
    assert "hair lightness r" in (tmp_path / "report" / "index.html").read_text()


def test_one_mean_face_scores_chance_and_baselines_run(subset, tmp_path, score_cache):
    """Every clip gets the same image: by exchangeability its recall is chance, within noise."""
    from speech2face.evaluation import EvalConfig, evaluate

    root, rows = subset
    images = tmp_path / "mean"
    images.mkdir()
    mean = np.mean([np.asarray(Image.open(root / "faces" / f"{r['stem']}.jpg").convert("RGB"), float) for r in rows], axis=0)
    Image.fromarray(mean.astype(np.uint8)).save(tmp_path / "mean.png")
    for r in rows:
        os.symlink(tmp_path / "mean.png", images / f"{r['stem']}.png")
    m = evaluate(EvalConfig(root, tmp_path / "report", images=images, cache=score_cache, progress=False))
    recall = m["systems"]["mean"]["retrieval"]["recall"]
    if m["systems"]["mean"]["reconstructions_with_face"]:
        assert recall["1"] < 4 and abs(recall["5"] - 5) < 5 and abs(recall["10"] - 10) < 7
    baseline = m["systems"]["baseline: one mean face"]
    assert baseline["quality"]["face_detected_share"] == 1.0  # the aligned mean is a detectable face
    r = baseline["retrieval"]["recall"]
    assert r["1"] < 4 and abs(r["5"] - 5) < 5 and abs(r["10"] - 10) < 7
    gender_baseline = m["systems"]["baseline: mean face of the voice's gender"]
    assert gender_baseline["voice_gender_accuracy"] > 0.75  # identity-disjoint folds
    assert gender_baseline["demographics"]["gender"]["agreement"] > 0.6


def test_bad_images_are_listed_and_report_opens_in_chromium(subset, tmp_path, score_cache):
    from speech2face.evaluation import EvalConfig, evaluate
    from speech2face.evaluation.report import SECTIONS

    root, rows = subset
    images = tmp_path / "images"
    images.mkdir()
    for r in rows[10:]:
        os.symlink(root / "faces" / f"{r['stem']}.jpg", images / f"{r['stem']}.jpg")
    (images / f"{rows[0]['stem']}.png").write_text("not an image")  # unreadable
    Image.new("RGB", (224, 224), (200, 180, 160)).save(images / f"{rows[1]['stem']}.png")  # no face
    out = tmp_path / "report"
    m = evaluate(EvalConfig(root, out, images=images, cache=score_cache, progress=False, baselines=False))
    problems = m["problems"]
    missing = set(problems["missing_reconstruction"])
    assert {r["stem"] for r in rows[2:10]} - set(problems["true_face_not_detected"]) <= missing
    assert [p["stem"] for p in problems["unreadable_reconstruction"]] == [rows[0]["stem"]] or \
        rows[0]["stem"] in problems["true_face_not_detected"]
    assert rows[1]["stem"] in problems["reconstruction_without_face"] + problems["true_face_not_detected"]
    main = next(iter(m["systems"].values()))
    assert main["quality"]["face_detected_share"] < 1.0  # counted, not dropped
    assert json.loads((out / "metrics.json").read_text())["pairs_scored"] == m["pairs_scored"]
    chromium, playwright = need_chromium()
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        page = browser.new_page()
        page.goto((out / "index.html").as_uri())
        for section in SECTIONS:
            assert page.locator(f"section#{section}").is_visible(), section
        broken = page.evaluate("[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
        assert broken == [] and page.evaluate("document.images.length") >= 4
        page.screenshot(path=str(out / "screenshot.png"), full_page=True)
        browser.close()
    assert (out / "screenshot.png").stat().st_size > 10_000


def test_cli_limit_samples_among_the_images_given_and_says_when_pools_shrink(subset, tmp_path, score_cache):
    """--limit with --images draws among the pairs that have an image; with fewer than 100
    speakers the console says the pools shrank and chance changed; no 'nan' reaches the console."""
    import subprocess
    import sys

    root, rows = subset
    images = tmp_path / "some"
    images.mkdir()
    for r in rows[:30]:  # images for 30 of the 160 pairs only
        os.symlink(root / "faces" / f"{r['stem']}.jpg", images / f"{r['stem']}.jpg")
    result = subprocess.run([sys.executable, "-m", "speech2face", "evaluate", "--data", str(root), "--images",
                             str(images), "--out", str(tmp_path / "report"), "--limit", "20", "--no-baselines",
                             "--quiet", "--cache", str(score_cache)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["pairs_listed"] == 20 and metrics["problems"]["missing_reconstruction"] == []
    pool = metrics["systems"]["some"]["retrieval"]["pool_size"]
    assert pool < 100 and f"each retrieval pool holds {pool} faces, not 100" in result.stderr
    assert "nan" not in result.stdout.lower()
    assert "age r " in result.stdout


def test_balanced_recall_counts_predictions_outside_the_groups_as_misses():
    counts = np.array([[8, 0, 2],   # group 0: 8 of 10 right, 2 drawn as the third class
                       [1, 1, 0],   # group 1: 1 of 2
                       [0, 0, 5]])  # third class, not among the groups scored
    assert balanced_recall(counts, [0, 1]) == pytest.approx((0.8 + 0.5) / 2)
    assert balanced_recall(counts) == pytest.approx((0.8 + 0.5 + 1.0) / 3)
    assert balanced_recall(np.array([[0, 0], [3, 1]]), [0, 1]) == pytest.approx(0.25)  # an absent group is skipped
    assert confusion(["a", "a", "b"], ["a", "b", "b"], ["a", "b"])["balanced"] == pytest.approx(0.75)


def test_scores_cached_before_the_portrait_measures_get_them_without_a_second_detection(shared_data, tmp_path):
    """A cache line without hair_lab / person_rows (as written before they existed) is completed from
    the image and the cached landmarks; the completed line is appended and read back next time."""
    from speech2face.evaluation.scoring import ImageScorer

    photo = PAIRS / "faces" / "0124Marc_Forster_tHen_AnVFj8_0000009.jpg"
    cache = tmp_path / "scores.jsonl"
    fresh = ImageScorer(cache).score(photo)
    assert fresh.hair_l == pytest.approx(61.0, abs=2) and fresh.person_rows == pytest.approx(0.88, abs=0.03)
    entry = json.loads(cache.read_text().splitlines()[0])
    for field in ("hair_lab", "person_rows"):
        del entry["score"][field]
    cache.write_text(json.dumps(entry) + "\n")
    old = ImageScorer(cache)
    old.analyzer.detect = lambda *a, **k: pytest.fail("a cached image was detected again")
    completed = old.score(photo)
    assert completed.hair_lab == fresh.hair_lab and completed.person_rows == fresh.person_rows
    assert completed.descriptor == fresh.descriptor
    assert len(cache.read_text().splitlines()) == 2 and ImageScorer(cache).score(photo) == fresh


def test_portrait_measures_of_scores():
    """Drawings and photos as the scorer records them: hair L* (None where out of frame) and rows."""
    from speech2face.evaluation.protocol import portrait_measures
    from speech2face.evaluation.scoring import ImageScore

    score = lambda l, rows: ImageScore(readable=True, detected=l is not None, person_rows=rows,
                                       hair_lab=None if l is None else [l, 0.0, 0.0])
    photos = [score(10, 0.5), score(30, 0.5), score(60, 0.7), score(70, 0.7), score(None, 0.6)]
    drawn = [score(20, 1.0), score(30, 1.0), score(50, 0.8), score(None, 0.6), score(40, 0.6)]
    m = portrait_measures(drawn, photos)
    assert m["hair_pairs"] == 3 and m["light_hair_photos"] == 1 and m["light_hair_drawn_light"] == 1.0
    assert m["hair_lightness_r"] == pytest.approx(np.corrcoef([10, 30, 60], [20, 30, 50])[0, 1])
    assert m["hair_spread"] == pytest.approx(np.std([20, 30, 50]) / np.std([10, 30, 60]))
    assert m["person_rows_drawn"] == pytest.approx(0.8) and m["person_rows_photo"] == pytest.approx(0.6)
    assert m["photo_l"] == [10, 30, 60, 70, None]


def test_decoder_report_measures_hair_on_the_portrait_frame(shared_data, tmp_path, monkeypatch):
    """evaluate decoder: photos' hair and rows are measured on the portrait frame. A decoder that
    draws each portrait back agrees with it exactly. The face frames here are mirrored and half as
    bright: measured on them, no photo's hair would be light."""
    from speech2face.evaluation import decoder
    from speech2face.faces import load_image

    stems = ["0124Marc_Forster_tHen_AnVFj8_0000009", "0015James_Lafferty_TXDEteqgk94_0000002",
             "-DdYEiZQ5oI_210.000000-214.083333", "0013Shane_West_toA_P2Mrgjk_0000002"]
    portraits = [load_image(PAIRS / "faces" / f"{s}.jpg") for s in stems]
    faces = [{"face": np.ascontiguousarray(p[:, ::-1] // 2), "portrait": p, "desc": np.full(128, i, np.float32),
              "json": {"speaker": s, "source": "s2f"}} for i, (s, p) in enumerate(zip(stems, portraits))]

    class Renderer:  # draws the portrait whose index the descriptor carries
        decoder = type("D", (), {"config": type("C", (), {"portrait": True})()})()

        def decode(self, desc):
            return np.stack([portraits[int(d[0])] for d in desc])

    monkeypatch.setattr(decoder, "split_faces", lambda *a, **k: faces)
    monkeypatch.setattr(decoder, "load_decoder", lambda *a, **k: Renderer())
    m = decoder.evaluate_decoder([], None, tmp_path, cache=tmp_path / "scores.jsonl")
    portrait = json.loads((tmp_path / "metrics.json").read_text())["portrait"]
    assert portrait == m["portrait"] and portrait["photo_frame"] == "portrait" and "photo_l" not in portrait
    assert portrait["hair_pairs"] == 4 and portrait["hair_lightness_r"] == pytest.approx(1.0)
    assert portrait["light_hair_drawn_light"] == 1.0 and portrait["light_hair_photos"] == 2
    assert portrait["person_rows_drawn"] == portrait["person_rows_photo"]
