"""Which class a gradient map explains: resolving `target`, top-k classes, and the shared forward step.

Introduced in notebooks/07_gradcam.ipynb. Every gradient method of part two (`saliency`,
`guided_backprop`, `gradcam`, `guided_gradcam`, `class_model`) reads `target` the same way:

- `None`: the class the model predicts for each image (argmax of the logits);
- an int: that class for every image;
- a class name (str) when `classes` is given (e.g. `labkit.models.imagenet_classes()`);
- a list / 1-D array / 1-D tensor of N ints or names: one class per image.

A class index outside 0..C-1 raises `LabError` naming the range before any gradient is computed.

Maps for several classes of the same images (the top-k, or a fixed list) come from
`maps_for_targets(method, model, x, targets)` with `targets` of shape (N, K), e.g. from
`topk_targets(model, x, k)`: the images are repeated K times and explained in ONE batched pass.

Models in training mode: dropout would make maps random and batch-norm would use (and update!)
batch statistics, so these methods always compute in eval mode. A model found in training mode is
switched to eval mode for the call only (inside `hooks.preserved`, which gives every module its mode
back) and a `UserWarning` says so; call `model.eval()` first to silence it.
"""

from __future__ import annotations

import difflib
import inspect
import os
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from labkit.env import LabError

_HERE = os.path.dirname(os.path.abspath(__file__))
Target = int | str | Sequence[int] | Sequence[str] | np.ndarray | torch.Tensor | None


def check_images(x: torch.Tensor, what: str = "x") -> torch.Tensor:
    """Check that `x` is a float batch (N, C, H, W); raise a LabError that says how to fix it otherwise."""
    if not isinstance(x, torch.Tensor):
        raise LabError(f"{what} must be a torch.Tensor of shape (N, C, H, W), not {type(x).__name__}.")
    if x.dim() == 3:
        raise LabError(f"{what} has shape {tuple(x.shape)}: one image; pass a batch, e.g. {what}.unsqueeze(0).")
    if x.dim() != 4:
        raise LabError(f"{what} has shape {tuple(x.shape)}; expected a batch of images (N, C, H, W).")
    if not x.is_floating_point():
        raise LabError(
            f"{what} has dtype {x.dtype}; expected normalised float images as the model takes them "
            f"(e.g. splits.normalize(images.float() / 255))."
        )
    return x


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (cpu for a model with neither)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def eval_for_attribution(model: nn.Module, what: str) -> None:
    """Put `model` in eval mode, warning when it was training. Call inside `hooks.preserved`."""
    if any(m.training for m in model.modules()):
        # Point the warning at the caller's line, outside labkit.interpret.
        frame, level = inspect.currentframe(), 1
        while frame is not None and frame.f_code.co_filename.startswith(_HERE):
            frame, level = frame.f_back, level + 1
        warnings.warn(
            f"{what}: the model is in training mode; computing in eval mode (no dropout, batch-norm "
            "running statistics) for this call and giving it back in training mode. Call model.eval() "
            "first to silence this warning.",
            UserWarning,
            stacklevel=level,
        )
    model.eval()


def check_logits(logits: torch.Tensor) -> torch.Tensor:
    """Check that the model returned class scores (N, num_classes)."""
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
    if name in classes:
        return classes.index(name)
    lower = [c.lower() for c in classes]
    if name.lower() in lower:
        return lower.index(name.lower())
    partial = [i for i, c in enumerate(lower) if name.lower() in c]
    if len(partial) == 1:
        return partial[0]
    close = difflib.get_close_matches(name, classes, n=5, cutoff=0.5)
    if len(partial) > 1:
        close = [classes[i] for i in partial[:5]]
    hint = f" Close: {', '.join(repr(c) for c in close)}." if close else ""
    raise LabError(f"class name {name!r} is not one of the {len(classes)} classes (or is ambiguous).{hint}")


def resolve_targets(
    target: Target, logits: torch.Tensor, classes: Sequence[str] | None = None
) -> torch.Tensor:
    """Turn `target` into one class index per image.

    Args:
        target: None (predicted class), an int or class name (all images), or N of them.
        logits: the model's output (N, num_classes) for the batch, used for `None` and the range check.
        classes: class names, needed only when `target` holds names.

    Returns:
        LongTensor (N,) on the device of `logits`.

    Raises:
        LabError: a class index outside 0..num_classes-1, an unknown name, or N targets that do not
            match N images.
    """
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
            items = list(target)
            if any(isinstance(t, str) for t in items):
                items = [class_index(t, classes) if isinstance(t, str) else t for t in items]
            values = torch.as_tensor(np.asarray(items))
        if values.dim() == 0:
            values = values.reshape(1).expand(n)
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


def selected_scores(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The sum over the batch of each image's target logit (unnormalised class score).

    Summing is what lets one backward pass serve N images: in eval mode image i's score depends on
    image i only, so d(sum)/d(x_i) = d(score_i)/d(x_i).
    """
    return logits.gather(1, targets[:, None]).sum()


def topk_targets(model: nn.Module, x: torch.Tensor, k: int = 3) -> torch.Tensor:
    """The k most likely classes of each image, best first.

    Args:
        model: a classifier returning logits (N, num_classes).
        x: images (N, C, H, W) as the model takes them.
        k: how many classes (1 <= k <= num_classes).

    Returns:
        LongTensor (N, k); pass it to `maps_for_targets`, or a column of it as `target`.
    """
    from labkit.interpret.hooks import preserved

    check_images(x)
    if not isinstance(k, int) or k < 1:
        raise LabError(f"k={k!r}: expected a positive int.")
    with preserved(model), torch.no_grad():
        eval_for_attribution(model, "topk_targets")
        logits = check_logits(model(x.to(model_device(model))))
    if k > logits.shape[1]:
        raise LabError(f"k={k} but the model has only {logits.shape[1]} classes; use k <= {logits.shape[1]}.")
    return logits.topk(k, dim=1).indices.to(x.device)


def maps_for_targets(
    method: Callable[..., torch.Tensor],
    model: nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor | Sequence[int],
    **kwargs,
) -> torch.Tensor:
    """Maps of `method` for K classes of every image, in one batched pass.

    Args:
        method: `saliency`, `guided_backprop`, `gradcam` or `guided_gradcam`.
        model: the classifier.
        x: images (N, C, H, W).
        targets: LongTensor (N, K) of classes per image (e.g. `topk_targets(model, x, K)`), or a
            sequence of K class indices used for every image.
        **kwargs: passed to `method` (e.g. `layer=` for Grad-CAM).

    Returns:
        Tensor (N, K, ...) where `...` is what `method` returns per image: maps[i, j] explains class
        targets[i, j] of image i.

    Example:
        >>> top = topk_targets(model, x, 3)
        >>> cams = maps_for_targets(gradcam, model, x, top)   # (N, 3, H, W)
    """
    check_images(x)
    n = x.shape[0]
    t = torch.as_tensor(targets.detach().cpu() if isinstance(targets, torch.Tensor) else np.asarray(targets))
    if t.dim() == 1:
        t = t[None, :].expand(n, -1)
    if t.dim() != 2 or t.shape[0] != n:
        raise LabError(f"targets has shape {tuple(t.shape)}; expected (N, K) with N = {n}, or K class indices.")
    k = t.shape[1]
    # (N, C, H, W) -> (N*K, C, H, W): image i repeated K times, rows in the order of t.reshape(-1).
    maps = method(model, x.repeat_interleave(k, dim=0), target=t.reshape(-1).long(), **kwargs)
    return maps.reshape(n, k, *maps.shape[1:])
