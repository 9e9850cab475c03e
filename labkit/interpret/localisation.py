"""Localisation against ground-truth object masks: the pointing game (Zhang et al. 2016) and the share
of a map's energy in the mask (Score-CAM, Wang et al. 2020; chance level: the mask's share of the image).

Introduced in notebooks/07_gradcam.ipynb.
"""

from __future__ import annotations

import torch

from labkit.core import LabError
from labkit.interpret.attribution import check_choice

TOLERANCE_FRACTION = 0.03  # of max(H, W): Zhang et al.'s 15 pixels on ~500-pixel images


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
            f"maps {tuple(maps.shape)} and masks {tuple(masks.shape)} must both be (N, H, W) of the same "
            "size; upsample maps to the image size first (gradcam does by default)."
        )
    masks = masks.to(maps.device).bool()
    empty = (~masks.flatten(1).any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise LabError(f"masks {empty[:5]} are empty; the pointing game needs an object in every image.")
    return maps.detach(), masks


def pointing_hits(maps: torch.Tensor, masks: torch.Tensor, tolerance: float | None = None) -> torch.Tensor:
    """Per image, whether the maximum of maps (N, H, W) is on the object of bool masks (N, H, W), or
    within `tolerance` pixels of it (None: 3 % of max(H, W)): BoolTensor (N,)."""
    maps, masks = _check(maps, masks)
    n, h, w = maps.shape
    tol = TOLERANCE_FRACTION * max(h, w) if tolerance is None else float(tolerance)
    if tol < 0:
        raise LabError(f"tolerance={tolerance!r}: expected a distance in pixels >= 0.")
    flat = maps.reshape(n, -1)
    peak = flat.argmax(dim=1)  # the first maximum in raster order
    py, px = peak // w, peak % w
    ys = torch.arange(h, device=maps.device).view(1, h, 1)
    xs = torch.arange(w, device=maps.device).view(1, 1, w)
    dist2 = (ys - py.view(n, 1, 1)) ** 2 + (xs - px.view(n, 1, 1)) ** 2  # (N, H, W)
    nearest = dist2.masked_fill(~masks, h * h + w * w + 1).flatten(1).min(dim=1).values
    informative = flat.max(dim=1).values > flat.min(dim=1).values  # a constant map points nowhere
    return (nearest <= tol * tol) & informative


def pointing_game(maps: torch.Tensor, masks: torch.Tensor, tolerance: float | None = None) -> float:
    """The share of maps (N, H, W) whose maximum is on the object of masks (N, H, W): see `pointing_hits`."""
    return pointing_hits(maps, masks, tolerance).float().mean().item()


def energy_in_mask(maps: torch.Tensor, masks: torch.Tensor, reduction: str = "mean") -> float | torch.Tensor:
    """The share of each map's mass inside the object mask: maps (N, H, W) non-negative (take `.abs()` or
    a ReLU first), masks (N, H, W) bool; `reduction` "mean" (a float) or "none" (Tensor (N,))."""
    maps, masks = _check(maps, masks)
    check_choice("reduction", reduction, ("mean", "none"))
    if (maps < 0).any():
        raise LabError(
            "maps has negative values; energy needs non-negative maps: pass maps.abs() or maps.clamp(min=0)."
        )
    total = maps.flatten(1).sum(dim=1)
    inside = (maps * masks).flatten(1).sum(dim=1)
    share = torch.where(total > 0, inside / total.where(total > 0, torch.ones_like(total)), 0.0)
    return share.mean().item() if reduction == "mean" else share
