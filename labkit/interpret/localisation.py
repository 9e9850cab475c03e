"""Localisation, measured: does a map point at the object?

Introduced in notebooks/07_gradcam.ipynb. Two scores for maps (N, H, W) against ground-truth object
masks (N, H, W) of the same size (the `shapes` dataset has one for every image):

- `pointing_game` (Zhang et al. 2016, "Top-down neural attention by excitation backprop"): a map
  scores a hit when its maximum lies on the object, or within `tolerance` pixels of it. Zhang et al.
  allow 15 pixels on PASCAL/COCO images (about 500 px across), i.e. 3 % of the image side; the default
  here is the same fraction: `tolerance = 0.03 * max(H, W)`, 1.9 px at 64 x 64, 6.7 px at 224 x 224.
  The maximum is the first one in raster order; a constant map (all zero: the method found nothing)
  counts as a miss.
- `energy_in_mask`: the fraction of a map's total (non-negative) mass inside the mask, as in the
  "energy-based pointing game" of Score-CAM (Wang et al. 2020). A map with no mass at all scores 0.
  Its chance level is the mask's share of the image, `masks.float().mean()`.
"""

from __future__ import annotations

import torch

from labkit.core import LabError

TOLERANCE_FRACTION = 0.03  # Zhang et al.: 15 px on ~500 px images


def _check(maps: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(maps, torch.Tensor) or not isinstance(masks, torch.Tensor):
        raise LabError("maps and masks must be torch tensors of shape (N, H, W).")
    if maps.dim() == 4:
        raise LabError(
            f"maps has shape {tuple(maps.shape)}: one map per image is needed, (N, H, W). For guided "
            "backprop, reduce the colour channels first: labkit.interpret.abs_max_channels(maps)."
        )
    if maps.dim() != 3 or maps.shape != masks.shape:
        raise LabError(
            f"maps {tuple(maps.shape)} and masks {tuple(masks.shape)} must both be (N, H, W) of the same size; "
            "upsample maps to the image size first (gradcam does by default)."
        )
    masks = masks.to(maps.device).bool()
    empty = (~masks.flatten(1).any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise LabError(f"masks {empty[:5]} are empty; the pointing game needs an object in every image.")
    return maps.detach(), masks


def pointing_hits(maps: torch.Tensor, masks: torch.Tensor, tolerance: float | None = None) -> torch.Tensor:
    """Per-image pointing-game outcome: BoolTensor (N,), True where the map's maximum is on the object.

    Args:
        maps: (N, H, W) saliency / Grad-CAM maps (higher = more important).
        masks: (N, H, W) bool object masks.
        tolerance: distance in pixels from the mask still counted as a hit; None: 3 % of max(H, W).
    """
    maps, masks = _check(maps, masks)
    n, h, w = maps.shape
    tol = TOLERANCE_FRACTION * max(h, w) if tolerance is None else float(tolerance)
    if tol < 0:
        raise LabError(f"tolerance={tolerance!r}: expected a distance in pixels >= 0.")
    flat = maps.reshape(n, -1)
    peak = flat.argmax(dim=1)  # first maximum in raster order
    py, px = peak // w, peak % w
    ys = torch.arange(h, device=maps.device).view(1, h, 1)
    xs = torch.arange(w, device=maps.device).view(1, 1, w)
    dist2 = (ys - py.view(n, 1, 1)) ** 2 + (xs - px.view(n, 1, 1)) ** 2  # (N, H, W) squared distances
    nearest = dist2.masked_fill(~masks, h * h + w * w + 1).flatten(1).min(dim=1).values
    informative = flat.max(dim=1).values > flat.min(dim=1).values  # a constant map points nowhere
    return (nearest <= tol * tol) & informative


def pointing_game(
    maps: torch.Tensor, masks: torch.Tensor, tolerance: float | None = None
) -> float:
    """Fraction of maps whose maximum falls on the object (within `tolerance` pixels); see `pointing_hits`.

    Returns:
        float in [0, 1].

    Example:
        >>> pointing_game(gradcam(model, x, target=y), masks)
        0.97
    """
    return pointing_hits(maps, masks, tolerance).float().mean().item()


def energy_in_mask(maps: torch.Tensor, masks: torch.Tensor, reduction: str = "mean") -> float | torch.Tensor:
    """Fraction of each map's mass inside the object mask.

    Args:
        maps: (N, H, W), non-negative (take `.abs()` or a ReLU of signed maps first).
        masks: (N, H, W) bool.
        reduction: "mean" (a float over the batch) or "none" (a tensor (N,)).

    Raises:
        LabError: negative map values, shapes that differ.
    """
    maps, masks = _check(maps, masks)
    if reduction not in ("mean", "none"):
        raise LabError(f"reduction={reduction!r}: use 'mean' or 'none'.")
    if (maps < 0).any():
        raise LabError("maps has negative values; energy needs non-negative maps: pass maps.abs() or maps.clamp(min=0).")
    total = maps.flatten(1).sum(dim=1)
    inside = (maps * masks).flatten(1).sum(dim=1)
    share = torch.where(total > 0, inside / total.where(total > 0, torch.ones_like(total)), torch.zeros_like(total))
    return share.mean().item() if reduction == "mean" else share
