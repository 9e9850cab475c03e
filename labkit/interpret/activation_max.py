"""Activation maximisation: the input a unit likes best, found by gradient ascent on the image.

Introduced in notebooks/05_filters_feature_maps.ipynb (Erhan et al. 2009, "Visualizing higher-layer
features of a deep network"; Simonyan et al. 2014, "Deep inside convolutional networks").

Start from a grey image plus a little noise and follow the gradient of the channel's mean
activation with respect to the pixels. Unconstrained, the ascent finds high-frequency patterns no
photograph contains; three regularisers (each settable, 0 switches it off) keep the picture
readable:

- `jitter`: every step the image is shifted by up to `jitter` pixels at random (a circular roll)
  before the forward pass, so the pattern must work at nearby positions, not on one pixel grid;
- `blur_every` / `blur_sigma`: every `blur_every` steps the image is smoothed with a Gaussian of
  `blur_sigma` pixels, which removes the highest frequencies;
- `l2`: a penalty `l2 * mean(x**2)` on the image, which keeps its values near the data's mean
  instead of growing without bound.

With `mean`/`std` (the normalisation of the model's inputs) the image also stays within the pixel
range [0, 1] after each step.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import torch
from torch import nn
from torchvision.transforms.v2 import functional as TF

from labkit.env import LabError
from labkit.interpret._chain import check_channel, in_channels, model_device, model_dtype
from labkit.interpret.hooks import LayerRef, find_layer, forward_to, preserved


def _check_number(name: str, value, *, minimum: float = 0.0, integer: bool = False) -> None:
    kind = (int,) if integer else (int, float)
    if not isinstance(value, kind) or isinstance(value, bool) or value < minimum:
        raise LabError(f"{name}={value!r}: expected {'an int' if integer else 'a number'} >= {minimum}.")


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
        jitter: largest random shift in pixels per step (0: none).
        blur_every: blur the image every this many steps (0: never).
        blur_sigma: standard deviation of that Gaussian blur, in pixels.
        l2: weight of the penalty l2 * mean(x**2) (0: none).
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
    _check_number("steps", steps, integer=True)
    _check_number("lr", lr)
    _check_number("jitter", jitter, integer=True)
    _check_number("blur_every", blur_every, integer=True)
    _check_number("blur_sigma", blur_sigma)
    _check_number("l2", l2)
    _check_number("noise", noise)
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    device, dtype = model_device(model), model_dtype(model)
    channels = in_channels(model)
    if (mean is None) != (std is None):
        raise LabError("give both mean and std (the model's input normalisation), or neither.")
    if mean is not None:
        mean_t = torch.as_tensor(mean, dtype=dtype, device=device).view(1, -1, 1, 1)
        std_t = torch.as_tensor(std, dtype=dtype, device=device).view(1, -1, 1, 1)
        if mean_t.shape[1] != channels or std_t.shape[1] != channels:
            raise LabError(f"mean and std need {channels} values, one per input channel of the model.")
        low, high = (0 - mean_t) / std_t, (1 - mean_t) / std_t
        grey, scale = (0.5 - mean_t) / std_t, 1 / std_t
    else:
        low = high = None
        grey, scale = torch.zeros(1, channels, 1, 1, dtype=dtype, device=device), 1.0

    gen = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    start = torch.randn(1, channels, *size, generator=gen, dtype=dtype).to(device)
    x = (grey + noise * scale * start).detach().requires_grad_(True)
    kernel = 2 * math.ceil(3 * blur_sigma) + 1 if blur_sigma > 0 else 1

    def activation(img: torch.Tensor) -> torch.Tensor:
        act = forward_to(model, img, name, detach=False).activations[name]  # later layers skipped
        if act.dim() != 4:
            shape = tuple(act.shape)
            raise LabError(f"layer {name!r} gives {shape}, not feature maps (N, C, h, w); pick a conv, ReLU or pooling layer.")
        return act[:, channel].mean()

    with preserved(model):
        model.eval()
        for param in model.parameters():
            param.requires_grad_(False)  # only the image is optimised
        with torch.no_grad():
            n_channels = forward_to(model, x, name).activations[name].shape[1]
        channel = check_channel(name, n_channels, channel)
        opt = torch.optim.Adam([x], lr=lr)
        for step in range(steps):
            dy, dx = (rng.randint(-jitter, jitter), rng.randint(-jitter, jitter)) if jitter else (0, 0)
            shifted = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
            loss = -activation(shifted) + l2 * x.pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                if blur_every and blur_sigma > 0 and (step + 1) % blur_every == 0:
                    x.copy_(TF.gaussian_blur(x, [kernel, kernel], [blur_sigma, blur_sigma]))
                if low is not None:
                    x.copy_(torch.maximum(torch.minimum(x, high), low))
        with torch.no_grad():
            reached = float(activation(x))
    image = x.detach()
    return (image, reached) if return_activation else image
