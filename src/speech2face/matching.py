"""Which of several face photos fits a voice: the voice's predicted face descriptor against each
photo's, with no face drawn (the descriptor is what the drawing would be made from)."""

from __future__ import annotations

import time
from typing import Optional

import numpy as np

from . import audio
from .errors import FaceError, InputError
from .pipeline import Speech2Face


def rank_faces(model: Speech2Face, voice, photos: list[tuple[str, object]],
               max_seconds: float = audio.MAX_INPUT_SECONDS, deadline: Optional[float] = None) -> list[dict]:
    """Rank face photos by how well they fit a voice: cosine, around the mean face descriptor,
    between the voice's predicted descriptor and each photo's. In a photo with several faces the
    largest is scored and the entry says so; photos without a face come last, with the reason.
    ``deadline`` (time.monotonic()): past it, the work stops before the next photo (TimeoutError)."""
    if not photos:
        raise InputError("no face photos to rank")
    center = model.center
    pred = model.voice_descriptor(voice, max_seconds=max_seconds) - center  # (D,)
    ranked, failed = [], []
    for name, photo in photos:
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError("the time limit passed before every photo was looked at")
        try:
            desc, face, count = model.renderer.analyzer.largest_face(photo)
        except FaceError as exc:
            failed.append({"name": name, "score": None, "error": str(exc).replace("<image>: ", "")})
            continue
        desc = desc - center
        score = float(desc @ pred / max(np.linalg.norm(desc) * np.linalg.norm(pred), 1e-12))
        entry = {"name": name, "score": round(score, 4), "faces_found": count, "face_box": [int(v) for v in face.box]}
        if count > 1:
            entry["note"] = (f"{count} faces in this image; only the largest (box left, top, right, bottom = "
                             f"{', '.join(str(int(v)) for v in face.box)}) was scored")
        ranked.append(entry)
    ranked.sort(key=lambda r: -r["score"])
    return [{"rank": i + 1, **r} for i, r in enumerate(ranked)] + failed
