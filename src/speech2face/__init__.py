"""speech2face: hear a few seconds of speech, draw a canonical face of the speaker."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Union

__version__ = "0.1.0"

if TYPE_CHECKING:
    from pathlib import Path

    from .pipeline import Speech2Face


def load_model(*, voice_weights: Optional[Union[str, "Path"]] = None,
               decoder_weights: Optional[Union[str, "Path"]] = None,
               attributes_weights: Optional[Union[str, "Path"]] = None, device: Optional[str] = None,
               steer: bool = True, bfloat16: bool = False, engine: str = "auto") -> "Speech2Face":
    """The trained voice encoder + face decoder (see ``speech2face.pipeline.load_model``); the
    pipeline is imported only when a model is asked for, so ``import speech2face`` stays light."""
    from .pipeline import load_model as _load

    return _load(voice_weights=voice_weights, decoder_weights=decoder_weights, attributes_weights=attributes_weights,
                 device=device, steer=steer, bfloat16=bfloat16, engine=engine)
