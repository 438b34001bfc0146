"""Shared fixtures: real data from ../shared/data (skipped with a message when absent)."""

from __future__ import annotations

import csv
import os
import shutil
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


def speech_clip(path, seconds: float = 6.0) -> np.ndarray:
    """The clip the product cuts from an audio file (``clips.speech_clips``; the one with most speech)."""
    from speech2face import audio
    from speech2face.clips import speech_clips

    wave, rate, _, _ = audio.decode_audio(path)
    return speech_clips(wave, rate, seconds).most_speech()


def embed(wave: np.ndarray, normalize_volume: bool = True) -> np.ndarray:
    """GE2E embedding (256,) of one 16 kHz wave (torch's speaker encoder)."""
    from speech2face.models.speaker_encoder import speaker_encoder

    return speaker_encoder().embed_many([wave], normalize_volume)[0]


BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def need_chromium():
    """(Debian's chromium path, playwright.sync_api). Skipped with the reason where either is
    missing, except under CI (CI=true), where a browser test that cannot run is a failure."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    reason = None
    try:
        import playwright.sync_api as playwright
    except ImportError:
        reason = "playwright is not installed (pip install -e '.[test]')"
    if path is None:
        reason = "Debian's chromium is not installed (.ci/run installs it)"
    if reason and os.environ.get("CI") == "true":
        pytest.fail(f"browser test cannot run under CI: {reason}")
    if reason:
        pytest.skip(reason)
    return path, playwright


def link_paired_folder(root: Path, rows: list[dict], extra: dict | None = None) -> Path:
    """A paired folder of the given s2f-pairs rows: audio and faces linked (never copied), pairs.csv
    written with the rows' columns plus ``extra`` ones."""
    (root / "audio").mkdir(parents=True, exist_ok=True)
    (root / "faces").mkdir(parents=True, exist_ok=True)
    for r in rows:
        (root / "audio" / f"{r['stem']}.opus").symlink_to(PAIRS / "audio" / f"{r['stem']}.opus")
        (root / "faces" / f"{r['stem']}.jpg").symlink_to(PAIRS / "faces" / f"{r['stem']}.jpg")
    extra = extra or {}
    with open(root / "pairs.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) + list(extra))
        writer.writeheader()
        writer.writerows({**r, **extra} for r in rows)
    return root


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

    wave, rate, _, _ = audio.decode_audio(next(iter(sorted((PAIRS / "audio").glob("*.opus")))))
    assert rate == audio.SAMPLE_RATE
    return wave


@pytest.fixture(scope="session")
def face_analyzer():
    from speech2face.faces import FaceAnalyzer

    return FaceAnalyzer()
