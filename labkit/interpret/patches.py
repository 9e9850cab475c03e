"""Maximally activating patches: the image regions that excite one unit most over a dataset.

Introduced in notebooks/05_filters_feature_maps.ipynb (after Zeiler & Fergus 2014, Fig. 2).

For each image, a channel's strongest response is the maximum of its feature map; the top-k images
by that maximum are kept, each with the receptive-field box of the position where the maximum sits.
One patch per image (the usual convention), so k near-identical crops of one image cannot fill the
grid. The dataset is streamed in batches and only a running top-k (k values, indices and positions)
is kept: `torch.topk` over the current top-k joined with the new batch.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, SequentialSampler

from labkit.env import LabError
from labkit.interpret._chain import check_channel, check_images, model_device
from labkit.interpret.hooks import LayerRef, capture, find_layer, preserved
from labkit.interpret.receptive_field import Box, receptive_field


def _batches(images, batch_size: int):
    """Yield float batches (N, C, H, W) in dataset order from a tensor, Dataset or DataLoader."""
    if isinstance(images, torch.Tensor):
        check_images(images, "images")
        for start in range(0, len(images), batch_size):
            yield images[start : start + batch_size]
        return
    if isinstance(images, DataLoader):
        if not isinstance(images.sampler, SequentialSampler):
            raise LabError(
                "images is a DataLoader that does not go through the data in order (shuffle=True or a "
                "sampler), so image indices would mean nothing; pass the Dataset, or a loader with shuffle=False."
            )
        loader = images
    elif isinstance(images, Dataset):
        loader = DataLoader(images, batch_size=batch_size, shuffle=False)
    else:
        raise LabError(f"images must be a Tensor (N, C, H, W), a Dataset or a DataLoader, not {type(images).__name__}.")
    for batch in loader:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        yield check_images(x, "a batch of images")


def max_activating_patches(
    model: nn.Module,
    images,
    layer: LayerRef,
    channel: int,
    k: int = 9,
    *,
    batch_size: int = 64,
) -> list[tuple[int, Box, float]]:
    """The `k` images whose feature map `channel` of `layer` reaches the highest maximum, each with
    the receptive-field box of that maximum.

    Args:
        model: the network (run in eval mode, no gradients; mode restored afterwards).
        images: a Tensor (N, C, H, W), a Dataset yielding `x` or `(x, target)`, or a DataLoader
            over one in order; images as the model takes them (normalised), all of one size.
        layer: a layer name or module with feature-map output (N, C, h, w).
        channel: the channel (unit) of that layer.
        k: how many patches.
        batch_size: images per forward pass (Tensor and Dataset inputs).

    Returns:
        [(image index, (top, left, bottom, right), value)], highest value first; the box is in
        input pixels, clipped to the image, bottom/right exclusive.

    Raises:
        LabError: bad images, unknown layer, channel out of range (checked on the first batch),
            bad k.
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise LabError(f"k={k!r}: expected a positive int number of patches.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise LabError(f"batch_size={batch_size!r}: expected a positive int.")
    name, _ = find_layer(model, layer)
    device = model_device(model)
    top_val = torch.empty(0)
    top_idx = torch.empty(0, dtype=torch.long)
    top_pos = torch.empty(0, 2, dtype=torch.long)
    seen = 0
    image_size = None
    with preserved(model), torch.no_grad(), capture(model, name) as cap:
        model.eval()
        for x in _batches(images, batch_size):
            if image_size is None:
                image_size = tuple(x.shape[2:])
            elif tuple(x.shape[2:]) != image_size:
                raise LabError(f"images have different sizes ({image_size} and {tuple(x.shape[2:])}); resize them to one size.")
            model(x.to(device))
            act = cap.activations.get(name)
            if act is None or act.dim() != 4:
                shape = None if act is None else tuple(act.shape)
                raise LabError(f"layer {name!r} gives {shape}, not feature maps (N, C, h, w); pick a conv, ReLU or pooling layer.")
            if seen == 0:
                channel = check_channel(name, act.shape[1], channel)
            fmap = act[:, channel].float().cpu()  # (B, h, w)
            values, flat = fmap.flatten(1).max(dim=1)
            pos = torch.stack([flat // fmap.shape[2], flat % fmap.shape[2]], dim=1)
            top_val = torch.cat([top_val, values])
            top_idx = torch.cat([top_idx, torch.arange(seen, seen + len(x))])
            top_pos = torch.cat([top_pos, pos])
            keep = top_val.topk(min(k, len(top_val))).indices  # the running top-k, nothing more
            top_val, top_idx, top_pos = top_val[keep], top_idx[keep], top_pos[keep]
            seen += len(x)
    if seen == 0:
        raise LabError("images is empty; pass at least one image.")
    rf = receptive_field(model, name, image_size)
    boxes = rf.boxes([tuple(p.tolist()) for p in top_pos])
    return [(int(i), box, float(v)) for i, box, v in zip(top_idx, boxes, top_val)]


def crop_patches(images, patches: list[tuple[int, Box, float]]) -> list[torch.Tensor]:
    """The pixels of each patch, (C, bottom - top, right - left), from a Tensor or a Dataset."""
    crops = []
    for index, (top, left, bottom, right), _ in patches:
        item = images[index]
        x = item[0] if isinstance(item, (tuple, list)) else item
        crops.append(x[:, top:bottom, left:right])
    return crops
