"""The torch port of dlib's face descriptor network: built from a config, dlib's file converted to
its state dict, and it computes dlib's descriptor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speech2face.dlib_weights import (default_weights_path, dlib_face_net, dlib_state_dict, layers_to_state_dict,
                                      read_dlib_network)
from speech2face.models.dlib_resnet import DlibFaceNet, DlibFaceNetConfig, add_padded, chip_transform, extract_chips

from conftest import PAIRS, need_shared_data


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def _faces(n: int):
    import dlib

    from speech2face.faces import FaceAnalyzer, _dlib_models, _to_full_object_detection, load_image

    need_shared_data()
    analyzer, models = FaceAnalyzer(), _dlib_models()
    for path in sorted((PAIRS / "faces").glob("*.jpg"))[::97][:n]:
        image = load_image(path)
        face = analyzer.detect(image)[0]
        shape = _to_full_object_detection(face.box, face.landmarks5)
        ref = np.asarray(models.facerec.compute_face_descriptor(image, shape, 0))
        chip = dlib.get_face_chip(image, shape, size=150, padding=0.25)
        yield image, face, ref, chip


def test_port_equals_dlib_on_real_faces():
    net = dlib_face_net()
    for image, face, ref, chip in _faces(8):
        on_dlib_chip = net(torch.from_numpy(chip.copy()).permute(2, 0, 1)[None].float())[0].numpy()
        assert _cos(on_dlib_chip, ref) >= 0.9999
        assert np.abs(on_dlib_chip - ref).max() < 1e-3
        # our chip extraction too: the whole path from the photo is dlib's
        t = torch.tensor(chip_transform(face.landmarks5))[None]
        ours = net(extract_chips(torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float(), t))[0].numpy()
        assert _cos(ours, ref) >= 0.999


def test_gradients_reach_the_image():
    need_shared_data()
    image, face, _, _ = next(_faces(1))
    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float().requires_grad_(True)
    t = torch.tensor(chip_transform(face.landmarks5))[None]
    dlib_face_net()(extract_chips(x, t)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_add_padded_zero_pads_like_dlib():
    a = torch.ones(1, 2, 3, 3)
    b = torch.full((1, 4, 4, 4), 2.0)
    out = add_padded(a, b)
    assert out.shape == (1, 4, 4, 4)
    assert out[0, :2, :3, :3].eq(3).all() and out[0, 2:].eq(2).all() and out[0, :, 3].eq(2).all()


def test_parser_checks_the_file(tmp_path):
    settings, layers = read_dlib_network(default_weights_path())
    assert settings["size"] == (150, 150)
    assert sum(layer.kind == "con" for layer in layers) == 29
    with pytest.raises(ValueError, match="not ported|does not hold"):
        layers_to_state_dict(settings, layers[:-1])
    junk = tmp_path / "junk.dat"
    junk.write_bytes(b"\x01\x01\x01\x05hello")
    with pytest.raises(ValueError, match="not a dlib metric-learning network"):
        read_dlib_network(junk)


def test_net_is_built_from_its_config_alone_and_the_converted_state_loads_strictly(monkeypatch):
    """No file is opened to build the network; dlib's file converts to a state dict that fits it
    exactly (strict), with dlib's own config; loaded, it gives dlib's descriptors (the tolerance of
    test_port_equals_dlib_on_real_faces) and the cached loader's, bit for bit."""
    import builtins
    import io
    import pathlib

    config, state = dlib_state_dict()
    assert config == DlibFaceNetConfig()  # dlib's file is the default config
    assert DlibFaceNetConfig.from_dict(config.to_dict()) == config

    def no_files(*args, **kwargs):
        raise AssertionError("a file was opened")

    with monkeypatch.context() as m:
        m.setattr(builtins, "open", no_files)
        m.setattr(io, "open", no_files)
        m.setattr(pathlib.Path, "read_bytes", no_files)
        m.setattr(pathlib.Path, "open", no_files)
        net = DlibFaceNet(config)
        assert net.load_state_dict(state, strict=True).missing_keys == []
    assert set(net.state_dict()) == set(state) and len(state) == 1 + 4 * 29  # 29 conv+affine, the fc
    net.eval()
    cached = dlib_face_net()
    for _, _, ref, chip in _faces(3):
        x = torch.from_numpy(chip.copy()).permute(2, 0, 1)[None].float()
        with torch.no_grad():
            ours = net(x)[0].numpy()
            assert torch.equal(net(x), cached(x))
        assert _cos(ours, ref) >= 0.9999 and np.abs(ours - ref).max() < 1e-3
    with pytest.raises(RuntimeError):  # the state fits only its own shape
        DlibFaceNet(DlibFaceNetConfig(descriptor_size=64)).load_state_dict(state, strict=True)
