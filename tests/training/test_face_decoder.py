"""Face decoder maths: the TPS warp on synthetic grids, shapes, a few training steps that lower the
loss, and weights that round-trip through safetensors with their checksum checked."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speech2face.models.face_decoder import FaceDecoder, FaceDecoderConfig
from speech2face.training.decoder_fit import fit_linear, set_descriptor_range
from speech2face.training.face_decoder import FaceDecoderTrainConfig
from speech2face.training.refiner import gaussian_blur, train_refiner
from speech2face.training.runs import Run
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


def tiny_decoder(refiner: tuple[int, ...] = ()) -> FaceDecoder:
    model = FaceDecoder(FaceDecoderConfig(descriptor_dim=16, size=32, refiner=refiner, portrait=False, alpha=False,
                                          refiner_unshuffle=1))  # RGB only, no silhouette
    with torch.no_grad():
        model.mean_landmarks.copy_(torch.rand(68, 2) * 20 + 6)
        model.landmarks_head.bias.copy_(model.mean_landmarks.flatten())
        model.texture_head.bias.fill_(0.5)
    return model


@pytest.mark.parametrize("refiner", [(), (8, 16, 32)])
def test_decoder_shapes(refiner):
    model = FaceDecoder(FaceDecoderConfig(refiner=refiner))  # the defaults: the shipped portrait decoder
    out = model(torch.randn(3, 128))
    assert out["image"].shape == out["base"].shape == (3, 3, 224, 224)
    assert out["texture"].shape == (3, 4, 224, 224) and out["alpha"].shape == (3, 1, 224, 224)
    assert out["landmarks"].shape == (3, 68, 2)
    assert 0 <= out["image"].min() and out["image"].max() <= 1
    assert model.first_layer(torch.randn(3, 128)).shape == (3, 68 * 2 + 4 * 56 * 56)


def test_refiner_starts_as_the_identity():
    model = tiny_decoder(refiner=(8, 16))
    desc = torch.randn(4, 16)
    out = model(desc)
    torch.testing.assert_close(out["image"], out["base"].clamp(0, 1))


def test_linear_fit_recovers_a_linear_decoder_despite_unknown_pixels():
    """Faces generated by a known linear decoder, 30 % of each texture hidden: the fit finds the
    decoder again, and fills the hidden pixels as the true decoder would."""
    torch.manual_seed(0)
    truth = tiny_decoder()
    desc = torch.nn.functional.normalize(torch.randn(400, 16), dim=1)
    with torch.no_grad():
        truth.descriptor_mean.copy_(desc.mean(0))  # the fit centres on the sample mean too
        truth.landmarks_head.weight.normal_(0, 2.0)
        truth.texture_head.weight.normal_(0, 0.05)  # textures stay inside [0, 1]: exactly linear
        true_out = truth.base(desc)
    assert 0 < true_out["texture"].min() and true_out["texture"].max() < 1
    textures = (true_out["texture"] * 255).round().byte()
    known = (torch.rand(400, 3, 32, 32) > 0.3).byte() * 255
    textures_seen = textures * (known > 0)  # hidden pixels read as black: the fit must not believe them
    model = tiny_decoder()
    model.mean_landmarks.copy_(truth.mean_landmarks)
    fit_linear(model, desc, true_out["landmarks"], textures_seen, known, lam=1e-6, iterations=30)
    with torch.no_grad():
        fitted = model.base(desc)
        x = desc - model.descriptor_mean
        inside = (x @ model.whitening).norm(dim=1) <= model.max_radius  # 99 % of the faces fitted on
    assert 0.98 <= inside.float().mean() < 1
    # 16 isotropic random dimensions: 99 % of the variance needs all of them
    torch.testing.assert_close(model.projection, torch.eye(16), atol=1e-4, rtol=0)
    err = (fitted["texture"] - true_out["texture"])[inside]
    assert err.abs().max() < 0.01  # 8-bit rounding is 0.002
    torch.testing.assert_close(fitted["landmarks"][inside], true_out["landmarks"][inside], atol=1e-3, rtol=0)


def test_descriptors_beyond_the_training_range_are_pulled_back_to_its_edge():
    model = tiny_decoder()
    with torch.no_grad():
        model.descriptor_mean.copy_(torch.nn.functional.normalize(torch.ones(16), dim=0) * 0.9)
        model.whitening.copy_(torch.eye(16) * 4.0)
        model.max_radius.fill_(1.0)
    near = model.descriptor_mean + 0.1 * torch.nn.functional.normalize(torch.randn(1, 16), dim=1)
    far = model.descriptor_mean + 3.0 * (near - model.descriptor_mean)  # an exaggerated prediction
    for d in (near, far):
        radius = (model.centred(d) @ model.whitening).norm()
        assert radius <= 1.0 + 1e-5
    x_near = near / near.norm() - model.descriptor_mean
    assert (x_near @ model.whitening).norm() < 1.0  # inside: untouched
    torch.testing.assert_close(model.centred(near), x_near)
    with torch.no_grad():  # real descriptors span only some axes: the rest is dropped
        model.projection.copy_(torch.diag((torch.arange(16) < 8).float()))
    assert model.centred(far)[0, 8:].abs().max() == 0


def test_descriptor_range_spans_the_training_subspace():
    torch.manual_seed(0)
    model = tiny_decoder()
    x = torch.randn(500, 16, dtype=torch.float64) * torch.cat([torch.ones(5), torch.full((11,), 1e-6)]).double()
    set_descriptor_range(model, x - x.mean(0))
    assert torch.linalg.matrix_rank(model.projection, atol=1e-3) == 5  # the 5 axes with variance
    radii = ((x - x.mean(0)).float() @ model.whitening).norm(dim=1)
    assert (radii <= model.max_radius).float().mean() == pytest.approx(0.99, abs=0.005)


def test_gaussian_blur_keeps_flat_images_and_blurs_more_with_larger_sigma():
    flat = torch.full((2, 3, 16, 16), 0.4)
    torch.testing.assert_close(gaussian_blur(flat, torch.tensor([0.7, 2.0])), flat)
    board = checkerboard(32, 2).expand(2, 3, 32, 32)
    out = gaussian_blur(board, torch.tensor([0.5, 2.0]))
    contrast = out.std(dim=(1, 2, 3))
    assert contrast[1] < 0.3 * contrast[0]  # each image its own sigma
    torch.testing.assert_close(out.mean(dim=(1, 2, 3)), board.mean(dim=(1, 2, 3)), atol=1e-3, rtol=0)


def test_restoration_loss_counts_lost_edges():
    """Zero for the target itself; a blurred copy costs more with the edge term than without;
    unknown pixels cost nothing."""
    from speech2face.training.refiner import restoration_loss

    target = checkerboard(32, 4).expand(2, 3, 32, 32)
    known = torch.ones(2, 1, 32, 32)
    blurred = gaussian_blur(target, torch.full((2,), 1.5))
    assert restoration_loss(target, target, known, 1.0).item() == 0.0
    plain, edges = restoration_loss(blurred, target, known, 0.0), restoration_loss(blurred, target, known, 1.0)
    assert edges > plain * 1.2
    assert restoration_loss(blurred, target, torch.zeros_like(known), 1.0).item() == 0.0


def test_refiner_training_restores_blurred_faces_and_resumes(tmp_path):
    """Stage 2 on tiny data: a few seconds of steps lower the restoration error on blurred
    images; a second call resumes from the checkpoint instead of starting over."""
    torch.manual_seed(0)
    board = (checkerboard(32, 4)[0] * 0.6 + 0.2) * 255  # (1, 32, 32)
    targets = torch.stack([torch.roll(board, k, dims=2) for k in range(8)]).expand(-1, 3, -1, -1).round().byte()
    data = {"targets": targets.contiguous(), "known": torch.full((8, 1, 32, 32), 255, dtype=torch.uint8)}
    model = FaceDecoder(FaceDecoderConfig(descriptor_dim=16, size=32, refiner=(8, 16, 32)))
    cfg = FaceDecoderTrainConfig(out=str(tmp_path), batch_size=4, refiner_minutes=0.05, refiner_lr=3e-3,
                                 checkpoint_every=10)
    x = data["targets"].float() / 255
    blurred = gaussian_blur(x, torch.full((8,), 1.2))

    def error() -> float:
        with torch.no_grad():
            return torch.nn.functional.l1_loss(model.refiner(blurred), x).item()

    before = error()
    first = train_refiner(Run(tmp_path, {}), cfg, model, data, np.arange(8))
    assert error() < 0.7 * before
    cfg.refiner_minutes = first["refiner_minutes"] + 0.01
    again = train_refiner(Run(tmp_path, {}), cfg, model, data, np.arange(8))
    assert again["refiner_steps"] > first["refiner_steps"] > 0


def test_weights_round_trip_and_checksum(tmp_path):
    model = tiny_decoder(refiner=(8, 16))
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


def test_int8_rows_round_trip_within_a_grey_level(tmp_path):
    """The texture map stored as int8 rows (quantize_rows) loads back as float32, and the decoder
    draws within a few grey levels of the float one (half a level on average)."""
    from speech2face.weights import INT8_SCALE, quantize_rows

    model = tiny_decoder()
    torch.nn.init.normal_(model.texture_head.weight, std=0.5)
    path = tmp_path / "q.safetensors"
    save_weights(path, quantize_rows(model.state_dict(), {"texture_head.weight"}), {"decoder": model.config.to_dict()})
    tensors, _ = load_weights(path)
    assert tensors["texture_head.weight"].dtype == torch.float32 and not any(k.endswith(INT8_SCALE) for k in tensors)
    again = FaceDecoder(model.config)
    again.load_state_dict(tensors)
    desc = torch.randn(4, 16)
    diff = (again(desc)["image"] - model(desc)["image"]).abs()
    assert diff.mean().item() < 0.5 / 255 and diff.max().item() < 3 / 255


def test_folding_an_input_map_into_the_heads_draws_what_the_mapped_input_would():
    """fold_input_map(Q, c): the folded decoder on x draws exactly what the old one drew on x Q + c."""
    from speech2face.training.calibrate_drawing import fold_input_map

    torch.manual_seed(0)
    model = FaceDecoder(FaceDecoderConfig(descriptor_dim=8, size=16))
    x = torch.randn(5, 8) * 0.1
    q, c = torch.eye(8) + 0.1 * torch.randn(8, 8), 0.01 * torch.randn(8)
    with torch.no_grad():
        expected_lm = model.landmarks_head(x @ q + c)
        expected_tex = model.texture_head(x @ q + c)
        fold_input_map(model, q, c)
        torch.testing.assert_close(model.landmarks_head(x), expected_lm, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model.texture_head(x), expected_tex, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_drawing_calibration_brings_what_dlib_reads_closer_to_what_was_asked(shared_data):
    """On real descriptors and the shipped decoder, one round of calibration moves the drawings'
    dlib descriptors (torch port) towards the descriptors they were drawn from."""
    from speech2face.faces import FaceAnalyzer
    from speech2face.pipeline import load_decoder
    from speech2face.training.calibrate_drawing import calibrate_drawing

    from conftest import PAIRS

    analyzer = FaceAnalyzer()
    desc = torch.tensor(np.stack([analyzer.descriptor(p) for p in sorted((PAIRS / "faces").glob("*.jpg"))[:48]]))
    model = load_decoder(device="cpu").decoder
    history = calibrate_drawing(model, desc, rounds=1, log=lambda *_: None)
    assert history[1]["cosine_read_to_asked"] > history[0]["cosine_read_to_asked"]
