"""The evaluation commands (``speech2face evaluate …``): ``add_arguments`` and ``run`` for
``speech2face.cli``; each imports what it scores with, and torch, inside ``run``."""
