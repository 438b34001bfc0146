"""Identity-disjoint splits: a speaker's split is a pure function of its id, so every model
(face decoder, voice encoder) and every machine agrees, and no speaker is ever on both sides."""

from __future__ import annotations

import hashlib

DEV_PERCENT = 15  # share of speakers held out for development


VAL_PERCENT = 15  # share of the training speakers held out for tuning (never the dev speakers)


def _bucket(text: str) -> int:
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16) % 100


def split_of(speaker: str, dev_percent: int = DEV_PERCENT) -> str:
    """'dev' for about ``dev_percent`` % of speakers, chosen by a hash of the id, else 'train'."""
    return "dev" if _bucket(speaker) < dev_percent else "train"


def tuning_split_of(speaker: str, val_percent: int = VAL_PERCENT) -> str:
    """'dev', or for training speakers 'val' (to tune on) / 'train' (to fit on): a second hash."""
    if split_of(speaker) == "dev":
        return "dev"
    return "val" if _bucket("val:" + speaker) < val_percent else "train"
