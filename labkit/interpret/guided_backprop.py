"""Guided backpropagation (Springenberg, Dosovitskiy, Brox & Riedmiller 2015).

Introduced in notebooks/07_gradcam.ipynb. The gradient of the class score is propagated back to
the input, but at every ReLU only positive gradients pass, and only where the forward input was
positive: grad_in = relu(grad_out) * (input > 0). The plain gradient keeps the second condition
only; the deconvnet (lab 06) keeps the first only.

Which activations get the guided rule: every `nn.ReLU` and `nn.ReLU6` module (those that
`hooks.relu_backward` hooks; ReLU6's own gradient gate is 0 < input < 6, so "positive part of its
gradient" is the same rule), in-place ones included (switched to out-of-place for the call and back).
- On networks of `nn.ReLU` modules the result equals captum's `GuidedBackprop` (tested); captum hooks
  `nn.ReLU` only, so on ReLU6 networks (EfficientNet-Lite, MobileNetV2) labkit guides and captum not.
- Functional `F.relu` calls are not modules and cannot be hooked: they backpropagate the plain
  gradient.
- `nn.SiLU`, `nn.GELU`, `nn.LeakyReLU`, `nn.Hardswish`, ... keep their ordinary gradient: the guided
  rule is defined for ReLU's gate "input > 0", which these smooth activations do not have. A
  `UserWarning` names such modules, because the result is then only partly guided.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from labkit.interpret.hooks import relu_backward, relu_modules
from labkit.interpret.saliency import input_gradient
from labkit.interpret.targets import Target

# Activation modules that the guided rule does not touch (reported, not changed).
OTHER_ACTIVATIONS = (nn.SiLU, nn.GELU, nn.LeakyReLU, nn.ELU, nn.PReLU, nn.Hardswish, nn.Mish, nn.Tanh, nn.Hardtanh)


def unguided_activations(model: nn.Module) -> list[str]:
    """Names of activation modules the guided rule does not reach (they keep their ordinary gradient)."""
    guided = {id(m) for _, m in relu_modules(model)}
    return [n for n, m in model.named_modules() if isinstance(m, OTHER_ACTIVATIONS) and id(m) not in guided]


def guided_backprop(model: nn.Module, x: torch.Tensor, target: Target = None, *, classes=None) -> torch.Tensor:
    """Guided backpropagation of the target logit to the input.

    Args:
        model: a classifier returning logits; computed in eval mode, given back as found.
        x: images (N, C, H, W), normalised as the model takes them.
        target: class per image (None: the predicted class; int, name, or N of them).
        classes: class names, when `target` holds names.

    Returns:
        Tensor like x (N, C, H, W): signed; use `labkit.plots.maps.attribution_image` to show it.

    Warns:
        UserWarning: the model has no `nn.ReLU`/`nn.ReLU6` module, or has other activation modules
            (SiLU, GELU, ...) that keep their plain gradient.
    """
    other = unguided_activations(model)
    if not relu_modules(model):
        warnings.warn(
            "guided_backprop: the model has no nn.ReLU / nn.ReLU6 module, so no guided rule applies and the "
            "result is the plain input gradient.",
            UserWarning,
            stacklevel=2,
        )
    elif other:
        warnings.warn(
            f"guided_backprop: {len(other)} activation module(s) other than ReLU/ReLU6 (e.g. {other[0]!r}) keep "
            "their ordinary gradient; the guided rule applies to nn.ReLU and nn.ReLU6 modules only.",
            UserWarning,
            stacklevel=2,
        )
    with relu_backward(model, "guided"):
        grad, _ = input_gradient(model, x, target, classes=classes, what="guided_backprop")
    return grad
