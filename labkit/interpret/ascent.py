"""Gradient ascent on an image, with regularisers that keep it readable: the one loop behind
`filter_pattern` (lab 05: the input a unit likes best) and `class_model` (lab 08: the input a class
scores highest for).

Introduced in notebooks/05_filters_feature_maps.ipynb. Unconstrained, the ascent finds
high-frequency patterns no photograph contains (Erhan et al. 2009; Simonyan et al. 2014). Each
regulariser is a setting, 0 switches it off:

- `l2`: penalty l2 * mean(x^2) per image (Simonyan's L2; in input space 0 is the dataset mean);
- `jitter`: before every step the image is shifted by up to `jitter` pixels (circularly), so no
  pattern can rely on exact pixel positions (Mordvintsev et al. 2015, used by Yosinski et al. 2015);
- `blur_every`, `blur_sigma`: every `blur_every` steps a Gaussian blur of `blur_sigma` pixels
  (torchvision's `gaussian_blur`, kernel 2 * ceil(3 sigma) + 1), which removes the highest frequencies;
- `tv`, `tv_beta`: penalty tv * (mean |x[y+1,x] - x[y,x]|^beta + mean |x[y,x+1] - x[y,x]|^beta) per
  image; beta = 2 smooths like a blur, beta = 1 is total variation proper, which keeps sharp edges
  between flat regions (Mahendran & Vedaldi 2015);
- `clip_percentile`: pixels whose norm over channels is below this percentile (0-100) of the image
  are set to 0 after every step (Yosinski et al.'s "clipping pixels with small norm");
- `low`, `high`: after every step pixels are kept in this range, e.g. the input-space values of
  pixel 0 and 1 (`pixel_range`), so the result stays a picture the network could be shown.

The steps are Adam's on the pixels: a per-pixel step size keeps one `lr` usable across networks
whose gradients differ in scale by orders of magnitude.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torchvision.transforms.v2 import functional as TF

from labkit.core import LabError
from labkit.interpret.attribution import check_number


def total_variation(x: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    """Mean |difference|^beta of vertically plus of horizontally neighbouring pixels, per image:
    (N, C, H, W) -> (N,). beta = 2: mean squared differences; beta = 1: total variation proper."""
    dy = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().pow(beta).mean(dim=(1, 2, 3))
    dx = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().pow(beta).mean(dim=(1, 2, 3))
    return dx + dy


def pixel_range(mean: Sequence[float] | None, std: Sequence[float] | None, like: torch.Tensor):
    """The input-space values (1, C, 1, 1) of pixels 0 and 1 under the normalisation `mean`, `std`
    (missing ones: 0 and 1), with the channels, dtype and device of `like` (N, C, H, W)."""
    c = like.shape[1]
    m = torch.as_tensor(mean if mean is not None else [0.0] * c, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std if std is not None else [1.0] * c, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)
    if m.shape[1] != c or s.shape[1] != c:
        raise LabError(f"mean and std need {c} values, one per input channel of the model.")
    return (0 - m) / s, (1 - m) / s


def check_settings(*, steps, lr, l2=0.0, jitter=0, blur_every=0, blur_sigma=0.5, tv=0.0, tv_beta=2.0,
                   clip_percentile=0.0) -> None:  # fmt: skip
    """Raise a LabError naming the first bad setting of `ascend` (before any work)."""
    check_number("steps", steps, minimum=1, integer=True)
    for name, value in (("lr", lr), ("l2", l2), ("tv", tv), ("blur_sigma", blur_sigma)):
        check_number(name, value)
    check_number("jitter", jitter, integer=True)
    check_number("blur_every", blur_every, integer=True)
    if not isinstance(tv_beta, (int, float)) or tv_beta < 1:
        raise LabError(f"tv_beta={tv_beta!r}: expected a number >= 1 (2: squared differences, 1: total variation).")
    if not isinstance(clip_percentile, (int, float)) or not 0 <= clip_percentile < 100:
        raise LabError(f"clip_percentile={clip_percentile!r}: expected a percentile in [0, 100).")


def ascend(
    gain: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor, *, steps: int, lr: float,
    l2: float = 0.0, jitter: int = 0, blur_every: int = 0, blur_sigma: float = 0.5, tv: float = 0.0,
    tv_beta: float = 2.0, clip_percentile: float = 0.0, low: torch.Tensor | None = None,
    high: torch.Tensor | None = None, generator: torch.Generator | None = None,
    after_step: Callable[[int], None] | None = None,
) -> torch.Tensor:  # fmt: skip
    """Maximise gain(image) minus the penalties, for each image of `start`, by Adam on the pixels.

    Args:
        gain: (N, C, H, W) -> (N,), what each image should raise (a unit's mean activation, a class
            score); images are independent, so one backward pass of the sum serves all N.
        start: (N, C, H, W), the images to start from (not changed).
        generator: draws the jitter (same generator state, same images).
        after_step: called with the step number (1..steps) after each step, e.g. to record history.
        The rest: see the module docstring.

    Returns:
        the images (N, C, H, W), detached.
    """
    check_settings(steps=steps, lr=lr, l2=l2, jitter=jitter, blur_every=blur_every, blur_sigma=blur_sigma,
                   tv=tv, tv_beta=tv_beta, clip_percentile=clip_percentile)  # fmt: skip
    x = start.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    kernel = 2 * math.ceil(3 * blur_sigma) + 1
    for step in range(1, steps + 1):
        opt.zero_grad()
        view = x
        if jitter:
            dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=generator).tolist()
            view = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
        objective = gain(view)
        if l2:
            objective = objective - l2 * x.pow(2).mean(dim=(1, 2, 3))
        if tv:
            objective = objective - tv * total_variation(x, tv_beta)
        (-objective.sum()).backward()
        opt.step()
        with torch.no_grad():
            if blur_every and blur_sigma > 0 and step % blur_every == 0:
                x.copy_(TF.gaussian_blur(x, [kernel, kernel], [blur_sigma, blur_sigma]))
            if clip_percentile:
                norms = x.norm(dim=1, keepdim=True)  # (N, 1, H, W)
                cut = torch.quantile(norms.flatten(1), clip_percentile / 100, dim=1).view(-1, 1, 1, 1)
                x.mul_((norms >= cut).to(x.dtype))
            if low is not None:
                x.copy_(torch.maximum(torch.minimum(x, high), low))
        if after_step is not None:
            after_step(step)
    return x.detach()
