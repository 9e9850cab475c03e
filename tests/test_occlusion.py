"""labkit.interpret.occlusion: against captum's Occlusion, exact values on a linear model, batching,
bad input, state."""

import pytest
import torch
from captum.attr import Occlusion
from tiny_nets import breaks_in_the_middle, linear_model, tiny_cnn

from labkit.core import LabError
from labkit.interpret import occlusion, occlusion_masks
from labkit.interpret.occlusion import window_starts


@pytest.fixture
def x():
    torch.manual_seed(1)
    return torch.randn(3, 3, 13, 12, dtype=torch.float64)


@pytest.mark.parametrize("window,stride", [(4, 2), (5, 3), (3, 3), (12, 5), (1, 1)])
def test_occlusion_equals_captum(window, stride, x):
    model = tiny_cnn()
    target = [0, 3, 2]
    ours = occlusion(model, x, target=target, window=window, stride=stride, batch_size=7)
    theirs = Occlusion(model).attribute(
        x,
        sliding_window_shapes=(3, window, window),
        strides=(3, stride, stride),
        target=target,
        baselines=0.0,
    )
    assert ours.shape == (3, 13, 12)
    # captum divides its sums in float32, so agreement is to float32 precision
    assert torch.allclose(ours, theirs[:, 0].double(), rtol=1e-6, atol=1e-7)


def test_occlusion_equals_captum_with_an_image_as_baseline(x):
    model = tiny_cnn()
    grey = torch.full_like(x, 0.3)
    ours = occlusion(model, x, target=1, window=4, stride=2, baseline=grey)
    theirs = Occlusion(model).attribute(
        x, sliding_window_shapes=(3, 4, 4), strides=(3, 2, 2), target=1, baselines=grey
    )
    assert torch.allclose(ours, theirs[:, 0].double(), rtol=1e-6, atol=1e-7)


def test_one_pixel_windows_give_each_pixels_share_of_a_linear_score():
    weights = torch.tensor([[[1.0, -2.0], [3.0, 0.5]], [[0.0, 1.0], [-1.0, 2.0]]], dtype=torch.float64)
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]]], dtype=torch.float64)
    maps = occlusion(linear_model(weights), x, target=0, window=1, stride=1)
    # covering pixel (i, j) removes sum over channels of w * x there: [1+0, -4+6], [9-7, 2+16]
    assert maps.tolist() == [[[1.0, 2.0], [2.0, 18.0]]]


def test_overlapping_windows_average_the_drops_over_the_windows_covering_a_pixel():
    weights = torch.tensor([[[1.0, 2.0, 4.0], [0.0, 0.0, 0.0]]], dtype=torch.float64)  # one channel, 2 x 3
    x = torch.ones(1, 1, 2, 3, dtype=torch.float64)
    maps = occlusion(linear_model(weights), x, target=0, window=2, stride=1)
    # two windows, over columns {0, 1} (drop 1 + 2) and {1, 2} (drop 2 + 4), both rows each: column 0
    # sees 3, column 1 the mean 4.5, column 2 sees 6
    assert maps.tolist() == [[[3.0, 4.5, 6.0], [3.0, 4.5, 6.0]]]


def test_windows_reach_the_border_and_cover_every_pixel():
    assert window_starts(13, 4, 3) == [0, 3, 6, 9]  # 9..12 ends at the border
    assert window_starts(13, 4, 4) == [0, 4, 8, 12]  # the last window is cut at the border
    masks = occlusion_masks(13, 12, 4, 4)
    assert masks.shape == (4 * 3, 13, 12)
    assert masks.sum(dim=0).eq(1).all()  # windows that tile the image cover every pixel once
    assert masks[0, :4, :4].all() and masks[0].sum() == 16
    assert masks[-1, 12, 8:].all() and masks[-1].sum() == 4  # row 12 only, columns 8..11


def test_probability_score_and_default_target(x):
    model = tiny_cnn()
    predicted = model(x).argmax(1)
    assert torch.equal(
        occlusion(model, x, window=4, stride=2), occlusion(model, x, target=predicted, window=4, stride=2)
    )
    square = x[:, :, :12]
    predicted = model(square).argmax(1)
    probs = occlusion(
        model, square, target=predicted, window=12, stride=12, score="probability"
    )  # one window: all
    p = model(square).softmax(1).gather(1, predicted[:, None])[:, 0]
    p_grey = model(torch.zeros_like(square)).softmax(1).gather(1, predicted[:, None])[:, 0]
    assert torch.allclose(probs, (p - p_grey)[:, None, None].expand(-1, 12, 12), atol=1e-12)


def test_batch_size_does_not_change_the_maps(x):
    model = tiny_cnn()
    one = occlusion(model, x, target=[1, 2, 3], window=5, stride=2, batch_size=1)
    many = occlusion(model, x, target=[1, 2, 3], window=5, stride=2, batch_size=10_000)
    single = torch.cat(
        [occlusion(model, x[i : i + 1], target=t, window=5, stride=2) for i, t in enumerate([1, 2, 3])]
    )
    assert torch.allclose(one, many, atol=1e-12) and torch.allclose(one, single, atol=1e-12)


def test_covering_with_the_image_itself_changes_nothing(x):
    # zero up to float64 rounding: the batched forward passes may sum in another order than the unbatched one
    assert occlusion(tiny_cnn(), x, window=3, stride=2, baseline=x).abs().max() < 1e-12


def test_bad_settings_are_refused_before_any_work(x):
    model = tiny_cnn()
    with pytest.raises(LabError, match="stride=5 > window=4"):
        occlusion(model, x, window=4, stride=5)
    with pytest.raises(LabError, match="larger than the images"):
        occlusion(model, x, window=14, stride=2)
    with pytest.raises(LabError, match="score='softmax'"):
        occlusion(model, x, score="softmax")
    with pytest.raises(LabError, match="does not broadcast"):
        occlusion(model, x, baseline=torch.zeros(2, 3, 13, 12))
    with pytest.raises(LabError, match="window=0"):
        occlusion(model, x, window=0)
    with pytest.raises(LabError, match="target 4 is out of range"):
        occlusion(model, x, target=4)


@pytest.mark.filterwarnings("ignore:.*training mode")
def test_model_given_back_as_found_also_when_it_raises(x):
    model = tiny_cnn()
    with breaks_in_the_middle(model, after=2):  # the unoccluded pass works, a later batch fails
        occlusion(model, x, window=4, stride=2, batch_size=4)
