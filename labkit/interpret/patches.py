"""Maximally activating patches: the image regions that excite one unit most over a dataset.

Introduced in notebooks/05_filters_feature_maps.ipynb (after Zeiler & Fergus 2014, Fig. 2).

For each image, a channel's strongest response is the maximum of its feature map; the top-k images
by that maximum are kept, each with the receptive-field box of the position where the maximum sits.
One patch per image (the usual convention), so k near-identical crops of one image cannot fill the
grid. The dataset is streamed in batches and only a running top-k (k values, indices and positions)
is kept: `torch.topk` over the current top-k joined with the new batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from labkit.core import LabError
from labkit.interpret.attribution import check_channel, inspecting, iter_batches, layer_output, model_device
from labkit.interpret.hooks import LayerRef, find_layer
from labkit.interpret.receptive_field import Box, receptive_field


def max_activating_patches(
    model: nn.Module,
    images,
    layer: LayerRef,
    channel: int | Sequence[int],
    k: int = 9,
    *,
    batch_size: int = 64,
) -> list[tuple[int, Box, float]] | dict[int, list[tuple[int, Box, float]]]:
    """The `k` images whose feature map `channel` of `layer` reaches the highest maximum, each with
    the receptive-field box of that maximum.

    Args:
        model: the network (run in eval mode, no gradients; mode restored afterwards).
        images: a Tensor (N, C, H, W), a Dataset yielding `x` or `(x, target)`, or a DataLoader
            over one in order; images as the model takes them (normalised), all of one size.
        layer: a layer name or module with feature-map output (N, C, h, w).
        channel: the channel (unit) of that layer, or a list of channels (one pass over the data
            serves them all).
        k: how many patches per channel.
        batch_size: images per forward pass (Tensor and Dataset inputs).

    Returns:
        [(image index, (top, left, bottom, right), value)], highest value first; the box is in
        input pixels, clipped to the image, bottom/right exclusive. For a list of channels:
        {channel: that list}.

    Raises:
        LabError: bad images, unknown layer, channel out of range (checked on the first batch),
            bad k.
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise LabError(f"k={k!r}: expected a positive int number of patches.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise LabError(f"batch_size={batch_size!r}: expected a positive int.")
    several = isinstance(channel, (list, tuple))
    channels = list(channel) if several else [channel]
    if not channels:
        raise LabError("channel is an empty list; name at least one channel.")
    name, _ = find_layer(model, layer)
    device = model_device(model)
    # per channel: the running top-k values, image indices and (y, x) positions of the maxima
    top = [(torch.empty(0), torch.empty(0, dtype=torch.long), torch.empty(0, 2, dtype=torch.long)) for _ in channels]
    seen = 0
    image_size = None
    with inspecting(model), torch.no_grad():
        for x in iter_batches(images, batch_size):
            if image_size is None:
                image_size = tuple(x.shape[2:])
            elif tuple(x.shape[2:]) != image_size:
                raise LabError(f"images have different sizes ({image_size} and {tuple(x.shape[2:])}); resize them to one size.")
            act = layer_output(model, x.to(device), name)  # (B, C, h, w); later layers skipped
            if seen == 0:
                channels = [check_channel(name, act.shape[1], c) for c in channels]
            fmaps = act[:, channels].float().cpu()  # (B, K, h, w)
            values, flat = fmaps.flatten(2).max(dim=2)  # (B, K)
            pos = torch.stack([flat // fmaps.shape[3], flat % fmaps.shape[3]], dim=2)  # (B, K, 2)
            index = torch.arange(seen, seen + len(x))
            for j, (val, idx, where) in enumerate(top):
                val, idx, where = torch.cat([val, values[:, j]]), torch.cat([idx, index]), torch.cat([where, pos[:, j]])
                keep = val.topk(min(k, len(val))).indices  # the running top-k, nothing more
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


def crop_patches(images, patches: list[tuple[int, Box, float]]) -> list[torch.Tensor]:
    """The pixels of each patch, (C, bottom - top, right - left), from a Tensor or a Dataset."""
    crops = []
    for index, (top, left, bottom, right), _ in patches:
        item = images[index]
        x = item[0] if isinstance(item, (tuple, list)) else item
        crops.append(x[:, top:bottom, left:right])
    return crops
