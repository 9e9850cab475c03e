"""labkit.widgets: the headless decision is explicit, explorers fall back to a static figure, and
the dropdown callbacks redraw what was chosen (driven here without a browser)."""

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from labkit import widgets
from labkit.core import LabError


def recorder():
    calls = []

    def render(*values):
        calls.append(values)
        fig, _ = plt.subplots()
        return fig

    return calls, render


def test_headless_is_what_the_environment_variable_says(monkeypatch):
    monkeypatch.setenv("LABKIT_HEADLESS", "1")
    assert widgets.headless()
    monkeypatch.setenv("LABKIT_HEADLESS", "0")
    assert not widgets.headless()  # a notebook or a developer can ask for widgets explicitly
    monkeypatch.delenv("LABKIT_HEADLESS")
    assert widgets.headless()  # no Jupyter kernel here, whatever the process is called


def test_explorer_draws_a_static_figure_of_the_first_choice_when_headless(monkeypatch):
    monkeypatch.setenv("LABKIT_HEADLESS", "1")
    calls, render = recorder()
    view = widgets.explorer(render, {"conv_a": 4, "conv_b": [7, 9]}, ["cat", "dog"])
    assert isinstance(view, Figure) and calls == [("cat", "conv_a", 0)]
    with pytest.raises(LabError, match="at least one layer"):
        widgets.explorer(render, {}, ["cat"])


def test_explorer_dropdowns_redraw_and_channels_follow_the_layer():
    calls, render = recorder()
    view = widgets.explorer(render, {"conv_a": 4, "conv_b": [7, 9]}, ["cat", "dog"], interactive=True)
    image, layer, channel = view.children[0].children
    assert calls == [("cat", "conv_a", 0)] and list(channel.options) == [0, 1, 2, 3]
    layer.value = "conv_b"
    assert (
        list(channel.options) == [7, 9] and calls[-1] == ("cat", "conv_b", 7) and len(calls) == 2
    )  # one redraw
    channel.value = 9
    image.value = "dog"
    assert calls[-2:] == [("cat", "conv_b", 9), ("dog", "conv_b", 9)]


def test_class_chooser_offers_each_images_top_classes():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5)
    ).eval()
    images = {"a": torch.rand(3, 8, 8), "b": torch.rand(3, 8, 8)}
    classes = list("vwxyz")
    fig = widgets.class_chooser(model, images, classes, denormalize=lambda t: t, k=2, interactive=False)
    assert isinstance(fig, Figure) and fig.axes[1].get_title().startswith("gradcam: ")
    view = widgets.class_chooser(model, images, classes, denormalize=lambda t: t, k=2, interactive=True)
    photo, choice = view.children[0].children
    photo.value = "b"
    assert len(choice.options) == 2 and all(label.split(" ")[0] in classes for label, _ in choice.options)


def test_class_chooser_redraws_the_class_and_image_chosen():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5)
    ).eval()
    images = {"a": torch.rand(3, 8, 8), "b": torch.rand(3, 8, 8)}
    drawn = []

    def method(model, x, target):  # a stand-in map that records what it was asked for
        drawn.append((x.clone(), target))
        return torch.rand(1, 8, 8)

    view = widgets.class_chooser(
        model, images, list("vwxyz"), denormalize=lambda t: t, method=method, k=3, interactive=True
    )
    photo, choice = view.children[0].children
    assert drawn[-1][1] == choice.value and torch.equal(drawn[-1][0][0], images["a"])
    other = choice.options[2][1]
    choice.value = other
    assert drawn[-1][1] == other  # one redraw, for the class chosen
    photo.value = "b"
    assert torch.equal(drawn[-1][0][0], images["b"]) and drawn[-1][1] == choice.options[0][1]
