"""Grad-CAM and guided Grad-CAM (Selvaraju et al. 2017). For class c and activations A (N, K, h, w):

    alpha_k = mean over (h, w) of d y_c / d A_k       # y_c the logit
    cam     = relu(sum_k alpha_k * A_k)                # (N, h, w): only evidence for c
    map     = bilinear upsampling to (H, W), then per-map min-max to [0, 1] (a constant map: 0)

Introduced in notebooks/07_gradcam.ipynb.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from labkit.core import LabError
from labkit.interpret.attribution import Target, check_images, class_gradient, model_device, topk_targets
from labkit.interpret.guided_backprop import guided_backprop
from labkit.interpret.hooks import LayerCall, LayerRef, find_layer, trace_calls


def _is_spatial(shape: tuple[int, ...]) -> bool:
    return len(shape) == 4 and shape[2] * shape[3] > 1


def _usable(calls: list[LayerCall]) -> list[LayerCall]:
    """The last call of every module with a spatial output not changed later, in forward order."""
    last = {c.name: (i, c) for i, c in enumerate(calls)}  # (index of its last call, call)
    return [c for _, c in sorted(last.values()) if _is_spatial(c.shape) and not c.changed_later]


def _trace(model: nn.Module, x: torch.Tensor) -> list[LayerCall]:
    return trace_calls(model, check_images(x)[:1].to(model_device(model)))  # one image is enough


def spatial_layers(model: nn.Module, x: torch.Tensor) -> list[tuple[str, tuple[int, ...]]]:
    """The layers Grad-CAM can use, as (name, output shape for one image), in forward order."""
    return [(c.name, c.shape) for c in _usable(_trace(model, x))]


def _default_layer(model: nn.Module, calls: list[LayerCall]) -> str:
    spatial = [c for c in calls if _is_spatial(c.shape)]
    if not spatial:
        raise LabError(
            f"{type(model).__name__} has no module with a spatial output (N, K, h, w) with h * w > 1, so "
            "Grad-CAM has nothing to localise with. Is the input large enough for this network?"
        )
    # Of the modules handing on that very tensor (ResNet: `layer4`, its last block `layer4.1`, the
    # block's ReLU) keep those whose values are final, prefer ones called once, name the deepest.
    same = [c for c in calls if c.output is spatial[-1].output and not c.changed_later]
    once = [c for c in same if c.calls == 1] or same
    return max(once, key=lambda c: c.name.count(".")).name


def default_gradcam_layer(model: nn.Module, x: torch.Tensor) -> str:
    """The layer `gradcam` uses when `layer=None`: the last spatial output of the forward pass (of
    the modules returning that very tensor, the deepest one called only once)."""
    return _default_layer(model, _trace(model, x))


def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    """Per-map min-max scaling of (N, H, W) to [0, 1]; a constant map becomes all zero."""
    flat = maps.reshape(maps.shape[0], -1)
    low = flat.min(dim=1, keepdim=True).values
    span = flat.max(dim=1, keepdim=True).values - low
    scaled = torch.where(span > 0, (flat - low) / span.clamp(min=torch.finfo(flat.dtype).tiny), 0.0)
    return scaled.reshape(maps.shape)


def gradcam(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    layer: LayerRef | None = None,
    *,
    classes=None,
    upsample: bool = True,
    normalize: bool = True,
) -> torch.Tensor:
    """Grad-CAM maps of the target class at `layer` (None: `default_gradcam_layer`), in one forward
    and one backward pass: Tensor (N, H, W) on x's device, or (N, h, w), the layer's resolution, with
    `upsample=False`; `normalize`: per-map min-max scaling to [0, 1]."""
    name = None if layer is None else find_layer(model, layer)[0]
    calls = _trace(model, x)  # finds the default layer, or checks a named one, before the real pass
    name = _default_layer(model, calls) if name is None else name
    last = {c.name: c for c in calls}
    shown = ", ".join(repr(c.name) for c in _usable(calls)[-6:])
    if name not in last:
        raise LabError(f"layer {name!r} is not called in the forward pass; pick one the model uses: {shown}.")
    if not _is_spatial(last[name].shape):
        raise LabError(
            f"layer {name!r} has output shape {last[name].shape} (for one image); Grad-CAM needs a layer "
            f"with a spatial output (N, K, h, w) with h * w > 1. Spatial layers (last ones): {shown}."
        )
    if last[name].changed_later:
        raise LabError(
            f"layer {name!r} returns a tensor that the model then changes in place (an in-place ReLU or +=), "
            f"so its own values are gone when gradients flow. Use the layer after the in-place step (for a "
            f"ResNet block, the block itself) or one of: {shown}."
        )
    del calls, last  # the traced outputs, before the real pass
    grads, acts = class_gradient(model, x, target, name, classes=classes, what="gradcam")
    weights = grads.mean(dim=(2, 3), keepdim=True)  # (N, K, 1, 1): alpha_k per image
    cam = F.relu((weights * acts).sum(dim=1))  # (N, h, w)
    if upsample:
        cam = F.interpolate(cam[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return (normalize_maps(cam) if normalize else cam).to(x.device)


def guided_gradcam(
    model: nn.Module, x: torch.Tensor, target: Target = None, layer: LayerRef | None = None, *, classes=None
) -> torch.Tensor:
    """Guided backprop (fine detail) times the upsampled Grad-CAM map (where): Tensor like x, signed."""
    target = topk_targets(model, x, 1)[:, 0] if target is None else target
    cams = gradcam(model, x, target, layer, classes=classes)  # (N, H, W)
    return guided_backprop(model, x, target, classes=classes) * cams[:, None]
