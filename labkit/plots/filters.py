"""Figures for looking inside a CNN: filter and feature-map grids, filter/feature-map pairs, maximally
activating patches, filter patterns, deconvnet reconstructions. Panels of any size are fitted into square
cells and tiled by `labkit.plots.images.tile_grid`; signed panels (filters, projections) show 0 as grey,
feature maps are min-max scaled per panel.

Introduced in notebooks/05_filters_feature_maps.ipynb and notebooks/06_deconvnet.ipynb.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from labkit.core import LabError
from labkit.interpret.filters import top_slices
from labkit.plots.images import Denorm, signed_image, tile_grid, to_display

Panel = np.ndarray  # (h, w, 3) floats in [0, 1]
MIN_CELL = 48  # panels are enlarged (nearest neighbour) to at least this many pixels


def _rgb(a: np.ndarray) -> Panel:
    return np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a


def _fit(panel: Panel, cell: int, scale: float | None = None) -> Panel:
    """Scale a panel by nearest neighbour to fit a cell x cell square (aspect kept), centred on white;
    with `scale`, by that factor instead (so that panels keep their relative sizes)."""
    h, w = panel.shape[:2]
    scale = cell / max(h, w) if scale is None else scale
    rows = np.minimum((np.arange(max(1, round(h * scale))) / scale).astype(int), h - 1)
    cols = np.minimum((np.arange(max(1, round(w * scale))) / scale).astype(int), w - 1)
    out = np.ones((cell, cell, 3))
    top, left = (cell - len(rows)) // 2, (cell - len(cols)) // 2
    out[top : top + len(rows), left : left + len(cols)] = panel[rows][:, cols]
    return out


def _cells(
    rows: Sequence[Sequence[Panel | None]],
    labels: Sequence[Sequence[str]] | None = None,
    *,
    row_labels: Sequence[str] | None = None,
    title: str | None = None,
    inches: float = 1.25,
    same_scale: bool = False,
) -> Figure:
    """Rows of panels (h, w, 3) in [0, 1] (None: an empty cell) and their labels, each fitted into a square
    cell of at least MIN_CELL pixels; `same_scale`: all by one factor, so that sizes compare."""
    panels = [p for row in rows for p in row if p is not None]
    if not panels:
        raise LabError("nothing to draw: every panel is empty.")
    largest = max(max(p.shape[:2]) for p in panels)
    cell = max(MIN_CELL, largest)
    scale = cell / largest if same_scale else None  # None: each panel fills its cell
    ncols = max(len(row) for row in rows)
    tiles = np.ones((len(rows) * ncols, cell, cell, 3))
    texts = [""] * len(tiles)
    for r, row in enumerate(rows):
        for c, panel in enumerate(row):
            if panel is not None:
                tiles[r * ncols + c] = _fit(np.clip(panel, 0, 1), cell, scale)
            if labels is not None and c < len(labels[r]):
                texts[r * ncols + c] = labels[r][c]
    return tile_grid(tiles, ncols, texts, row_labels=row_labels, title=title, inches=inches)


def _chunks(items: list[Any], ncols: int) -> list[list[Any]]:
    return [items[i : i + ncols] for i in range(0, len(items), ncols)]


def _picture(x: torch.Tensor, denormalize: Denorm) -> Panel:
    return to_display(x, denormalize)[0]


def colorize(m: torch.Tensor, cmap: str = "viridis") -> Panel:
    """A feature map (h, w) min-max scaled through a colour map (a constant map shows as its low end)."""
    a = m.detach().cpu().float()
    a = (a - a.min()) / (a.max() - a.min()).clamp(min=1e-12)
    return plt.get_cmap(cmap)(a.numpy())[..., :3]


def filter_grid(
    weights: torch.Tensor, ncols: int = 8, title: str | None = None, max_filters: int = 64
) -> Figure:
    """The first `max_filters` filters (out, in, kh, kw) of a conv layer as images on one colour scale
    (0 = grey); for in != 3, their mean over the input channels (see also `channel_norm_map`)."""
    if weights.dim() != 4:
        raise LabError(
            f"weights has shape {tuple(weights.shape)}; expected (out, in, kh, kw) from interpret.filters()."
        )
    w = weights[:max_filters].detach().cpu().float()
    if w.shape[1] not in (1, 3):
        w = w.mean(dim=1, keepdim=True)
    scale = float(w.abs().max())  # one scale for the grid: filters compare with each other
    panels = [_rgb(signed_image(f, scale)) for f in w]
    title = title or f"{len(w)} filters {tuple(weights.shape[1:])}: 0 = grey"
    return _cells(_chunks(panels, ncols), _chunks([str(i) for i in range(len(w))], ncols), title=title)


def channel_norm_map(norms: torch.Tensor, title: str | None = None, max_out: int = 64) -> Figure:
    """Per-input-channel L2 norms of a deep layer's filters, (out, in), as a heat map."""
    n = norms[:max_out].detach().cpu().float().numpy()
    fig, ax = plt.subplots(figsize=(min(12, 2 + 0.12 * n.shape[1]), min(8, 1.5 + 0.12 * n.shape[0])))
    im = ax.imshow(n, aspect="auto", cmap="magma")
    ax.set(xlabel="input channel", ylabel="output channel (filter)")
    ax.set_title(title or "filter strength per input channel")
    fig.colorbar(im, ax=ax, label="L2 norm of the (kh, kw) slice")
    fig.tight_layout()
    return fig


def feature_map_rows(
    images: torch.Tensor,
    maps: torch.Tensor,
    channels: Sequence[int],
    *,
    row_labels: Sequence[str] | None = None,
    denormalize: Denorm = None,
    title: str | None = None,
) -> Figure:
    """One row per image of `images` (N, C, H, W): the input, then the chosen `channels` of its feature
    maps `maps` (N, C_l, h, w) at one layer, the same channels in every row so that rows compare."""
    channels = list(channels)
    rows = [
        [_picture(x, denormalize)] + [colorize(maps[i, c]) for c in channels] for i, x in enumerate(images)
    ]
    heads = [f"ch {c}" for c in channels]
    labels = [[row_labels[i] if row_labels else "input", *heads] for i in range(len(images))]
    title = title or f"feature maps {tuple(maps.shape[2:])} per image (each panel min-max scaled)"
    return _cells(rows, labels, title=title)


def filter_map_pairs(
    image: torch.Tensor,
    pairs: Sequence[tuple[str, int]],
    weights: Mapping[str, torch.Tensor],
    maps: Mapping[str, torch.Tensor],
    *,
    k: int = 3,
    denormalize: Denorm = None,
) -> Figure:
    """One row per (conv layer, output channel) of `pairs`: the input image (C, H, W), the filter from
    `weights` {layer: (out, in, kh, kw)}, then that channel of `maps` {layer: (1, C_l, h, w)}. A filter
    with 3 input channels shows as one colour image, a deeper one as its `k` strongest input slices."""
    picture = _picture(image[0] if image.dim() == 4 else image, denormalize)
    rows, labels = [], []
    for layer, channel in pairs:
        w, short = weights[layer].detach().cpu(), layer.split(".")[-1] if len(layer) > 18 else layer
        if w.shape[1] == 3:
            panels, texts = [_rgb(signed_image(w[channel]))], [f"{short}\nfilter {channel} (RGB)"]
        else:
            idx, slices = top_slices(w[channel], k)
            panels = [_rgb(signed_image(s[None], float(slices.abs().max()))) for s in slices]
            texts = [
                f"{short} f{channel}\nin {i}" if j == 0 else f"\nin {i}" for j, i in enumerate(idx.tolist())
            ]
        pad = k - len(panels)
        fmap = maps[layer][0] if maps[layer].dim() == 4 else maps[layer]
        rows.append([picture, *panels, *([None] * pad), colorize(fmap[channel])])
        labels.append(["input", *texts, *([""] * pad), f"\nmap {channel}"])
    title = f"filter / feature-map pairs (deep filters: {k} strongest input slices by L2 norm; 0 = grey)"
    return _cells(rows, labels, title=title)


def patch_grid(
    crops: Mapping[str, Sequence[torch.Tensor]],
    values: Mapping[str, Sequence[float]] | None = None,
    denormalize: Denorm = None,
    title: str | None = None,
) -> Figure:
    """Maximally activating patches {unit label: [patch (C, h, w)]} (from `interpret.crop_patches`), one
    row per unit with its `values` over the patches; all at one scale, so that a larger receptive field
    shows as a larger patch."""
    units = list(crops)
    if not units:
        raise LabError("crops is empty; pass {unit label: [patches]}.")
    rows = [[_picture(p, denormalize) for p in crops[u]] for u in units]
    labels = [[f"{v:.2f}" for v in values[u]] for u in units] if values is not None else None
    title = title or "maximally activating patches (receptive-field boxes)"
    return _cells(rows, labels, row_labels=units, same_scale=True, title=title)


def image_row(
    images: Sequence[torch.Tensor],
    titles: Sequence[str] | None = None,
    denormalize: Denorm = None,
    ncols: int = 6,
    title: str | None = None,
) -> Figure:
    """Images (C, H, W) side by side, e.g. filter patterns; through `denormalize` when given."""
    panels = [_picture(img[0] if img.dim() == 4 else img, denormalize) for img in images]
    labels = _chunks(list(titles), ncols) if titles is not None else None
    return _cells(_chunks(panels, ncols), labels, title=title, inches=1.6)


def deconv_grid(
    images: torch.Tensor,
    reconstructions: Mapping[str, torch.Tensor],
    denormalize: Denorm = None,
    row_labels: Sequence[str] | None = None,
    title: str | None = None,
    panel_labels: Mapping[str, Sequence[str]] | None = None,
) -> Figure:
    """One row per image of `images` (N, C, H, W), then one column per entry of `reconstructions`
    {title: (N, C, H, W)}: deconvnet projections (signed, each panel scaled by its 99.5th percentile of
    |value|) or, for titles starting with "decoder", images; `panel_labels` {title: a line per image}."""
    rows, labels = [], []
    for i in range(len(images)):
        row, text = [_picture(images[i], denormalize)], [row_labels[i] if row_labels else "input"]
        for col, r in ((col, recon[i]) for col, recon in reconstructions.items()):
            decoded = col.startswith("decoder")
            row.append(_picture(r, denormalize) if decoded else _rgb(signed_image(r, quantile=0.995)))
            extra = panel_labels[col][i] if panel_labels and col in panel_labels else ""
            text.append(f"{col}\n{extra}" if extra or i == 0 else "")
        rows.append(row)
        labels.append(text)
    return _cells(rows, labels, title=title, inches=1.5)


def receptive_field_boxes(
    image: torch.Tensor,
    boxes: Mapping[str, tuple[int, int, int, int]],
    denormalize: Denorm = None,
    title: str | None = None,
) -> Figure:
    """Boxes (top, left, bottom, right; bottom/right exclusive) drawn on one image, one colour each."""
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.imshow(_picture(image, denormalize))
    for k, (label, (top, left, bottom, right)) in enumerate(boxes.items()):
        corner, width, height = (left - 0.5, top - 0.5), right - left, bottom - top
        ax.add_patch(Rectangle(corner, width, height, fill=False, lw=2, edgecolor=f"C{k}", label=label))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.axis("off")
    ax.set_title(title or "receptive fields (exact boxes, clipped at the border)", fontsize=9)
    fig.tight_layout()
    return fig
