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


def _eyes_60_apart() -> np.ndarray:
    """Landmarks with the eyes' mean points at (70, 100) and (130, 100): 60 px apart."""
    lm = np.zeros((68, 2))
    ring = np.array([[-6, 0], [-3, -2], [3, -2], [6, 0], [3, 2], [-3, 2]])  # six points about the eye centre
    lm[36:42], lm[42:48] = ring + (70, 100), ring + (130, 100)
    return lm


def test_eye_distance_is_between_the_eyes_mean_points():
    lm = _eyes_60_apart()
    assert canonical.eye_distance(lm) == pytest.approx(60.0)
    lm[42:48] += (0, 80)  # right eye moved 80 px down: a 60-80-100 triangle
    assert canonical.eye_distance(lm) == pytest.approx(100.0)


def test_inner_lip_gap_of_closed_and_open_mouths():
    lm = _eyes_60_apart()
    lm[48], lm[54] = (80, 160), (120, 160)
    lm[[61, 62, 63]] = [(92, 158), (100, 158), (108, 158)]
    lm[[67, 66, 65]] = [(92, 159.5), (100, 159.5), (108, 159.5)]  # lips 1.5 px apart
    assert canonical.inner_lip_gap(lm) == pytest.approx(1.5 / 60) and canonical.mouth_closed(lm)
    lm[[67, 66, 65], 1] = 170  # 12 px apart: 0.2 eye distances
    assert canonical.inner_lip_gap(lm) == pytest.approx(12 / 60) and not canonical.mouth_closed(lm)
    lm[[67, 66, 65], 1] = 161  # 3 px: 0.05 eye distances, still closed; 4 px (0.067) is open
    assert canonical.mouth_closed(lm)
    lm[[67, 66, 65], 1] = 162
    assert not canonical.mouth_closed(lm)


def _inner_face_landmarks(eyes: float) -> np.ndarray:
    """Landmarks of a face with the eyes ``eyes`` px apart: brows at y 80, lower lip at y 170."""
    lm = _eyes_60_apart()
    lm[36:48, 0] = 100 + (lm[36:48, 0] - 100) * eyes / 60
    lm[17:27] = np.stack([np.linspace(50, 150, 10), np.full(10, 80.0)], 1)
    lm[[54, 55, 56, 57, 58, 59, 48]] = [(140, 165), (130, 170), (115, 172), (100, 172), (85, 172), (70, 170), (60, 165)]
    return lm


def test_inner_face_detail_hand_computed():
    """A checkerboard of ±10 grey levels has a 4-neighbour Laplacian of ±80 everywhere: variance
    6400. With the eyes 64 px apart the image is not rescaled, so the measure is exactly that; a
    flat image has none; detail outside the brows-to-lip polygon does not count."""
    ys, xs = np.mgrid[:224, :224]
    board = np.where((xs + ys) % 2 == 0, 138, 118).astype(np.uint8)
    image = np.repeat(board[..., None], 3, axis=2)
    lm = _inner_face_landmarks(64.0)
    assert canonical.eye_distance(lm) == pytest.approx(64.0)
    assert canonical.inner_face_detail(image, lm) == pytest.approx(6400.0)
    assert canonical.inner_face_detail(np.full((224, 224, 3), 128, np.uint8), lm) == 0.0
    outside = np.full((224, 224, 3), 128, np.uint8)
    outside[:60], outside[190:] = image[:60], image[190:]  # pattern above the brows and below the lips only
    assert canonical.inner_face_detail(outside, lm) == 0.0


def test_inner_face_detail_on_a_real_photo_and_its_blurred_copy(shared_data):
    """On a real frame the measure lies where photos do (ANCHORS.md: ~40 on average), a blurred
    copy has far less, and it does not depend on the image's scale (eyes are brought to 64 px)."""
    from PIL import Image, ImageFilter

    from speech2face.faces import FaceAnalyzer, load_image

    analyzer = FaceAnalyzer()
    photo = load_image(sorted((PAIRS / "faces").glob("*.jpg"))[0])
    lm = analyzer.detect(photo)[0].landmarks68
    detail = canonical.inner_face_detail(photo, lm)
    assert 5 < detail < 200
    blurred = np.asarray(Image.fromarray(photo).filter(ImageFilter.GaussianBlur(2)))
    assert canonical.inner_face_detail(blurred, lm) < 0.3 * detail
    big = np.asarray(Image.fromarray(photo).resize((448, 448), Image.Resampling.BICUBIC))
    assert canonical.inner_face_detail(big, lm * 2) == pytest.approx(detail, rel=0.25)


def test_background_measure_on_a_plain_and_a_busy_frame():
    plain = np.full((224, 224, 3), 236, np.uint8)
    plain[12:224, 12:212] = (150, 110, 90)  # a head up to 12 px from the top and sides does not count
    assert canonical.background_stats(plain)["plain_light"]
    plain[6:10, 100:120] = (60, 40, 30)  # hair reaching into the top 8 rows does
    assert not canonical.background_stats(plain)["plain_light"]
    busy = np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8)
    dark = np.full((224, 224, 3), 40, np.uint8)
    assert not canonical.background_stats(busy)["plain_light"] and not canonical.background_stats(dark)["plain_light"]


def test_close_mouths_closes_talking_mouths_only(shared_data):
    from speech2face.faces import FaceAnalyzer
    from speech2face.training.decoder_targets import close_mouths

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
    assert (after < canonical.MOUTH_CLOSED_BELOW).all() and (after[gaps > 0.1] < 0.04).all()  # every one closed
    assert np.allclose(closed[:, :48], lm.numpy()[:, :48], atol=0.5 * 40) and np.allclose(closed[:, 17:48], lm.numpy()[:, 17:48])
    x = lm.numpy()
    width = np.linalg.norm(x[:, 54] - x[:, 48], axis=1)
    untouched = ((x[:, [67, 66, 65], 1] - x[:, [61, 62, 63], 1]) <= 0.02 * width[:, None]).all(axis=1)  # lips together
    assert untouched.any()
    assert np.allclose(closed[untouched], lm.numpy()[untouched])


def test_shipped_decoder_draws_closed_mouths_on_plain_backgrounds(shared_data):
    """Real talking frames mostly fail both measures; the drawings made from the same photos'
    descriptors pass them, on shoulders that fill the bottom rows."""
    from speech2face.faces import FaceAnalyzer, load_image
    from speech2face.pipeline import load_decoder

    renderer = load_decoder(device="cpu")
    analyzer = FaceAnalyzer()
    photos = sorted((PAIRS / "faces").glob("*.jpg"))[100:124]
    drawn_closed, drawn_plain, true_closed, true_plain, eyes, detail = [], [], [], [], [], []
    for path in photos:
        image = load_image(path)
        true_closed.append(canonical.mouth_closed(analyzer.detect(image)[0].landmarks68))
        true_plain.append(canonical.background_stats(image)["plain_light"])
        face, _ = renderer.normalize(image)
        found = analyzer.detect(face)
        assert len(found) == 1
        drawn_closed.append(canonical.mouth_closed(found[0].landmarks68))
        drawn_plain.append(canonical.background_stats(face)["plain_light"])
        eyes.append(canonical.eye_distance(found[0].landmarks68))
        detail.append(canonical.inner_face_detail(face, found[0].landmarks68))
    assert np.mean(true_closed) < 0.7 and np.mean(true_plain) < 0.2
    assert np.mean(drawn_closed) >= 0.95 and np.mean(drawn_plain) >= 0.9
    # the head is drawn 0.8× smaller to make room for neck and shoulders: eyes ~43 px apart, not
    # the tight frame's 53 (the photos: ~54); inner-face detail falls with it (photos ~40, the
    # paper's decoder ~15, the tight frame 23)
    assert 38 <= np.median(eyes) <= 48
    assert np.median(detail) >= 12
    assert np.median([canonical.person_rows(renderer.normalize(load_image(p))[0]) for p in photos[:6]]) >= 0.8


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
    command = [sys.executable, "-m", "speech2face", "train", "face-decoder", str(shards), "--out", str(run),
               "--refiner-minutes", "0.6", "--batch-size", "2", "--export", str(tmp_path / "dec.safetensors")]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while time.time() < deadline:
        if (run / "checkpoint.pt").is_file() and torch.load(run / "checkpoint.pt", weights_only=True).get("step", 0) > 0:
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


def _face_with_brows_at(top: float) -> np.ndarray:
    """Eyes 60 px apart at y 100 (point 36 at x 64, point 45 at x 136), brows along y 80 with the
    highest point at ``top``: the hair patch spans rows top - 69 … top - 45 and columns 64 … 136."""
    lm = _eyes_60_apart()
    lm[17:27] = np.stack([np.linspace(60, 140, 10), np.full(10, 80.0)], 1)
    lm[21, 1] = top
    return lm


def test_hair_patch_location_and_colour_hand_computed():
    """Inside the patch pure red, whose CIELAB (D65) is (53.24, 80.09, 67.20); the ring of pixels
    around the patch black, which must not shift the median; a patch leaving the frame is None."""
    lm = _face_with_brows_at(78.0)
    assert canonical.hair_box(lm, (224, 224, 3)) == (9, 34, 64, 137)  # rows 9..33, columns 64..136
    image = np.full((224, 224, 3), 128, np.uint8)
    image[8:35, 63:138] = 0
    image[9:34, 64:137] = (255, 0, 0)
    assert canonical.hair_lab(image, lm) == pytest.approx([53.24, 80.09, 67.20], abs=0.02)
    assert canonical.srgb_to_lab(np.array([119, 119, 119], np.uint8)) == pytest.approx([50.03, 0, 0], abs=0.02)
    assert canonical.hair_lab(image, None) is None
    assert canonical.hair_lab(image, _face_with_brows_at(60.0)) is None  # top at 60 - 69 < 0: out of frame
    narrow = _face_with_brows_at(78.0)
    narrow[45, 0] = 230  # beyond the right edge
    assert canonical.hair_box(narrow, (224, 224, 3)) is None


@pytest.mark.parametrize("stem, box, lab, light", [
    # dark brown hair over the whole patch; by hand: median RGB (17, 13, 2) → L* 3.7
    ("0015James_Lafferty_TXDEteqgk94_0000002", (5, 28, 82, 164), (3.9, -0.2, 5.1), False),
    # a bald scalp, lit; by hand: median RGB (188.5, 135, 110) → L* 61.0
    ("0124Marc_Forster_tHen_AnVFj8_0000009", (21, 41, 84, 152), (61.0, 18.3, 22.7), True),
])
def test_hair_patch_on_real_photos(shared_data, stem, box, lab, light):
    """Patches checked by eye on the photos (dlib's landmarks drawn, the patch outlined)."""
    from speech2face.faces import FaceAnalyzer, load_image

    photo = load_image(PAIRS / "faces" / f"{stem}.jpg")
    lm = FaceAnalyzer().detect(photo)[0].landmarks68
    assert np.abs(np.subtract(canonical.hair_box(lm, photo.shape), box)).max() <= 2
    measured = canonical.hair_lab(photo, lm)
    assert measured == pytest.approx(lab, abs=2.0)
    assert (measured[0] >= canonical.LIGHT_HAIR_L) == light


def test_person_rows_synthetic():
    """White background (RGB sum 720); the bottom 24 rows half dark: 0.5. A sum 60 away does not
    count, 61 does."""
    image = np.full((224, 224, 3), 240, np.uint8)
    assert canonical.person_rows(image) == 0.0
    image[200:, :112] = 50
    assert canonical.person_rows(image) == pytest.approx(0.5)
    image[200:, 112:] = (220, 220, 220)  # sum 660: 60 away
    assert canonical.person_rows(image) == pytest.approx(0.5)
    image[200:, 112:168] = (219, 220, 220)  # 61 away on a quarter of the rows
    assert canonical.person_rows(image) == pytest.approx(0.75)
    image[:199] = 50  # rows above the bottom 24 other than the corner do not count
    image[:8, :8] = 240
    assert canonical.person_rows(image) == pytest.approx(0.75)


@pytest.mark.parametrize("stem, rows", [
    # dark jacket across the bottom on an orange wall (corner sum 222); only the neck, as bright as
    # the wall, does not count: by eye ~ 1/8 of the rows
    ("0124Marc_Forster_tHen_AnVFj8_0000009", 0.88),
    # a grey-blue shirt in the middle, the dark room (corner sum 104) at the sides: by eye ~ half
    ("0015James_Lafferty_TXDEteqgk94_0000002", 0.45),
])
def test_person_rows_on_real_photos(shared_data, stem, rows):
    from speech2face.faces import load_image

    assert canonical.person_rows(load_image(PAIRS / "faces" / f"{stem}.jpg")) == pytest.approx(rows, abs=0.03)


def test_portrait_agreement_on_a_hand_made_set():
    """Uniform grey images (the patch always in frame): grey 30, 80, 160, 220 → L* 11.26, 34.03,
    65.87, 87.76 for the photos, drawn as 40, 60, 200, 100 → 16.11, 25.32, 80.60, 42.38. Two photos
    are light (≥ 45); one of their drawings is. A fifth pair whose drawing has no face and a sixth
    whose photo's patch leaves the frame do not count for hair. The first drawing has dark bottom rows."""
    grey = lambda g: np.full((224, 224, 3), g, np.uint8)
    lm, out = _face_with_brows_at(78.0), _face_with_brows_at(40.0)
    photos = [grey(g) for g in (30, 80, 160, 220, 120, 120)]
    drawn = [grey(g) for g in (40, 60, 200, 100, 120, 120)]
    drawn[0][200:] = 0
    result = canonical.portrait_agreement(photos, [lm, lm, lm, lm, lm, out], drawn, [lm, lm, lm, lm, None, lm])
    p, q = np.array([11.264, 34.029, 65.868, 87.761]), np.array([16.114, 25.317, 80.604, 42.375])
    assert result["hair_pairs"] == 4 and result["light_hair_photos"] == 2
    assert result["hair_lightness_r"] == pytest.approx(np.corrcoef(p, q)[0, 1], abs=1e-3)
    assert result["hair_lightness_r"] == pytest.approx(0.655, abs=1e-3)
    assert result["hair_spread"] == pytest.approx(q.std() / p.std(), abs=1e-3)
    assert result["light_hair_drawn_light"] == 0.5
    assert result["person_rows_drawn"] == pytest.approx(1 / 6) and result["person_rows_photo"] == 0.0
    empty = canonical.portrait_agreement(photos[:1], [None], drawn[:1], [lm])
    assert empty["hair_pairs"] == 0 and empty["hair_lightness_r"] is None and empty["light_hair_drawn_light"] is None
