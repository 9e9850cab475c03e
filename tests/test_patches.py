"""max_activating_patches: streaming top-k equals a brute-force search over the whole dataset."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import labkit.interpret as interp
from labkit.core import LabError
from labkit.models import NaiveCNN

LAYER = "features.relu2_1"


@pytest.fixture()
def setting():
    torch.manual_seed(0)
    model = NaiveCNN(3, channels=(4, 6), convs_per_stage=1, hidden=0).eval()
    images = torch.randn(37, 3, 20, 20)
    return model, images


def brute_force(model, images, layer, channel, k):
    """Every image's activation map at once, the maximum per image, sorted."""
    maps = interp.feature_maps(model, images, layer)[layer][:, channel]  # (N, h, w)
    values, flat = maps.flatten(1).max(dim=1)
    order = sorted(range(len(images)), key=lambda i: -float(values[i]))[:k]
    rf = interp.receptive_field(model, layer, images.shape[2:])
    w = maps.shape[2]
    return [(i, rf.box(int(flat[i]) // w, int(flat[i]) % w), float(values[i])) for i in order]


@pytest.mark.parametrize("channel", [0, 3, 5])
@pytest.mark.parametrize("batch_size", [1, 5, 64])
def test_streamed_top_k_equals_brute_force(setting, channel, batch_size):
    model, images = setting
    got = interp.max_activating_patches(model, images, LAYER, channel, k=9, batch_size=batch_size)
    expected = brute_force(model, images, LAYER, channel, 9)
    assert [(i, box) for i, box, _ in got] == [(i, box) for i, box, _ in expected]
    assert [v for *_, v in got] == pytest.approx([v for *_, v in expected], abs=1e-6)


def test_dataset_and_ordered_loader_give_the_same_patches(setting):
    model, images = setting
    dataset = TensorDataset(images, torch.zeros(len(images), dtype=torch.long))
    from_tensor = interp.max_activating_patches(model, images, LAYER, 2, k=4)
    from_dataset = interp.max_activating_patches(model, dataset, LAYER, 2, k=4, batch_size=8)
    from_loader = interp.max_activating_patches(model, DataLoader(dataset, batch_size=6), LAYER, 2, k=4)
    assert from_tensor == from_dataset == from_loader


def test_boxes_lie_inside_the_image_and_crops_match_them(setting):
    model, images = setting
    patches = interp.max_activating_patches(model, images, "features.conv2_1", 1, k=20)
    assert len(patches) == 20
    for _, (top, left, bottom, right), _ in patches:
        assert 0 <= top < bottom <= 20 and 0 <= left < right <= 20
    crops = interp.crop_patches(images, patches[:3])
    (i, (top, left, bottom, right), _) = patches[0]
    assert torch.equal(crops[0], images[i, :, top:bottom, left:right])


def test_k_larger_than_the_dataset_returns_every_image(setting):
    model, images = setting
    assert len(interp.max_activating_patches(model, images[:3], LAYER, 0, k=9)) == 3


def test_bad_input(setting):
    model, images = setting
    with pytest.raises(LabError, match=r"channel 6 is out of range: layer 'features.relu2_1' has 6 channels"):
        interp.max_activating_patches(model, images, LAYER, 6)
    shuffled = DataLoader(TensorDataset(images), batch_size=4, shuffle=True)
    with pytest.raises(LabError, match="shuffle=False"):
        interp.max_activating_patches(model, shuffled, LAYER, 0)
    with pytest.raises(LabError, match=r"Did you mean.*'features.relu2_1'"):
        interp.max_activating_patches(model, images, "features.relu21", 0)
    with pytest.raises(LabError, match="k=0"):
        interp.max_activating_patches(model, images, LAYER, 0, k=0)
    with pytest.raises(LabError, match="not feature maps"):
        interp.max_activating_patches(model, images, "classifier.fc1", 0)


def test_several_channels_in_one_pass_equal_one_call_each(setting):
    model, images = setting
    together = interp.max_activating_patches(model, images, LAYER, [4, 1], k=5, batch_size=7)
    assert list(together) == [4, 1]
    for c in (4, 1):
        assert together[c] == interp.max_activating_patches(model, images, LAYER, c, k=5, batch_size=7)
