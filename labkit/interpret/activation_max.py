"""Activation maximisation (Erhan et al. 2009; Simonyan et al. 2014): the input a unit likes best, by
the regularised ascent of `labkit.interpret.ascent`.

Introduced in notebooks/05_filters_feature_maps.ipynb.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from labkit.core import LabError
from labkit.interpret import attribution
from labkit.interpret.ascent import ascend, check_settings, pixel_range
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
    """An input image (1, C, H, W), on the model's device, that maximises the mean activation of `channel`
    of `layer` by the ascent of `labkit.interpret.ascent`, from noise of std `noise` pixel units (drawn
    from `seed`) around grey, kept in the pixel range [0, 1] of the normalisation `mean`, `std` (without
    them: around 0, unclipped); with `return_activation`, `(image, activation reached)`."""
    name, _ = find_layer(model, layer)
    regularisers = dict(l2=l2, jitter=jitter, blur_every=blur_every, blur_sigma=blur_sigma)
    check_settings(steps, lr, **regularisers)
    attribution.check_numbers(noise=noise)
    if (mean is None) != (std is None):
        raise LabError("give both mean and std (the model's input normalisation), or neither.")
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    gen = torch.Generator().manual_seed(seed)
    c, dtype = attribution.in_channels(model), attribution.model_dtype(model)
    draws = torch.randn(STARTS, c, *size, generator=gen, dtype=dtype).to(attribution.model_device(model))
    low, high = pixel_range(mean, std, draws)  # grey is their midpoint, one pixel unit their distance
    lo, hi = (low, high) if mean is not None else (None, None)

    def gain(img: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N,)
        return attribution.layer_output(model, img, name, detach=False)[:, channel].mean(dim=(1, 2))

    with attribution.inspecting(model):
        with torch.no_grad():
            # a ReLU unit zero all over its start has no gradient: start where it is excited most, and
            # when no start near grey excites it, from wider noise
            for spread in (noise, max(noise, 0.5)):
                starts = (
                    (low + high) / 2 + spread * (high - low) * draws if mean is not None else spread * draws
                )
                starts = starts.clamp(low, high) if mean is not None and spread > noise else starts
                maps = attribution.layer_output(model, starts, name)  # (STARTS, C, h, w)
                channel = attribution.check_channel(name, maps.shape[1], channel)
                excited = maps[:, channel].mean(dim=(1, 2))
                if excited.max() > 0:
                    break
            best = int(excited.argmax())
        start = starts[best : best + 1]
        image = ascend(gain, start, steps=steps, lr=lr, low=lo, high=hi, generator=gen, **regularisers)
        with torch.no_grad():
            reached = float(gain(image))
    return (image, reached) if return_activation else image
