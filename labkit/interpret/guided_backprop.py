"""Guided backpropagation (Springenberg, Dosovitskiy, Brox & Riedmiller 2015).

Introduced in notebooks/07_gradcam.ipynb. The gradient of the class score goes back to the input,
but at every ReLU only positive gradients pass, and only where the forward input was positive:
grad_in = relu(grad_out) * (input > 0). The plain gradient keeps the second condition only; the
deconvnet (lab 06) the first only.

The rule applies to every `nn.ReLU` and `nn.ReLU6` module (`hooks.relu_backward`; in-place ones
too). On `nn.ReLU` networks the result equals captum's `GuidedBackprop` (tested); captum hooks
`nn.ReLU` only, so on ReLU6 networks (EfficientNet-Lite) labkit guides and captum not. Functional
`F.relu` calls cannot be hooked, and smooth activations (SiLU, GELU, ...) have no gate
"input > 0": both keep their plain gradient, and a `UserWarning` names such modules.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from labkit.interpret.attribution import Target, class_gradient
from labkit.interpret.hooks import relu_backward, relu_modules

# Activation modules that the guided rule does not touch (reported, not changed).
OTHER_ACTIVATIONS = (nn.SiLU, nn.GELU, nn.LeakyReLU, nn.ELU, nn.PReLU, nn.Hardswish, nn.Mish, nn.Tanh, nn.Hardtanh)


def guided_backprop(model: nn.Module, x: torch.Tensor, target: Target = None, *, classes=None) -> torch.Tensor:
    """Guided backpropagation of the target logit to the input.

    Args:
        model: a classifier returning logits; computed in eval mode, given back as found.
        x: images (N, C, H, W), normalised as the model takes them.
        target: class per image (None: the predicted class; int, name, or N of them).
        classes: class names, when `target` holds names.

    Returns:
        Tensor like x (N, C, H, W), signed; `labkit.plots.attribution_image` shows it.
    """
    guided = {id(m) for _, m in relu_modules(model)}
    other = [n for n, m in model.named_modules() if isinstance(m, OTHER_ACTIVATIONS) and id(m) not in guided]
    if not guided:
        warnings.warn("guided_backprop: the model has no nn.ReLU / nn.ReLU6 module, so no guided rule applies "
                      "and the result is the plain input gradient.", UserWarning, stacklevel=2)  # fmt: skip
    elif other:
        warnings.warn(f"guided_backprop: {len(other)} activation module(s) other than ReLU/ReLU6 (e.g. {other[0]!r}) "
                      "keep their ordinary gradient; the guided rule applies to nn.ReLU and nn.ReLU6 modules only.",
                      UserWarning, stacklevel=2)  # fmt: skip
    with relu_backward(model, "guided"):
        grad, _, _ = class_gradient(model, x, target, classes=classes, what="guided_backprop")
    return grad.to(x.device)
