"""Deletion and insertion curves (Petsiuk, Das & Saenko 2018): the class probability as pixels are deleted
in a map's order (faithful: a fast fall) or put back into a blurred copy (a fast rise); beat a random map.

Introduced in notebooks/07_gradcam.ipynb.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from labkit.core import LabError
from labkit.interpret import attribution

MODES = ("deletion", "insertion")
INSERTION_BLUR_SIGMA = 5.0  # pixels, as RISE's evaluation code


def blurred(x: torch.Tensor, sigma: float = INSERTION_BLUR_SIGMA) -> torch.Tensor:
    """A Gaussian-blurred copy of x (N, C, H, W), kernel 2 * ceil(3 sigma) + 1 cut to the image side."""
    side = min(x.shape[-2:])
    kernel = min(2 * math.ceil(3 * sigma) + 1, side - 1 if side % 2 == 0 else side)
    from torchvision.transforms.v2.functional import gaussian_blur  # here: see ascent.ascend

    return gaussian_blur(x, [kernel, kernel], [sigma, sigma])


def pixel_order(maps: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Flat pixel indices (N, H * W) of maps (N, H, W), highest first, ties in random order from `seed`."""
    n, h, w = maps.shape
    shuffle = torch.randperm(h * w, generator=torch.Generator().manual_seed(seed)).to(maps.device)
    # a stable sort of the shuffled pixels keeps equal values in the shuffled order
    ranked = torch.sort(maps.reshape(n, -1)[:, shuffle], dim=1, descending=True, stable=True).indices
    return shuffle[ranked]


def deletion_curve(
    model: nn.Module,
    x: torch.Tensor,
    maps: torch.Tensor,
    target: attribution.Target = None,
    *,
    mode: str = "deletion",
    steps: int = 16,
    substrate: float | torch.Tensor | None = None,
    seed: int = 0,
    batch_size: int = 64,
    classes=None,
) -> torch.Tensor:
    """The probability of the target class as pixels are deleted from x ("deletion") or put back into the
    substrate ("insertion") in the order of `maps` (N, H, W), 1 / steps of them at a time: Tensor
    (N, steps + 1) on x's device. `substrate`: a removed pixel's value in input space, a number or a
    tensor like x; None: 0 (the mean colour) for deletion, `blurred(x)` for insertion."""
    attribution.check_images(x)
    attribution.check_choice("mode", mode, MODES)
    attribution.check_numbers(steps=steps, batch_size=batch_size, minimum=1, integer=True)
    n, c, h, w = x.shape
    if not isinstance(maps, torch.Tensor) or tuple(maps.shape) != (n, h, w):
        shape = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
        raise LabError(
            f"maps has shape {shape}; expected one map per image, ({n}, {h}, {w}) (reduce colour "
            "channels with abs_max_channels, upsample Grad-CAM to the image)."
        )
    device = attribution.model_device(model)
    images = x.detach().to(device)
    if substrate is None:
        substrate = torch.zeros_like(images) if mode == "deletion" else blurred(images)
    fill = torch.as_tensor(substrate, dtype=images.dtype, device=device).expand_as(images)
    start, end = (images, fill) if mode == "deletion" else (fill, images)
    # rank[i, pixel]: the pixel's place in image i's order; at step k the first moved[k] have moved
    order = pixel_order(maps.detach().float().to(device), seed)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(h * w, device=device).expand(n, -1))
    moved = torch.tensor([round(k * h * w / steps) for k in range(steps + 1)], device=device)
    with attribution.inspecting(model, what="deletion_curve"), torch.no_grad():
        targets = attribution.resolve_targets(target, attribution.check_logits(model(images)), classes)
        probs = torch.empty(n * (steps + 1), dtype=images.dtype, device=device)
        # copy j of the N * (steps + 1) is image j // (steps + 1) at step j % (steps + 1)
        for first in range(0, n * (steps + 1), batch_size):
            j = torch.arange(first, min(first + batch_size, n * (steps + 1)), device=device)
            img, k = j // (steps + 1), j % (steps + 1)
            done = (rank[img] < moved[k][:, None]).reshape(-1, 1, h, w)  # (B, 1, H, W)
            batch = torch.where(done, end[img], start[img])
            logits = attribution.check_logits(model(batch))
            probs[j] = logits.softmax(1).gather(1, targets[img][:, None])[:, 0]
    return probs.reshape(n, steps + 1).to(x.device)


def auc(curves: torch.Tensor) -> torch.Tensor:
    """Area under curves (N, K + 1) sampled at 0, 1/K, ..., 1 (trapezoid rule): Tensor (N,)."""
    if not isinstance(curves, torch.Tensor) or curves.dim() != 2 or curves.shape[1] < 2:
        raise LabError("curves must be a tensor (N, steps + 1) with at least two points per curve.")
    return torch.trapezoid(curves, dx=1.0 / (curves.shape[1] - 1), dim=1)
