"""speech2face: hear a few seconds of speech, draw a canonical face of the speaker."""

__version__ = "0.1.0"


def load_model(*args, **kwargs):
    """The trained voice encoder + face decoder; see ``speech2face.pipeline.load_model``."""
    from .pipeline import load_model as _load

    return _load(*args, **kwargs)
