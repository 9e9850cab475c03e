"""Activation maximisation (Erhan et al. 2009; Simonyan et al. 2014): the input a unit likes best, by
the regularised ascent of `labkit.interpret.ascent`.

Introduced in notebooks/05_filters_feature_maps.ipynb.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from labkit.core import LabError
from labkit.interpret.ascent import ascend, check_settings, pixel_range
from labkit.interpret.attribution import (
    check_channel,
    check_number,
    in_channels,
    inspecting,
    layer_output,
    model_device,
    model_dtype,
)
from labkit.interpret.hooks import LayerRef, find_layer

STARTS = 8  # noise images tried as the start of the ascent


def filter_pattern(
    model: nn.Module,
    layer: LayerRef,
    channel: int,
    steps: int = 128,
    lr: float = 0.05,
    *,
    jitter: int = 4,
    blur_every: int = 4,
    blur_sigma: float = 0.5,
    l2: float = 1e-3,
    image_size: int | tuple[int, int] = 64,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    noise: float = 0.1,
    seed: int = 0,
    return_activation: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, float]:
    """An input image that maximises the mean activation of `channel` of `layer` (a feature-map layer).

    Args:
        model: the network (eval mode during the ascent; given back as found).
        steps, lr, jitter, blur_every, blur_sigma, l2: the ascent (`labkit.interpret.ascent`; 0: off).
        image_size: H (= W) or (H, W).
        mean, std: the normalisation of the model's inputs; with them the image starts at pixel grey
            0.5 and stays in the pixel range [0, 1]; without, it starts at 0, unclipped.
        noise: the standard deviation of the starting noise, in pixel units.
        seed: the starting noise and the jitter (the global random state is not touched).
        return_activation: also return the mean activation reached.

    Returns:
        the image (1, C, H, W) in input space on the model's device, or `(image, activation)`.
    """
    name, _ = find_layer(model, layer)
    regularisers = dict(l2=l2, jitter=jitter, blur_every=blur_every, blur_sigma=blur_sigma)
    check_settings(steps, lr, **regularisers)
    check_number("noise", noise)
    if (mean is None) != (std is None):
        raise LabError("give both mean and std (the model's input normalisation), or neither.")
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randn(STARTS, in_channels(model), *size, generator=gen, dtype=model_dtype(model))
    starts = starts.to(model_device(model))
    low, high = pixel_range(mean, std, starts)  # grey is their midpoint, one pixel unit their distance
    starts = (low + high) / 2 + noise * (high - low) * starts if mean is not None else noise * starts
    low, high = (low, high) if mean is not None else (None, None)

    def gain(img: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N,)
        return layer_output(model, img, name, detach=False)[:, channel].mean(dim=(1, 2))

    with inspecting(model):
        with torch.no_grad():
            maps = layer_output(model, starts, name)  # (STARTS, C, h, w)
            channel = check_channel(name, maps.shape[1], channel)
            # A ReLU unit that is zero all over its start has no gradient and would never move:
            # start from the noise image that excites it most.
            best = int(maps[:, channel].mean(dim=(1, 2)).argmax())
        start = starts[best : best + 1]
        image = ascend(gain, start, steps=steps, lr=lr, low=low, high=high, generator=gen, **regularisers)
        with torch.no_grad():
            reached = float(gain(image))
    return (image, reached) if return_activation else image
