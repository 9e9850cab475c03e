"""labkit.plots.maps: grids draw what they are given (maps, hits, images), stretched on request."""

import numpy as np
import pytest
import torch

from labkit.core import LabError
from labkit.plots.maps import ablation_grid, class_model_grid, contrast_stretch, maps_grid


def faint_images(n=3, size=16):
    """Images in [0, 1] that stay within 0.45..0.55, as class models near the mean colour do."""
    g = torch.Generator().manual_seed(0)
    return 0.5 + 0.05 * (2 * torch.rand(n, 3, size, size, generator=g) - 1)


def test_contrast_stretch_maps_each_images_percentiles_to_0_and_1():
    pics = faint_images().permute(0, 2, 3, 1).numpy()
    pics[1] = 0.2 + 0.1 * pics[1]  # another range for the second image: stretched on its own
    out = contrast_stretch(pics, low=1, high=99)
    for img, orig in zip(out, pics):
        assert np.percentile(img, 1) == pytest.approx(0.0, abs=1e-3)  # interpolated between ranks
        assert np.percentile(img, 99) == pytest.approx(1.0, abs=1e-3)
        # monotone: the brightest input pixel is still the brightest output pixel
        assert img.reshape(-1)[orig.argmax()] == img.max()


def tile(fig, index: int, ncols: int, size: int) -> np.ndarray:
    """Tile `index` of a `tile_grid` figure: its mosaic is ncols tiles of size x size with equal padding."""
    (ax,) = fig.axes
    mosaic = np.asarray(ax.images[0].get_array())
    pad = (mosaic.shape[1] - ncols * size) // (ncols + 1)
    r, c = divmod(index, ncols)
    top, left = pad + r * (size + pad), pad + c * (size + pad)
    return mosaic[top : top + size, left : left + size]


def test_grids_show_the_stretched_image_only_when_asked():
    images = faint_images()
    plain = class_model_grid(images, ["a", "b", "c"], ncols=2)
    assert [t.get_text() for t in plain.axes[0].texts] == ["a", "b", "c"]
    for i in range(3):
        np.testing.assert_allclose(tile(plain, i, 2, 16), images[i].permute(1, 2, 0).numpy(), atol=1e-6)
    stretched = class_model_grid(images, ["a", "b", "c"], ncols=3, stretch=True)
    assert np.ptp(tile(stretched, 1, 3, 16)) == pytest.approx(1.0)

    fig = ablation_grid(
        {"none": images, "L2": images}, ["a", "b", "c"], footers={"L2": "conf 0.9"}, stretch=True
    )
    assert len(fig.axes) == 6 and fig.axes[1].get_xlabel() == ""
    with pytest.raises(LabError, match="has 3 images for 2 row labels"):
        ablation_grid({"none": images}, ["a", "b"])


def test_maps_grid_marks_the_hits_it_is_given_and_scores_nothing_itself():
    images = faint_images(2, 8)
    heat = torch.zeros(2, 8, 8)
    heat[0, 1, 2] = heat[1, 6, 5] = 1.0
    signed = torch.randn(2, 3, 8, 8)
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    fig = maps_grid(
        images,
        {"heat": heat, "signed": signed},
        masks=masks,
        hits={"heat": [True, False]},
        panel_labels={"signed": ["x", "y"]},
        row_labels=["a", "b"],
    )
    axes = np.array(fig.axes).reshape(2, 3)
    crosses = [
        (line.get_xdata()[0], line.get_ydata()[0], line.get_color()) for line in axes[:, 1].flat[0].lines
    ]
    assert crosses == [(2, 1, "lime")]  # at the maximum (row 1, column 2), green for a hit
    assert [line.get_color() for line in axes[1, 1].lines] == ["red"] and not axes[
        0, 2
    ].lines  # no hits given
    assert [ax.get_title() for ax in axes[0]] == ["image", "heat", "signed"] and axes[
        1, 2
    ].get_xlabel() == "y"
    with pytest.raises(LabError, match="has 2 maps for 3 images"):
        maps_grid(faint_images(3, 8), {"heat": heat})
