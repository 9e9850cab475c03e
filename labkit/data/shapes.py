"""`shapes`: a procedural image-classification dataset with a ground-truth mask for every image.

Introduced in notebooks/01_data_prep.ipynb. Each image shows one shape (its class) at a random
position, scale, rotation and colour on a cluttered background, so only the outline tells the
classes apart; the masks let localisation methods be scored. A seed gives identical bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from labkit.core import LabError

SHAPE_CLASSES = tuple("circle square triangle star cross ring semicircle arrow heart crescent".split())

MIN_SIZE, MAX_SIZE = 32, 224
OBJECT_SCALE = (0.4, 0.6)  # the object's largest diameter as a fraction of the image side
MAX_STROKES = 2  # distractor strokes under the object: 0 to MAX_STROKES per image
CHUNK = 256  # images generated together (vectorised background and compositing)
SUPERSAMPLE = 2  # draw the object at 2x and box-filter down: anti-aliased edges


@dataclass
class ShapesData:
    """A generated shapes set."""

    images: torch.Tensor  # uint8 (N, 3, H, W)
    masks: torch.Tensor  # bool (N, H, W), True on the object
    targets: torch.Tensor  # int64 (N,), index into `classes`
    classes: list[str]

    def __len__(self) -> int:
        return len(self.targets)


def _counts(n_per_class: int | Sequence[int] | Mapping[str, int]) -> list[int]:
    """Turn the `n_per_class` argument into one count per class of SHAPE_CLASSES."""
    k = len(SHAPE_CLASSES)
    if isinstance(n_per_class, Mapping):
        unknown = sorted(set(n_per_class) - set(SHAPE_CLASSES))
        if unknown:
            raise LabError(
                f"n_per_class names unknown shape classes {unknown}; they are {list(SHAPE_CLASSES)}."
            )
        counts = [n_per_class.get(c, 0) for c in SHAPE_CLASSES]
    elif isinstance(n_per_class, (int, np.integer)) and not isinstance(n_per_class, bool):
        counts = [int(n_per_class)] * k
    elif isinstance(n_per_class, Sequence) and not isinstance(n_per_class, str):
        if len(n_per_class) != k:
            raise LabError(
                f"n_per_class has {len(n_per_class)} counts but there are {k} shape classes "
                f"{list(SHAPE_CLASSES)}; give one count per class, an int, or a dict class -> count."
            )
        counts = list(n_per_class)
    else:
        raise LabError(
            f"n_per_class={n_per_class!r} is not a count; use an int, {k} ints or a dict class -> int."
        )
    if any(not isinstance(c, (int, np.integer)) or isinstance(c, bool) or c < 0 for c in counts):
        raise LabError(f"n_per_class counts must be non-negative ints, got {counts}.")
    if sum(counts) == 0:
        raise LabError("n_per_class asks for no images at all; give at least one class a positive count.")
    return [int(c) for c in counts]


def _unit_polygon(name: str) -> list[tuple[float, float]] | None:
    """Vertices of a polygonal shape, roughly on the unit disc (`_normalised` makes it exact)."""
    if name == "square":
        return [(-0.7071, -0.7071), (0.7071, -0.7071), (0.7071, 0.7071), (-0.7071, 0.7071)]
    if name == "triangle":
        return [(math.cos(a), math.sin(a)) for a in np.deg2rad([-90, 30, 150])]
    if name == "semicircle":
        # A half disc, shifted so its bounding box is centred (flat side at y = 0.5).
        t = np.linspace(0, np.pi, 24)
        return [(float(np.cos(a)), float(0.5 - np.sin(a))) for a in t]
    if name == "star":
        radii, angles = [1.0 if i % 2 == 0 else 0.42 for i in range(10)], [-90 + 36 * i for i in range(10)]
        return [(r * math.cos(math.radians(a)), r * math.sin(math.radians(a))) for r, a in zip(radii, angles)]
    if name == "cross":
        w = 0.3
        return [(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w),
                (w, 1), (-w, 1), (-w, w), (-1, w), (-1, -w), (-w, -w)]  # fmt: skip
    if name == "arrow":
        return [(-0.95, -0.2), (0.15, -0.2), (0.15, -0.6), (0.95, 0), (0.15, 0.6), (0.15, 0.2), (-0.95, 0.2)]
    if name == "heart":
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        x = 16 * np.sin(t) ** 3
        y = 2.5 - (13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))  # box centred
        scale = np.sqrt(x**2 + y**2).max()
        return list(zip(x / scale, y / scale))
    return None


def _normalised(poly: list[tuple[float, float]] | None) -> list[tuple[float, float]] | None:
    """Scale a polygon so its farthest vertex is at radius 1: every class fits the same disc."""
    if poly is None:
        return None
    r = max(math.hypot(x, y) for x, y in poly)
    return [(x / r, y / r) for x, y in poly]


_POLYGONS = {name: _normalised(_unit_polygon(name)) for name in SHAPE_CLASSES}


def _draw_object(draw: ImageDraw.ImageDraw, name: str, cx: float, cy: float, r: float, angle: float) -> None:
    """Draw class `name` as white (255) on an 'L' canvas: centre (cx, cy), radius r, rotation angle."""
    c, s = math.cos(angle), math.sin(angle)
    poly = _POLYGONS[name]
    if poly is not None:
        draw.polygon([(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in poly], fill=255)
    elif name == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif name == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        ri = 0.55 * r
        draw.ellipse([cx - ri, cy - ri, cx + ri, cy + ri], fill=0)
    else:  # crescent: a second disc, shifted along the rotation direction, bites it out
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        ox, oy = cx + 0.45 * r * c, cy + 0.45 * r * s
        ri = 0.85 * r
        draw.ellipse([ox - ri, oy - ri, ox + ri, oy + ri], fill=0)


_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 brightness of an RGB colour


def _contrasting_colours(rng: np.random.Generator, backgrounds: np.ndarray) -> np.ndarray:
    """Random object colours (n, 3), at least 130 away in RGB and 90 in brightness from their
    backgrounds' mean colours (n, 3): early conv filters pick up brightness contrast first."""
    n = len(backgrounds)
    candidates = rng.integers(0, 256, size=(n, 32, 3)).astype(np.float32)
    far = (np.linalg.norm(candidates - backgrounds[:, None, :], axis=-1) >= 130) & (
        np.abs(candidates @ _LUMA - (backgrounds @ _LUMA)[:, None]) >= 90
    )  # (n, 32)
    colours = candidates[np.arange(n), far.argmax(axis=1)]
    # Where no candidate qualifies, take a dark or bright extreme against the background.
    fallback = np.where((backgrounds @ _LUMA)[:, None] > 127, 20.0, 235.0) * np.ones((1, 3), np.float32)
    return np.where(far.any(axis=1)[:, None], colours, fallback).astype(np.float32)


def _backgrounds(rng: np.random.Generator, n: int, grid: np.ndarray) -> np.ndarray:
    """Colour gradients along random directions plus pixel noise: uint8 (n, 3, H, W)."""
    size = grid.shape[-1]
    c0 = rng.uniform(0, 255, size=(n, 3, 1, 1)).astype(np.float32)
    c1 = np.clip(c0 + rng.uniform(-70, 70, size=(n, 3, 1, 1)), 0, 255).astype(np.float32)
    # Muted backgrounds (15-45 % of the colour saturation): the scene stays coloured and cluttered,
    # but the object stands out, which roughly halves the steps a small CNN needs to learn the task.
    saturation = rng.uniform(0.15, 0.45, size=(n, 1, 1, 1)).astype(np.float32)
    c0 = c0.mean(axis=1, keepdims=True) + (c0 - c0.mean(axis=1, keepdims=True)) * saturation
    c1 = c1.mean(axis=1, keepdims=True) + (c1 - c1.mean(axis=1, keepdims=True)) * saturation
    theta = rng.uniform(0, 2 * np.pi, size=(n, 1, 1)).astype(np.float32)
    t = grid[0] * np.cos(theta) + grid[1] * np.sin(theta)  # (n, H, W)
    t = (t - t.min(axis=(1, 2), keepdims=True)) / (np.ptp(t, axis=(1, 2), keepdims=True) + 1e-6)
    img = c0 + (c1 - c0) * t[:, None]  # (n, 3, H, W); channel-first keeps numpy's inner loops long
    # Uniform noise from raw bytes: much cheaper than Gaussian noise and looks the same to a CNN.
    sigma = rng.uniform(2, 12, size=(n, 1, 1, 1)).astype(np.float32) / 73.9  # 73.9: std of uniform bytes
    raw = np.frombuffer(rng.bytes(n * 3 * size * size), dtype=np.uint8).reshape(n, 3, size, size)
    noise = raw.astype(np.float32)
    noise -= 127.5
    noise *= sigma
    img += noise + 0.5
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8)


def _strokes(rng: np.random.Generator, size: int, n: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw `n` distractor strokes (lines and arcs) on an 'L' canvas as indices 1..n (one channel per
    image is cheap): the canvas uint8 (S, S) and the strokes' colours float32 (n, 3), for `_paint`."""
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    colours = np.empty((n, 3), dtype=np.float32)
    for k in range(n):
        colours[k] = rng.integers(0, 256, size=3)
        x0, y0, x1, y1 = (float(v) for v in rng.uniform(0, size, size=4))
        if rng.random() < 0.5:
            draw.line([(x0, y0), (x1, y1)], fill=k + 1, width=width)
        else:
            box = [min(x0, x1), min(y0, y1), max(x0, x1) + 2, max(y0, y1) + 2]
            start = float(rng.uniform(0, 360))
            draw.arc(box, start, start + float(rng.uniform(60, 200)), fill=k + 1, width=width)
    return np.asarray(canvas), colours


def _paint(images: np.ndarray, index: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Paint strokes in place: images float (c, 3, H, W), index uint8 (c, H, W), colours (c, K+1, 3)."""
    ci, yi, xi = np.nonzero(index)  # strokes cover few pixels: touch only those
    images[ci, :, yi, xi] = colours[ci, index[ci, yi, xi]]  # (m, 3)
    return images


def make_shapes(
    n_per_class: int | Sequence[int] | Mapping[str, int] = 600, image_size: int = 64, seed: int = 0
) -> ShapesData:
    """Generate the `shapes` dataset, in a shuffled order.

    Args:
        n_per_class: images per class: one int for all, one count per class of `SHAPE_CLASSES`, or
            a dict class name -> count (missing classes get 0) for an imbalanced set.
        image_size: side S of the square images, 32 to 224.

    Returns ShapesData: images uint8 (N, 3, S, S), masks bool (N, S, S), targets int64 (N,).
    """
    if not isinstance(image_size, (int, np.integer)) or not MIN_SIZE <= image_size <= MAX_SIZE:
        raise LabError(f"image_size={image_size!r} for shapes must be an int from {MIN_SIZE} to {MAX_SIZE}.")
    size = int(image_size)
    counts = _counts(n_per_class)
    rng = np.random.default_rng(seed)
    targets = np.repeat(np.arange(len(SHAPE_CLASSES), dtype=np.int64), counts)
    n = len(targets)
    targets = targets[rng.permutation(n)]

    lin = np.linspace(-1, 1, size, dtype=np.float32)
    grid = np.stack(np.meshgrid(lin, lin, indexing="xy"))  # (2, H, W): x, y
    images = np.empty((n, 3, size, size), dtype=np.uint8)
    alphas = np.empty((n, size, size), dtype=np.float32)
    big = size * SUPERSAMPLE
    width = max(1, round(size / 40))  # distractor strokes stay thin next to the object

    # Chunks of fixed length keep memory small at 224 px while the numpy work stays vectorised;
    # the fixed length also fixes the order of random draws, so a seed gives the same bytes.
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        c = hi - lo
        bg = _backgrounds(rng, c, grid).astype(np.float32)  # (c, 3, H, W)
        under = np.zeros((c, size, size), dtype=np.uint8)  # stroke index per pixel, 0 = no stroke
        under_colours = np.zeros((c, MAX_STROKES + 1, 3), dtype=np.float32)
        for j in range(c):
            k = int(rng.integers(0, MAX_STROKES + 1))
            under[j], under_colours[j, 1 : k + 1] = _strokes(rng, size, k, width)
            # The object: radius in supersampled pixels; the centre keeps the shape 2 pixels inside the frame.
            r = 0.5 * rng.uniform(*OBJECT_SCALE) * big
            cx, cy = (float(v) for v in rng.uniform(r + 2 * SUPERSAMPLE, big - r - 2 * SUPERSAMPLE, size=2))
            alpha_img = Image.new("L", (big, big), 0)
            angle = rng.uniform(0, 2 * np.pi)
            _draw_object(ImageDraw.Draw(alpha_img), SHAPE_CLASSES[targets[lo + j]], cx, cy, r, angle)
            alphas[lo + j] = np.asarray(alpha_img.resize((size, size), Image.Resampling.BOX), np.float32)
        bg = _paint(bg, under, under_colours)  # strokes under the object
        alpha = alphas[lo:hi, None] / 255.0  # (c, 1, H, W)
        colour = _contrasting_colours(rng, bg.mean(axis=(2, 3)))[:, :, None, None]  # (c, 3, 1, 1)
        # Slight shading across the object so it is not one flat colour.
        tilt = rng.uniform(-0.15, 0.15, size=(c, 2, 1, 1)).astype(np.float32)
        shade = 1.0 + (grid[None] * tilt).sum(axis=1, keepdims=True)  # (c, 1, H, W)
        fg = np.clip(colour * shade, 0, 255)
        out = bg + (fg - bg) * alpha
        # Sometimes one thin stroke across everything: it may cross the object, never hide it.
        over = np.zeros((c, size, size), dtype=np.uint8)
        over_colours = np.zeros((c, 2, 3), dtype=np.float32)
        for j in np.flatnonzero(rng.random(c) < 0.2).tolist():
            over[j], over_colours[j, 1:] = _strokes(rng, size, 1, 1)
        out = _paint(out, over, over_colours) + 0.5
        np.clip(out, 0, 255, out=out)
        images[lo:hi] = out.astype(np.uint8)
    masks = torch.from_numpy(alphas >= 127.5)
    return ShapesData(torch.from_numpy(images), masks, torch.from_numpy(targets), list(SHAPE_CLASSES))
