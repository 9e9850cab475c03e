"""Activation maximisation: the input a unit likes best, found by gradient ascent on the image.

Introduced in notebooks/05_filters_feature_maps.ipynb (Erhan et al. 2009, "Visualizing higher-layer
features of a deep network"; Simonyan et al. 2014, "Deep inside convolutional networks").

Start from a grey image plus a little noise (the one of a few such images that excites the unit
most: a ReLU unit silent all over its start has no gradient) and follow the gradient of the
channel's mean activation with respect to the pixels, with the regularisers of
`labkit.interpret.ascent` (jitter, blur and an L2 penalty by default) keeping the picture readable.
With `mean`/`std` (the normalisation of the model's inputs) the image also stays within the pixel
range [0, 1].
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

STARTS = 8  # noise images tried as the start of filter_pattern's ascent


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
):
    """An input image that maximises the mean activation of `channel` of `layer`.

    Args:
        model: the network (eval mode during the ascent; mode and `requires_grad` restored).
        layer: a layer name or module with feature-map output (N, C, h, w).
        channel: the channel to excite.
        steps: gradient-ascent steps (Adam).
        lr: Adam's learning rate, in units of the model's input space.
        jitter, blur_every, blur_sigma, l2: the regularisers (see `labkit.interpret.ascent`; 0: off).
        image_size: H (= W) or (H, W) of the image.
        mean, std: the per-channel normalisation of the model's inputs; when given, the image
            starts at pixel grey 0.5 and is kept in the pixel range [0, 1]. Without them the start
            is 0 (the data mean after normalisation) and values are not clipped.
        noise: standard deviation of the starting noise, in pixel units (0 to 1).
        seed: seeds the starting noise and the jitter (the global random state is not touched).
        return_activation: also return the mean activation the final image reaches.

    Returns:
        the image (1, C, H, W) in the model's input space (detached, on the model's device), or
        `(image, activation)` with `return_activation=True`.

    Raises:
        LabError: unknown layer, channel out of range, or bad settings.
    """
    name, _ = find_layer(model, layer)
    check_settings(steps=steps, lr=lr, l2=l2, jitter=jitter, blur_every=blur_every, blur_sigma=blur_sigma)
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
        return layer_output(model, img, name, detach=False)[:, channel].mean(dim=(1, 2))  # later layers skipped

    with inspecting(model):
        with torch.no_grad():
            maps = layer_output(model, starts, name)  # (STARTS, C, h, w)
            channel = check_channel(name, maps.shape[1], channel)
            # a ReLU unit that is zero all over its start image has no gradient, and the ascent would
            # never move (it happened to a relu3_2 unit of lab 02's network): start from the noise
            # image, of a few, that excites the unit most (its gain, from the maps at hand)
            best = int(maps[:, channel].mean(dim=(1, 2)).argmax())
        start = starts[best : best + 1]
        image = ascend(gain, start, steps=steps, lr=lr, l2=l2, jitter=jitter, blur_every=blur_every,
                       blur_sigma=blur_sigma, low=low, high=high, generator=gen)  # fmt: skip
        with torch.no_grad():
            reached = float(gain(image))
    return (image, reached) if return_activation else image
