"""Figures of gradient maps and class models: overlays, method-by-image grids, class models, evidence curves.

Introduced in notebooks/07_gradcam.ipynb and notebooks/08_class_model_synthesis.ipynb.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from labkit.core import LabError
from labkit.plots.images import Denorm, attribution_image, signed_image, tile_grid, to_display


def _numpy(t: Any) -> np.ndarray:
    return t.detach().cpu().float().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, dtype=float)


def overlay(ax: Axes, image: np.ndarray, heat: Any, alpha: float = 0.5, cmap: str = "jet") -> None:
    """Draw `image` (H, W, 3) in [0, 1] with the map `heat` (H, W) on top, scaled by its own maximum."""
    h = _numpy(heat)
    ax.imshow(image)
    top = h.max()
    ax.imshow(h / top if top > 0 else h, cmap=cmap, alpha=alpha, vmin=0, vmax=1)


def map_panel(ax: Axes, image: np.ndarray, value: Any, overlay_it: bool = True, cmap: str = "jet") -> None:
    """One map drawn for one image: a signed attribution (3, H, W) as an image, a heat map (H, W)
    over the image (`overlay_it`) or alone in grey, scaled by its 99th percentile (sparse maps)."""
    v = _numpy(value)
    if v.ndim == 3:
        ax.imshow(attribution_image(torch.from_numpy(v)))
    elif overlay_it:
        overlay(ax, image, v, cmap=cmap)
    else:
        top = np.percentile(v, 99)
        ax.imshow(v / top if top > 0 else v, cmap="gray", vmin=0, vmax=1)


def _axes(nrows: int, ncols: int, size: float, extra_height: float = 0.0) -> tuple[Figure, np.ndarray]:
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + extra_height), squeeze=False)
    for ax in axes.flat:
        ax.set(xticks=[], yticks=[])
    return fig, axes


def _text(texts: Mapping[str, Sequence[str]] | None, key: str, i: int) -> str:
    return texts[key][i] if texts and key in texts else ""


def _finish(fig: Figure, title: str | None) -> Figure:
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def maps_grid(
    images: Any,
    maps: Mapping[str, torch.Tensor],
    *,
    row_labels: Sequence[str] | None = None,
    panel_labels: Mapping[str, Sequence[str]] | None = None,
    masks: torch.Tensor | None = None,
    hits: Mapping[str, Sequence[bool]] | None = None,
    overlay_maps: bool | Iterable[str] = True,
    denormalize: Denorm = None,
    cmap: str = "jet",
    title: str | None = None,
    size: float = 1.9,
) -> Figure:
    """One row per image (N, 3, H, W): the image, then one panel per method of `maps`.

    Args:
        maps: {method name: (N, H, W) heat maps or (N, 3, H, W) signed attributions}.
        panel_labels: {method name: N texts}; masks: (N, H, W) bool, outlined on every panel.
        hits: {method name: N bools} (`interpret.pointing_hits`): a cross at each maximum, green for a hit.
        overlay_maps: True, False, or the methods whose heat maps are drawn over the image; the others
            are drawn alone in grey (sparse maps such as saliency read better so).
    """
    pics = to_display(images, denormalize)
    n, names = len(pics), list(maps)
    for name in names:
        if len(maps[name]) != n:
            raise LabError(f"maps[{name!r}] has {len(maps[name])} maps for {n} images.")
    over = set(names) if overlay_maps is True else set() if overlay_maps is False else set(overlay_maps)
    fig, axes = _axes(n, 1 + len(names), size)
    for i in range(n):
        axes[i, 0].imshow(pics[i])
        axes[i, 0].set_ylabel(row_labels[i] if row_labels is not None else "", fontsize=8)
        for j, name in enumerate(names):
            ax = axes[i, j + 1]
            map_panel(ax, pics[i], maps[name][i], name in over, cmap)
            ax.set_xlabel(_text(panel_labels, name, i), fontsize=7.5)
            if hits is not None and name in hits:
                y, x = divmod(int(maps[name][i].argmax()), maps[name][i].shape[-1])
                ax.plot(x, y, marker="x", color="lime" if bool(hits[name][i]) else "red", markersize=8, mew=2)
        if masks is not None:
            for ax in axes[i]:
                ax.contour(_numpy(masks[i]), levels=[0.5], colors="white", linewidths=0.8)
    for ax, name in zip(axes[0], ["image", *names]):
        ax.set_title(name, fontsize=9)
    return _finish(fig, title)


def contrast_stretch(pics: np.ndarray, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Per image of float (N, H, W, 3), map its `low`-th..`high`-th percentile to 0..1 (clipped): class
    models sit close to the mean colour (the L2 penalty pulls them there) and look grey unstretched."""
    lo = np.percentile(pics, low, axis=(1, 2, 3), keepdims=True)
    hi = np.percentile(pics, high, axis=(1, 2, 3), keepdims=True)
    return np.clip((pics - lo) / np.maximum(hi - lo, 1e-8), 0.0, 1.0)


def _pictures(images: Any, denormalize: Denorm, stretch: bool) -> np.ndarray:
    pics = to_display(images, denormalize)
    return contrast_stretch(pics) if stretch else pics


def class_model_grid(
    images: Any,
    titles: Sequence[str] | None = None,
    *,
    ncols: int = 6,
    denormalize: Denorm = None,
    title: str | None = None,
    size: float = 1.8,
    stretch: bool = False,
) -> Figure:
    """Synthesised class models (N, 3, H, W) tiled by `tile_grid`, each with its title (class name,
    confidence...); `size` inches per image; `stretch` shows them contrast-stretched (see
    `contrast_stretch`), though the network saw them unstretched."""
    labels = None if titles is None else [str(t) for t in titles]
    return tile_grid(_pictures(images, denormalize, stretch), ncols, labels, title=title, inches=size)


def ablation_grid(
    images: Mapping[str, Any],
    row_labels: Sequence[str],
    *,
    footers: Mapping[str, str] | None = None,
    denormalize: Denorm = None,
    title: str | None = None,
    size: float = 1.6,
    stretch: bool = False,
) -> Figure:
    """Class models under several regulariser settings: one column per setting of `images` {setting:
    (K, 3, H, W)}, with its text from `footers` underneath; one row per class of `row_labels`."""
    settings, k = list(images), len(row_labels)
    fig, axes = _axes(k, len(settings), size, extra_height=0.9)
    for j, setting in enumerate(settings):
        pics = _pictures(images[setting], denormalize, stretch)
        if len(pics) != k:
            raise LabError(f"images[{setting!r}] has {len(pics)} images for {k} row labels.")
        for i in range(k):
            axes[i, j].imshow(pics[i])
        axes[0, j].set_title(setting, fontsize=9)
        axes[-1, j].set_xlabel(footers.get(setting, "") if footers else "", fontsize=7.5)
    for i, label in enumerate(row_labels):
        axes[i, 0].set_ylabel(label, fontsize=8)
    return _finish(fig, title)


def curve_panels(
    panels: Mapping[str, Mapping[str, Any]],
    x: Sequence | None = None,
    *,
    xlabel: str = "",
    ylabel: str = "",
    title: str | None = None,
    ylim: tuple[float, float] | None = None,
    size: float = 4.0,
) -> Figure:
    """Side by side axes of lines {axis title: {line label: K values}} (deletion and insertion curves,
    rank correlations per layer); `x`: K positions or K names under the ticks, default 0..1 in K steps."""
    if not panels or not all(panels.values()):
        raise LabError("curve_panels needs at least one axis with a line: {title: {label: values}}.")
    lengths = {len(v) for lines in panels.values() for v in lines.values()}
    if len(lengths) != 1:
        raise LabError(f"the lines have different lengths {sorted(lengths)}; give each the same K points.")
    k = lengths.pop()
    names = [str(v) for v in x] if x is not None and any(isinstance(v, str) for v in x) else None
    named = names is not None
    pos = np.arange(k) if named else np.linspace(0, 1, k) if x is None else np.asarray(x, dtype=float)
    if len(pos) != k:
        raise LabError(f"x has {len(pos)} positions for lines of {k} points.")
    figsize = (size * len(panels), 0.75 * size + (0.6 if named else 0))
    fig, axes = plt.subplots(1, len(panels), figsize=figsize, squeeze=False)
    for ax, (name, lines) in zip(axes[0], panels.items()):
        for label, values in lines.items():
            ax.plot(pos, _numpy(values), marker="o" if named or k <= 12 else None, markersize=3, label=label)
        if names is not None:
            ax.set_xticks(pos, names, rotation=45, ha="right", fontsize=8)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.legend(fontsize=8, framealpha=0.85)
    axes[0, 0].set_ylabel(ylabel)
    return _finish(fig, title)


def fooling_grid(
    images: Any,
    fooled: Any,
    perturbations: Any,
    *,
    row_labels: Sequence[str] | None = None,
    panel_labels: Mapping[str, Sequence[str]] | None = None,
    denormalize: Denorm = None,
    title: str | None = None,
    size: float = 2.0,
) -> Figure:
    """One row per image: the image, the perturbation magnified, the perturbed image (each (N, C, H, W)).
    A perturbation (in pixel units) shows grey at 0 and its largest |change| at black or white, the
    magnification in its corner; `panel_labels`: {"image" | "perturbation" | "fooling image": N texts}."""
    originals, changed = to_display(images, denormalize), to_display(fooled, denormalize)
    delta = torch.as_tensor(_numpy(perturbations))
    if not len(originals) == len(changed) == len(delta):
        raise LabError(
            f"{len(originals)} images, {len(changed)} perturbed images and {len(delta)} perturbations"
        )
    fig, axes = _axes(len(originals), 3, size)
    for i in range(len(originals)):
        top = float(delta[i].abs().max())
        axes[i, 0].imshow(originals[i])
        ax = axes[i, 1]
        ax.imshow(signed_image(delta[i], scale=top if top > 0 else 1.0), cmap="gray", vmin=0, vmax=1)
        magnified = f"x{0.5 / top:.0f}" if top > 0 else "no change"
        ax.text(0.03, 0.97, magnified, transform=ax.transAxes, va="top", fontsize=8, backgroundcolor="white")
        axes[i, 2].imshow(changed[i])
        axes[i, 0].set_ylabel(row_labels[i] if row_labels is not None else "", fontsize=8)
        for ax, key in zip(axes[i], ("image", "perturbation", "fooling image")):
            ax.set_xlabel(_text(panel_labels, key, i), fontsize=7.5)
    for ax, name in zip(axes[0], ("image", "perturbation, magnified", "fooling image")):
        ax.set_title(name, fontsize=9)
    return _finish(fig, title)
