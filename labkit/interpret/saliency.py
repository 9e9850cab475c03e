"""Image-specific class saliency (Simonyan, Vedaldi & Zisserman 2014): for class c, pixel (i, j) gets
the max over colour channels of |d S_c / d x[ch, i, j]|, S_c the logit.

Introduced in notebooks/07_gradcam.ipynb.
"""

from __future__ import annotations

import torch
from torch import nn

from labkit.interpret.attribution import Target, class_gradient


def abs_max_channels(attribution: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, H, W): the largest |value| over channels, one map per image."""
    if attribution.dim() != 4:
        raise ValueError(f"expected (N, C, H, W), got {tuple(attribution.shape)}")
    return attribution.abs().amax(dim=1)


def saliency(model: nn.Module, x: torch.Tensor, target: Target = None, *, classes=None) -> torch.Tensor:
    """Simonyan et al.'s saliency maps, max over channels of |d logit_c / d x|: Tensor (N, H, W), >= 0."""
    grad, _ = class_gradient(model, x, target, classes=classes, what="saliency")
    return abs_max_channels(grad).to(x.device)
