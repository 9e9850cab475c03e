"""Small pieces every part of labkit shares: ImageNet statistics and photo batches, where a model lives
and giving it back as it was found, and the network probe.

This module imports nothing else from labkit, so any module may use it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from urllib.parse import urlparse

import torch
from torch import nn

# The normalisation every ImageNet-pretrained network of the series expects (RGB in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _imagenet_stats(like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (1, 3, 1, 1) if like.dim() == 4 else (3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN, dtype=like.dtype, device=like.device).view(shape)
    return mean, torch.tensor(IMAGENET_STD, dtype=like.dtype, device=like.device).view(shape)


def imagenet_denormalize(x: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalised images (N, 3, H, W) or (3, H, W) -> RGB in [0, 1] on the CPU, for display."""
    x = x.detach().cpu().float()
    mean, std = _imagenet_stats(x)
    return (x * std + mean).clamp(0, 1)


def imagenet_batch(
    images: Mapping[str, torch.Tensor] | Iterable[torch.Tensor] | torch.Tensor,
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """Photos as an ImageNet-pretrained network takes them, and the function that undoes it.

    Introduced in notebooks/04_transfer_learning.ipynb; labs 05-08 show their photos the same way.

    Args:
        images: RGB images, uint8 (0..255) or float in [0, 1]: {name: (3, S, S)} as
            `labkit.data.photos` gives them, a list of (3, H, W), or a batch (N, 3, H, W).
        device: where the batch goes (None: the CPU).

    Returns:
        (float batch (N, 3, H, W) normalised with IMAGENET_MEAN/STD, `imagenet_denormalize`).

    Example:
        >>> x, denormalize = imagenet_batch(labkit.data.photos(["chelsea"]), lab.device)
    """
    if isinstance(images, Mapping):
        images = list(images.values())
    batch = images if isinstance(images, torch.Tensor) else torch.stack(list(images))
    batch = batch[None] if batch.dim() == 3 else batch
    batch = batch.float() / 255 if batch.dtype == torch.uint8 else batch.float()
    mean, std = _imagenet_stats(batch)
    return ((batch - mean) / std).to(device or "cpu"), imagenet_denormalize


def model_device(model: nn.Module) -> torch.device:
    """Where the model's first parameter (or buffer) lives; the CPU for a model with neither."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextmanager
def preserved(model: nn.Module, inputs: Iterable[torch.Tensor] = ()) -> Iterator[nn.Module]:
    """Give back every module's train/eval mode, every parameter's `requires_grad`, and the
    `requires_grad` of the leaf tensors `inputs`, exactly as they were, however the block ends.

    `model.train(previous)` would not do: it sets every submodule alike, and would wake up a
    batch-norm layer the caller had put in eval mode on purpose.
    """
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    input_flags = [(t, t.requires_grad) for t in inputs if isinstance(t, torch.Tensor) and t.is_leaf]
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
        for tensor, flag in flags + input_flags:
            tensor.requires_grad_(flag)


def offline() -> bool:
    """True when the LABKIT_OFFLINE environment variable is set (to anything but "" or "0")."""
    return os.environ.get("LABKIT_OFFLINE", "").strip() not in ("", "0")


def network_available(url: str, timeout: float = 3.0) -> bool:
    """True when a TCP connection to the host of `url` (or to the bare host name, on port 443) opens
    within `timeout` seconds; always False when `offline()`, without trying."""
    if offline():
        return False
    parsed = urlparse(url if "//" in url else f"https://{url}")
    port = parsed.port or (80 if parsed.scheme == "http" else 443)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "imagenet_batch",
    "imagenet_denormalize",
    "model_device",
    "network_available",
    "offline",
    "preserved",
]
