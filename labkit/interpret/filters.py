"""Filters and feature maps: what a conv layer has learned and what it responds with.

Introduced in notebooks/05_filters_feature_maps.ipynb.

A first-layer filter has three input channels and can be shown as a small colour image. A deeper
filter has one (kh, kw) slice per input channel (64 or more), which no picture shows at once; two
summaries are offered and each figure says which one it uses:

- `input_channel_norms`: the L2 norm of each slice, a (out, in) matrix: how strongly each output
  channel listens to each input channel;
- `strongest_slices`: for one output channel, the k slices with the largest norm, as (kh, kw)
  images with the input channel each comes from.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from labkit.core import LabError
from labkit.interpret.attribution import (
    check_channel,
    check_images,
    conv_layers,
    find_conv,
    inspecting,
    iter_batches,
    layer_output,
    model_device,
)
from labkit.interpret.hooks import LayerRef, find_layer, forward_to


def filters(model: nn.Module, layer: LayerRef) -> torch.Tensor:
    """The weights of a conv layer.

    Args:
        model: the network.
        layer: the name of an `nn.Conv2d` layer (as `model.named_modules()` gives it) or the module.

    Returns:
        a detached copy on the CPU, shape (out_channels, in_channels / groups, kh, kw).

    Raises:
        LabError: unknown layer (with close matches), or a layer that is not a conv layer (the
            message lists the conv layers there are).
    """
    return find_conv(model, layer)[1].weight.detach().cpu().clone()


def input_channel_norms(model: nn.Module, layer: LayerRef) -> torch.Tensor:
    """L2 norm of each (kh, kw) slice of a conv layer's filters: how strongly output channel `o`
    draws on input channel `i`.

    Returns:
        Tensor (out_channels, in_channels / groups).
    """
    weight = filters(model, layer)
    return weight.flatten(2).norm(dim=2)


def strongest_slices(model: nn.Module, layer: LayerRef, channel: int, k: int = 4):
    """The `k` input-channel slices of one filter with the largest L2 norm.

    Args:
        layer: a conv layer.
        channel: the output channel (the filter) to look at.
        k: how many slices (capped at the number of input channels).

    Returns:
        (input channel indices (k,), slices (k, kh, kw)), strongest first.
    """
    name, conv = find_conv(model, layer)
    channel = check_channel(name, conv.out_channels, channel)
    if not isinstance(k, int) or k < 1:
        raise LabError(f"k={k!r}: expected a positive int number of slices.")
    return top_slices(filters(model, name)[channel], k)


def top_slices(weight: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The `k` (kh, kw) slices of one filter (in, kh, kw) with the largest L2 norm: (indices, slices)."""
    top = weight.flatten(1).norm(dim=1).topk(min(k, weight.shape[0])).indices
    return top, weight[top]


def feature_maps(model: nn.Module, x: torch.Tensor, layers: LayerRef | Iterable[LayerRef]) -> dict[str, torch.Tensor]:
    """The outputs of `layers` for the images `x` (one forward pass, model in eval mode).

    Args:
        model: the network (its mode is restored afterwards; the pass runs in eval mode so that
            batch-norm uses, and does not update, its running statistics).
        x: images as the model takes them, (N, C, H, W).
        layers: a layer name or module, or several.

    Returns:
        {layer name: detached Tensor on x's device}, (N, C_l, h_l, w_l) for conv-like layers,
        in the order the layers were given.

    Raises:
        LabError: bad `x`, unknown layer, or a layer the forward pass does not reach.
    """
    x = check_images(x)
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    names = [find_layer(model, layer)[0] for layer in layers]
    if not names:
        raise LabError(f"layers is empty; name at least one layer, e.g. {conv_layers(model)[:3]}.")
    with inspecting(model), torch.no_grad():
        cap = forward_to(model, x.to(model_device(model)), names)  # later layers are skipped
    return {n: cap.activations[n].to(x.device) for n in names}


def channel_means(model: nn.Module, images, layer: LayerRef, *, batch_size: int = 64) -> torch.Tensor:
    """Mean activation of each channel of `layer` over all positions and all images, streamed in
    batches (the quantity `filter_pattern` maximises, averaged over real data).

    Args:
        images: a Tensor (N, C, H, W), a Dataset of `x` or `(x, target)`, or an ordered DataLoader.

    Returns:
        Tensor (C_l,) on the CPU.
    """
    name, _ = find_layer(model, layer)
    total, count = None, 0
    with inspecting(model), torch.no_grad():
        for x in iter_batches(images, batch_size):
            act = layer_output(model, x.to(model_device(model)), name)
            part = act.float().mean(dim=(2, 3)).sum(0).cpu()
            total = part if total is None else total + part
            count += len(x)
    if count == 0:
        raise LabError("images is empty; pass at least one image.")
    return total / count
