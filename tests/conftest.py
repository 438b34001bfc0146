"""Shared fixtures: real data from ../shared/data (skipped with a message when absent)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()
PAIRS = SHARED_DATA / "s2f-pairs"
UTKFACE = SHARED_DATA / "utkface"


def need_shared_data() -> Path:
    if not (PAIRS / "pairs.csv").is_file():
        pytest.skip(f"real data not found at {SHARED_DATA} (place ../shared/data beside the repository)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return need_shared_data()


@pytest.fixture(scope="session")
def pair_rows(shared_data) -> list[dict]:
    with open(PAIRS / "pairs.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="session")
def speech_wave(shared_data) -> np.ndarray:
    """A real 6 s speech clip, mono 16 kHz float32."""
    from speech2face import audio

    wave, rate = audio.read_audio(next(iter(sorted((PAIRS / "audio").glob("*.opus")))))
    assert rate == audio.SAMPLE_RATE
    return wave


@pytest.fixture(scope="session")
def face_analyzer():
    from speech2face.faces import FaceAnalyzer

    return FaceAnalyzer()
