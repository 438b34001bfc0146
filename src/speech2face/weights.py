"""Weights on disk: safetensors with a JSON config in its metadata and a sha256 beside it.

``save_weights`` writes ``name.safetensors`` and ``name.safetensors.sha256``; ``load_weights``
refuses a file whose digest differs from the expected one (the sidecar, or one passed in).
Nothing is ever unpickled: the run caches and checkpoints training writes with ``torch.save``
are read back with ``load_run_file`` (``torch.load(..., weights_only=True)``), which builds only
tensors, numbers, strings, containers and numpy arrays of numbers or strings; a file that asks
for anything else (a pickle that would run code) is refused with an ``UnsafeFileError``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Optional

import functools
import pickle
import re
from importlib import resources
from typing import TYPE_CHECKING

from .errors import WeightsError

if TYPE_CHECKING:  # torch is the training extra's: the runtime reads weights as numpy arrays
    import torch


def shipped(name: str) -> Path:
    """Where the package keeps a file it ships (``assets/<name>``): the one place every floor asks."""
    return Path(str(resources.files("speech2face") / "assets" / name))


class UnsafeFileError(WeightsError, pickle.UnpicklingError):
    """A torch.save file that holds more than tensors, numbers, strings and arrays: not loaded."""


@functools.cache
def _allow_numpy_arrays() -> None:
    """Let weights_only loads build numpy arrays of numbers or strings (the voice attributes'
    pairs table holds them): no object arrays, no code. Registered once, on first use."""
    import numpy as np
    import torch

    core = getattr(np, "_core", None) or np.core
    kinds = [type(np.dtype(c)) for c in "?bBhHiIlLqQefdgFDGUSMm"]
    torch.serialization.add_safe_globals([core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray,
                                          np.dtype, *kinds])


def load_run_file(path: Path, map_location: str | None = None):
    """What ``torch.save`` wrote (a run cache, a checkpoint, a table) → its tensors and arrays, never
    code: torch's many-line weights_only refusal becomes one line naming what the file asked for."""
    import torch

    _allow_numpy_arrays()
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)", str(exc))
        what = f"it asks for {found.group(1)}" if found else "it holds Python objects"
        raise UnsafeFileError(f"{path}: a file that holds more than tensors, numbers, strings and arrays is not "
                              f"loaded (unpickling it could run code): {what}") from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


INT8_SCALE = ".int8_scale"  # a tensor stored as int8 rows has its per-row scales under name + this


def quantize_rows(tensors: dict[str, "torch.Tensor"], names: set[str]) -> dict[str, "torch.Tensor"]:
    """The named 2-D tensors as int8 with one float32 scale per row (the largest |value| / 127), for
    storage: a face decoder's 25 M-entry texture map then takes a quarter of its float32 size.
    ``load_weights`` turns them back into float32."""
    import torch

    out = dict(tensors)
    for name in names:
        t = tensors[name].float()
        scale = (t.abs().amax(dim=1, keepdim=True) / 127).clamp_min(1e-12)  # (rows, 1)
        out[name] = (t / scale).round().clamp(-127, 127).to(torch.int8)
        out[name + INT8_SCALE] = scale
    return out


def save_weights(path: Path, tensors: dict[str, "torch.Tensor"], config: dict) -> str:
    """Write tensors + config; returns the sha256 (also written to ``<path>.sha256``)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path),
              metadata={"config": json.dumps(config, sort_keys=True)})
    digest = sha256_of(path)
    Path(f"{path}.sha256").write_text(f"{digest}  {path.name}\n")
    return digest


def verified(path: Path, expected_sha256: Optional[str] = None, missing: str = "not found") -> Path:
    """``path``, once its sha256 is the expected one (default: its ``.sha256`` sidecar's);
    WeightsError (``missing: path``, no checksum, a mismatch) otherwise."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{missing}: {path}")
    if expected_sha256 is None:
        sidecar = Path(f"{path}.sha256")
        if not sidecar.is_file():
            raise WeightsError(f"no checksum for {path} (expected {sidecar})")
        expected_sha256 = sidecar.read_text().split()[0]
    actual = sha256_of(path)
    if actual != expected_sha256:
        raise WeightsError(f"checksum mismatch for {path}: expected {expected_sha256[:12]}…, got {actual[:12]}…")
    return path


def load_weights(path: Path, expected_sha256: Optional[str] = None,
                 framework: str = "pt") -> tuple[dict[str, "torch.Tensor"], dict]:
    """Verified tensors and config. The expected digest defaults to the ``.sha256`` sidecar.
    ``framework="numpy"``: numpy arrays, for the runtime (no torch)."""
    from safetensors import safe_open

    path = verified(path, expected_sha256, "weights not found")
    try:
        with safe_open(str(path), framework=framework) as f:
            config = json.loads((f.metadata() or {}).get("config", "{}"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors' SafetensorError, a bad JSON config, …
        raise WeightsError(f"{path} is not a readable safetensors weights file ({exc})") from None
    for name in [k for k in tensors if k.endswith(INT8_SCALE)]:  # rows stored as int8 (quantize_rows)
        base = name[: -len(INT8_SCALE)]
        rows, scale = tensors[base], tensors.pop(name)
        tensors[base] = rows.astype("float32") * scale if framework == "numpy" else rows.float() * scale
    return tensors, config


def load_module(path: Path, module_for: Callable[[dict], "torch.nn.Module"], kind: str,
                prefix: str = "") -> tuple["torch.nn.Module", dict[str, "torch.Tensor"], dict]:
    """A verified weights file of ``kind`` (its config's "model") loaded into ``module_for(config)``.

    Returns ``(module, tensors, config)``. A file of another kind, or one whose tensors do not fit
    this version's module (e.g. written by an older release), is a ``WeightsError`` saying so,
    not a traceback from deep inside torch. ``prefix`` selects the module's tensors in the file."""
    tensors, config = load_weights(path)
    if config.get("model") != kind:
        raise WeightsError(f"{path} holds {config.get('model') or 'no speech2face model'}, not a {kind}")
    module = module_for(config)
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    expected = module.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    reshaped = [k for k in set(expected) & set(state) if expected[k].shape != state[k].shape]
    if missing or unexpected or reshaped:
        raise WeightsError(f"{path} does not fit this version's {kind} (written by another version?): "
                           f"{len(missing)} tensors missing, {len(unexpected)} unexpected, {len(reshaped)} of another shape")
    module.load_state_dict(state)
    return module, tensors, config
