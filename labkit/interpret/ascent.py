"""Gradient ascent on images, the loop of `filter_pattern` and `class_model`, by Adam (its per-pixel step
size keeps one `lr` usable across networks), with regularisers that keep the images readable, each 0
for off: `l2`, a penalty l2 * mean(x^2) per image (Simonyan et al. 2014); `jitter`, a circular shift by
up to `jitter` pixels before every step (Mordvintsev et al. 2015); every `blur_every` steps a Gaussian
blur of `blur_sigma` pixels; `tv`, a penalty tv * `total_variation(x, tv_beta)` (Mahendran & Vedaldi 2015).

Introduced in notebooks/05_filters_feature_maps.ipynb.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from labkit.core import LabError
from labkit.interpret.attribution import check_numbers

REGULARISERS = {"l2": 0.0, "jitter": 0, "blur_every": 0, "blur_sigma": 0.5, "tv": 0.0, "tv_beta": 2.0}


def total_variation(x: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    """Mean |difference|^beta of vertical plus of horizontal neighbours, per image: (N, C, H, W) -> (N,).
    beta = 2 smooths like a blur; beta = 1 is total variation proper, which keeps sharp edges."""
    dy = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().pow(beta).mean(dim=(1, 2, 3))
    dx = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().pow(beta).mean(dim=(1, 2, 3))
    return dx + dy


def pixel_range(
    mean: Sequence[float] | None, std: Sequence[float] | None, like: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The input-space values (1, C, 1, 1) of pixels 0 and 1 under `mean`, `std` (None: 0 and 1)."""
    c, dtype, device = like.shape[1], like.dtype, like.device
    m = torch.as_tensor([0.0] * c if mean is None else mean, dtype=dtype, device=device).view(1, -1, 1, 1)
    s = torch.as_tensor([1.0] * c if std is None else std, dtype=dtype, device=device).view(1, -1, 1, 1)
    if m.shape[1] != c or s.shape[1] != c:
        raise LabError(f"mean and std need {c} values, one per input channel of the model.")
    return (0 - m) / s, (1 - m) / s


def check_settings(steps: int, lr: float, **regularisers: float) -> tuple:
    """Check every setting of `ascend` before any work: the values of REGULARISERS, defaults filled in."""
    unknown = sorted(regularisers.keys() - REGULARISERS.keys())
    if unknown:
        raise LabError(f"unknown settings {unknown}; the regularisers are {list(REGULARISERS)}.")
    r = {**REGULARISERS, **regularisers}
    check_numbers(steps=steps, minimum=1, integer=True)
    check_numbers(lr=lr, l2=r["l2"], tv=r["tv"], blur_sigma=r["blur_sigma"])
    check_numbers(jitter=r["jitter"], blur_every=r["blur_every"], integer=True)
    check_numbers(tv_beta=r["tv_beta"], minimum=1)
    return tuple(r.values())


def ascend(
    gain: Callable[[torch.Tensor], torch.Tensor],
    start: torch.Tensor,
    *,
    steps: int,
    lr: float,
    low: torch.Tensor | None = None,
    high: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    **regularisers: float,
) -> torch.Tensor:
    """Maximise gain(image) minus the penalties for each image of `start` (N, C, H, W; not changed), pixels
    kept in [`low`, `high`]: the images, detached; `gain` maps (N, C, H, W) to (N,), images independent."""
    # imported here: torchvision takes over a second to import, and each grading worker imports
    # labkit.interpret for the checks of every lab (labkit.interpret imports no torchvision at the top)
    from torchvision.transforms.v2.functional import gaussian_blur

    l2, jitter, blur_every, blur_sigma, tv, tv_beta = check_settings(steps, lr, **regularisers)
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
                x.copy_(gaussian_blur(x, [kernel, kernel], [blur_sigma, blur_sigma]))
            if low is not None and high is not None:
                x.copy_(torch.maximum(torch.minimum(x, high), low))
    return x.detach()
