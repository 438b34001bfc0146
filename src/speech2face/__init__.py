"""speech2face: hear a few seconds of speech, draw a canonical face of the speaker."""

__version__ = "0.1.0"
