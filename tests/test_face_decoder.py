"""Face decoder maths: the TPS warp on synthetic grids, shapes, a few training steps that lower the
loss, and weights that round-trip through safetensors with their checksum checked."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speech2face.models.face_decoder import FaceDecoder, FaceDecoderConfig
from speech2face.models.warp import border_points, tps_apply, tps_fit, tps_warp
from speech2face.weights import WeightsError, load_weights, save_weights


def checkerboard(size: int = 64, cell: int = 8) -> torch.Tensor:
    ys, xs = np.mgrid[0:size, 0:size]
    board = (((xs // cell) + (ys // cell)) % 2).astype(np.float32)
    return torch.from_numpy(board)[None, None]  # (1, 1, S, S)


def test_tps_reproduces_an_affine_map_exactly():
    rng = np.random.default_rng(0)
    ctrl = torch.tensor(rng.uniform(-1, 1, (1, 20, 2)), dtype=torch.float64)
    a = torch.tensor([[0.9, 0.2], [-0.1, 1.1]], dtype=torch.float64)
    values = ctrl @ a.T + torch.tensor([0.05, -0.02], dtype=torch.float64)
    coef = tps_fit(ctrl, values, reg=0.0)
    query = torch.tensor(rng.uniform(-1, 1, (1, 50, 2)), dtype=torch.float64)
    expected = query @ a.T + torch.tensor([0.05, -0.02], dtype=torch.float64)
    torch.testing.assert_close(tps_apply(ctrl, coef, query), expected, atol=1e-8, rtol=0)
    assert coef[:, :20].abs().max() < 1e-8  # no bending for an affine map


def test_tps_interpolates_its_control_points():
    rng = np.random.default_rng(1)
    ctrl = torch.tensor(rng.uniform(-1, 1, (2, 30, 2)), dtype=torch.float64)
    values = ctrl + 0.05 * torch.tensor(rng.standard_normal((2, 30, 2)))
    coef = tps_fit(ctrl, values, reg=0.0)
    torch.testing.assert_close(tps_apply(ctrl, coef, ctrl), values, atol=1e-8, rtol=0)


def test_warp_identity_and_whole_pixel_shift_on_a_grid():
    board = checkerboard()
    pts = torch.tensor([[[16.0, 16.0], [48.0, 16.0], [16.0, 48.0], [48.0, 48.0], [32.0, 32.0]]])
    same = tps_warp(board, pts, pts, pin_border=False, grid_size=None)
    torch.testing.assert_close(same, board, atol=1e-4, rtol=0)
    # content at src moves to src + (3, 5): a pure translation, so the grid shifts by whole pixels
    moved = tps_warp(board, pts, pts + torch.tensor([3.0, 5.0]), pin_border=False, grid_size=None)
    torch.testing.assert_close(moved[..., 5:, 3:], board[..., :-5, :-3], atol=1e-4, rtol=0)
    # the coarse lattice gives the same result for a smooth map
    coarse = tps_warp(board, pts, pts + torch.tensor([3.0, 5.0]), pin_border=False, grid_size=16)
    torch.testing.assert_close(coarse[..., 5:, 3:], board[..., :-5, :-3], atol=1e-3, rtol=0)


def test_warp_pins_the_border_and_moves_the_landmark():
    ramp = torch.linspace(0, 1, 64).expand(1, 1, 64, 64).contiguous()  # value = x / 63
    src = torch.tensor([[[32.0, 32.0]]])
    dst = torch.tensor([[[36.0, 32.0]]])
    out = tps_warp(ramp, src, dst, grid_size=None)
    for x, y in border_points(64, 64).round().long().tolist():  # pinned points stay put
        assert float(out[0, 0, y, x]) == pytest.approx(float(ramp[0, 0, y, x]), abs=1e-3)
    assert (out[..., 0, :] - ramp[..., 0, :]).abs().max() < 0.03  # the border barely moves between pins
    assert float(out[0, 0, 32, 36]) == pytest.approx(32 / 63, abs=1e-3)  # what was at x=32 is now at x=36


def test_warp_is_differentiable_in_texture_and_points():
    tex = torch.rand(2, 3, 32, 32, requires_grad=True)
    src = (torch.rand(2, 10, 2) * 20 + 6).requires_grad_()
    dst = (src.detach() + torch.randn(2, 10, 2)).requires_grad_()
    tps_warp(tex, src, dst).sum().backward()
    assert tex.grad.abs().sum() > 0 and src.grad.abs().sum() > 0 and dst.grad.abs().sum() > 0


def tiny_decoder() -> FaceDecoder:
    cfg = FaceDecoderConfig(descriptor_dim=16, size=32, hidden=32, channels=(32, 16, 8))
    return FaceDecoder(cfg, mean_landmarks=torch.rand(68, 2) * 20 + 6)


def test_decoder_shapes():
    out = FaceDecoder(mean_landmarks=torch.rand(68, 2) * 100 + 14)(torch.randn(3, 128))
    assert out["image"].shape == (3, 3, 128, 128) and out["texture"].shape == (3, 3, 128, 128)
    assert out["landmarks"].shape == (3, 68, 2)
    assert 0 <= out["image"].min() and out["image"].max() <= 1


def test_a_few_steps_lower_the_loss():
    torch.manual_seed(0)
    model = tiny_decoder()
    desc = torch.randn(8, 16)
    target = torch.full((8, 3, 32, 32), 0.85)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.l1_loss(model(desc)["image"], target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_weights_round_trip_and_checksum(tmp_path):
    model = tiny_decoder()
    path = tmp_path / "dec.safetensors"
    digest = save_weights(path, model.state_dict(), {"decoder": model.config.to_dict()})
    tensors, config = load_weights(path)
    again = FaceDecoder(FaceDecoderConfig.from_dict(config["decoder"]))
    again.load_state_dict(tensors)
    desc = torch.randn(2, 16)
    torch.testing.assert_close(again(desc)["image"], model(desc)["image"])
    with pytest.raises(WeightsError, match="checksum mismatch"):
        load_weights(path, expected_sha256="0" * 64)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the file
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="checksum mismatch"):
        load_weights(path)
    assert len(digest) == 64
