"""The looks and the portrait frame on hand-made inputs: the style follows the predicted gender and
age, the hair colour the stretched predicted CIELAB, a look changes only what lies outside the
inner face, the drawn styles differ where they should, and the frame puts the head, scaled about
its anchor, on shoulders that fill the bottom rows."""

from __future__ import annotations

import torch

from speech2face.models import portrait_frame
from speech2face.models.looks import STYLES, Looks




def hand_made_looks(size: int = 32) -> Looks:
    """Features read straight off the first five inputs: L*, a*, b*, female, age."""
    looks = Looks(count=len(STYLES), size=size, grid=size, descriptor_dim=6, features=5)
    with torch.no_grad():
        looks.predictor_weight.copy_(torch.eye(5, 6))
        looks.prediction_sd.fill_(0.5)  # predictions spread half as much as the photos: stretched ×2
        looks.person.fill_(1.0)
        looks.hair[STYLES.index("long")].fill_(1.0)  # long: hair everywhere outside the face; the rest bare
        looks.shading.fill_(1.0)
        looks.outer[..., :, : size // 2] = 1.0  # the left half is "outside the inner face"
        looks.cheeks[..., 0, -1] = 1.0  # skin tone read at one pixel, on the right
        looks.receding_age.fill_(40.0), looks.bald_age.fill_(60.0), looks.medium_age.fill_(50.0)
    return looks


def attributes(female: float, age: float, lightness: float = 0.0) -> list[float]:
    """Inputs whose stretched prediction is (L* 2·lightness, a* 0, b* 0, female, age): female and
    age given as the stretched values wanted."""
    return [lightness, 0.0, 0.0, female / 2, age / 2, 0.0]


def test_the_style_follows_predicted_gender_and_age():
    looks = hand_made_looks()
    x = torch.tensor([attributes(1, 30), attributes(1, 55), attributes(0, 30), attributes(0, 45), attributes(0, 70)])
    assert [STYLES[i] for i in looks.choose(x)] == ["long", "medium", "short", "receding", "bald"]


def test_the_hair_colour_is_the_stretched_predicted_lab():
    from speech2face.training.looks import rgb2lab

    looks = hand_made_looks()
    with torch.no_grad():
        looks.feature_mean[0] = 40.0
    x = torch.tensor([attributes(1, 30, lightness=-5.0), attributes(1, 30, lightness=10.0)])
    torch.testing.assert_close(looks.predict(x)[:, 0], torch.tensor([30.0, 60.0]))  # 40 + 2 × (−5, +10)
    lab = rgb2lab((looks.hair_rgb(x).numpy() * 255).round().astype("uint8"))
    assert abs(lab[0, 0] - 30) < 1.0 and abs(lab[1, 0] - 60) < 1.0
    assert abs(lab[:, 1:]).max() < 1.5  # a*, b* 0: a neutral grey


def test_a_look_draws_hair_or_the_faces_own_skin_outside_the_inner_face_only():
    looks = hand_made_looks()
    texture = torch.rand(2, 4, 32, 32)
    texture[:, 3] = 1.0  # the linear map draws the person everywhere
    x = torch.tensor([attributes(1, 30, lightness=5.0), attributes(0, 30)])
    out = looks(texture, x, index=torch.tensor([STYLES.index("long"), STYLES.index("short")]))
    torch.testing.assert_close(out[:, :, :, 16:], texture[:, :, :, 16:])  # the inner face untouched
    hair = looks.hair_rgb(x[:1])[0].view(3, 1, 1)
    torch.testing.assert_close(out[0, :3, :, :16], hair.expand(3, 32, 16), atol=3e-3, rtol=0)  # long: its hair
    skin = texture[1, :3, 0, -1].view(3, 1, 1)
    torch.testing.assert_close(out[1, :3, :, :16], skin.expand(3, 32, 16), atol=3e-3, rtol=0)  # short: bare skin here
    torch.testing.assert_close(out[:, 3], torch.ones(2, 32, 32))


def test_drawn_styles_differ_where_they_should():
    """On a real mean shape: long hair falls beside the jaw, medium to the mouth, the bald crown is skin, every map
    stays in [0, 1] and no style's person leaves the frame's top rows empty of background."""
    from speech2face.training.hairstyles import draw_styles, geometry
    from speech2face.training.looks import inner_face

    from speech2face.pipeline import load_decoder

    mean = load_decoder(None, "cpu").decoder.mean_landmarks.numpy()  # the shipped decoder's mean shape
    maps = draw_styles(mean, 224)
    g = geometry(mean)
    hair, person = maps["hair"][:, 0], maps["person"][:, 0]
    assert hair.min() >= 0 and hair.max() <= 1 and person.min() >= 0 and person.max() <= 1
    chin, mid, w = int(g["chin"]), int(g["mid"]), g["w"]
    beside = slice(int(mid + 0.52 * w), int(mid + 0.6 * w))
    for style, low, high in (("long", 0.8, 1.0), ("medium", 0.0, 0.05), ("short", 0.0, 0.05)):
        assert low <= hair[STYLES.index(style), chin - 4, beside].mean() <= high, style  # beside the jaw
    assert hair[STYLES.index("medium"), int(g["nose"]), beside].mean() > 0.8
    crown = (int(g["brow"] - 0.5 * w), mid)
    assert hair[STYLES.index("bald"), crown[0], crown[1]] < 0.05 and person[STYLES.index("bald"), crown[0], crown[1]] > 0.9
    assert hair[STYLES.index("short"), crown[0], crown[1]] > 0.9
    assert (person[:, :4] < 0.05).all()  # background above every head
    outer = inner_face(mean, 224)[0, 0].numpy()
    assert outer[int(g["nose"]), mid] < 0.01  # the inner face is the decoder's own


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

    model = FaceDecoder(FaceDecoderConfig(size=64, refiner=(), looks=len(STYLES), looks_grid=32, frame_scale=0.8))
    with torch.no_grad():
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
