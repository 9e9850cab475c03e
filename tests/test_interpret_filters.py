"""filters, feature maps, deep-filter summaries, filter patterns (activation maximisation) and their
figures."""

from __future__ import annotations

from collections import OrderedDict

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn

import labkit.interpret as interp
from labkit.core import LabError
from labkit.interpret.filters import top_slices
from labkit.models import NaiveCNN
from labkit.plots import filters as fplots


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def net() -> NaiveCNN:
    model = NaiveCNN(4, channels=(6, 8), convs_per_stage=2, hidden=0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_filters_returns_a_detached_copy_of_the_weights():
    model = net()
    w = interp.filters(model, "features.conv2_1")
    assert w.shape == (8, 6, 3, 3)
    assert torch.equal(w, model.features.conv2_1.weight)
    w.zero_()
    assert model.features.conv2_1.weight.abs().sum() > 0, "filters() must not hand out the live weights"
    assert torch.equal(interp.filters(model, model.features.conv1_1), model.features.conv1_1.weight)


def test_filters_of_a_non_conv_layer_names_the_conv_layers():
    with pytest.raises(
        LabError,
        match=r"'features.relu1_1' is a ReLU, not a conv layer.*'features.conv1_1', 'features.conv1_2'",
    ):
        interp.filters(net(), "features.relu1_1")


def test_filters_of_an_unknown_layer_suggests_close_names():
    with pytest.raises(LabError, match=r"Did you mean.*'features.conv1_1'"):
        interp.filters(net(), "features.conv11")


def test_input_channel_norms_and_top_slices():
    model = net()
    w = model.features.conv2_2.weight.detach()
    norms = interp.input_channel_norms(model, "features.conv2_2")
    assert norms.shape == (8, 8)
    assert torch.allclose(norms[3, 5], w[3, 5].pow(2).sum().sqrt())
    idx, slices = top_slices(interp.filters(model, "features.conv2_2")[3], k=2)
    expected = sorted(range(8), key=lambda i: -float(w[3, i].norm()))[:2]
    assert idx.tolist() == expected
    assert torch.equal(slices, w[3, expected])


def test_feature_maps_equal_the_layers_outputs_and_leave_batchnorm_statistics_alone():
    model = net().train()  # a forward pass in train mode would update the running statistics
    mean_before = model.features.bn1_1.running_mean.clone()
    x = torch.randn(2, 3, 12, 12)
    maps = interp.feature_maps(model, x, ["features.relu1_2", model.features.conv2_1])
    assert list(maps) == ["features.relu1_2", "features.conv2_1"]
    f = model.features
    with torch.no_grad():
        model.eval()
        h = f.relu1_2(f.bn1_2(f.conv1_2(f.relu1_1(f.bn1_1(f.conv1_1(x))))))
        torch.testing.assert_close(maps["features.relu1_2"], h)
        torch.testing.assert_close(maps["features.conv2_1"], f.conv2_1(f.pool1(h)))
    assert torch.equal(model.features.bn1_1.running_mean, mean_before)


def test_feature_maps_rejects_a_single_image_without_batch_dimension():
    with pytest.raises(LabError, match=r"unsqueeze\(0\)"):
        interp.feature_maps(net(), torch.randn(3, 12, 12), "features.conv1_1")


# ---------------------------------------------------------------- filter_pattern


def test_filter_pattern_beats_every_random_image_of_the_same_contrast():
    model = net()
    layer, channel = "features.relu2_1", 2
    image, reached = interp.filter_pattern(
        model, layer, channel, steps=40, lr=0.1, image_size=24, blur_every=0, return_activation=True
    )
    assert image.shape == (1, 3, 24, 24)
    maps = interp.feature_maps(model, image, layer)[layer]
    assert abs(float(maps[0, channel].mean()) - reached) < 1e-5
    random_images = torch.randn(32, 3, 24, 24) * image.std()
    random_acts = interp.feature_maps(model, random_images, layer)[layer][:, channel].mean(dim=(1, 2))
    assert reached > float(random_acts.max())


def test_filter_pattern_starts_where_a_rarely_active_unit_responds(monkeypatch):
    # a ReLU unit silent all over its start image has no gradient
    from collections import OrderedDict

    from torch import nn

    from labkit.interpret import activation_max

    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 1, 3), relu=nn.ReLU()))
    with torch.no_grad():  # active where the 0.1-noise around grey lifts it by 2 standard deviations
        w = model.conv.weight
        model.conv.bias.fill_(-float(0.5 * w.sum() + 2.0 * 0.1 * w.norm()))
    kwargs = dict(
        steps=5,
        lr=0.05,
        image_size=6,
        mean=(0.0,) * 3,
        std=(1.0,) * 3,
        blur_every=0,
        jitter=0,
        return_activation=True,
    )

    def moved(starts: int) -> int:
        monkeypatch.setattr(activation_max, "STARTS", starts)
        return sum(interp.filter_pattern(model, "relu", 0, seed=s, **kwargs)[1] > 0 for s in range(12))

    # the best of several starts gets going nearly always; a single start does too, since a start that
    # leaves the unit at 0 is drawn again from wider noise (next test)
    assert moved(activation_max.STARTS) >= 9 and moved(1) >= 9


def test_filter_pattern_is_reproducible_and_respects_the_pixel_range():
    model = net()
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    kwargs = dict(steps=10, lr=0.5, image_size=16, mean=mean, std=std, seed=3)
    a = interp.filter_pattern(model, "features.conv1_2", 1, **kwargs)
    b = interp.filter_pattern(model, "features.conv1_2", 1, **kwargs)
    assert torch.equal(a, b)
    pixels = a * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5


def test_filter_pattern_regularisers_can_be_switched_off():
    model = net()
    smooth = interp.filter_pattern(
        model, "features.conv1_1", 0, steps=8, image_size=16, blur_every=1, blur_sigma=1.0
    )
    rough = interp.filter_pattern(
        model, "features.conv1_1", 0, steps=8, image_size=16, blur_every=0, jitter=0, l2=0
    )

    def roughness(img):
        return float((img[..., 1:, :] - img[..., :-1, :]).abs().mean())

    assert roughness(smooth) < roughness(rough)


def test_filter_pattern_bad_channel_and_settings():
    with pytest.raises(LabError, match=r"layer 'features.relu2_1' has 8 channels"):
        interp.filter_pattern(net(), "features.relu2_1", 12, steps=1, image_size=8)
    with pytest.raises(LabError, match="steps"):
        interp.filter_pattern(net(), "features.relu2_1", 0, steps=-1)
    with pytest.raises(LabError, match="both mean and std"):
        interp.filter_pattern(net(), "features.relu2_1", 0, steps=1, mean=(0.5, 0.5, 0.5))


# ---------------------------------------------------------------- figures


def _canvas(fig) -> np.ndarray:
    """The one image a montage figure draws (all panels on one canvas)."""
    (image,) = [im for ax in fig.axes for im in ax.get_images()]
    return np.asarray(image.get_array())


def _texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_filter_grid_shows_rgb_filters_with_zero_as_grey():
    matplotlib.use("Agg")
    w = torch.zeros(4, 3, 3, 3)
    w[1, 0, 1, 1] = 1.0  # one red centre pixel
    canvas = _canvas(fplots.filter_grid(w, ncols=2))
    colours, counts = np.unique(canvas.reshape(-1, 3), axis=0, return_counts=True)
    found = {tuple(c): n for c, n in zip(colours.round(3).tolist(), counts)}
    assert set(found) == {(1.0, 1.0, 1.0), (0.5, 0.5, 0.5), (1.0, 0.5, 0.5)}  # background, zero, red
    cell = fplots.MIN_CELL
    assert found[(1.0, 0.5, 0.5)] == (cell // 3) ** 2  # one weight, enlarged to a third of a cell
    assert found[(0.5, 0.5, 0.5)] == 4 * cell**2 - (cell // 3) ** 2


def test_filter_map_pairs_label_every_panel():
    model = net()
    x = torch.randn(1, 3, 16, 16)
    layers = ["features.conv1_1", "features.conv2_2"]
    weights = {layer: interp.filters(model, layer) for layer in layers}
    fig = fplots.filter_map_pairs(
        x,
        [(layers[0], 2), (layers[1], 5)],
        weights,
        interp.feature_maps(model, x, layers),
        k=3,
        denormalize=torch.sigmoid,
    )
    texts = _texts(fig)
    assert "features.conv1_1\nfilter 2 (RGB)" in texts and "\nmap 5" in texts
    w = model.features.conv2_2.weight[5].detach()
    strongest = sorted(range(w.shape[0]), key=lambda i: -float(w[i].norm()))[:3]
    assert [t for t in texts if "in " in t] == [
        f"features.conv2_2 f5\nin {strongest[0]}",
        f"\nin {strongest[1]}",
        f"\nin {strongest[2]}",
    ]


def test_colorize_spans_the_colour_map():
    panel = fplots.colorize(torch.tensor([[0.0, 1.0], [2.0, 4.0]]))
    viridis = matplotlib.colormaps["viridis"]
    assert np.allclose(panel[0, 0], viridis(0.0)[:3]) and np.allclose(panel[1, 1], viridis(1.0)[:3])


def test_patch_grid_keeps_relative_patch_sizes():
    crops = {
        "unit a": [torch.full((3, 30, 30), 0.2), torch.full((3, 15, 30), 0.2)],
        "unit b": [torch.full((3, 10, 10), 0.2)],
    }
    fig = fplots.patch_grid(crops, values={"unit a": [2.0, 1.0], "unit b": [0.5]})
    assert _texts(fig) == ["2.00", "1.00", "0.50", "unit a", "unit b"]
    canvas = _canvas(fig)
    dark = np.isclose(canvas, 0.2).all(axis=2)
    cell = fplots.MIN_CELL
    assert dark.sum() == (cell * cell) + (cell * cell // 2) + (cell // 3) ** 2


def test_deconv_grid_shows_signed_projections_with_zero_as_grey():
    images = torch.rand(2, 3, 8, 8)
    fig = fplots.deconv_grid(
        images,
        {"conv1": torch.zeros(2, 3, 8, 8), "decoder conv1": torch.rand(2, 3, 8, 8)},
        panel_labels={"conv1": ["ch 3", "ch 1"]},
    )
    assert _texts(fig) == [
        "input",
        "conv1\nch 3",
        "decoder conv1\n",
        "input",
        "conv1\nch 1",
    ]  # "" is not drawn
    assert np.isclose(_canvas(fig), 0.5).all(axis=2).sum() == 2 * fplots.MIN_CELL**2  # two all-zero panels


def test_conv_layers_lists_conv_modules_in_order():
    seq = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 2, 1), relu=nn.ReLU(), conv_b=nn.Conv2d(2, 2, 3)))
    assert interp.conv_layers(seq) == ["conv", "conv_b"]


def test_filter_pattern_widens_its_noise_for_a_unit_no_start_near_grey_excites():
    """relu(x_R + x_G + x_B - 1.6) is zero everywhere on noise of std 0.1 around 0 (9 standard deviations
    short), so an ascent from there has no gradient; from wider noise it finds one and climbs."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 1, 1), torch.nn.ReLU())
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].bias.fill_(-1.6)
    image, reached = interp.filter_pattern(
        net, "1", 0, steps=20, image_size=8, blur_every=0, jitter=0, l2=0.0, return_activation=True
    )
    assert reached > 0.1 and image.shape == (1, 3, 8, 8)
