"""Grad-CAM and guided Grad-CAM (Selvaraju et al. 2017).

Introduced in notebooks/07_gradcam.ipynb. For class c and a layer with activations A (N, K, h, w):

    alpha_k = mean over (h, w) of d y_c / d A_k       # one weight per channel: "how much class c needs k"
    cam     = relu(sum_k alpha_k * A_k)                # (N, h, w): only evidence *for* c
    map     = bilinear upsampling of cam to the input size (H, W), then per-map min-max to [0, 1]

y_c is the unnormalised class score (logit). A map that is zero everywhere before normalising
(no location of this layer raises the score of c: every weighted sum was negative) stays all zero;
so does a constant map (min = max), since min-max scaling has nothing to spread.

Which layer: any module whose output is (N, K, h, w) with h * w > 1. The default is the last such
output the forward pass produces, found by a probe forward of one image (`default_gradcam_layer`):
for labkit's NaiveCNN `features.pool3`, for a torchvision ResNet `layer4.1` (its last block).
Ask for it with `return_layer=True` or `default_gradcam_layer(model, x)`; `spatial_layers(model, x)`
lists the candidates. A module called several times in one forward (EfficientNet-Lite's shared ReLU6
`_swish`) is explained at its last call. A layer whose output the model later changes in place
(torchvision ResNet's `bn1` before an in-place ReLU) is refused with a LabError naming usable layers:
its own values no longer exist when the gradients are taken.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from labkit.env import LabError
from labkit.interpret.guided_backprop import guided_backprop
from labkit.interpret.hooks import LayerRef, capture, find_layer, preserved
from labkit.interpret.targets import (
    Target,
    check_images,
    check_logits,
    eval_for_attribution,
    model_device,
    resolve_targets,
    selected_scores,
)


@dataclass
class LayerCall:
    """One module call during a probe forward pass.

    Attributes:
        name: the module's name in `model.named_modules()`.
        shape: the shape of its output for one image (() when the output is not a tensor).
        calls: how many times the module ran in the whole forward pass.
        changed_later: the output tensor was modified in place after the module returned it (an
            in-place ReLU or `+=` downstream), so its own values are gone by the time gradients flow.
        output: the tensor returned (None when not a tensor).
    """

    name: str
    shape: tuple[int, ...]
    calls: int
    changed_later: bool
    output: torch.Tensor | None = field(default=None, repr=False)


def _trace(model: nn.Module, x: torch.Tensor) -> list[LayerCall]:
    """Every module call of one forward pass of `x[:1]`, in the order the calls finished.

    Only used to find and check spatial layers; runs without gradients, in eval mode, and removes
    its hooks however the forward ends. (hooks.capture keeps one output per name and cannot tell the
    order of repeated calls or later in-place changes, which this probe needs.)
    """
    order: list[tuple[str, torch.Tensor | None, int]] = []
    counts: dict[str, int] = {}
    handles = []

    def make_hook(name):
        def hook(module, args, output):
            counts[name] = counts.get(name, 0) + 1
            tensor = output if isinstance(output, torch.Tensor) else None
            # The version counter rises with every in-place change; compared after the pass.
            order.append((name, tensor, tensor._version if tensor is not None else 0))

        return hook

    with preserved(model), torch.no_grad():
        model.eval()
        try:
            for name, module in model.named_modules():
                if name:  # the model itself is not a layer
                    handles.append(module.register_forward_hook(make_hook(name)))
            model(x[:1].to(model_device(model)))
        finally:
            for handle in handles:
                handle.remove()
    return [
        LayerCall(name, tuple(out.shape) if out is not None else (), counts[name],
                  out is not None and out._version != version, out)
        for name, out, version in order
    ]  # fmt: skip


def _is_spatial(shape: tuple[int, ...]) -> bool:
    return len(shape) == 4 and shape[2] * shape[3] > 1


def _last_calls(calls: list[LayerCall]) -> list[LayerCall]:
    """The last call of every module, in the order those calls finished."""
    last = {c.name: (i, c) for i, c in enumerate(calls)}
    return [c for _, c in sorted(last.values(), key=lambda pair: pair[0])]


def spatial_layers(model: nn.Module, x: torch.Tensor) -> list[tuple[str, tuple[int, ...]]]:
    """Layers whose output has spatial extent, as (name, output shape for one image), in forward order.

    These are the layers Grad-CAM can use (a module called several times counts at its last call;
    one whose output is changed in place later is left out, see `gradcam`).
    """
    check_images(x)
    return [(c.name, c.shape) for c in _last_calls(_trace(model, x)) if _is_spatial(c.shape) and not c.changed_later]


def _default_layer(model: nn.Module, calls: list[LayerCall]) -> str:
    spatial = [c for c in calls if _is_spatial(c.shape)]
    if not spatial:
        raise LabError(
            f"{type(model).__name__} has no module with a spatial output (N, K, h, w) with h * w > 1, so "
            "Grad-CAM has nothing to localise with. Is the input large enough for this network?"
        )
    last = spatial[-1].output
    # Modules handing on that very tensor (ResNet: `layer4`, its last block `layer4.1`, the block's
    # ReLU; also `bn2`, whose output the block changed in place): keep those whose values are final,
    # prefer ones called once, and name the deepest.
    same = [c for c in calls if c.output is last and not c.changed_later]
    once = [c for c in same if c.calls == 1] or same
    return max(once, key=lambda c: c.name.count(".")).name


def default_gradcam_layer(model: nn.Module, x: torch.Tensor) -> str:
    """The layer `gradcam` uses when `layer=None`: the last spatial output of the forward pass.

    Several modules may return that very tensor (a ResNet's `layer4`, its last block `layer4.1`, and
    the block's final ReLU); the deepest one that is called only once is named.

    Raises:
        LabError: no module of the model has an output of shape (N, K, h, w) with h * w > 1.
    """
    check_images(x)
    return _default_layer(model, _trace(model, x))


def _check_layer(model: nn.Module, calls: list[LayerCall], name: str) -> None:
    """Raise a LabError when Grad-CAM cannot use layer `name` (before the real pass)."""
    last = {c.name: c for c in calls}
    options = [c.name for c in _last_calls(calls) if _is_spatial(c.shape) and not c.changed_later]
    shown = ", ".join(repr(n) for n in options[-6:])
    if name not in last:
        raise LabError(f"layer {name!r} is not called during the forward pass; pick one the model uses: {shown}.")
    call = last[name]
    if not _is_spatial(call.shape):
        raise LabError(
            f"layer {name!r} has output shape {call.shape} (for one image); Grad-CAM needs a layer with a "
            f"spatial output (N, K, h, w) with h * w > 1. Layers with spatial output (last ones): {shown}."
        )
    if call.changed_later:
        raise LabError(
            f"layer {name!r} returns a tensor that the model then changes in place (an in-place ReLU or +=), "
            f"so its own values are gone when gradients flow. Use the layer after the in-place step (for a "
            f"ResNet block, the block itself) or one of: {shown}."
        )


def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    """Per-map min-max scaling of (N, H, W) to [0, 1]; a constant map (e.g. all zero) becomes all zero."""
    flat = maps.reshape(maps.shape[0], -1)
    low = flat.min(dim=1, keepdim=True).values
    span = flat.max(dim=1, keepdim=True).values - low
    scaled = torch.where(span > 0, (flat - low) / span.where(span > 0, torch.ones_like(span)), torch.zeros_like(flat))
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
    return_layer: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, str]:
    """Grad-CAM maps of the target class at `layer`, for a batch in one forward and one backward pass.

    Args:
        model: a classifier returning logits; computed in eval mode, given back as found.
        x: images (N, C, H, W), normalised as the model takes them.
        target: class per image (None: the predicted class; int, name, or N of them).
        layer: a module name from `model.named_modules()` or the module; None: `default_gradcam_layer`.
        classes: class names, when `target` holds names.
        upsample: bilinear upsampling to (H, W); False gives maps at the layer's resolution (h, w).
        normalize: per-map min-max scaling to [0, 1] (see the module docstring for all-zero maps).
        return_layer: also return the name of the layer used.

    Returns:
        Tensor (N, H, W) (or (N, h, w) without upsampling), each map in [0, 1] when normalised;
        with `return_layer`, `(maps, layer_name)`.

    Raises:
        LabError: bad `x`, target out of range, unknown layer, or a layer without spatial output
            (the message lists layers that have one).

    Example:
        >>> maps, name = gradcam(model, x, return_layer=True)   # name == "features.pool3"
        >>> maps = gradcam(model, x, target=2, layer="features.relu2_2")
    """
    check_images(x)
    name = None if layer is None else find_layer(model, layer)[0]
    # A probe forward of one image finds the default layer and checks the named one before the real pass.
    calls = _trace(model, x)
    name = _default_layer(model, calls) if name is None else name
    _check_layer(model, calls, name)
    del calls
    with preserved(model):
        eval_for_attribution(model, "gradcam")
        for p in model.parameters():
            p.requires_grad_(False)  # only d score / d activations is needed
        # The input must require grad so that the layer's output is part of the graph even for a
        # frozen model; the copy leaves the caller's x untouched.
        xg = x.detach().to(model_device(model)).requires_grad_(True)
        with capture(model, name, detach=False) as cap:
            logits = check_logits(model(xg))
        acts = cap.activations[name]  # (N, K, h, w); a module called twice: its last call
        targets = resolve_targets(target, logits, classes)
        (grads,) = torch.autograd.grad(selected_scores(logits, targets), acts)
    acts, grads = acts.detach(), grads.detach()
    weights = grads.mean(dim=(2, 3), keepdim=True)  # (N, K, 1, 1): alpha_k per image
    cam = F.relu((weights * acts).sum(dim=1))  # (N, h, w)
    if upsample:
        cam = F.interpolate(cam[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    if normalize:
        cam = normalize_maps(cam)
    cam = cam.to(x.device)
    return (cam, name) if return_layer else cam


def guided_gradcam(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    layer: LayerRef | None = None,
    *,
    classes=None,
) -> torch.Tensor:
    """Guided Grad-CAM: guided backprop (fine detail) times the upsampled Grad-CAM map (where).

    Two batched passes (the guided backward changes the ReLU gradients Grad-CAM must not see).
    The class per image is resolved once, so both passes explain the same classes.

    Returns:
        Tensor like x (N, C, H, W), signed.
    """
    check_images(x)
    if target is None:
        from labkit.interpret.targets import topk_targets

        target = topk_targets(model, x, 1)[:, 0]
    cams = gradcam(model, x, target, layer, classes=classes)  # (N, H, W)
    return guided_backprop(model, x, target, classes=classes) * cams[:, None]
