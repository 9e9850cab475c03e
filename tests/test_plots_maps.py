"""labkit.plots.maps: class-model grids show what they are given, stretched on request."""

import numpy as np
import pytest
import torch

from labkit.env import LabError
from labkit.plots.maps import ablation_grid, class_model_grid, contrast_stretch


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


def test_grids_show_the_stretched_image_only_when_asked():
    images = faint_images()
    plain = class_model_grid(images, ["a", "b", "c"], ncols=3)
    shown = np.asarray(plain.axes[0].images[0].get_array())
    np.testing.assert_allclose(shown, images[0].permute(1, 2, 0).numpy(), atol=1e-6)
    stretched = class_model_grid(images, ["a", "b", "c"], ncols=3, stretch=True)
    assert np.ptp(np.asarray(stretched.axes[0].images[0].get_array())) == pytest.approx(1.0)

    fig = ablation_grid({"none": images, "L2": images}, ["a", "b", "c"], footers={"L2": "conf 0.9"}, stretch=True)
    assert len(fig.axes) == 6 and fig.axes[1].get_xlabel() == ""
    with pytest.raises(LabError, match="has 3 images for 2 row labels"):
        ablation_grid({"none": images}, ["a", "b"])
