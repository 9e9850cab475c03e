"""Figures of gradient maps and class models: heat-map overlays, method-by-image grids, class-model grids.
Every function returns its Figure and never calls `plt.show()`.

Introduced in notebooks/07_gradcam.ipynb and notebooks/08_class_model_synthesis.ipynb.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from labkit.env import LabError
from labkit.plots.images import to_display

__all__ = ["ablation_grid", "attribution_image", "class_chooser", "class_model_grid", "maps_grid", "overlay"]


def _numpy(t: Any) -> np.ndarray:
    return t.detach().cpu().float().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, dtype=float)


def attribution_image(attribution: torch.Tensor, percentile: float = 99.0) -> np.ndarray:
    """A signed (3, H, W) attribution (guided backprop, guided Grad-CAM) as an (H, W, 3) image in [0, 1].

    Zero is mid-grey; the `percentile` of |values| maps to 0 and 1, so a few extreme pixels do not
    wash the rest out.
    """
    a = _numpy(attribution)
    if a.ndim != 3:
        raise LabError(f"attribution must be (C, H, W), got shape {a.shape}.")
    scale = np.percentile(np.abs(a), percentile) or 1.0
    return np.clip(0.5 + 0.5 * a / scale, 0, 1).transpose(1, 2, 0)


def overlay(ax, image: np.ndarray, heat: Any, alpha: float = 0.5, cmap: str = "jet") -> None:
    """Draw `image` (H, W, 3) in [0, 1] with the map `heat` (H, W) on top, scaled by its own maximum."""
    h = _numpy(heat)
    ax.imshow(image)
    top = h.max()
    ax.imshow(h / top if top > 0 else h, cmap=cmap, alpha=alpha, vmin=0, vmax=1)


def _panel(ax, image, value, overlay_it: bool, cmap: str) -> None:
    v = _numpy(value)
    if v.ndim == 3:  # a signed attribution like the image
        ax.imshow(attribution_image(v))
    elif overlay_it:
        overlay(ax, image, v, cmap=cmap)
    else:  # sparse maps: scale by the 99th percentile so that more than a few pixels show
        top = np.percentile(v, 99)
        ax.imshow(v / top if top > 0 else v, cmap="gray", vmin=0, vmax=1)


def maps_grid(
    images: Any,
    maps: Mapping[str, torch.Tensor],
    *,
    row_labels: Sequence[str] | None = None,
    panel_labels: Mapping[str, Sequence[str]] | None = None,
    masks: torch.Tensor | None = None,
    overlay_maps: bool | Iterable[str] = True,
    denormalize: Callable | Any | None = None,
    cmap: str = "jet",
    title: str | None = None,
    size: float = 1.9,
) -> Figure:
    """One row per image: the image, then one panel per method (the keys of `maps`).

    Args:
        images: (N, 3, H, W): uint8, float in [0, 1], or normalised (with `denormalize`).
        maps: {method name: Tensor (N, H, W) (a heat map) or (N, 3, H, W) (a signed attribution)}.
        row_labels: a label per row, shown left of the image (e.g. "circle -> circle 0.98").
        panel_labels: {method name: one text per row}, written under that method's panels (e.g. the
            class each map explains, when it differs from row to row).
        masks: (N, H, W) bool object masks: their outline is drawn on every panel, and each heat map's
            maximum is marked with a cross (green: a pointing-game hit with the default tolerance;
            red: a miss).
        overlay_maps: True draws every heat map over the image; an iterable names the methods to
            overlay, the others are drawn alone in grey (sparse maps such as saliency read better so).
        denormalize: `splits.denormalize` (or the Splits) for normalised images.
        cmap: colour map of overlays.
        title: figure title.
        size: inches per panel.

    Returns:
        the Figure.
    """
    from labkit.interpret.localisation import pointing_hits

    pics = to_display(images, denormalize)
    n = len(pics)
    names = list(maps)
    for name in names:
        if len(maps[name]) != n:
            raise LabError(f"maps[{name!r}] has {len(maps[name])} maps for {n} images.")
    over = set(names) if overlay_maps is True else set() if overlay_maps is False else set(overlay_maps)
    fig, axes = plt.subplots(n, 1 + len(names), figsize=(size * (1 + len(names)), size * n), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(pics[i])
        if row_labels is not None:
            axes[i, 0].set_ylabel(row_labels[i], fontsize=8)
        for j, name in enumerate(names):
            ax = axes[i, j + 1]
            _panel(ax, pics[i], maps[name][i], name in over, cmap)
            if i == 0:
                ax.set_title(name, fontsize=9)
            if panel_labels and name in panel_labels:
                ax.set_xlabel(panel_labels[name][i], fontsize=7.5)
            if masks is not None and maps[name][i].dim() == 2:
                heat = maps[name][i].detach().cpu().float()
                hit = bool(pointing_hits(heat[None], masks[i : i + 1].cpu()))
                y, x = divmod(int(heat.argmax()), heat.shape[1])
                ax.plot(x, y, marker="x", color="lime" if hit else "red", markersize=8, mew=2)
        if masks is not None:
            for ax in axes[i]:
                ax.contour(_numpy(masks[i]), levels=[0.5], colors="white", linewidths=0.8)
    if n:
        axes[0, 0].set_title("image", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def contrast_stretch(pics: np.ndarray, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Per image, map its `low`-th..`high`-th percentile of pixel values to 0..1 (clipped).

    Class models sit close to the mean colour (the L2 penalty pulls them there), so shown as they
    are they look grey; stretching shows their structure. pics: float (N, H, W, 3) in [0, 1].
    """
    lo = np.percentile(pics, low, axis=(1, 2, 3), keepdims=True)
    hi = np.percentile(pics, high, axis=(1, 2, 3), keepdims=True)
    return np.clip((pics - lo) / np.maximum(hi - lo, 1e-8), 0.0, 1.0)


def class_model_grid(
    images: Any,
    titles: Sequence[str] | None = None,
    *,
    ncols: int = 6,
    denormalize: Callable | Any | None = None,
    title: str | None = None,
    size: float = 1.8,
    stretch: bool = False,
) -> Figure:
    """Synthesised class-model images in a grid, each with its title (class name, confidence...).

    Args:
        images: (N, 3, H, W) in model input space with `denormalize`, or float in [0, 1].
        titles: one per image.
        ncols: images per row.
        denormalize: `splits.denormalize`, or a function for the pretrained network's normalisation.
        title: figure title.
        size: inches per image.
        stretch: show each image contrast-stretched (see `contrast_stretch`); the network saw it unstretched.
    """
    pics = to_display(images, denormalize)
    pics = contrast_stretch(pics) if stretch else pics
    n = len(pics)
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    # Room for the titles above each row: tight_layout alone lets two-line titles overlap the row above.
    lines = max((str(t).count("\n") + 1 for t in titles), default=0) if titles is not None else 0
    height = (size + 0.25 * lines) * nrows + 0.3
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, height), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(pics[k])
            if titles is not None:
                ax.set_title(titles[k], fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def ablation_grid(
    images: Mapping[str, Any],
    row_labels: Sequence[str],
    *,
    footers: Mapping[str, str] | None = None,
    denormalize: Callable | Any | None = None,
    title: str | None = None,
    size: float = 1.6,
    stretch: bool = False,
) -> Figure:
    """Class models under several regulariser settings: one column per setting, one row per class.

    Args:
        images: {setting name: (K, 3, H, W) images, one per class}, in column order.
        row_labels: the K class names.
        footers: {setting name: text printed under its column}, e.g. its recorded figures.
        denormalize: as in `class_model_grid`.
        title: figure title.
        size: inches per image.
        stretch: as in `class_model_grid`.
    """
    settings = list(images)
    k = len(row_labels)
    fig, axes = plt.subplots(k, len(settings), figsize=(size * len(settings), size * k + 0.9), squeeze=False)
    for j, setting in enumerate(settings):
        pics = to_display(images[setting], denormalize)
        pics = contrast_stretch(pics) if stretch else pics
        if len(pics) != k:
            raise LabError(f"images[{setting!r}] has {len(pics)} images for {k} row labels.")
        for i in range(k):
            ax = axes[i, j]
            ax.imshow(pics[i])
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(setting, fontsize=9)
            if j == 0:
                ax.set_ylabel(row_labels[i], fontsize=8)
        if footers and setting in footers:
            axes[-1, j].set_xlabel(footers[setting], fontsize=7.5)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def class_chooser(
    model,
    images: Mapping[str, torch.Tensor],
    classes: Sequence[str],
    *,
    denormalize: Callable | Any | None = None,
    method: Callable | None = None,
    k: int = 10,
):
    """An ipywidgets chooser: pick an image and one of its top-k classes, see that class's map.

    Needs a live Jupyter front end; run headlessly (papermill), draw a static figure instead (for
    example `maps_grid` of `maps_for_targets(gradcam, model, x, topk_targets(model, x, 3))`).

    Args:
        model: the classifier.
        images: {name: normalised image (3, H, W)}.
        classes: class names of the model's outputs.
        denormalize: turns a normalised image back into [0, 1] for display.
        method: the map to show (default `labkit.interpret.gradcam`).
        k: how many of each image's most probable classes to offer.

    Returns:
        an `ipywidgets.VBox`; display it (it is the value of the cell).
    """
    import ipywidgets as widgets

    from labkit.interpret import gradcam, preserved, topk_targets

    method = method or gradcam
    names = list(images)
    batch = torch.stack([images[n] for n in names])
    with preserved(model), torch.no_grad():
        model.eval()
        probs = model(batch).softmax(1)
    top = topk_targets(model, batch, k)
    options = {
        n: [(f"{classes[c]} ({probs[i, c]:.2f})", int(c)) for c in top[i].tolist()] for i, n in enumerate(names)
    }
    photo = widgets.Dropdown(options=names, description="image")
    choice = widgets.Dropdown(options=options[names[0]], description="class")
    out = widgets.Output()

    def draw(*_):
        i = names.index(photo.value)
        heat = method(model, batch[i : i + 1], target=choice.value)[0]
        pic = to_display(batch[i], denormalize)[0]
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(1, 2, figsize=(7, 3.5))
            ax[0].imshow(pic)
            _panel(ax[1], pic, heat, True, "jet")
            ax[1].set_title(f"{getattr(method, '__name__', 'map')}: {classes[choice.value]}", fontsize=9)
            for a in ax:
                a.axis("off")
            plt.show()

    def new_photo(*_):
        choice.options = options[photo.value]
        choice.value = options[photo.value][0][1]
        draw()

    photo.observe(new_photo, names="value")
    choice.observe(draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox([photo, choice]), out])
