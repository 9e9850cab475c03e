"""Image-specific class saliency (Simonyan, Vedaldi & Zisserman 2014, section 3).

Introduced in notebooks/07_gradcam.ipynb. The saliency of pixel (i, j) for class c is
max over colour channels of |d S_c / d x[ch, i, j]|, where S_c is the unnormalised class score.
"""

from __future__ import annotations

import torch
from torch import nn

from labkit.interpret.attribution import Target, class_gradient


def abs_max_channels(attribution: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, H, W): the largest |value| over channels, how Simonyan et al. turn an
    input gradient into one map (also used to score guided backprop in the pointing game)."""
    if attribution.dim() != 4:
        raise ValueError(f"expected (N, C, H, W), got {tuple(attribution.shape)}")
    return attribution.abs().amax(dim=1)


def saliency(model: nn.Module, x: torch.Tensor, target: Target = None, *, classes=None) -> torch.Tensor:
    """Simonyan et al.'s saliency map: max over colour channels of |d logit_c / d x|.

    Args:
        model: a classifier returning logits (N, num_classes); computed in eval mode, given back as found.
        x: images (N, C, H, W), normalised as the model takes them.
        target: class per image (None: the predicted class; int, name, or N of them).
        classes: class names, when `target` holds names.

    Returns:
        Tensor (N, H, W) on x's device, non-negative, not normalised (divide by each map's max to plot).

    Example:
        >>> maps = saliency(model, x, target=3)  # class 3 for every image
    """
    grad, _, _ = class_gradient(model, x, target, classes=classes, what="saliency")
    return abs_max_channels(grad).to(x.device)
