"""labkit.interpret.fooling: the fewest steps on a linear model worked out by hand, sizes in pixel units,
pixels kept in range, per-image stopping, bad input, state."""

import pytest
import torch
from tiny_nets import breaks_in_the_middle, tiny_cnn
from tiny_nets import linear_model as weighted_sum

from labkit.core import LabError
from labkit.interpret import fool


def linear_model(bias=-0.5):
    """Two classes on 1 x 2 x 2 images: logits = [sum(x) + bias, 0]."""
    return weighted_sum(torch.ones(1, 2, 2, dtype=torch.float64), bias)


def grey(*values):
    return torch.stack([torch.full((1, 2, 2), v, dtype=torch.float64) for v in values])


def test_sign_steps_stop_at_the_first_step_that_fools_the_network():
    # class 0's score is 4 * 0.5 - 0.5 = 1.5; each step of 0.1 lowers every pixel by 0.1 and the
    # score by 0.4: 1.1, 0.7, 0.3, -0.1, so the fourth step makes class 1 win.
    result = fool(linear_model(), grey(0.5), target=1, step_size=0.1, max_steps=50)
    assert result.steps.tolist() == [4] and result.fooled.tolist() == [True]
    assert torch.allclose(result.images, grey(0.1), atol=1e-12)
    assert torch.allclose(result.perturbation, grey(-0.4), atol=1e-12)
    assert result.linf.tolist() == pytest.approx([0.4]) and result.l2.tolist() == pytest.approx([0.8])
    assert result.targets.tolist() == [1]


def test_l2_steps_move_along_the_unit_gradient():
    # the gradient is the same on all four pixels: a unit step of 0.2 moves each by 0.1
    result = fool(linear_model(), grey(0.5), target=1, step_size=0.2, norm="l2")
    assert result.steps.tolist() == [4] and result.l2.tolist() == pytest.approx([0.8])


def test_each_image_stops_when_it_is_fooled():
    # 0.7: 2.3 - 0.4 k < 0 first at k = 6
    result = fool(linear_model(), grey(0.5, 0.7), target=1, step_size=0.1)
    assert result.steps.tolist() == [4, 6]
    assert torch.allclose(result.images, grey(0.1, 0.1), atol=1e-12)


def test_steps_are_in_pixel_units_and_pixels_stay_in_range():
    # input x = (pixel - 0.5) / 2: the same network on normalised input sees half the change per pixel unit
    model, mean, std = linear_model(bias=-0.25), [0.5], [2.0]
    x = (grey(0.75) - 0.5) / 2  # score 4 * 0.125 - 0.25 = 0.25; each pixel step of 0.1 lowers it by 0.2
    result = fool(model, x, target=1, step_size=0.1, mean=mean, std=std)
    assert result.steps.tolist() == [2]
    assert torch.allclose(result.perturbation, grey(-0.2), atol=1e-12)  # pixel units
    assert torch.allclose(result.images * 2 + 0.5, grey(0.55), atol=1e-12)
    stuck = fool(linear_model(bias=0.5), grey(0.2), target=1, step_size=0.1, max_steps=10)  # 0 is not enough
    assert stuck.fooled.tolist() == [False] and stuck.steps.tolist() == [10]
    assert stuck.images.min() == 0.0 and stuck.linf.tolist() == pytest.approx([0.2])


def test_default_target_is_the_second_most_likely_class():
    torch.manual_seed(0)
    x = torch.randn(5, 3, 8, 8, dtype=torch.float64)
    model = tiny_cnn(pooled=1)
    result = fool(model, x, step_size=0.01, max_steps=500)
    assert torch.equal(result.targets, model(x).topk(2, dim=1).indices[:, 1])
    assert result.fooled.all()
    assert torch.equal(model(result.images).argmax(1), result.targets)
    one_less = fool(model, x, step_size=0.01, max_steps=500)  # deterministic
    assert torch.equal(one_less.steps, result.steps)


def test_bad_input_is_refused():
    with pytest.raises(LabError, match=r"images \[0\] are already predicted as their target class"):
        fool(linear_model(), grey(0.5), target=0)
    with pytest.raises(LabError, match="norm='l1'"):
        fool(linear_model(), grey(0.5), target=1, norm="l1")
    with pytest.raises(LabError, match="max_steps=0"):
        fool(linear_model(), grey(0.5), target=1, max_steps=0)
    with pytest.raises(LabError, match="mean and std need 1 values"):
        fool(linear_model(), grey(0.5), target=1, mean=[0, 0, 0], std=[1, 1, 1])


@pytest.mark.filterwarnings("ignore:.*training mode")
def test_model_and_images_given_back_as_found_also_when_it_raises():
    model = tiny_cnn(pooled=1)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    copy = x.detach().clone()
    with breaks_in_the_middle(model, after=3):  # fails after two steps
        fool(model, x, step_size=0.001, max_steps=100)
    assert x.requires_grad and x.grad is None and torch.equal(x.detach(), copy)
