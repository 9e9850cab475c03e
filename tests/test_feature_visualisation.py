"""labkit.interpret.feature_visualisation.visualise: every switch setting raises the objective, the images
show what the objective asks for (a colour, a frequency), runs repeat for a seed, bad input is refused."""

import math

import pytest
import torch
from torch import nn

from labkit.core import LabError
from labkit.interpret.feature_visualisation import visualise

SWITCHES = [
    dict(param="fft", decorrelate=True, transforms=True),
    dict(param="pixel", decorrelate=False, transforms=False),
    dict(param="fft", decorrelate=False, transforms=False),
    dict(param="pixel", decorrelate=True, transforms=dict(pad=4, jitter_before=2, jitter_after=1)),
]


@pytest.fixture(scope="module")
def random_net():
    """A tiny conv net with fixed random weights; its class 0 is the objective."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(8, 3),
    )  # fmt: skip
    with torch.no_grad():
        net[-1].weight.mul_(100)  # scores of order 1, not 0.01
    return net.eval().requires_grad_(False)


def class_zero(net):
    return lambda images: net(images)[:, 0]


@pytest.mark.parametrize(
    "switches", SWITCHES, ids=lambda s: f"{s['param']}-{s['decorrelate']}-{bool(s['transforms'])}"
)
def test_visualise_raises_the_objective_for_every_switch(random_net, switches):
    objective = class_zero(random_net)
    start = visualise(objective, 24, 2, steps=0, **switches)
    images = visualise(objective, 24, 2, steps=40, **switches)
    assert images.shape == (2, 3, 24, 24) and images.min() >= 0 and images.max() <= 1
    assert (objective(images) > objective(start) + 0.5).all()


def redness(images):
    return images[:, 0].mean(dim=(1, 2)) - images[:, 1:].mean(dim=(1, 2, 3))


@pytest.mark.parametrize("param", ["fft", "pixel"])
def test_an_objective_that_likes_red_gets_red_images(param):
    images = visualise(redness, (20, 28), steps=200, param=param)
    r, g, b = images[0].mean(dim=(1, 2)).tolist()
    assert images.shape == (1, 3, 20, 28)
    assert r - max(g, b) > 0.4 and g < 0.25 and b < 0.25  # grey (0.5) at the start


def grating_energy(images):
    """The squared response to vertical stripes of period 8 across a 32 x 32 image: a filter that sees one
    frequency of the image's spectrum only, (0, 4)."""
    x = torch.arange(32.0)
    kernel = torch.cos(2 * math.pi * x / 8).expand(1, 3, 32, 32) / 32**2
    return nn.functional.conv2d(images - 0.5, kernel).pow(2).flatten(1).sum(1)


@pytest.mark.parametrize("param", ["fft", "pixel"])
def test_an_objective_that_likes_one_frequency_gets_that_frequency(param):
    images = visualise(grating_energy, 32, steps=60, param=param, transforms=False)
    spectrum = torch.fft.rfft2(images[0].mean(0) - images[0].mean()).abs()
    ky, kx = divmod(spectrum.argmax().item(), spectrum.shape[1])
    assert (ky, kx) == (0, 32 // 8)  # 4 cycles across 32 pixels, no vertical change


def test_visualise_repeats_for_a_seed_and_differs_for_another(random_net):
    run = [visualise(class_zero(random_net), 16, steps=5, seed=s) for s in (3, 3, 4)]
    assert torch.equal(run[0], run[1]) and not torch.equal(run[0], run[2])


def test_visualise_works_under_no_grad(random_net):
    with torch.no_grad():
        images = visualise(class_zero(random_net), 16, steps=3)
    assert images.shape == (1, 3, 16, 16)


def test_bad_settings_are_refused_with_the_fix(random_net):
    objective = class_zero(random_net)
    with pytest.raises(LabError, match=r"param='fourier': use one of \('fft', 'pixel'\)"):
        visualise(objective, 16, param="fourier")
    with pytest.raises(LabError, match="transforms='yes'"):
        visualise(objective, 16, transforms="yes")
    with pytest.raises(LabError, match=r"objective gave a tensor of shape \(2, 3\); expected \(2,\)"):
        visualise(random_net, 16, 2, steps=1)
    with pytest.raises(LabError, match="steps=-1"):
        visualise(objective, 16, steps=-1)
