"""labkit.plots.maps.curve_panels and fooling_grid draw what they are given."""

import numpy as np
import pytest
import torch

from labkit.core import LabError
from labkit.plots.maps import curve_panels, fooling_grid


def test_curve_panels_draw_one_axis_per_panel_and_one_line_per_label():
    fig = curve_panels({"deletion": {"a": [1.0, 0.5, 0.0], "b": torch.tensor([1.0, 0.8, 0.1])},
                        "insertion": {"a": [0.0, 0.5, 1.0]}}, ylabel="p", title="t")  # fmt: skip
    assert [ax.get_title() for ax in fig.axes] == ["deletion", "insertion"]
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["a", "b"]
    np.testing.assert_allclose(lines[0].get_xdata(), [0.0, 0.5, 1.0])  # the fraction moved
    np.testing.assert_allclose(lines[1].get_ydata(), [1.0, 0.8, 0.1], atol=1e-7)
    named = curve_panels({"cascade": {"m": [1.0, 0.2]}}, x=["original", "fc"])
    assert [t.get_text() for t in named.axes[0].get_xticklabels()] == ["original", "fc"]
    with pytest.raises(LabError, match="different lengths"):
        curve_panels({"a": {"x": [1, 2], "y": [1, 2, 3]}})
    with pytest.raises(LabError, match="x has 3 positions"):
        curve_panels({"a": {"x": [1, 2]}}, x=[0, 1, 2])


def test_fooling_grid_shows_each_perturbation_magnified_to_its_largest_change():
    images = torch.full((2, 3, 4, 4), 0.5)
    delta = torch.zeros(2, 3, 4, 4)
    delta[0, :, 0, 0], delta[1, :, 1, 1], delta[1, :, 2, 2] = 0.01, -0.005, 0.0025
    fig = fooling_grid(images, images + delta, delta, row_labels=["cat", "dog"],
                       panel_labels={"fooling image": ["dog 0.6", "cat 0.7"]})  # fmt: skip
    assert [ax.get_title() for ax in fig.axes[:3]] == ["image", "perturbation, magnified", "fooling image"]
    first = np.asarray(fig.axes[1].images[0].get_array())
    second = np.asarray(fig.axes[4].images[0].get_array())
    assert first[0, 0, 0] == pytest.approx(1.0) and first[1, 1, 0] == pytest.approx(0.5)  # grey is no change
    assert second[1, 1, 0] == pytest.approx(0.0) and second[2, 2, 0] == pytest.approx(0.75)  # its own scale
    assert [t.get_text() for t in fig.axes[1].texts] == ["x50"] and [
        t.get_text() for t in fig.axes[4].texts
    ] == ["x100"]
    assert fig.axes[5].get_xlabel() == "cat 0.7" and fig.axes[0].get_ylabel() == "cat"
    with pytest.raises(LabError, match="2 images, 1 perturbed images"):
        fooling_grid(images, images[:1], delta)
