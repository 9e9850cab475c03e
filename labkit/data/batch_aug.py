"""Augmentation of whole batches on tensors: one call per batch, each image with its own draw.

Introduced in notebooks/01_data_prep.ipynb, after airbench's `batch_flip_lr` and `batch_crop`; the
names mean what they mean per sample in `labkit.data.transforms.AUGMENTATIONS`. Every draw comes
from one CPU `torch.Generator`, so a seed gives the same batches on any device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

BATCH_AUGMENTATIONS = (
    "translate", "small_translate", "crop", "flip", "alternating_flip", "vflip", "rotation", "color"
)  # fmt: skip
# Not drawn per batch: the loader flips with `alternating_flip`, which must know each image and the epoch.
PER_EPOCH = ("alternating_flip",)
CROP_SCALE, CROP_RATIO = (0.7, 1.0), (0.85, 1.18)
MAX_DEGREES, COLOR_STRENGTH = 20.0, 0.3


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def flip(x: torch.Tensor, generator: torch.Generator | None, dim: int = -1) -> torch.Tensor:
    """Mirror half of the images along `dim` (-1: left-right, -2: top-bottom). x: (N, C, H, W)."""
    mask = (torch.rand(len(x), generator=generator) < 0.5).to(x.device).view(-1, 1, 1, 1)
    return torch.where(mask, x.flip(dim), x)


def flip_parity(n: int, seed: int) -> torch.Tensor:
    """(n,) bool: which images `alternating_flip` mirrors in odd epochs (about half), drawn from `seed`."""
    return torch.rand(n, generator=torch.Generator().manual_seed(seed)) < 0.5


def alternating_flip(x: torch.Tensor, parity: torch.Tensor, epoch: int) -> torch.Tensor:
    """airbench's flips (Jordan 2024): image i of x (N, C, H, W) is mirrored when parity[i] (N,) bool
    differs from whether `epoch` (from 1) is even. Every image is seen both ways in any two epochs in a
    row, where random flips show half of them the same way twice."""
    mask = (parity.to(x.device) ^ (epoch % 2 == 0)).view(-1, 1, 1, 1)
    return torch.where(mask, x.flip(-1), x)


def translate(x: torch.Tensor, generator: torch.Generator | None, padding: int | None = None) -> torch.Tensor:
    """Shift each image of x (N, C, S, S) by its own offsets in [-padding, padding] (None: S // 8, at
    least 1), as a random crop of the reflect-padded image."""
    n, _, h, w = x.shape
    p = max(1, h // 8) if padding is None else int(padding)
    padded = F.pad(x, (p, p, p, p), mode="reflect")  # (N, C, H + 2p, W + 2p)
    offsets = torch.randint(0, 2 * p + 1, (n, 2), generator=generator).to(x.device)
    # Every H x W window of the padded image, as a view: (N, C, 2p + 1, 2p + 1, H, W); pick one each.
    windows = padded.unfold(2, h, 1).unfold(3, w, 1)
    return windows[torch.arange(n, device=x.device), :, offsets[:, 0], offsets[:, 1]]


def affine(x: Tensor, generator: torch.Generator | None, crop: bool = True, rotation: bool = False) -> Tensor:
    """Random resized crop (CROP_SCALE of the area, aspect CROP_RATIO) and/or rotation (up to
    MAX_DEGREES) of each image of x (N, C, H, W), in one bilinear resampling; uncovered pixels are 0."""
    n = len(x)
    scale = torch.ones(n, 2)
    shift = torch.zeros(n, 2)
    if crop:
        area = _uniform(n, *CROP_SCALE, generator)
        log_ratio = _uniform(n, math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]), generator)
        ratio = log_ratio.exp()
        # Side lengths as fractions of the image (width, height); clamp keeps the crop inside it.
        scale = torch.stack([(area * ratio).sqrt(), (area / ratio).sqrt()], 1).clamp(max=1.0)
        shift = (1 - scale) * (2 * torch.rand(n, 2, generator=generator) - 1)
    angle = torch.zeros(n)
    if rotation:
        angle = _uniform(n, -MAX_DEGREES, MAX_DEGREES, generator) * math.pi / 180
    cos, sin = angle.cos(), angle.sin()
    # theta maps output coordinates in [-1, 1] to input coordinates: rotate, then scale into the crop.
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = scale[:, 0] * cos, -scale[:, 0] * sin
    theta[:, 1, 0], theta[:, 1, 1] = scale[:, 1] * sin, scale[:, 1] * cos
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def color(x: Tensor, generator: torch.Generator | None, strength: float = COLOR_STRENGTH) -> Tensor:
    """Brightness, contrast and saturation jitter, a factor each per image, of x (N, 3, H, W) in [0, 1]
    (before normalisation); the result is clamped to [0, 1]."""

    def gray(x: Tensor) -> Tensor:  # (N, 1, H, W), ITU-R 601 brightness
        return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)

    n = len(x)
    b, c, s = (_uniform(n, 1 - strength, 1 + strength, generator).to(x).view(-1, 1, 1, 1) for _ in range(3))
    x = (x * b).clamp(0, 1)
    mean = gray(x).mean(dim=(2, 3), keepdim=True)
    x = ((x - mean) * c + mean).clamp(0, 1)
    g = gray(x)
    return ((x - g) * s + g).clamp(0, 1)


def supports(names: Sequence) -> bool:
    """True when every augmentation in `names` has a batch version here."""
    return all(isinstance(n, str) and n in BATCH_AUGMENTATIONS for n in names)


class BatchAugment:
    """Call with (images uint8 (N, 3, S, S), generator) for normalised float32 images, augmented with
    `names` from `BATCH_AUGMENTATIONS` (empty: normalise only)."""

    def __init__(self, names: Sequence[str], mean: Sequence[float], std: Sequence[float]):
        unknown = [n for n in names if n not in BATCH_AUGMENTATIONS]  # PER_EPOCH ones: the loader's
        if unknown:
            raise ValueError(f"no batch version of {unknown}; batch augmentations are {BATCH_AUGMENTATIONS}")
        self.names = tuple(names)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = images.to(torch.float32) / 255  # a new tensor: the caller's images stay as they are
        if "color" in self.names:
            x = color(x, generator)
        x = x.sub_(self.mean.to(x.device)).div_(self.std.to(x.device))
        if "crop" in self.names or "rotation" in self.names:
            x = affine(x, generator, crop="crop" in self.names, rotation="rotation" in self.names)
        if "translate" in self.names:
            x = translate(x, generator)
        if "small_translate" in self.names:
            x = translate(x, generator, padding=max(1, x.shape[-2] // 16))
        if "flip" in self.names:
            x = flip(x, generator, -1)
        if "vflip" in self.names:
            x = flip(x, generator, -2)
        return x

    def __repr__(self) -> str:
        return f"BatchAugment({list(self.names)})"
