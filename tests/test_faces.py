"""Face front end on real faces: detection, choice by centre, alignment, descriptor, bad images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from speech2face import faces
from speech2face.errors import FaceError

from conftest import PAIRS


def real_face(index: int = 0) -> np.ndarray:
    paths = sorted((PAIRS / "faces").glob("*.jpg"))
    return np.asarray(Image.open(paths[index]).convert("RGB"))


def test_similarity_transform_recovers_a_known_one():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -4.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ (scale * rot).T + shift
    matrix = faces.similarity_transform(src, dst)
    np.testing.assert_allclose(faces.apply_transform(matrix, src), dst, atol=1e-3)


def test_choose_face_nearest_center_or_largest():
    def face(box):
        return faces.Face(box=box, landmarks5=np.zeros((5, 2)), landmarks68=np.zeros((68, 2)))

    found = [face((0, 0, 50, 50)), face((300, 100, 400, 200)), face((120, 0, 260, 140))]
    assert faces.choose_face(found) == 2  # largest
    assert faces.choose_face(found, center=(0.05, 0.1), image_size=(500, 250)) == 0
    assert faces.choose_face(found, center=(0.7, 0.6), image_size=(500, 250)) == 1
    with pytest.raises(FaceError, match="no face"):
        faces.choose_face([])


def test_two_face_image_picks_the_one_at_the_given_centre(shared_data, face_analyzer):
    """Compose one frame from two real faces of different people; the centre decides which."""
    a, b = real_face(0), real_face(5)
    canvas = np.full((260, 560, 3), 200, np.uint8)
    canvas[18:242, 10:234], canvas[18:242, 326:550] = a, b
    left = face_analyzer.analyze(canvas, center=(122 / 560, 0.5))
    right = face_analyzer.analyze(canvas, center=(438 / 560, 0.5))
    assert left.face.center[0] < 280 < right.face.center[0]
    desc_a, desc_b = face_analyzer.descriptor(a), face_analyzer.descriptor(b)
    assert np.linalg.norm(left.descriptor - desc_a) < 0.15
    assert np.linalg.norm(right.descriptor - desc_b) < 0.15


def test_alignment_puts_eyes_and_mouth_on_the_template(shared_data, face_analyzer):
    aligned = face_analyzer.analyze(real_face(3))
    assert aligned.crop.shape == (224, 224, 3) and aligned.crop.dtype == np.uint8
    lm = aligned.landmarks68
    assert lm.shape == (68, 2)
    anchors = faces.anchor_points(lm)
    template = np.array([faces.TEMPLATE_LEFT_EYE, faces.TEMPLATE_RIGHT_EYE, faces.TEMPLATE_MOUTH]) * 224
    assert np.abs(anchors - template).max() < 8  # least squares over 3 points: close, not exact
    # the face found again in the aligned crop has its landmarks where we said
    again = face_analyzer.detect(aligned.crop)
    assert len(again) == 1
    assert np.median(np.linalg.norm(again[0].landmarks68 - lm, axis=1)) < 4


def test_descriptor_same_person_closer(shared_data, pair_rows, face_analyzer):
    vox = [r for r in pair_rows if r["source"] == "voxceleb1"]
    first, second = vox[0], next(r for r in vox[1:] if r["identity"] == vox[0]["identity"])
    other = next(r for r in vox if r["identity"] != vox[0]["identity"])
    d = {r["stem"]: face_analyzer.descriptor(PAIRS / "faces" / f"{r['stem']}.jpg") for r in (first, second, other)}
    assert d[first["stem"]].shape == (128,)
    assert np.linalg.norm(d[first["stem"]] - d[second["stem"]]) < 0.6 < np.linalg.norm(d[first["stem"]] - d[other["stem"]])


def test_image_with_no_face(face_analyzer):
    rng = np.random.default_rng(1)
    texture = (rng.uniform(0, 1, (32, 32, 3)) * 255).astype(np.uint8)
    image = np.asarray(Image.fromarray(texture).resize((256, 256)))
    with pytest.raises(FaceError, match="no face found"):
        face_analyzer.analyze(image)


def test_unreadable_image(tmp_path, face_analyzer):
    (tmp_path / "x.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(FaceError, match="not a readable image"):
        face_analyzer.analyze(tmp_path / "x.jpg")
    with pytest.raises(FaceError, match="no such file"):
        faces.load_image(tmp_path / "missing.png")


class ConstantEncoder:
    """A stand-in descriptor, to show the FaceEncoder interface is all the analyzer needs."""

    name, dim = "constant", 4

    def encode(self, image, face):
        return np.full(self.dim, face.area, np.float32)


def test_face_encoder_is_pluggable(shared_data):
    analyzer = faces.FaceAnalyzer(encoder=ConstantEncoder())
    aligned = analyzer.analyze(real_face(1))
    assert aligned.descriptor.shape == (4,) and aligned.descriptor[0] == aligned.face.area


def test_cnn_detector_finds_the_face_hog_misses(shared_data):
    """A real frame (a face turned well away) where dlib's HOG detector finds nothing even
    upsampled: the CNN fallback finds it, and the whole chain (landmarks, crops, descriptor) runs."""
    image = faces.load_image(PAIRS / "faces" / "03T-QpivDWI_055.480000-060.000000.jpg")
    hog_only = faces.FaceAnalyzer(cnn_fallback=False)
    assert hog_only.detect(image) == []
    analyzer = faces.FaceAnalyzer()
    found = analyzer.detect(image)
    assert len(found) == 1
    aligned = analyzer.analyze(image)
    assert aligned.crop.shape == (faces.FACE_SIZE, faces.FACE_SIZE, 3) and aligned.descriptor.shape == (128,)


def test_portrait_frame_holds_the_face_crop_zoomed_out(shared_data, face_analyzer):
    aligned = face_analyzer.analyze(real_face(3))
    assert aligned.portrait.shape == aligned.crop.shape
    crop_eyes = faces.anchor_points(aligned.landmarks68)
    portrait_eyes = faces.anchor_points(aligned.portrait_landmarks68)
    eye_gap = lambda a: np.linalg.norm(a[1] - a[0])
    assert eye_gap(portrait_eyes) == pytest.approx(faces.PORTRAIT_ZOOM * eye_gap(crop_eyes), rel=0.02)
    assert portrait_eyes[:2, 1].mean() == pytest.approx(faces.PORTRAIT_EYES_Y * faces.FACE_SIZE, abs=3)
    left, top, right, bottom = (round(v * faces.FACE_SIZE) for v in faces.PORTRAIT_FACE_BOX)
    inner = aligned.portrait_landmarks68[17:]  # brows, eyes, nose, mouth: inside the face box
    assert ((inner[:, 0] > left) & (inner[:, 0] < right) & (inner[:, 1] > top - 10) & (inner[:, 1] < bottom)).all()
