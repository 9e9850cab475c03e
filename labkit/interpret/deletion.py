"""Deletion and insertion curves (Petsiuk, Das & Saenko 2018, "RISE").

Introduced in notebooks/07_gradcam.ipynb. A map claims an order of importance over the pixels.
Take it at its word:

- deletion: remove the pixels from the most to the least important (replace them by `substrate`,
  by default 0 in input space, the dataset's mean colour) and follow the probability of the class;
  a faithful map makes it fall fast, so a *low* area under the curve is good;
- insertion: start from a blurred copy of the image and put the pixels back in the same order; a
  faithful map makes the probability rise fast, so a *high* area is good.

The curve has `steps + 1` points: after removing (inserting) round(k / steps * H * W) pixels,
k = 0..steps; its area is the trapezoid rule over the removed fraction 0..1 (`auc`). Pixels that
the map ranks equal (Grad-CAM's zeros, a constant map) are taken in a random order drawn from
`seed`, not in raster order, which would favour the top of the image. A random map is the baseline
every method must beat.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torchvision.transforms.v2 import functional as TF

from labkit.core import LabError
from labkit.interpret import attribution

MODES = ("deletion", "insertion")
INSERTION_BLUR_SIGMA = 5.0  # pixels, as RISE's evaluation code (an 11 x 11 kernel there)


def blurred(x: torch.Tensor, sigma: float = INSERTION_BLUR_SIGMA) -> torch.Tensor:
    """A Gaussian-blurred copy of x (N, C, H, W), the starting image of an insertion curve (the
    kernel, 2 * ceil(3 sigma) + 1 pixels, is cut to the image side)."""
    side = min(x.shape[-2:])
    kernel = min(2 * math.ceil(3 * sigma) + 1, side - 1 if side % 2 == 0 else side)
    return TF.gaussian_blur(x, [kernel, kernel], [sigma, sigma])


def pixel_order(maps: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Pixels of each map (N, H, W) from the highest value to the lowest, ties in a random order
    drawn from `seed`: LongTensor (N, H * W) of flat indices."""
    n, h, w = maps.shape
    shuffle = torch.randperm(h * w, generator=torch.Generator().manual_seed(seed)).to(maps.device)
    # Sorting the shuffled pixels with a stable sort keeps equal values in the shuffled order.
    ranked = torch.sort(maps.reshape(n, -1)[:, shuffle], dim=1, descending=True, stable=True).indices
    return shuffle[ranked]


def deletion_curve(
    model: nn.Module, x: torch.Tensor, maps: torch.Tensor, target: attribution.Target = None, *, mode: str = "deletion",
    steps: int = 16, substrate: float | torch.Tensor | None = None, seed: int = 0, batch_size: int = 64,
    classes=None,
) -> torch.Tensor:  # fmt: skip
    """The probability of the target class as pixels are deleted (inserted) in the order of `maps`.

    Args:
        model: a classifier returning logits; computed in eval mode, given back as found.
        x: images (N, C, H, W), normalised as the model takes them.
        maps: (N, H, W), higher = more important (reduce (N, C, H, W) attributions first, e.g.
            with `abs_max_channels`).
        target: class per image (None: the class predicted for the whole image).
        mode: "deletion" (start from x, remove pixels) or "insertion" (start from the substrate,
            put pixels of x back).
        steps: points of the curve after the first; each step moves 1 / steps of the pixels.
        substrate: what a removed pixel becomes, in input space: a number, a tensor like x, or
            None: 0 (the mean colour) for deletion, `blurred(x)` for insertion.
        seed: the random order of pixels the map ranks equal.
        batch_size: images per forward pass.
        classes: class names, when `target` holds names.

    Returns:
        Tensor (N, steps + 1) of probabilities on x's device; `auc(curves)` gives the areas.
    """
    attribution.check_images(x)
    if mode not in MODES:
        raise LabError(f"mode={mode!r}: use one of {MODES}.")
    attribution.check_number("steps", steps, minimum=1, integer=True)
    attribution.check_number("batch_size", batch_size, minimum=1, integer=True)
    n, c, h, w = x.shape
    if not isinstance(maps, torch.Tensor) or tuple(maps.shape) != (n, h, w):
        shape = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
        raise LabError(f"maps has shape {shape}; expected one map per image, ({n}, {h}, {w}) "
                       "(reduce colour channels with abs_max_channels, upsample Grad-CAM to the image).")  # fmt: skip
    device = attribution.model_device(model)
    images = x.detach().to(device)
    if substrate is None:
        substrate = torch.zeros_like(images) if mode == "deletion" else blurred(images)
    fill = torch.as_tensor(substrate, dtype=images.dtype, device=device).expand_as(images)
    start, end = (images, fill) if mode == "deletion" else (fill, images)
    # rank[i, pixel] = position of the pixel in image i's order; at step k the first moved[k] move.
    order = pixel_order(maps.detach().float().to(device), seed)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(h * w, device=device).expand(n, -1))
    moved = torch.tensor([round(k * h * w / steps) for k in range(steps + 1)], device=device)
    with attribution.inspecting(model, what="deletion_curve"), torch.no_grad():
        targets = attribution.resolve_targets(target, attribution.check_logits(model(images)), classes)
        probs = torch.empty(n * (steps + 1), dtype=images.dtype, device=device)
        # Copy j of the flattened (N * (steps + 1)) list is image j // (steps + 1) at step j % (steps + 1).
        for first in range(0, n * (steps + 1), batch_size):
            j = torch.arange(first, min(first + batch_size, n * (steps + 1)), device=device)
            img, k = j // (steps + 1), j % (steps + 1)
            done = (rank[img] < moved[k][:, None]).reshape(-1, 1, h, w)  # (B, 1, H, W)
            batch = torch.where(done, end[img], start[img])
            probs[j] = attribution.check_logits(model(batch)).softmax(1).gather(1, targets[img][:, None])[:, 0]
    return probs.reshape(n, steps + 1).to(x.device)


def auc(curves: torch.Tensor) -> torch.Tensor:
    """Area under curves (N, K + 1) sampled at 0, 1/K, ..., 1 (trapezoid rule): Tensor (N,)."""
    if not isinstance(curves, torch.Tensor) or curves.dim() != 2 or curves.shape[1] < 2:
        raise LabError("curves must be a tensor (N, steps + 1) with at least two points per curve.")
    return torch.trapezoid(curves, dx=1.0 / (curves.shape[1] - 1), dim=1)
