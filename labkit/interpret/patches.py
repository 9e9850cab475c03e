"""Maximally activating patches (after Zeiler & Fergus 2014): the top-k images by a channel's strongest
response, one patch per image, each the receptive-field box of the maximum; the data is streamed and
only a running top-k kept.

Introduced in notebooks/05_filters_feature_maps.ipynb.
"""

from __future__ import annotations

import torch
from torch import nn

from labkit.core import LabError
from labkit.interpret import attribution
from labkit.interpret.hooks import LayerRef, find_layer
from labkit.interpret.receptive_field import Box, receptive_field

Patch = tuple[int, Box, float]  # (image index, (top, left, bottom, right), value)


def max_activating_patches(
    model: nn.Module, images, layer: LayerRef, channel: int | list[int], k: int = 9, *, batch_size: int = 64
) -> list[Patch] | dict[int, list[Patch]]:
    """The `k` images whose feature map `channel` (or each of a list of channels, in one pass) of `layer`
    reaches the highest maximum, each with the receptive-field box of that maximum.

    Args:
        model: the network (eval mode, no gradients; given back as found).
        images: a Tensor (N, C, H, W), a Dataset of `x` or `(x, target)`, or an ordered DataLoader;
            normalised as the model takes them, all of one size.
        batch_size: images per forward pass.

    Returns:
        [(image index, (top, left, bottom, right), value)], highest first; the box in input pixels,
        clipped to the image. For a list of channels: {channel: that list}.
    """
    attribution.check_number("k", k, minimum=1, integer=True)
    attribution.check_number("batch_size", batch_size, minimum=1, integer=True)
    several = isinstance(channel, (list, tuple))
    channels = list(channel) if several else [channel]
    if not channels:
        raise LabError("channel is an empty list; name at least one channel.")
    name, _ = find_layer(model, layer)
    device = attribution.model_device(model)
    empty = (torch.empty(0), torch.empty(0, dtype=torch.long), torch.empty(0, 2, dtype=torch.long))
    top = [empty] * len(channels)  # per channel: the running top-k values, image indices, (y, x) of maxima
    seen, image_size = 0, None
    with attribution.inspecting(model), torch.no_grad():
        for x in attribution.iter_batches(images, batch_size):
            if image_size is None:
                image_size = tuple(x.shape[2:])
            elif tuple(x.shape[2:]) != image_size:
                raise LabError(
                    f"images have different sizes ({image_size}, {tuple(x.shape[2:])}); resize them."
                )
            act = attribution.layer_output(model, x.to(device), name)  # (B, C, h, w)
            if seen == 0:
                channels = [attribution.check_channel(name, act.shape[1], c) for c in channels]
            fmaps = act[:, channels].float().cpu()  # (B, K, h, w)
            values, flat = fmaps.flatten(2).max(dim=2)  # (B, K)
            pos = torch.stack([flat // fmaps.shape[3], flat % fmaps.shape[3]], dim=2)  # (B, K, 2)
            index = torch.arange(seen, seen + len(x))
            for j, (val, idx, where) in enumerate(top):
                val, idx = torch.cat([val, values[:, j]]), torch.cat([idx, index])
                where = torch.cat([where, pos[:, j]])
                keep = val.topk(min(k, len(val))).indices
                top[j] = (val[keep], idx[keep], where[keep])
            seen += len(x)
    if seen == 0:
        raise LabError("images is empty; pass at least one image.")
    rf = receptive_field(model, name, image_size)
    out = {}
    for c, (val, idx, where) in zip(channels, top):
        boxes = rf.boxes([tuple(p.tolist()) for p in where])
        out[c] = [(int(i), box, float(v)) for i, box, v in zip(idx, boxes, val)]
    return out if several else out[channels[0]]


def crop_patches(images, patches: list[Patch]) -> list[torch.Tensor]:
    """The pixels of each patch, (C, bottom - top, right - left), from a Tensor or a Dataset."""
    crops = []
    for index, (top, left, bottom, right), _ in patches:
        item = images[index]
        x = item[0] if isinstance(item, (tuple, list)) else item
        crops.append(x[:, top:bottom, left:right])
    return crops
