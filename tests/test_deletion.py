"""labkit.interpret.deletion: exact curves on a linear model, areas, tie order, batching, bad input, state."""

import math

import pytest
import torch
from tiny_nets import breaks_in_the_middle, linear_model, tiny_cnn

from labkit.core import LabError
from labkit.interpret import auc, blurred, deletion_curve, pixel_order

WEIGHTS = torch.tensor([[[4.0, 3.0], [2.0, 1.0]]], dtype=torch.float64)  # one channel, 2 x 2


def sigmoid(values):
    return [1 / (1 + math.exp(-v)) for v in values]


def test_deletion_follows_the_map_from_the_most_important_pixel():
    x = torch.ones(1, 1, 2, 2, dtype=torch.float64)
    curve = deletion_curve(linear_model(WEIGHTS), x, WEIGHTS, target=0, steps=4)
    # pixels go in the order 4, 3, 2, 1: the score falls 10, 6, 3, 1, 0
    assert torch.allclose(curve, torch.tensor([sigmoid([10, 6, 3, 1, 0])], dtype=torch.float64), atol=1e-12)
    backwards = deletion_curve(
        linear_model(WEIGHTS), x, -WEIGHTS, target=0, steps=4
    )  # the least important first
    assert torch.allclose(
        backwards, torch.tensor([sigmoid([10, 9, 7, 4, 0])], dtype=torch.float64), atol=1e-12
    )
    assert auc(curve) < auc(backwards)


def test_insertion_puts_the_pixels_back_onto_the_substrate():
    x = torch.ones(1, 1, 2, 2, dtype=torch.float64)
    curve = deletion_curve(
        linear_model(WEIGHTS), x, WEIGHTS, target=0, mode="insertion", steps=2, substrate=0.0
    )
    # half of the pixels per step: 0, then 4 + 3, then all 10
    assert torch.allclose(curve, torch.tensor([sigmoid([0, 7, 10])], dtype=torch.float64), atol=1e-12)


def test_insertion_starts_from_the_blurred_image_by_default():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    model = tiny_cnn()
    maps = torch.rand(2, 16, 16, dtype=torch.float64)
    curve = deletion_curve(model, x, maps, target=[1, 2], mode="insertion", steps=4)
    start = model(blurred(x)).softmax(1)[[0, 1], [1, 2]]
    end = model(x).softmax(1)[[0, 1], [1, 2]]
    assert torch.allclose(curve[:, 0], start, atol=1e-12) and torch.allclose(curve[:, -1], end, atol=1e-12)
    deleted = deletion_curve(model, x, maps, target=[1, 2], steps=4)
    assert torch.allclose(deleted[:, -1], model(torch.zeros_like(x)).softmax(1)[[0, 1], [1, 2]], atol=1e-12)


def test_area_is_the_trapezoid_rule_over_the_fraction_moved():
    curves = torch.tensor([[1.0, 0.5, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
    assert auc(curves).tolist() == [0.5, 1.0, 0.5]
    with pytest.raises(LabError, match="at least two points"):
        auc(torch.ones(2, 1))


def test_pixels_ranked_equal_come_in_a_seeded_random_order():
    maps = torch.tensor([[[3.0, 1.0, 1.0], [1.0, 2.0, 1.0]]])  # flat: 3 at 0, 2 at 4, ties at 1, 2, 3, 5
    order = pixel_order(maps, seed=0)
    assert order[0, :2].tolist() == [0, 4]
    assert sorted(order[0, 2:].tolist()) == [1, 2, 3, 5]
    assert torch.equal(order, pixel_order(maps, seed=0))
    orders = {tuple(pixel_order(maps, seed=s)[0, 2:].tolist()) for s in range(20)}
    assert len(orders) > 1  # not the raster order every time
    flat = torch.zeros(1, 8, 8)
    first_half = pixel_order(flat, seed=3)[0, :32]
    assert (
        8 < (first_half // 8 < 4).sum() < 24
    )  # a constant map deletes from everywhere, not the top rows first


def test_batch_size_and_batching_do_not_change_the_curves():
    torch.manual_seed(0)
    x = torch.randn(3, 3, 12, 12, dtype=torch.float64)
    maps = torch.rand(3, 12, 12, dtype=torch.float64)
    model = tiny_cnn()
    one = deletion_curve(model, x, maps, steps=5, batch_size=1)
    many = deletion_curve(model, x, maps, steps=5, batch_size=1000)
    predicted = model(x).argmax(1)
    single = torch.cat(
        [deletion_curve(model, x[i : i + 1], maps[i : i + 1], target=predicted[i], steps=5) for i in range(3)]
    )
    assert one.shape == (3, 6)
    assert torch.allclose(one, many, atol=1e-12) and torch.allclose(one, single, atol=1e-12)


def test_bad_input_is_refused_before_any_work():
    x = torch.ones(2, 1, 2, 2, dtype=torch.float64)
    model = linear_model(WEIGHTS)
    with pytest.raises(
        LabError, match=r"maps has shape \(2, 1, 2, 2\); expected one map per image, \(2, 2, 2\)"
    ):
        deletion_curve(model, x, torch.ones(2, 1, 2, 2))
    with pytest.raises(LabError, match="mode='remove'"):
        deletion_curve(model, x, torch.ones(2, 2, 2), mode="remove")
    with pytest.raises(LabError, match="steps=0"):
        deletion_curve(model, x, torch.ones(2, 2, 2), steps=0)


@pytest.mark.filterwarnings("ignore:.*training mode")
def test_model_given_back_as_found_also_when_it_raises():
    model = tiny_cnn()
    with breaks_in_the_middle(model, after=1):  # the first pass works, the first batch of the curve fails
        deletion_curve(model, torch.ones(2, 3, 8, 8, dtype=torch.float64), torch.rand(2, 8, 8), steps=3)
