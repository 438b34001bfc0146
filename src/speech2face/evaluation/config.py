"""What one evaluation run is: every option, resolved once, saved beside the results.

``EvalConfig`` is frozen; ``evaluate(config)`` writes it to ``out/config.json`` (``CONFIG_FILE``)
next to ``metrics.json``, and ``EvalConfig.load(out / "config.json")`` gives the same config back,
so a report says exactly how it was made and can be made again.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from ..errors import InputError

CONFIG_FILE = "config.json"
SPLITS = ("dev", "val", "train")
_PATHS = ("data", "images", "out", "cache")


@dataclass(frozen=True)
class EvalConfig:
    """Options of one run of Oh et al.'s protocol (``speech2face.evaluation.protocol``)."""

    # --- what is scored ------------------------------------------------------------------------
    # data: a paired folder (pairs.csv, audio/, faces/) with the true faces; out: the report folder.
    # images: any system's reconstructions named <stem>.png|jpg; or model: voice encoder weights
    # ("shipped" for ours) to reconstruct every clip with (then images is not read), with the
    # decoder and voice-attribute weights (None: the shipped ones), steering to the voice's gender
    # and group, and GE2E's LSTM in bfloat16. name: the system's name in the report (None: the
    # image folder's name, or "speech2face (<model>)").
    data: Path
    out: Path
    images: Optional[Path] = None
    model: Optional[str] = None
    decoder_weights: Optional[str] = None
    attributes_weights: Optional[str] = None
    steer: bool = True
    bfloat16: bool = False
    name: Optional[str] = None

    # --- which pairs -----------------------------------------------------------------------------
    # split: only the speakers of this identity split (speech2face.data.splits; None: all).
    # limit: a seeded random sample of that many pairs (with images, among the pairs that have one).
    split: Optional[str] = None
    limit: Optional[int] = None

    # --- scoring ---------------------------------------------------------------------------------
    # pool: faces of distinct speakers per retrieval pool; repeats: random pools per clip; seed: of
    # the pools, of limit's sample, of the random pairing and the sample grid. cache: a file of
    # image scores by content hash, reused across runs (None: score every image afresh).
    pool: int = 100
    repeats: int = 10
    seed: int = 0
    cache: Optional[Path] = None

    # --- baselines and output --------------------------------------------------------------------
    # baselines: also score one mean face for everyone and the mean face of the voice's predicted
    # gender. progress: progress bars on stderr (changes nothing in the results).
    baselines: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        for name in _PATHS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value).expanduser())
        if self.split is not None and self.split not in SPLITS:
            raise InputError(f"split {self.split!r}: one of {', '.join(SPLITS)} or None")
        if self.limit is not None and self.limit < 1:
            raise InputError(f"limit {self.limit}: at least 1 (None: all pairs)")
        if self.pool < 2 or self.repeats < 1:
            raise InputError(f"pool {self.pool} and repeats {self.repeats}: at least 2 and 1")

    # --- saved with the report -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (paths as strings), every field."""
        return {f.name: (str(v) if isinstance(v := getattr(self, f.name), Path) else v)
                for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "EvalConfig":
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise InputError(f"not EvalConfig fields: {', '.join(unknown)}")
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "EvalConfig":
        return cls.from_dict(json.loads(text))

    def save(self, path: Optional[Union[str, Path]] = None) -> Path:
        """Write the config (default: ``out/config.json``); returns the path."""
        path = Path(path) if path is not None else self.out / CONFIG_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, path: Union[str, Path]) -> "EvalConfig":
        """A saved config: its file, or the report folder holding ``config.json``."""
        path = Path(path)
        return cls.from_json((path / CONFIG_FILE if path.is_dir() else path).read_text())

    def replace(self, **changes: Any) -> "EvalConfig":
        return dataclasses.replace(self, **changes)
