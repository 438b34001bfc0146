"""The training commands (``speech2face train …``): ``add_arguments`` and ``run`` for
``speech2face.cli``; each imports its trainer, and torch, inside ``run``."""
