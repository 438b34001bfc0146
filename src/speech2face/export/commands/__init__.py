"""The export commands (onnx, ge2e): ``add_arguments`` and ``run`` for ``speech2face.cli``."""
