"""Image transforms (torchvision.transforms.v2): an eval preset and train presets with augmentation.

Introduced in notebooks/01_data_prep.ipynb. Each maps a PIL image or uint8 tensor (3, H, W) to a
normalised float tensor (3, S, S).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.transforms import v2

from labkit.core import LabError

# name -> factory(image_size, fill) -> v2 transform. `fill`, the dataset's mean colour, paints the
# corners that rotation and perspective uncover, so they normalise to about 0, not black wedges.
AUGMENTATIONS = {
    "crop": lambda s, fill: v2.RandomResizedCrop(s, scale=(0.7, 1.0), ratio=(0.85, 1.18), antialias=True),
    "translate": lambda s, fill: v2.RandomCrop(s, padding=max(1, s // 8), padding_mode="reflect"),
    "small_translate": lambda s, fill: v2.RandomCrop(s, padding=max(1, s // 16), padding_mode="reflect"),
    "flip": lambda s, fill: v2.RandomHorizontalFlip(),
    # A per-image loader does not know the epoch: it flips at random; `TensorLoader` alternates.
    "alternating_flip": lambda s, fill: v2.RandomHorizontalFlip(),
    "vflip": lambda s, fill: v2.RandomVerticalFlip(),
    "rotation": lambda s, fill: v2.RandomRotation(20, fill=fill),
    "perspective": lambda s, fill: v2.RandomPerspective(distortion_scale=0.2, p=0.3, fill=fill),
    "color": lambda s, fill: v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05),
}

# The presets: which named augmentations each one applies (crop first, colour last).
PRESETS: dict[str, tuple[str, ...]] = {
    "none": (),
    "light": ("crop", "flip"),
    "shift": ("translate", "flip"),
    "small_shift": ("small_translate", "flip"),
    "small_shift_alternating": ("small_translate", "alternating_flip"),
    "strong": ("crop", "flip", "rotation", "perspective", "color"),
}


def _resize_crop(image_size: int) -> list[v2.Transform]:
    return [v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size)]


def _finish(mean: Sequence[float], std: Sequence[float]) -> list[v2.Transform]:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]


def raw_transform(image_size: int) -> v2.Compose:
    """PIL or uint8 tensor -> uint8 tensor (3, S, S): resized and centre-cropped, not normalised."""
    return v2.Compose([v2.ToImage(), *_resize_crop(image_size), v2.ToPureTensor()])


def eval_transform(image_size: int, mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """The evaluation preset: resize the short side to `image_size`, centre crop, normalise with
    `mean` and `std` (of images scaled to [0, 1])."""
    return v2.Compose([v2.ToImage(), *_resize_crop(image_size), *_finish(mean, std), v2.ToPureTensor()])


def augment_names(augment: str | Sequence[str | v2.Transform]) -> list[str | v2.Transform]:
    """Expand a preset name into its augmentations; check a list of names. Raises LabError if unknown."""
    if isinstance(augment, str):
        if augment not in PRESETS:
            raise LabError(
                f"augment={augment!r} is not a preset; use one of {list(PRESETS)} or a list of "
                f"augmentation names from {list(AUGMENTATIONS)} (v2 transforms are accepted too)."
            )
        return list(PRESETS[augment])
    items = [] if augment is None else list(augment)
    bad = [a for a in items if not (isinstance(a, str) and a in AUGMENTATIONS) and not callable(a)]
    if bad:
        raise LabError(f"augment has unknown augmentations {bad}; the names are {list(AUGMENTATIONS)}.")
    return items


def train_transform(
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    augment: str | Sequence[str | v2.Transform] = "light",
) -> v2.Compose:
    """The training preset: augmentations, then the same resize/crop/normalise as evaluation.

    `augment` is a preset name of `PRESETS` ("shift" is the CIFAR-10 standard) or a list of names
    of `AUGMENTATIONS` and/or v2 transforms applied to the uint8 image.
    """
    items = augment_names(augment)
    fill = [int(round(255 * m)) for m in mean] if all(0 <= m <= 1 for m in mean) else 0
    # A random resized crop replaces resize + centre crop; otherwise resize first so later
    # geometric augmentations work at the final size (cheaper for large photos).
    first = [AUGMENTATIONS["crop"](image_size, fill)] if "crop" in items else _resize_crop(image_size)
    rest = [AUGMENTATIONS[a](image_size, fill) if isinstance(a, str) else a for a in items if a != "crop"]
    return v2.Compose([v2.ToImage(), *first, *rest, *_finish(mean, std), v2.ToPureTensor()])
