"""Occlusion sensitivity (Zeiler & Fergus 2014): a pixel's value is the mean, over the windows covering
it, of how much the class score drops when the window is covered (windows placed as captum's).

Introduced in notebooks/06_deconvnet.ipynb.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from labkit.core import LabError
from labkit.interpret import attribution

SCORES = ("logit", "probability")


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Where the windows start along a side of `size` pixels: 0, stride, ..., until one reaches the end."""
    return [k * stride for k in range(math.ceil((size - window) / stride) + 1)]


def occlusion_masks(height: int, width: int, window: int, stride: int) -> torch.Tensor:
    """Every window position as a mask: BoolTensor (P, H, W), rows first (P = windows down x across)."""
    rows, cols = window_starts(height, window, stride), window_starts(width, window, stride)
    masks = torch.zeros(len(rows), len(cols), height, width, dtype=torch.bool)
    for a, top in enumerate(rows):
        for b, left in enumerate(cols):
            masks[a, b, top : top + window, left : left + window] = True
    return masks.reshape(-1, height, width)


def _check(x: torch.Tensor, window, stride, baseline, score: str, batch_size) -> None:
    attribution.check_images(x)
    attribution.check_numbers(window=window, stride=stride, batch_size=batch_size, minimum=1, integer=True)
    h, w = x.shape[-2:]
    if window > min(h, w):
        raise LabError(
            f"window={window} is larger than the images ({h} x {w}); use a window of at most {min(h, w)}."
        )
    if stride > window:
        raise LabError(
            f"stride={stride} > window={window} would leave pixels never covered; use stride <= window."
        )
    attribution.check_choice("score", score, SCORES)
    if isinstance(baseline, torch.Tensor):
        try:
            torch.broadcast_shapes(baseline.shape, x.shape)
        except RuntimeError:
            raise LabError(
                f"baseline of shape {tuple(baseline.shape)} does not broadcast to x {tuple(x.shape)}."
            ) from None
    elif not isinstance(baseline, (int, float)) or isinstance(baseline, bool):
        raise LabError(f"baseline={baseline!r}: expected a number or a tensor broadcastable to x.")


def occlusion(
    model: nn.Module,
    x: torch.Tensor,
    target: attribution.Target = None,
    *,
    window: int = 8,
    stride: int = 4,
    baseline: float | torch.Tensor = 0.0,
    score: str = "logit",
    batch_size: int = 64,
    classes=None,
) -> torch.Tensor:
    """Occlusion map of the target class, Tensor (N, H, W) on x's device: how much the score ("logit", or
    "probability" as Zeiler & Fergus's figure 7) drops when a `window`-sided square moved by `stride`
    pixels is covered by `baseline` (input space): a number (0: the mean colour) or a tensor like x."""
    _check(x, window, stride, baseline, score, batch_size)
    n, _, h, w = x.shape
    device = attribution.model_device(model)
    masks = occlusion_masks(h, w, window, stride).to(device)  # (P, H, W)
    p = masks.shape[0]
    with attribution.inspecting(model, what="occlusion"), torch.no_grad():
        images = x.detach().to(device)
        fill = torch.as_tensor(baseline, dtype=images.dtype, device=device).expand_as(images)

        def scores(batch: torch.Tensor) -> torch.Tensor:  # (B, num_classes): logits or probabilities
            logits = attribution.check_logits(model(batch))
            return logits.softmax(1) if score == "probability" else logits

        first = scores(images)
        targets = attribution.resolve_targets(target, first, classes)
        before = first.gather(1, targets[:, None])[:, 0]  # (N,)
        drops = torch.empty(n * p, dtype=images.dtype, device=device)
        # copy k of the N * P is image k // P with window k % P covered
        for start in range(0, n * p, batch_size):
            k = torch.arange(start, min(start + batch_size, n * p), device=device)
            img, win = k // p, k % p
            batch = torch.where(masks[win][:, None], fill[img], images[img])  # (B, 1, H, W) masks
            drops[k] = before[img] - scores(batch).gather(1, targets[img][:, None])[:, 0]
        # (N, P) @ (P, H*W): the summed drop of the windows over each pixel, then their mean
        flat = masks.reshape(p, -1).to(images.dtype)
        maps = (drops.reshape(n, p) @ flat) / flat.sum(0)
    return maps.reshape(n, h, w).to(x.device)
