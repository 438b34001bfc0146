"""The looks and the portrait frame on hand-made inputs: the look chosen is the nearest to the
stretched prediction, a look changes only what lies outside the inner face, and the frame puts the
head, scaled about its anchor, on shoulders that fill the bottom rows."""

from __future__ import annotations

import torch

from speech2face.models import portrait_frame
from speech2face.models.looks import Looks


def hand_made_looks(size: int = 32) -> Looks:
    looks = Looks(count=2, size=size, grid=size // 2, descriptor_dim=3, features=2)
    with torch.no_grad():
        looks.predictor_weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]))  # features = x[:, :2]
        looks.prediction_sd.fill_(0.5)  # predictions spread half as much as the photos: stretched ×2
        looks.centres.copy_(torch.tensor([[-1.0, 0], [1.0, 0]]))
        looks.person.fill_(1.0)
        looks.hair[0].fill_(1.0)  # look 0: hair everywhere outside the face; look 1: skin everywhere
        looks.colour[0].fill_(0.9)
        looks.outer[..., :, : size // 2] = 1.0  # the left half is "outside the inner face"
        looks.cheeks[..., 0, -1] = 1.0  # skin tone read at one pixel, on the right
    return looks


def test_the_nearest_look_to_the_stretched_prediction_is_chosen():
    looks = hand_made_looks()
    x = torch.tensor([[-0.3, 0.0, 5.0], [0.3, 0.0, -5.0], [-0.01, 0.4, 0.0]])
    assert looks.choose(x).tolist() == [0, 1, 0]
    # stretched: −0.3 → −0.6 is nearer −1 than +1 whatever the unused third input says
    d = looks.distances(x[:1])
    torch.testing.assert_close(d, torch.tensor([[0.16, 2.56]]))


def test_a_look_draws_hair_or_the_faces_own_skin_outside_the_inner_face_only():
    looks = hand_made_looks()
    texture = torch.rand(2, 4, 32, 32)
    texture[:, 3] = 1.0  # the linear map draws the person everywhere
    x = torch.zeros(2, 3)
    out = looks(texture, x, index=torch.tensor([0, 1]))
    torch.testing.assert_close(out[:, :, :, 16:], texture[:, :, :, 16:])  # the inner face untouched
    assert torch.allclose(out[0, :3, :, :16], torch.tensor(0.9), atol=3e-3)  # look 0: its hair colour
    torch.testing.assert_close(out[1, :3, :, :16], texture[1, :3, :, :16], atol=3e-3, rtol=0)  # look 1: the face's own skin
    torch.testing.assert_close(out[:, 3], torch.ones(2, 32, 32))


def test_the_frame_scales_the_head_about_its_anchor_and_fills_the_bottom_with_shoulders():
    size, scale, anchor = 224, 0.8, 22.4
    landmarks = torch.zeros(1, 68, 2)
    landmarks[0, :17, 0] = torch.linspace(50, 174, 17)  # the jaw from x 50 to 174
    landmarks[0, :17, 1] = 120
    landmarks[0, 8] = torch.tensor([112.0, 200.0])  # the chin
    landmarks[0, 27:31, 0] = 112
    placed = portrait_frame.place(landmarks, size, scale, anchor)
    torch.testing.assert_close(placed[0, 8], torch.tensor([112.0, anchor + scale * (200 - anchor)]))
    image = torch.zeros(1, 3, size, size)
    image[..., 100:110, 100:110] = 1.0  # a white square, drawn opaque
    alpha = torch.zeros(1, 1, size, size)
    alpha[..., 60:150, 60:150] = 1.0
    skin, background = torch.tensor([[0.8, 0.6, 0.5]]), torch.tensor([0.93, 0.93, 0.93])
    out, lm = portrait_frame.frame(image, alpha, landmarks, skin, background, scale, anchor)
    torch.testing.assert_close(lm, placed)
    # the square's centre (105, 105) moves to the anchor + 0.8 × its offset
    cy, cx = anchor + scale * (105 - anchor), 112 + scale * (105 - 112)
    assert out[0, :, int(cy), int(cx)].min() > 0.99
    assert torch.allclose(out[0, :, 2, 2], background)  # the top corner is background
    bottom = out[0, :, -24:]  # the bottom rows are the shoulders' dark clothes across most of the width
    dark = (bottom.sum(0) < 0.6).float().mean()
    assert dark > 0.8


def test_a_decoder_with_looks_and_frame_draws_and_round_trips_its_weights(tmp_path):
    from speech2face.models.face_decoder import FaceDecoder, FaceDecoderConfig
    from speech2face.weights import load_weights, save_weights

    model = FaceDecoder(FaceDecoderConfig(size=64, refiner=(), looks=3, looks_grid=32, frame_scale=0.8))
    with torch.no_grad():
        model.looks.centres.normal_()
        model.looks.predictor_weight.normal_()
        model.looks.person.uniform_()
    desc = torch.randn(2, 128)
    out = model(desc)
    assert out["image"].shape == (2, 3, 64, 64) and out["look"].shape == (2,) and out["landmarks"].shape == (2, 68, 2)
    path = tmp_path / "dec.safetensors"
    save_weights(path, model.state_dict(), {"decoder": model.config.to_dict()})
    tensors, config = load_weights(path)
    again = FaceDecoder(FaceDecoderConfig.from_dict(config["decoder"]))
    again.load_state_dict(tensors)
    torch.testing.assert_close(again(desc)["image"], out["image"])
    assert again(desc, look=torch.tensor([2, 2]))["look"].tolist() == [2, 2]
