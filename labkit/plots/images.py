"""Figures of images: `to_display` (the one way labkit's figures show images), `tile_grid` (the one
tiling routine, on torchvision's `make_grid`), image grids, augmentation previews, class balance.

Introduced in notebooks/01_data_prep.ipynb.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torchvision.utils import make_grid

from labkit.core import LabError

Denorm = Callable[[torch.Tensor], torch.Tensor] | Any | None  # a function, or an object with .denormalize


def to_display(images: Any, denormalize: Denorm = None) -> np.ndarray:
    """Images as float (N, H, W, 3) in [0, 1] for imshow: the one way labkit's figures show images.

    Args:
        images: (N, C, H, W) or (C, H, W), C = 1 or 3: uint8, float in [0, 1], or normalised float with
            `denormalize` (a function, or an object with `.denormalize`: a `Splits`). Floats outside [0, 1]
            without it raise a LabError: scaling them would hide the mistake.
    """
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images).detach().cpu()
    x = x.unsqueeze(0) if x.dim() == 3 else x
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise LabError(
            f"images must be (N, 3, H, W) or (3, H, W) (1 channel allowed), got shape {tuple(x.shape)}."
        )
    if denormalize is not None:
        x = getattr(denormalize, "denormalize", denormalize)(x.float())
    elif x.dtype == torch.uint8:
        x = x.float() / 255.0
    else:
        x = x.float()
        lo, hi = float(x.min()), float(x.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise LabError(
                f"images have values in [{lo:.2f}, {hi:.2f}]: that looks normalised. Pass denormalize= "
                "(the Splits, splits.denormalize or labkit.util.imagenet_denormalize), or images in [0, 1] "
                "or uint8."
            )
    return x.expand(-1, 3, -1, -1).clamp(0, 1).permute(0, 2, 3, 1).numpy()


def signed_image(x: torch.Tensor, scale: float | None = None, quantile: float = 1.0) -> np.ndarray:
    """A signed (C, H, W) map (filter, projection, attribution) as an image: 0 at grey, -scale black,
    +scale white. The default scale is the `quantile` of |x| (below 1.0 the few largest values clip, so
    they do not wash the rest out). Returns (H, W, C), or (H, W) for C = 1."""
    x = torch.as_tensor(x).detach().cpu().float()
    if scale is None:
        a = x.abs()
        scale = float(a.max() if quantile >= 1.0 else torch.quantile(a.flatten(), quantile))
    y = (x / (2 * max(scale, 1e-12)) + 0.5).clamp(0, 1)
    return y[0].numpy() if y.shape[0] == 1 else y.permute(1, 2, 0).numpy()


def attribution_image(attribution: torch.Tensor, percentile: float = 99.0) -> np.ndarray:
    """A signed (3, H, W) attribution (guided backprop, guided Grad-CAM) as an (H, W, 3) image,
    `signed_image` scaled by the `percentile` of |values|."""
    if torch.as_tensor(attribution).dim() != 3:
        raise LabError(f"attribution must be (C, H, W), got shape {tuple(np.shape(attribution))}.")
    return signed_image(attribution, quantile=percentile / 100)


def tile_grid(
    tiles: np.ndarray,
    ncols: int,
    labels: Sequence[str] | None = None,
    *,
    row_labels: Sequence[str] | None = None,
    title: str | None = None,
    inches: float = 1.35,
    color: str = "black",
) -> Figure:
    """Tiles of one size, float (N, H, W, 3) in [0, 1], joined by torchvision's `make_grid` (white padding)
    and drawn as ONE image on one Axes (many tiles draw as fast as one picture), with a label above each
    tile ("" for none) and a row label left of each row; `inches` per tile."""
    n, h, w, _ = tiles.shape
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    lines = max((t.count("\n") + 1 for t in labels or () if t), default=0)
    # Room above each row for its labels: about 12 points per line of 8-point text.
    pad = int(lines * h / inches / 6) + 2 if lines else max(1, h // 16)
    mosaic = make_grid(torch.as_tensor(tiles).permute(0, 3, 1, 2), nrow=ncols, padding=pad, pad_value=1.0)
    size = (inches * ncols + (0.8 if row_labels else 0), inches * nrows + (0.45 if title else 0.1))
    fig, ax = plt.subplots(figsize=size)
    ax.imshow(mosaic.permute(1, 2, 0).numpy(), interpolation="nearest" if h < 96 else "antialiased")
    ax.set_axis_off()
    for i, text in enumerate(labels or ()):
        if text:
            r, c = divmod(i, ncols)
            x, y = pad + c * (w + pad) + w / 2, pad + r * (h + pad) - 1
            ax.text(x, y, text, ha="center", va="bottom", fontsize=8, color=color, clip_on=False)
    for r, text in enumerate(row_labels or ()):
        ax.text(-pad, pad + r * (h + pad) + h / 2, text, ha="right", va="center", fontsize=8, clip_on=False)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def _label_text(label: Any, classes: Sequence[str] | None) -> str:
    label = label.item() if isinstance(label, torch.Tensor) else label
    return str(classes[int(label)] if isinstance(label, (int, np.integer)) and classes is not None else label)


def image_grid(
    images: Any,
    labels: Sequence[Any] | None = None,
    classes: Sequence[str] | None = None,
    ncols: int = 8,
    title: str | None = None,
    denormalize: Denorm = None,
) -> Figure:
    """A grid of images (N, 3, H, W) (as `to_display` takes them) with their labels above them, class
    indices (named through `classes`) or strings."""
    x = to_display(images, denormalize)
    if len(x) == 0:
        raise LabError("image_grid got no images; pass at least one.")
    if labels is not None and len(labels) != len(x):
        raise LabError(f"image_grid got {len(x)} images but {len(labels)} labels; give one label per image.")
    texts = None if labels is None else [_label_text(lab, classes) for lab in labels]
    return tile_grid(x, ncols, texts, title=title)


def augmentation_preview(
    splits: Any, n: int = 4, k: int = 6, split: str = "train", seed: int = 0, augment: Any = None
) -> Figure:
    """For the first `n` images of `split`, a row: the image as evaluation sees it, then `k` random draws
    (seeded by `seed`; the global RNG is left as it was) of the training transform of the `splits`, or of
    `augment` (e.g. "strong") instead."""
    if augment is not None:
        splits = splits.with_augment(augment)
    dataset = dict(train=splits.train, val=splits.val, test=splits.test, train_eval=splits.train_eval)[split]
    n = min(n, len(dataset))
    views = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for r in range(n):
            src = dataset.source.load(r)
            views.append(to_display(splits.raw(split, r))[0])
            views += [to_display(splits.train.transform(src), splits)[0] for _ in range(k)]
    name = splits.augment if isinstance(splits.augment, str) else ", ".join(map(str, splits.augment))
    texts = ["original"] + [f"augmented {c}" for c in range(1, k + 1)] + [""] * ((n - 1) * (k + 1))
    rows = [splits.classes[int(dataset.targets[r])] for r in range(n)]
    title = f"{splits.name}: training augmentation '{name}'"
    return tile_grid(np.stack(views), k + 1, texts, row_labels=rows, title=title)


def class_balance(counts_by_split: Mapping[str, Mapping[str, int]] | Any, title: str | None = None) -> Figure:
    """Grouped bar chart (pandas' `DataFrame.plot.bar`) of images per class, one bar colour per split,
    from {split: {class: count}} or a `Splits` (its train/val/test are counted)."""
    if hasattr(counts_by_split, "class_counts"):
        counts_by_split = {s: counts_by_split.class_counts(s) for s in ("train", "val", "test")}
    if not counts_by_split:
        raise LabError("class_balance needs a dict split -> {class: count} with at least one split.")
    classes = list(dict.fromkeys(c for counts in counts_by_split.values() for c in counts))
    df = pd.DataFrame(counts_by_split).reindex(classes).fillna(0)  # (classes, splits)
    df.columns = [f"{s} ({int(n)})" for s, n in df.sum().items()]
    many = len(classes) > 6
    size = (max(5.0, 0.3 * len(classes) * len(df.columns) + 1.5), 3.4)
    ax = df.plot.bar(width=0.8, rot=45 if many else 0, figsize=size)
    if many:
        plt.setp(ax.get_xticklabels(), ha="right")
    ax.set(ylabel="images", title=title or "Images per class and split")
    ax.legend(fontsize=8)
    ax.figure.tight_layout()
    return ax.figure
