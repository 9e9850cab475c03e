"""Feature inversion by learned decoders: the error measure, and that a layer that keeps the image
is inverted far better than one that has averaged it away."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import labkit.interpret as interp
from labkit.core import LabError


def smooth_images(n: int, seed: int) -> torch.Tensor:
    """Random low-frequency colour images (learnable from a few dozen examples)."""
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.randn(n, 3, 4, 4, generator=g), size=16, mode="bilinear", align_corners=False)


def probe_net() -> nn.Sequential:
    """`keep`: a 1x1 conv that copies the image into 3 channels (all information kept);
    `avg`: 16x16 average pooling of it (only the mean colour kept)."""
    net = nn.Sequential(OrderedDict(keep=nn.Conv2d(3, 3, 1), avg=nn.AvgPool2d(16)))
    with torch.no_grad():
        net.keep.weight.copy_(torch.eye(3)[:, :, None, None])
        net.keep.bias.zero_()
    return net.eval()


def test_relative_error_is_zero_for_the_image_and_one_for_the_mean_image():
    x = smooth_images(8, 0)
    assert interp.relative_error(x, x) == 0
    mean_image = x.mean(dim=(0, 2, 3), keepdim=True).expand_as(x)
    assert interp.relative_error(mean_image, x) == pytest.approx(1.0, abs=1e-6)


def test_kept_layer_inverts_better_than_pooled_layer():
    model = probe_net()
    train, test = smooth_images(64, 1), smooth_images(16, 2)
    inversions = interp.invert_layers(
        model, ["keep", "avg"], train, test, epochs=20, batch_size=16, lr=3e-3, width=16
    )
    errors = {name: inversion.test_error for name, inversion in inversions.items()}
    assert list(errors) == ["keep", "avg"]
    assert errors["keep"] < 0.2
    assert errors["avg"] > 0.5
    assert errors["keep"] < errors["avg"] / 3


def test_inversion_is_reproducible_and_reconstructs_like_x():
    model = probe_net()
    train = smooth_images(16, 3)
    a = interp.train_inversion(model, "keep", train, test_images=train, epochs=2, seed=5)
    b = interp.train_inversion(model, "keep", train, test_images=train, epochs=2, seed=5)
    assert a.train_loss == b.train_loss and a.test_error == b.test_error
    assert a.reconstruct(model, train[:2]).shape == (2, 3, 16, 16)
    assert len(a.train_loss) == 2


def test_bad_input():
    model = probe_net()
    with pytest.raises(LabError, match="epochs"):
        interp.train_inversion(model, "keep", smooth_images(4, 0), epochs=0)
    with pytest.raises(LabError, match=r"Did you mean.*'keep'"):
        interp.train_inversion(model, "kep", smooth_images(4, 0))
    with pytest.raises(LabError, match="images is empty"):
        interp.train_inversion(model, "keep", torch.empty(0, 3, 16, 16))
