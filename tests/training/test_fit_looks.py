"""The looks' fitting helpers on hand-made inputs: unseen pixels filled from what is seen nearby,
every look averaging at least ``min_members`` people, clothes repainted in one dark neutral."""

from __future__ import annotations

import numpy as np
import torch

from speech2face.training.looks import CLOTHES_RGB, LooksConfig, cluster_looks, dress, fill


def test_fill_keeps_what_many_members_show_and_continues_it_where_none_do():
    mean = np.zeros((1, 32, 32))
    count = np.zeros((32, 32))
    mean[0, :, :16], count[:, :16] = 0.8, 50.0  # the left half seen by 50 members, the right by none
    out = fill(mean, count, shrink=8.0)
    assert np.allclose(out[0, :, :12], 0.8, atol=0.02)  # well seen: kept
    assert np.allclose(out[0, :, 28:], 0.8, atol=0.05)  # unseen: continued, not dropped to 0


def test_every_look_averages_at_least_min_members_people():
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(c, 0.3, (n, 8)) for c, n in ((0, 60), (3, 40), (-3, 7))]).astype(np.float32)
    features[:5, 3:] = np.nan  # photos that do not show the crown
    labels = cluster_looks(features, LooksConfig(count=6, min_members=20))
    sizes = np.bincount(labels)
    assert sizes.min() >= 20 and sizes.sum() == len(features)


def test_clothes_are_repainted_dark_and_the_face_kept():
    images = torch.full((1, 3, 64, 64), 200, dtype=torch.uint8)
    masks = torch.full((1, 1, 64, 64), 255, dtype=torch.uint8)
    landmarks = torch.zeros(1, 68, 2)
    landmarks[0, 0, 0], landmarks[0, 16, 0], landmarks[0, 8, 1] = 20, 44, 40  # jaw 24 px, chin at y 40
    out = dress(images, masks, landmarks)
    collar = 40 + 0.35 * 24
    assert (out[0, :, int(collar) + 2:] == torch.tensor(CLOTHES_RGB, dtype=torch.uint8).view(3, 1, 1)).all()
    assert (out[0, :, :40] == 200).all()
