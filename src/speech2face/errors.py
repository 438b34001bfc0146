"""Errors raised for bad input: one base class so callers (CLI, web API, data preparation)
can tell a user's bad file from a bug in the program."""


class InputError(ValueError):
    """Input that cannot be used, with a message meant for the person who supplied it."""


class AudioError(InputError):
    """Audio that cannot be decoded or is unusable (empty, corrupt, too short, silent, ...)."""


class FaceError(InputError):
    """An image that cannot be decoded, or in which no usable face is found."""


class WeightsError(RuntimeError):
    """A weights file that is missing, altered, malformed, or not the kind of model asked for."""
