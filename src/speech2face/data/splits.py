"""Identity-disjoint splits: a speaker's split is a pure function of its id, so every model
(face decoder, voice encoder) and every machine agrees, and no speaker is ever on both sides."""

from __future__ import annotations

import hashlib

DEV_PERCENT = 15  # share of speakers held out for development


def split_of(speaker: str, dev_percent: int = DEV_PERCENT) -> str:
    """'dev' for about ``dev_percent`` % of speakers, chosen by a hash of the id, else 'train'."""
    bucket = int(hashlib.sha1(speaker.encode()).hexdigest()[:8], 16) % 100
    return "dev" if bucket < dev_percent else "train"
