"""ONNX Runtime sessions as inference here wants them: verified files, one intra-op thread that
sleeps instead of spinning (parallelism comes from running sessions side by side, see
``speech2face.runtime``), and no telemetry."""

from __future__ import annotations

import os
from pathlib import Path

from ..weights import verified


def session(path: Path, expected_sha256: str | None = None, prepack: bool = True):
    """An ``onnxruntime.InferenceSession`` of a verified graph (digest: given, or the ``.sha256``
    sidecar). ``prepack=False``: weights are not repacked for the CPU's matrix kernels when the
    session is made (for a memory-bound product, where packing gains nothing and costs time)."""
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"  # read when the library loads
    import onnxruntime as ort

    ort.disable_telemetry_events()
    path = verified(path, expected_sha256, "ONNX graph not found (write it with `speech2face export onnx`)")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.enable_mem_pattern = False
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if not prepack:
        options.add_session_config_entry("session.disable_prepacking", "1")
    options.log_severity_level = 3  # warnings about unused initialisers are not the user's business
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
