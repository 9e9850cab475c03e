"""Filters and feature maps: what a conv layer has learned and what it responds with. A deeper filter
is summarised by the norm of each input slice (`input_channel_norms`) or its strongest slices.

Introduced in notebooks/05_filters_feature_maps.ipynb.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from labkit.core import LabError
from labkit.interpret import attribution
from labkit.interpret.hooks import LayerRef, find_layer, forward_to


def filters(model: nn.Module, layer: LayerRef) -> torch.Tensor:
    """A detached CPU copy of a conv layer's weights (out_channels, in_channels / groups, kh, kw)."""
    name, module = find_layer(model, layer)
    if not isinstance(module, nn.Conv2d):
        convs = attribution.conv_layers(model)
        shown = ", ".join(repr(c) for c in convs[:10]) + (", ..." if len(convs) > 10 else "")
        raise LabError(
            f"layer {name!r} is a {type(module).__name__}, not a conv layer; filters live in conv "
            f"layers. Conv layers of this model: {shown}."
        )
    return module.weight.detach().cpu().clone()


def input_channel_norms(model: nn.Module, layer: LayerRef) -> torch.Tensor:
    """How strongly output channel o draws on input channel i: L2 norms of the (kh, kw) slices, (O, I)."""
    return filters(model, layer).flatten(2).norm(dim=2)


def top_slices(weight: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The `k` (kh, kw) slices of a filter (in, kh, kw) of largest L2 norm: (indices (k,), (k, kh, kw))."""
    top = weight.flatten(1).norm(dim=1).topk(min(k, weight.shape[0])).indices
    return top, weight[top]


def feature_maps(
    model: nn.Module, x: torch.Tensor, layers: LayerRef | Iterable[LayerRef]
) -> dict[str, torch.Tensor]:
    """{layer name: detached output on x's device} of `layers` (a name or module, or several) for x."""
    x = attribution.check_images(x)
    layers = [layers] if isinstance(layers, (str, nn.Module)) else layers
    names = [find_layer(model, layer)[0] for layer in layers]
    if not names:
        raise LabError(f"layers is empty; name a layer, e.g. {attribution.conv_layers(model)[:3]}.")
    with attribution.inspecting(model), torch.no_grad():
        cap = forward_to(model, x.to(attribution.model_device(model)), names)  # later layers are skipped
    return {n: cap.activations[n].to(x.device) for n in names}


def channel_means(model: nn.Module, images, layer: LayerRef, *, batch_size: int = 64) -> torch.Tensor:
    """The mean activation of each channel of `layer` over all positions and `images` (a Tensor, a Dataset
    of `x` or `(x, target)`, or an ordered DataLoader), streamed in batches: Tensor (C_l,) on the CPU."""
    name, _ = find_layer(model, layer)
    total, count = torch.zeros(()), 0
    with attribution.inspecting(model), torch.no_grad():
        for x in attribution.iter_batches(images, batch_size):
            act = attribution.layer_output(model, x.to(attribution.model_device(model)), name)
            total = total + act.float().mean(dim=(2, 3)).sum(0).cpu()
            count += len(x)
    if count == 0:
        raise LabError("images is empty; pass at least one image.")
    return total / count
