"""Maximally activating patches (after Zeiler & Fergus 2014): the top-k images by a channel's strongest
response, each with the receptive-field box of that response; the data is streamed, a running top-k kept.

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
    """The `k` `images` (Tensor (N, C, H, W), Dataset of `x` or `(x, target)`, or ordered DataLoader) whose
    map `channel` of `layer` peaks highest: [(image index, the peak's receptive-field box, value)], highest
    first; for a list of channels, in one pass, {channel: that list}."""
    attribution.check_numbers(k=k, batch_size=batch_size, minimum=1, integer=True)
    several = isinstance(channel, (list, tuple))
    channels = list(channel) if isinstance(channel, (list, tuple)) else [channel]
    if not channels:
        raise LabError("channel is an empty list; name at least one channel.")
    name, _ = find_layer(model, layer)
    empty = (torch.empty(0), torch.empty(0, dtype=torch.long), torch.empty(0, 2, dtype=torch.long))
    top = [empty] * len(channels)  # per channel: the running top-k values, image indices, (y, x) of maxima
    seen, image_size = 0, (0, 0)
    with attribution.inspecting(model), torch.no_grad():
        for x in attribution.iter_batches(images, batch_size):
            if seen == 0:
                image_size = (x.shape[2], x.shape[3])
            elif (x.shape[2], x.shape[3]) != image_size:
                raise LabError(
                    f"images have different sizes ({image_size}, {tuple(x.shape[2:])}); resize them."
                )
            act = attribution.layer_output(model, x.to(attribution.model_device(model)), name)  # (B, C, h, w)
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
        boxes = rf.boxes([(int(y), int(x)) for y, x in where])
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
