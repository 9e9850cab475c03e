"""Guided backpropagation (Springenberg et al. 2015): the gradient of the class score, where every
`nn.ReLU`/`nn.ReLU6` passes only positive gradients, only where its input was positive; `F.relu` calls
and other activations keep their plain gradient, with a warning.

Introduced in notebooks/07_gradcam.ipynb.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from labkit.interpret.attribution import Target, class_gradient
from labkit.interpret.hooks import relu_backward, relu_modules

# activation modules the guided rule does not touch (reported, not changed)
OTHER_ACTS = (nn.SiLU, nn.GELU, nn.LeakyReLU, nn.ELU, nn.PReLU, nn.Hardswish, nn.Mish, nn.Tanh, nn.Hardtanh)


def guided_backprop(
    model: nn.Module, x: torch.Tensor, target: Target = None, *, classes=None
) -> torch.Tensor:
    """Guided backpropagation of the target logit to the input: Tensor like x (N, C, H, W), signed."""
    guided = {id(m) for _, m in relu_modules(model)}
    other = [n for n, m in model.named_modules() if isinstance(m, OTHER_ACTS) and id(m) not in guided]
    if not guided:
        message = "guided_backprop: the model has no nn.ReLU / nn.ReLU6 module, so no guided rule applies"
        warnings.warn(f"{message}: the result is the plain input gradient.", UserWarning, stacklevel=2)
    elif other:
        first = f"{len(other)} activation module(s) other than ReLU/ReLU6 (e.g. {other[0]!r})"
        rule = "keep their ordinary gradient; the guided rule applies to nn.ReLU and nn.ReLU6 modules only."
        warnings.warn(f"guided_backprop: {first} {rule}", UserWarning, stacklevel=2)
    with relu_backward(model, "guided"):
        grad, _ = class_gradient(model, x, target, classes=classes, what="guided_backprop")
    return grad.to(x.device)
