"""Image-specific class saliency (Simonyan, Vedaldi & Zisserman 2014, section 3).

Introduced in notebooks/07_gradcam.ipynb. The saliency of pixel (i, j) for class c is
max over colour channels of |d S_c / d x[ch, i, j]|, where S_c is the unnormalised class score
(the logit, not the softmax: the softmax can rise by lowering the other classes).
"""

from __future__ import annotations

import torch
from torch import nn

from labkit.interpret.hooks import preserved
from labkit.interpret.targets import (
    Target,
    check_images,
    check_logits,
    eval_for_attribution,
    model_device,
    resolve_targets,
    selected_scores,
)


def abs_max_channels(attribution: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, H, W): the largest |value| over channels, how Simonyan et al. turn an
    input gradient into one map (also used to score guided backprop in the pointing game)."""
    if attribution.dim() != 4:
        raise ValueError(f"expected (N, C, H, W), got {tuple(attribution.shape)}")
    return attribution.abs().amax(dim=1)


def input_gradient(
    model: nn.Module, x: torch.Tensor, target: Target = None, *, classes=None, what: str = "saliency"
) -> tuple[torch.Tensor, torch.Tensor]:
    """d(target logit)/d(input) for every image, in one forward and one backward pass.

    Returns:
        (gradient like x, targets LongTensor (N,)), both on x's device. Whatever backward rules are
        active (e.g. `hooks.relu_backward`) apply; `guided_backprop` relies on that.
    """
    check_images(x)
    with preserved(model):
        eval_for_attribution(model, what)
        # Parameters need no gradient here; switching them off saves the work (preserved restores them).
        for p in model.parameters():
            p.requires_grad_(False)
        xg = x.detach().to(model_device(model)).requires_grad_(True)  # a copy: the caller's x is untouched
        logits = check_logits(model(xg))
        targets = resolve_targets(target, logits, classes)
        (grad,) = torch.autograd.grad(selected_scores(logits, targets), xg)
    return grad.to(x.device), targets.to(x.device)


def saliency(model: nn.Module, x: torch.Tensor, target: Target = None, *, classes=None) -> torch.Tensor:
    """Simonyan et al.'s saliency map: max over colour channels of |d logit_c / d x|.

    Args:
        model: a classifier returning logits (N, num_classes). Computed in eval mode (see
            `labkit.interpret.targets`); given back as found.
        x: images (N, C, H, W), normalised as the model takes them.
        target: class per image (None: the predicted class; int, name, or N of them).
        classes: class names, when `target` holds names.

    Returns:
        Tensor (N, H, W), non-negative, not normalised (divide by each map's max to plot).

    Raises:
        LabError: bad `x`, target out of range.

    Example:
        >>> maps = saliency(model, x)            # predicted classes
        >>> maps = saliency(model, x, target=3)  # class 3 for every image
    """
    grad, _ = input_gradient(model, x, target, classes=classes, what="saliency")
    return abs_max_channels(grad)
