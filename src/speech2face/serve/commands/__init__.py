"""The serving commands (serve, site): ``add_arguments`` and ``run`` for ``speech2face.cli``."""
