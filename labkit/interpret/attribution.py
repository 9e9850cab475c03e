"""The base of every `labkit.interpret` technique: checks, `inspecting` and the gradient step. Arguments
they share: `model`, a classifier returning logits (N, num_classes), run in eval mode and given back as
found; `x`, images (N, C, H, W) normalised as the model takes them; `target`, the class a map explains:
None (each image's predicted class), an int or class name for all, or N of them; `classes`, the names.

Introduced in notebooks/05_filters_feature_maps.ipynb and notebooks/07_gradcam.ipynb.
"""

from __future__ import annotations

import difflib
import inspect
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, SequentialSampler

from labkit.core import LabError
from labkit.interpret.hooks import capture, forward_to
from labkit.util import model_device, preserved

_HERE = os.path.dirname(os.path.abspath(__file__))
Target = int | str | Sequence[int | str] | np.ndarray | torch.Tensor | None


def check_images(x, what: str = "x") -> torch.Tensor:
    """`x` if it is a float batch (N, C, H, W), else a LabError that says how to get one."""
    if not isinstance(x, torch.Tensor):
        raise LabError(f"{what} must be a torch.Tensor of shape (N, C, H, W), not {type(x).__name__}.")
    if x.dim() != 4:
        hint = f" One image: pass a batch, e.g. {what}.unsqueeze(0)." if x.dim() == 3 else ""
        raise LabError(f"{what} has shape {tuple(x.shape)}; expected a batch of images (N, C, H, W).{hint}")
    if not x.is_floating_point():
        raise LabError(
            f"{what} has dtype {x.dtype}; expected normalised float images as the model takes them "
            "(e.g. from a Splits dataset, or splits.normalize(images.float() / 255))."
        )
    return x


def check_numbers(*, minimum: float = 0.0, integer: bool = False, **values) -> None:
    """Raise a LabError for the first of `values` not a number (an int with `integer`) >= `minimum`."""
    kind, what = ((int,), "an int") if integer else ((int, float), "a number")
    for name, value in values.items():
        if not isinstance(value, kind) or isinstance(value, bool) or value < minimum:
            raise LabError(f"{name}={value!r}: expected {what} >= {minimum:g}.")


def check_choice(name: str, value, choices: Sequence, hint: str = "") -> None:
    """Raise a LabError unless `value` is one of `choices`."""
    if value not in choices:
        raise LabError(f"{name}={value!r}: use one of {tuple(choices)}{hint}.")


def iter_batches(images, batch_size: int) -> Iterator[torch.Tensor]:
    """Float batches (N, C, H, W) in dataset order from a Tensor, a Dataset or an ordered DataLoader."""
    if isinstance(images, torch.Tensor):
        yield from check_images(images, "images").split(batch_size)
        return
    if isinstance(images, DataLoader):
        if not isinstance(images.sampler, SequentialSampler):
            raise LabError(
                "images is a DataLoader that does not go through the data in order (shuffle=True or a "
                "sampler), so image indices would mean nothing; pass the Dataset, or a loader with "
                "shuffle=False."
            )
        loader = images
    elif isinstance(images, Dataset):
        loader = DataLoader(images, batch_size=batch_size, shuffle=False)
    else:
        raise LabError(
            f"images must be a Tensor (N, C, H, W), a Dataset or a DataLoader, not {type(images).__name__}."
        )
    for batch in loader:
        yield check_images(batch[0] if isinstance(batch, (tuple, list)) else batch, "a batch of images")


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first parameter (float32 for a model without)."""
    param = next(model.parameters(), None)
    return param.dtype if param is not None else torch.float32


def in_channels(model: nn.Module, default: int | None = None) -> int:
    """Channels of the images the model takes: those of its first conv layer (else `default`)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    if default is None:
        raise LabError(f"{type(model).__name__} has no nn.Conv2d layer; these tools look inside CNNs.")
    return default


def conv_layers(model: nn.Module) -> list[str]:
    """Names of the `nn.Conv2d` layers of `model`, in registration order."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def check_channel(name: str, n_channels: int, channel) -> int:
    """`channel` as an int in [0, n_channels), or an error naming the layer and its channel count."""
    if isinstance(channel, torch.Tensor) and channel.numel() == 1:
        channel = int(channel)
    if not isinstance(channel, int) or isinstance(channel, bool):
        raise LabError(f"channel={channel!r}: expected an int channel index of layer {name!r}.")
    if not 0 <= channel < n_channels:
        raise LabError(f"channel {channel} is out of range: layer {name!r} has {n_channels} channels.")
    return channel


def layer_output(model: nn.Module, x: torch.Tensor, name: str, *, detach: bool = True) -> torch.Tensor:
    """The feature maps (N, C, h, w) of layer `name` for `x`; the rest of the forward pass is skipped."""
    act = forward_to(model, x, name, detach=detach).activations[name]
    if act.dim() != 4:
        raise LabError(
            f"layer {name!r} gives shape {tuple(act.shape)}, not feature maps (N, C, h, w); "
            "pick a convolutional layer (or the ReLU / pooling after it)."
        )
    return act


@contextmanager
def inspecting(model: nn.Module, *, what: str | None = None) -> Iterator[None]:
    """Run the block with `model` in eval mode and its parameters frozen, both given back after. With
    `what` (the technique), a training model is warned about."""
    with preserved(model):
        if what and any(m.training for m in model.modules()):
            frame, level = inspect.currentframe(), 1  # point the warning at the caller outside interpret/
            while frame is not None and frame.f_code.co_filename.startswith(_HERE):
                frame, level = frame.f_back, level + 1
            warnings.warn(
                f"{what}: the model is in training mode; computing in eval mode (no dropout, batch-norm "
                "running statistics) and giving it back in training mode. Call model.eval() first to "
                "silence this warning.",
                stacklevel=level,
            )
        model.eval()
        for param in model.parameters():
            param.requires_grad_(False)
        yield


def check_logits(logits) -> torch.Tensor:
    """`logits` if the model returned class scores (N, num_classes)."""
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise LabError(
            f"the model returned {shape}; gradient maps need class scores of shape (N, num_classes). "
            "Pass a classifier (or wrap the model so that it returns logits)."
        )
    return logits


def class_index(name: str, classes: Sequence[str] | None) -> int:
    """Index of class `name` in `classes` (exact, then case-insensitive, then a unique substring match)."""
    if classes is None:
        raise LabError(
            f"target {name!r} is a class name, but no class names were given; pass classes=..., e.g. "
            "classes=splits.classes or classes=labkit.models.imagenet_classes()."
        )
    classes = list(classes)
    lower = [c.lower() for c in classes]
    if name in classes or name.lower() in lower:
        return classes.index(name) if name in classes else lower.index(name.lower())
    partial = [i for i, c in enumerate(lower) if name.lower() in c]
    if len(partial) == 1:
        return partial[0]
    close = [classes[i] for i in partial[:5]] or difflib.get_close_matches(name, classes, n=5, cutoff=0.5)
    hint = f" Close: {', '.join(repr(c) for c in close)}." if close else ""
    raise LabError(f"class name {name!r} is not one of the {len(classes)} classes (or is ambiguous).{hint}")


def resolve_targets(
    target: Target, logits: torch.Tensor, classes: Sequence[str] | None = None
) -> torch.Tensor:
    """`target` as one class index per image, checked: LongTensor (N,) on the device of `logits` (N, C)."""
    n, num_classes = logits.shape
    if target is None:
        return logits.detach().argmax(dim=1)
    if isinstance(target, str):
        target = class_index(target, classes)
    if isinstance(target, (bool, np.bool_)):
        raise LabError(f"target={target!r}: expected a class index (int), not a bool.")
    if isinstance(target, (int, np.integer)):
        idx = torch.full((n,), int(target), dtype=torch.long)
    else:
        if isinstance(target, torch.Tensor):
            values = target.detach().cpu()
        else:
            items = [class_index(t, classes) if isinstance(t, str) else t for t in target]
            values = torch.as_tensor(np.asarray(items))
        values = values.reshape(1).expand(n) if values.dim() == 0 else values
        if values.dim() != 1 or values.numel() != n:
            raise LabError(
                f"target has shape {tuple(values.shape)} but x holds {n} image(s); give one class per "
                f"image (a list of {n}), a single int for all, or None for the predicted classes."
            )
        if values.is_floating_point() or values.dtype == torch.bool:
            raise LabError(f"target has dtype {values.dtype}; class indices must be integers.")
        idx = values.long()
    bad = idx[(idx < 0) | (idx >= num_classes)]
    if bad.numel():
        raise LabError(
            f"target {bad[0].item()} is out of range: the model has {num_classes} classes, so a class "
            f"index must be in 0..{num_classes - 1}."
        )
    return idx.to(logits.device)


def topk_targets(model: nn.Module, x: torch.Tensor, k: int = 3) -> torch.Tensor:
    """The k most likely classes of each image, best first: LongTensor (N, k) on x's device."""
    check_images(x)
    check_numbers(k=k, minimum=1, integer=True)
    with inspecting(model, what="topk_targets"), torch.no_grad():
        logits = check_logits(model(x.to(model_device(model))))
    if k > logits.shape[1]:
        raise LabError(f"k={k} but the model has only {logits.shape[1]} classes; use k <= {logits.shape[1]}.")
    return logits.topk(k, dim=1).indices.to(x.device)


def maps_for_targets(
    method: Callable[..., torch.Tensor], model: nn.Module, x: torch.Tensor, targets, **kwargs
) -> torch.Tensor:
    """Maps of `method` (`saliency`, `gradcam`, ... with `kwargs`) for K classes of every image in one pass:
    Tensor (N, K, ...); `targets`: (N, K) (e.g. `topk_targets(model, x, K)`) or K classes for every image."""
    check_images(x)
    n = x.shape[0]
    t = torch.as_tensor(targets.detach().cpu() if isinstance(targets, torch.Tensor) else np.asarray(targets))
    t = t[None, :].expand(n, -1) if t.dim() == 1 else t
    if t.dim() != 2 or t.shape[0] != n:
        raise LabError(f"targets has shape {tuple(t.shape)}; expected ({n}, K) or K class indices.")
    k = t.shape[1]
    # (N, C, H, W) -> (N*K, C, H, W): image i repeated K times, rows in the order of t.reshape(-1)
    maps = method(model, x.repeat_interleave(k, dim=0), target=t.reshape(-1).long(), **kwargs)
    return maps.reshape(n, k, *maps.shape[1:])


def class_gradient(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    layer: str | None = None,
    *,
    classes=None,
    what: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """d(target logit)/d(x), or /d(output of `layer`), in one forward and one backward pass under the
    backward rules active (`hooks.relu_backward`); the logit, as the softmax can rise by lowering other
    classes. Returns (gradient, x or the layer's output), detached, on the model's device."""
    check_images(x)
    with inspecting(model, what=what):
        # a copy that requires grad: x stays untouched, and the layer joins the graph in a frozen model
        xg = x.detach().to(model_device(model)).requires_grad_(True)
        with capture(model, [] if layer is None else [layer], detach=False) as cap:
            logits = check_logits(model(xg))
        targets = resolve_targets(target, logits, classes)
        wrt = xg if layer is None else cap.activations[cap.names[0]]  # a module called twice: its last call
        # summed over the batch: in eval mode image i's score depends on image i only
        (grad,) = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), wrt)
    return grad, wrt.detach()


class GuidedReLU(torch.autograd.Function):
    """relu(x) forward; backward relu(grad_out) * (x > 0): guided backprop's rule as one autograd function
    (lab 07 has the student write it; `guided_backprop` applies the rule to a model's ReLUs by hooks)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad_out.clamp(min=0) * (x > 0)
