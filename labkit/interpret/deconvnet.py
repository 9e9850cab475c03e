"""Zeiler & Fergus's deconvnet: project one feature map back down to pixel space.

Introduced in notebooks/06_deconvnet.ipynb (Zeiler & Fergus 2014, "Visualizing and understanding
convolutional networks").

The construction, for a plain stack of conv / batch-norm / ReLU / max-pool modules:

1. a forward pass that records the max-pool switches (where each maximum came from);
2. at the chosen layer keep one channel's feature map (by default, per image, the channel with the
   strongest maximum) and set every other channel to zero;
3. go back down, undoing each module in reverse order:
   - max-pool -> switch unpooling: each value goes back to the position its maximum came from
     (values of overlapping windows that share a switch add up);
   - ReLU -> rectification: ReLU of the signal coming down (the forward input plays no part);
   - batch-norm (eval) -> `bn="transpose"`: multiply by the BN scale gamma / sqrt(var + eps), the
     transpose of BN's affine map without its shift; `bn="skip"`: leave it out (as if the net had
     no batch-norm);
   - conv -> transposed convolution with the same filters (no bias).

Every step is the transpose of the module's forward map with the ReLU's backward replaced by a ReLU,
so the result equals the gradient of 1/2 * sum(kept map**2) with every ReLU's backward replaced by
ReLU(incoming gradient): the gradient of 1/2 * sum(m**2) with respect to m is m itself, the kept map.

Networks where the construction is undefined (residual connections, ReLU6, SiLU, depthwise
blocks with squeeze-excitation, ops inside `forward`) use exactly that gradient rule
("gradient_rule"); the function warns with `GradientRuleWarning` and `return_info=True` says which
method ran and why. The rule can only replace the backward of `nn.ReLU`/`nn.ReLU6` modules, not of
`F.relu` calls written inside `forward`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from labkit.core import LabError
from labkit.interpret.attribution import check_channel, check_images, inspecting, layer_output, model_device
from labkit.interpret.hooks import LayerRef, find_layer, relu_backward
from labkit.interpret.receptive_field import Step, geometry, modules_up_to, plain_chain

# What the explicit construction knows how to undo.
_DECONV = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.Dropout, nn.Dropout2d, nn.Identity)


class GradientRuleWarning(UserWarning):
    """deconvnet fell back from switch unpooling and transposed filters to the gradient rule."""


@dataclass
class DeconvInfo:
    """How a deconvnet projection was made.

    Attributes:
        layer: the layer's name.
        channels: the channel kept for each image, LongTensor (N,).
        method: "switches" (the explicit construction) or "gradient_rule".
        reason: why the gradient rule was used ("" for "switches").
    """

    layer: str
    channels: torch.Tensor
    method: str
    reason: str = ""


def _unpool(r: torch.Tensor, switches: torch.Tensor, in_shape: tuple[int, ...]) -> torch.Tensor:
    """Send each value back to where its window's maximum was (scatter-add, as max-pool's backward)."""
    n, c, h, w = in_shape
    out = torch.zeros(n, c, h * w, dtype=r.dtype, device=r.device)
    out.scatter_add_(2, switches.flatten(2), r.flatten(2))
    return out.view(n, c, h, w)


def _conv_transpose(r: torch.Tensor, conv: nn.Conv2d, in_shape: tuple[int, ...]) -> torch.Tensor:
    """The transposed convolution with the conv's own filters (no bias), back to `in_shape`."""
    kernel, stride, padding, dilation = geometry(conv)  # one place for padding rules
    size = []
    for a in range(2):
        natural = (r.shape[2 + a] - 1) * stride[a] - 2 * padding[a] + dilation[a] * (kernel[a] - 1) + 1
        size.append(in_shape[2 + a] - natural)  # rows/cols the forward's floor division dropped
    return F.conv_transpose2d(r, conv.weight, None, stride, padding, tuple(size), conv.groups, dilation)


def _switches_forward(steps: list[Step], x: torch.Tensor) -> tuple[torch.Tensor, list]:
    """Forward through the chain, recording max-pool switches. Returns (top map, records)."""
    h, records = x, []
    for step in steps:
        m = step.module
        if isinstance(m, nn.MaxPool2d):
            out, idx = F.max_pool2d(h, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode, return_indices=True)
            records.append((m, tuple(h.shape), idx))
        else:
            out = m(h)
            records.append((m, tuple(h.shape), None))
        h = out
    return h, records


def _switches_backward(r: torch.Tensor, records: list, bn: str) -> torch.Tensor:
    for m, in_shape, switches in reversed(records):
        if isinstance(m, nn.MaxPool2d):
            r = _unpool(r, switches, in_shape)
        elif isinstance(m, nn.ReLU):
            r = r.clamp(min=0)  # rectification of the signal going down
        elif isinstance(m, nn.BatchNorm2d):
            if bn == "transpose":
                var = m.running_var if m.running_var is not None else torch.ones_like(r[0, :, 0, 0])
                scale = torch.rsqrt(var + m.eps)
                if m.weight is not None:
                    scale = scale * m.weight
                r = r * scale.view(1, -1, 1, 1)
        elif isinstance(m, nn.Conv2d):
            r = _conv_transpose(r, m, in_shape)
        # Dropout (eval) and Identity: nothing to undo.
    return r


def _deconv_ok(module: nn.Module) -> bool:
    """A module the explicit construction can undo (its class's own forward, not a subclass's)."""
    return any(isinstance(module, base) and type(module).forward is base.forward for base in _DECONV)


def _explain_fallback(model: nn.Module, name: str, x: torch.Tensor) -> str:
    """'' when the explicit construction applies to `model` up to `name`, else the reason."""
    _, modules = modules_up_to(model, name)
    odd = sorted({type(m).__name__ for _, m in modules if not _deconv_ok(m)})
    if odd:
        return (
            f"on the way to {name!r} there are {', '.join(odd)} modules, which have no deconvnet "
            "counterpart (Zeiler & Fergus define conv, ReLU and max-pool; batch-norm is handled)."
        )
    try:
        _, steps = plain_chain(model, name, x)
    except LabError as err:
        return str(err)
    for step in steps:
        if isinstance(step.module, nn.Conv2d) and step.module.padding == "same":
            k, d = step.module.kernel_size, step.module.dilation
            if any((di * (ki - 1)) % 2 for ki, di in zip(k, d)):
                return f"conv {step.name!r} has uneven 'same' padding, which a transposed conv cannot mirror."
    return ""


def deconvnet(
    model: nn.Module,
    x: torch.Tensor,
    layer: LayerRef,
    channel: int | None = None,
    *,
    bn: str = "transpose",
    method: str = "auto",
    return_info: bool = False,
):
    """Zeiler & Fergus deconvnet projection of one channel of `layer` back to pixel space.

    Args:
        model: the network (run in eval mode; mode, `requires_grad` and hooks as they were after).
        x: images as the model takes them, (N, C, H, W).
        layer: a layer name or module with feature-map output (N, C_l, h, w).
        channel: the channel to keep; None keeps, per image, the channel whose map has the
            largest maximum.
        bn: "transpose" (multiply by gamma / sqrt(running_var + eps), the transpose of eval
            batch-norm's affine map without its shift; what the gradient does) or "skip" (leave
            batch-norm out). Only the switch construction can skip.
        method: "auto" (switches where the network is a plain conv/BN/ReLU/max-pool chain up to
            `layer`, else the gradient rule, with a `GradientRuleWarning`), "switches" (raise
            LabError where it does not apply) or "gradient_rule".
        return_info: also return a `DeconvInfo` (method used, channels kept).

    Returns:
        Tensor like x (same shape, dtype, device): the projection, or `(projection, DeconvInfo)`.

    Raises:
        LabError: bad x, unknown layer, channel out of range, bad bn/method, or a combination
            that cannot be computed (method="switches" on a residual net, bn="skip" with the
            gradient rule).
    """
    x = check_images(x)
    if bn not in ("transpose", "skip"):
        raise LabError(f"bn={bn!r}; use 'transpose' (batch-norm's transpose) or 'skip' (leave it out).")
    if method not in ("auto", "switches", "gradient_rule"):
        raise LabError(f"method={method!r}; use 'auto', 'switches' or 'gradient_rule'.")
    name, _ = find_layer(model, layer)
    xd = x.detach().to(model_device(model))
    with inspecting(model, [x]):
        with torch.no_grad():
            act = layer_output(model, xd, name)
        if channel is None:
            channels = act.flatten(2).amax(dim=2).argmax(dim=1)  # strongest map per image
        else:
            channels = torch.full((len(x),), check_channel(name, act.shape[1], channel), dtype=torch.long)
        channels = channels.to(act.device)
        mask = F.one_hot(channels, act.shape[1]).to(act.dtype)[:, :, None, None]  # (N, C_l, 1, 1)

        reason = "" if method == "gradient_rule" else _explain_fallback(model, name, xd[:1])
        if method == "gradient_rule":
            reason = "method='gradient_rule' was asked for"
        elif reason and method == "switches":
            raise LabError(f"method='switches' cannot run on layer {name!r}: {reason} Use method='auto' or 'gradient_rule'.")
        if not reason:
            _, steps = plain_chain(model, name, xd[:1])
            with torch.no_grad():
                top, records = _switches_forward(steps, xd)
                out = _switches_backward(top * mask, records, bn)
            used = "switches"
        else:
            if bn == "skip":
                raise LabError(
                    f"bn='skip' needs the explicit construction, which does not apply here ({reason}); use bn='transpose'."
                )
            warnings.warn(
                f"deconvnet on {name!r} uses the gradient rule (gradient of 1/2*sum(kept map**2) with "
                f"ReLU backward replaced by ReLU of the incoming gradient): {reason}",
                GradientRuleWarning,
                stacklevel=2,
            )
            out = gradient_rule(model, xd, name, mask)
            used = "gradient_rule"
    out = out.to(device=x.device, dtype=x.dtype)
    if return_info:
        return out, DeconvInfo(name, channels.cpu(), used, reason)
    return out


def gradient_rule(model: nn.Module, x: torch.Tensor, layer: LayerRef, mask: torch.Tensor) -> torch.Tensor:
    """Gradient of 1/2 * sum((layer output * mask)**2) with respect to `x`, with the backward of
    every `nn.ReLU`/`nn.ReLU6` replaced by ReLU(incoming gradient).

    Args:
        x: images (N, C, H, W).
        mask: broadcastable to the layer's output, e.g. one-hot channels (N, C_l, 1, 1).

    Returns:
        Tensor (N, C, H, W).
    """
    name, _ = find_layer(model, layer)
    xr = x.detach().clone().requires_grad_(True)
    with inspecting(model), relu_backward(model, "deconvnet"):
        kept = layer_output(model, xr, name, detach=False) * mask
        (grad,) = torch.autograd.grad(0.5 * kept.pow(2).sum(), xr)
    return grad.detach()
