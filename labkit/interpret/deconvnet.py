"""Zeiler & Fergus's deconvnet (2014): one feature map projected back to pixels by undoing each module of
a plain conv / batch-norm / ReLU / max-pool stack in reverse order (switch unpooling, a ReLU of the signal,
batch-norm's scale, the transposed convolution); elsewhere `gradient_rule`, with a `GradientRuleWarning`.

Introduced in notebooks/06_deconvnet.ipynb.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from labkit.core import LabError
from labkit.interpret import attribution
from labkit.interpret.hooks import LayerRef, find_layer, relu_backward
from labkit.interpret.receptive_field import Step, geometry, modules_up_to, plain_chain

# what the construction knows how to undo
_DECONV = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.Dropout, nn.Dropout2d, nn.Identity)


class GradientRuleWarning(UserWarning):
    """deconvnet fell back from switch unpooling and transposed filters to the gradient rule."""


@dataclass
class DeconvInfo:
    """How a projection was made: the layer, the channel kept per image (N,), the method ("switches" or
    "gradient_rule") and why the gradient rule was used ("" for "switches")."""

    layer: str
    channels: torch.Tensor
    method: str
    reason: str = ""


def _unpool(r: torch.Tensor, switches: torch.Tensor, in_shape: tuple[int, ...]) -> torch.Tensor:
    """Each value back to where its window's maximum was (a scatter-add, as max-pool's backward)."""
    n, c, h, w = in_shape
    out = torch.zeros(n, c, h * w, dtype=r.dtype, device=r.device)
    out.scatter_add_(2, switches.flatten(2), r.flatten(2))
    return out.view(n, c, h, w)


def _conv_transpose(r: torch.Tensor, conv: nn.Conv2d, in_shape: tuple[int, ...]) -> torch.Tensor:
    """The transposed convolution with the conv's own filters (no bias), back to `in_shape`."""
    kernel, stride, padding, dilation = geometry(conv)
    size = []
    for a in range(2):
        natural = (r.shape[2 + a] - 1) * stride[a] - 2 * padding[a] + dilation[a] * (kernel[a] - 1) + 1
        size.append(in_shape[2 + a] - natural)  # rows/cols the forward's floor division dropped
    return F.conv_transpose2d(r, conv.weight, None, stride, padding, tuple(size), conv.groups, dilation)


def _switches(steps: list[Step], x: torch.Tensor, mask: torch.Tensor, bn: str) -> torch.Tensor:
    """The construction: forward through the chain recording switches, keep `mask`, back down."""
    h, records = x, []
    for step in steps:
        m, switches = step.module, None
        if isinstance(m, nn.MaxPool2d):
            pool = (m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode)
            out, switches = F.max_pool2d(h, *pool, return_indices=True)
        else:
            out = m(h)
        records.append((m, tuple(h.shape), switches))
        h = out
    r = h * mask
    for m, in_shape, switches in reversed(records):
        if switches is not None:  # a max-pool
            r = _unpool(r, switches, in_shape)
        elif isinstance(m, nn.ReLU):
            r = r.clamp(min=0)  # rectification of the signal going down
        elif isinstance(m, nn.BatchNorm2d) and bn == "transpose":
            var = m.running_var if m.running_var is not None else torch.ones_like(r[0, :, 0, 0])
            scale = torch.rsqrt(var + m.eps) * (m.weight if m.weight is not None else 1)
            r = r * scale.view(1, -1, 1, 1)
        elif isinstance(m, nn.Conv2d):
            r = _conv_transpose(r, m, in_shape)
    return r


def _fallback_reason(model: nn.Module, name: str, x: torch.Tensor) -> str:
    """'' when the construction applies to `model` up to `name`, else why not."""
    _, modules = modules_up_to(model, name)
    ok = [any(isinstance(m, b) and type(m).forward is b.forward for b in _DECONV) for _, m in modules]
    odd = sorted({type(m).__name__ for (_, m), fine in zip(modules, ok) if not fine})
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
) -> torch.Tensor | tuple[torch.Tensor, DeconvInfo]:
    """Zeiler & Fergus deconvnet projection of one `channel` of `layer` (None: per image, the one whose
    map has the largest maximum) to pixels: Tensor like x, or `(projection, DeconvInfo)` with `return_info`.
    `method`: "switches" (a plain conv/BN/ReLU/max-pool chain up to `layer`), "gradient_rule", or "auto"
    (switches where they apply); `bn`: "transpose" (batch-norm's scale, as the gradient) or "skip"."""
    x = attribution.check_images(x)
    attribution.check_choice("bn", bn, ("transpose", "skip"))
    attribution.check_choice("method", method, ("auto", "switches", "gradient_rule"))
    name, _ = find_layer(model, layer)
    xd = x.detach().to(attribution.model_device(model))
    with attribution.inspecting(model):
        with torch.no_grad():
            act = attribution.layer_output(model, xd, name)
        if channel is None:
            channels = act.flatten(2).amax(dim=2).argmax(dim=1)  # strongest map per image
        else:
            channel = attribution.check_channel(name, act.shape[1], channel)
            channels = torch.full((len(x),), channel, dtype=torch.long, device=act.device)
        mask = F.one_hot(channels, act.shape[1]).to(act.dtype)[:, :, None, None]  # (N, C_l, 1, 1)

        asked = method == "gradient_rule"
        reason = "method='gradient_rule' was asked for" if asked else _fallback_reason(model, name, xd[:1])
        if reason and method == "switches":
            raise LabError(f"method='switches' cannot run on {name!r}: {reason} Use method='auto'.")
        if not reason:
            with torch.no_grad():
                out = _switches(plain_chain(model, name, xd[:1])[1], xd, mask, bn)
        else:
            if bn == "skip":
                raise LabError(
                    f"bn='skip' needs the explicit construction, which does not apply here ({reason}); "
                    "use bn='transpose'."
                )
            message = f"deconvnet on {name!r} uses the gradient rule (see labkit.interpret.deconvnet): "
            warnings.warn(message + reason, GradientRuleWarning, stacklevel=2)
            out = gradient_rule(model, xd, name, mask)
    out = out.to(device=x.device, dtype=x.dtype)
    info = DeconvInfo(name, channels.cpu(), "gradient_rule" if reason else "switches", reason)
    return (out, info) if return_info else out


def gradient_rule(model: nn.Module, x: torch.Tensor, name: str, mask: torch.Tensor) -> torch.Tensor:
    """Gradient of 1/2 * sum((output of layer `name` * mask)**2) with respect to x (N, C, H, W), every
    `nn.ReLU`/`nn.ReLU6` backward replaced by ReLU(incoming gradient); `mask` broadcasts to the output."""
    xr = x.detach().clone().requires_grad_(True)
    with attribution.inspecting(model), relu_backward(model, "deconvnet"):
        kept = attribution.layer_output(model, xr, name, detach=False) * mask
        (grad,) = torch.autograd.grad(0.5 * kept.pow(2).sum(), xr)
    return grad.detach()
