"""Model-parameter randomisation (Adebayo et al. 2018): a map that explains a decision must change when
the network that decides is destroyed, here layer by layer from the top ("cascade") or one layer at a
time ("independent"), as measured by Spearman's rank correlation of the absolute maps.

Introduced in notebooks/07_gradcam.ipynb.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from labkit.core import LabError
from labkit.interpret import attribution
from labkit.interpret.hooks import find_layer
from labkit.interpret.saliency import abs_max_channels

ORDERS = ("cascade", "independent")
RANDOMISED_TYPES = (nn.Conv2d, nn.Linear)


def randomisable_layers(model: nn.Module) -> list[str]:
    """Names of the `nn.Conv2d` and `nn.Linear` layers in registration order (a cascade starts at the end)."""
    return [name for name, m in model.named_modules() if isinstance(m, RANDOMISED_TYPES)]


def randomised(model: nn.Module, layers: list[str], seed: int = 0) -> nn.Module:
    """A deep copy of `model` whose `layers` (names) have new weights and biases from PyTorch's default
    initialisation U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn on the CPU from `seed`."""
    clone = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in layers:
            _, module = find_layer(clone, name)
            if not isinstance(module, RANDOMISED_TYPES):
                raise LabError(
                    f"layer {name!r} is a {type(module).__name__}; only nn.Conv2d and nn.Linear layers are "
                    f"randomised. Layers of this model: {randomisable_layers(model)}."
                )
            bound = 1 / math.sqrt(module.weight[0].numel())  # fan_in: in_features, or in_channels * kh * kw
            for param in (module.weight, module.bias):
                if param is not None:
                    fresh = torch.empty(param.shape, dtype=param.dtype)
                    param.copy_(fresh.uniform_(-bound, bound, generator=gen))
    return clone


def randomisation_steps(
    model: nn.Module, order: str = "cascade", layers: list[str] | None = None
) -> list[tuple[str, list[str]]]:
    """The steps of a randomisation test as (label, layers randomised at that step), the label being
    the layer randomised last (cascade: with every layer above it; independent: alone)."""
    attribution.check_choice("order", order, ORDERS)
    names = randomisable_layers(model) if layers is None else [find_layer(model, n)[0] for n in layers]
    if not names:
        raise LabError(f"{type(model).__name__} has no nn.Conv2d or nn.Linear layer to randomise.")
    top_down = names[::-1]
    if order == "cascade":
        return [(name, top_down[: k + 1]) for k, name in enumerate(top_down)]
    return [(name, [name]) for name in top_down]


def _ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks 1..M of each row of values (N, M), ties given their mean rank (as scipy's rankdata)."""
    n, m = values.shape
    sorted_values, order = values.sort(dim=1, stable=True)
    # a tie group runs between positions where the sorted value changes; its members share its mean position
    new_group = torch.ones_like(sorted_values, dtype=torch.bool)
    new_group[:, 1:] = sorted_values[:, 1:] != sorted_values[:, :-1]
    group = new_group.cumsum(dim=1) - 1  # (N, M) group id per sorted position
    position = torch.arange(1, m + 1, dtype=torch.float64, device=values.device).expand(n, -1)
    zeros = torch.zeros(n, m, dtype=torch.float64, device=values.device)
    sums = zeros.scatter_add(1, group, position)
    counts = zeros.scatter_add(1, group, torch.ones_like(position))
    mean_rank = (sums / counts.clamp(min=1)).gather(1, group)
    return torch.empty_like(mean_rank).scatter_(1, order, mean_rank)


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman's rank correlation of each pair a[i], b[i] (N, ...): Tensor (N,) float64, 0 if one is flat."""
    if a.shape != b.shape or a.dim() < 2:
        raise LabError(f"maps {tuple(a.shape)} and {tuple(b.shape)} must have the same shape (N, ...).")
    ra, rb = _ranks(a.detach().flatten(1).double()), _ranks(b.detach().flatten(1).double().to(a.device))
    ra, rb = ra - ra.mean(dim=1, keepdim=True), rb - rb.mean(dim=1, keepdim=True)
    norm = ra.norm(dim=1) * rb.norm(dim=1)
    return torch.where(norm > 0, (ra * rb).sum(dim=1) / norm.clamp(min=1e-300), torch.zeros_like(norm))


def as_heat(maps: torch.Tensor) -> torch.Tensor:
    """|maps| as one map per image: (N, C, H, W) by the largest |value| over channels; (N, H, W) kept."""
    return abs_max_channels(maps) if maps.dim() == 4 else maps.abs()


@dataclass
class SanityCheck:
    """What `sanity_check` measured in its `order`: {label: Tensor (N,)}, every image's rank correlation
    with its original map at each step, labelled by the layer randomised last, top layer first; the maps
    {"original" and each label: |maps| (N, H, W)}; the classes explained, LongTensor (N,)."""

    order: str
    correlations: dict[str, torch.Tensor]
    maps: dict[str, torch.Tensor]
    targets: torch.Tensor

    def mean(self) -> dict[str, float]:
        """{label: mean rank correlation over the images}."""
        return {k: v.mean().item() for k, v in self.correlations.items()}


def sanity_check(
    method: Callable[..., torch.Tensor],
    model: nn.Module,
    x: torch.Tensor,
    target: attribution.Target = None,
    *,
    order: str = "cascade",
    layers: list[str] | None = None,
    seed: int = 0,
    classes=None,
    **kwargs,
) -> SanityCheck:
    """How much the maps of `method` (called as `method(model, x, target=..., **kwargs)`) change as copies
    of `model` are randomised layer by layer (`layers`, in forward order; None: every conv and linear
    layer), explaining the trained model's classes; step k draws its weights from `seed + k`."""
    attribution.check_images(x)
    steps = randomisation_steps(model, order, layers)
    with attribution.inspecting(model), torch.no_grad():
        logits = attribution.check_logits(model(x.to(attribution.model_device(model))))
    targets = attribution.resolve_targets(target, logits, classes)
    original = as_heat(method(model, x, target=targets, **kwargs))
    maps, correlations = {"original": original}, {}
    for k, (label, names) in enumerate(steps):
        heat = as_heat(method(randomised(model, names, seed + k), x, target=targets, **kwargs))
        maps[label], correlations[label] = heat, rank_correlation(heat, original)
    return SanityCheck(order, correlations, maps, targets)
