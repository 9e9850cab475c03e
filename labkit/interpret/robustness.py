"""Transformation robustness for feature visualisation: before every step of the ascent the image is
padded, shifted, scaled and rotated at random, so only patterns that keep raising the objective under
small moves survive; the high-frequency patterns that fool one exact pixel grid do not.

Mordvintsev, Olah & Tyka 2015 ("Inceptionism", jitter); Olah, Mordvintsev & Schubert 2017, "Feature
Visualization" (Distill), whose Lucid `standard_transforms` are the defaults here: pad 12 with grey,
jitter 8, scale by one of 0.9, 0.92, ..., 1.1, rotate by one of -10 .. 10 degrees, jitter 4.

Used by `labkit.interpret.feature_visualisation.visualise` (notebooks/08_class_model_synthesis.ipynb).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from labkit.core import LabError
from labkit.interpret.attribution import check_numbers

SCALES = tuple(1 + (i - 5) / 50 for i in range(11))  # 0.9 .. 1.1, Lucid's
ANGLES = tuple(range(-10, 11))  # degrees


def jitter(x: torch.Tensor, d: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random crop of `x` (N, C, H, W) to (N, C, H - d, W - d), the same for the whole batch: the image
    moved by a whole number of pixels, 0 to d in each direction, with no interpolation (Lucid's jitter)."""
    if d == 0:
        return x
    top, left = torch.randint(0, d + 1, (2,), generator=generator).tolist()
    return x[:, :, top : top + x.shape[2] - d, left : left + x.shape[3] - d]


def rotate_scale(x: torch.Tensor, angle: float, scale: float = 1.0, fill: float = 0.5) -> torch.Tensor:
    """`x` (N, C, H, W) rotated by `angle` degrees counter-clockwise and magnified `scale` times about its
    centre, same size, by bilinear resampling; what comes from outside the image is `fill`."""
    h, w = x.shape[2:]
    a = math.radians(angle)
    cos, sin = math.cos(a) / scale, math.sin(a) / scale
    # affine_grid's coordinates run from -1 to 1 across each side: for a non-square image a rotation in
    # pixels needs the sine terms rescaled by the aspect ratio, or it would shear.
    theta = torch.tensor([[cos, -sin * h / w, 0.0], [sin * w / h, cos, 0.0]], dtype=x.dtype, device=x.device)
    # align_corners=False puts the sampling points at pixel centres: 90-degree turns land on pixels exactly
    grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)
    # grid_sample fills with zeros: resample x - fill and add fill back to fill with `fill` instead
    return F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill


def random_transforms(
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    pad: int = 12,
    jitter_before: int = 8,
    scales: Sequence[float] = SCALES,
    angles: Sequence[float] = ANGLES,
    jitter_after: int = 4,
    fill: float = 0.5,
) -> torch.Tensor:
    """Lucid's standard transforms of images `x` (N, C, H, W) in [0, 1], drawn from `generator`: pad by
    `pad` pixels of value `fill`; `jitter` by up to `jitter_before` pixels; magnify by one of `scales` and
    rotate by one of `angles` (degrees), in one bilinear resampling; `jitter` by up to `jitter_after`.
    Gives (N, C, H + 2 pad - jitter_before - jitter_after, ...); 0, (1.0,) and (0,) switch a step off."""
    check_numbers(pad=pad, jitter_before=jitter_before, jitter_after=jitter_after, integer=True)
    if not scales or not angles or min(scales) <= 0:
        off = "(1,) and (0,) switch them off"
        raise LabError(f"scales={scales!r}, angles={angles!r}: give non-empty lists, scales > 0; {off}.")
    if min(x.shape[2:]) + 2 * pad <= jitter_before + jitter_after:
        size = tuple(x.shape[2:])
        raise LabError(f"images of {size} pixels are too small for jitters of that size; pad more.")
    x = F.pad(x, [pad] * 4, value=fill) if pad else x
    x = jitter(x, jitter_before, generator)
    i, j = (int(torch.randint(0, len(v), (1,), generator=generator)) for v in (scales, angles))
    if scales[i] != 1 or angles[j] != 0:  # the identity would cost a resampling for nothing
        x = rotate_scale(x, angles[j], scales[i], fill)
    return jitter(x, jitter_after, generator)
