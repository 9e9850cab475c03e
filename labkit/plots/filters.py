"""Figures for looking inside a CNN: filter grids, feature-map grids, filter/feature-map pairs,
maximally activating patches, filter patterns and deconvnet reconstructions.

Introduced in notebooks/05_filters_feature_maps.ipynb and notebooks/06_deconvnet.ipynb. Every
function returns a matplotlib Figure and never calls `plt.show()`.

Colour scales: filters and reconstructions are signed, so they are shown with 0 as mid-grey and
the largest |value| of the figure (or of the panel, where said) at black/white; feature maps are
shown with their own min-max per panel (viridis), input images through `denormalize` when given.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from labkit.env import LabError

Denorm = Callable[[torch.Tensor], torch.Tensor] | None


def _grid(n: int, ncols: int, size: float = 1.4, title_space: float = 0.0) -> tuple[Figure, np.ndarray]:
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + title_space), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes


def to_image(x: torch.Tensor, denormalize: Denorm = None) -> np.ndarray:
    """(C, H, W) tensor -> (H, W, 3) or (H, W) array in [0, 1] for imshow: through `denormalize`
    when given, else min-max scaled."""
    x = x.detach().cpu().float()
    if denormalize is not None:
        x = denormalize(x)
    elif x.dtype == torch.uint8 or x.max() > 1.0 or x.min() < 0.0:
        x = (x - x.min()) / (x.max() - x.min()).clamp(min=1e-12)
    x = x.clamp(0, 1)
    return x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()


def signed_image(x: torch.Tensor, scale: float | None = None) -> np.ndarray:
    """A signed (C, H, W) tensor -> [0, 1] image with 0 at grey and +-scale (default max |x|) at the ends."""
    x = x.detach().cpu().float()
    scale = float(x.abs().max()) if scale is None else scale
    y = (x / (2 * max(scale, 1e-12)) + 0.5).clamp(0, 1)
    return y[0].numpy() if y.shape[0] == 1 else y.permute(1, 2, 0).numpy()


def filter_grid(weights: torch.Tensor, ncols: int = 8, title: str | None = None, max_filters: int = 64) -> Figure:
    """Filters of one conv layer as small images.

    Args:
        weights: (out, in, kh, kw). in == 3: colour (RGB) images; in == 1: grey; otherwise the
            per-input-channel mean is shown (say so in the title, or use `channel_norm_map`).
        max_filters: show at most this many (the first ones).
    """
    if weights.dim() != 4:
        raise LabError(f"weights has shape {tuple(weights.shape)}; expected (out, in, kh, kw) from interpret.filters().")
    w = weights[:max_filters].detach().cpu().float()
    if w.shape[1] not in (1, 3):
        w = w.mean(dim=1, keepdim=True)
    scale = float(w.abs().max())  # one scale for the grid: filters compare with each other
    fig, axes = _grid(len(w), ncols, size=1.0)
    for i, ax in enumerate(axes.flat[: len(w)]):
        img = signed_image(w[i], scale)
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(str(i), fontsize=7)
    fig.suptitle(title or f"{len(w)} filters {tuple(weights.shape[1:])}: 0 = grey", fontsize=10)
    fig.tight_layout()
    return fig


def channel_norm_map(norms: torch.Tensor, title: str | None = None, max_out: int = 64) -> Figure:
    """Per-input-channel L2 norms of a deep layer's filters, (out, in), as a heat map."""
    n = norms[:max_out].detach().cpu().float().numpy()
    fig, ax = plt.subplots(figsize=(min(12, 2 + 0.12 * n.shape[1]), min(8, 1.5 + 0.12 * n.shape[0])))
    im = ax.imshow(n, aspect="auto", cmap="magma")
    ax.set_xlabel("input channel")
    ax.set_ylabel("output channel (filter)")
    fig.colorbar(im, ax=ax, label="L2 norm of the (kh, kw) slice")
    ax.set_title(title or "filter strength per input channel")
    fig.tight_layout()
    return fig


def feature_map_grid(
    maps: torch.Tensor,
    ncols: int = 8,
    title: str | None = None,
    channels: Sequence[int] | None = None,
    max_maps: int = 32,
    image: torch.Tensor | None = None,
    denormalize: Denorm = None,
) -> Figure:
    """Feature maps of one image at one layer, each channel with its own min-max (viridis).

    Args:
        maps: (C, h, w) (or (1, C, h, w)).
        channels: which channels (default the first `max_maps`).
        image: the input image (C, H, W), shown in the first panel.
    """
    if maps.dim() == 4:
        maps = maps[0]
    if maps.dim() != 3:
        raise LabError(f"maps has shape {tuple(maps.shape)}; expected (C, h, w) for one image.")
    channels = list(range(min(max_maps, maps.shape[0]))) if channels is None else list(channels)
    extra = 1 if image is not None else 0
    fig, axes = _grid(len(channels) + extra, ncols, size=1.3)
    flat = list(axes.flat)
    if image is not None:
        flat[0].imshow(to_image(image, denormalize))
        flat[0].set_title("input", fontsize=7)
    for ax, c in zip(flat[extra:], channels):
        ax.imshow(maps[c].detach().cpu().float().numpy(), cmap="viridis")
        ax.set_title(f"ch {c}", fontsize=7)
    fig.suptitle(title or f"feature maps ({maps.shape[0]} channels, {maps.shape[1]}x{maps.shape[2]})", fontsize=10)
    fig.tight_layout()
    return fig


def filter_map_pairs(
    model: nn.Module,
    x: torch.Tensor,
    pairs: Sequence[tuple[str, int]],
    *,
    k: int = 3,
    denormalize: Denorm = None,
) -> Figure:
    """One row per (conv layer, output channel): the filter, then the map it produces on image `x`.

    A filter with 3 input channels is shown as one colour image; a deeper filter as its `k`
    strongest input slices by L2 norm (titled with the input channel each comes from). The map
    is the conv layer's own output for that channel (before batch-norm and ReLU).

    Args:
        x: one image as the model takes it, (1, C, H, W).
        pairs: [(conv layer name, output channel)].
    """
    from labkit.interpret import feature_maps, filters, strongest_slices

    maps = feature_maps(model, x, sorted({layer for layer, _ in pairs}))
    ncols = k + 2
    fig, axes = plt.subplots(len(pairs), ncols, figsize=(1.7 * ncols, 1.8 * len(pairs)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for row, (layer, channel) in enumerate(pairs):
        w = filters(model, layer)
        axes[row, 0].imshow(to_image(x[0], denormalize))
        axes[row, 0].set_title("input", fontsize=7)
        if w.shape[1] == 3:
            axes[row, 1].imshow(signed_image(w[channel]), interpolation="nearest")
            axes[row, 1].set_title(f"{layer}\nfilter {channel} (RGB)", fontsize=7)
        else:
            idx, slices = strongest_slices(model, layer, channel, k=k)
            scale = float(slices.abs().max())
            for j, (i, s) in enumerate(zip(idx.tolist(), slices)):
                axes[row, 1 + j].imshow(signed_image(s[None], scale), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                label = f"{layer}\nfilter {channel}, in {i}" if j == 0 else f"in {i}"
                axes[row, 1 + j].set_title(label, fontsize=7)
        axes[row, -1].imshow(maps[layer][0, channel].cpu().float().numpy(), cmap="viridis")
        axes[row, -1].set_title(f"map {channel}", fontsize=7)
    fig.suptitle(
        f"filter / feature-map pairs (deep filters: {k} strongest input slices by L2 norm; 0 = grey)", fontsize=9
    )
    fig.tight_layout()
    return fig


def patch_grid(
    crops: Mapping[str, Sequence[torch.Tensor]],
    values: Mapping[str, Sequence[float]] | None = None,
    denormalize: Denorm = None,
    title: str | None = None,
) -> Figure:
    """Maximally activating patches: one row per unit (the mapping's keys), strongest first.

    Args:
        crops: {unit label: [patch (C, h, w)]}, e.g. from `interpret.crop_patches`.
        values: {unit label: [activation]} to print over each patch.
    """
    rows = list(crops)
    if not rows:
        raise LabError("crops is empty; pass {unit label: [patches]}.")
    ncols = max(len(c) for c in crops.values()) + 1
    fig, axes = plt.subplots(len(rows), ncols, figsize=(1.25 * ncols, 1.35 * len(rows)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, unit in enumerate(rows):
        axes[r, 0].text(0.95, 0.5, unit, ha="right", va="center", fontsize=8, transform=axes[r, 0].transAxes)
        for c, patch in enumerate(crops[unit]):
            axes[r, c + 1].imshow(to_image(patch, denormalize))
            if values is not None:
                axes[r, c + 1].set_title(f"{values[unit][c]:.2f}", fontsize=7)
    fig.suptitle(title or "maximally activating patches (receptive-field boxes)", fontsize=10)
    fig.tight_layout()
    return fig


def image_row(
    images: Sequence[torch.Tensor],
    titles: Sequence[str] | None = None,
    denormalize: Denorm = None,
    ncols: int = 6,
    title: str | None = None,
) -> Figure:
    """Images (C, H, W) side by side, e.g. filter patterns; through `denormalize` when given."""
    fig, axes = _grid(len(images), ncols, size=1.9)
    for i, (ax, img) in enumerate(zip(axes.flat, images)):
        img = img[0] if img.dim() == 4 else img
        ax.imshow(to_image(img, denormalize))
        if titles is not None:
            ax.set_title(titles[i], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def deconv_grid(
    images: torch.Tensor,
    reconstructions: Mapping[str, torch.Tensor],
    denormalize: Denorm = None,
    row_labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Inputs and their projections: one row per image, one column per entry of `reconstructions`.

    Args:
        images: (N, C, H, W) inputs.
        reconstructions: {column title: (N, C, H, W)} deconvnet projections (signed; each panel is
            scaled by its own largest |value|, 0 = grey) or decoder reconstructions (titles
            starting with "decoder" are shown as images, through `denormalize`).
    """
    n = len(images)
    cols = list(reconstructions)
    fig, axes = plt.subplots(n, len(cols) + 1, figsize=(1.8 * (len(cols) + 1), 1.9 * n), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        axes[i, 0].imshow(to_image(images[i], denormalize))
        axes[i, 0].set_title(row_labels[i] if row_labels else "input", fontsize=7)
        for j, col in enumerate(cols):
            r = reconstructions[col][i]
            img = to_image(r, denormalize) if col.startswith("decoder") else signed_image(r)
            axes[i, j + 1].imshow(img)
            if i == 0:
                axes[i, j + 1].set_title(col, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


__all__ = [
    "channel_norm_map", "deconv_grid", "feature_map_grid", "filter_grid", "filter_map_pairs", "image_row",
    "patch_grid", "signed_image", "to_image",
]  # fmt: skip
