"""Small pieces every part of labkit shares: ImageNet statistics and photo batches, where a model lives
and giving it back as it was found, and the network probe. It imports nothing else from labkit."""

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
    """Photos as an ImageNet-pretrained network takes them: (float batch (N, 3, H, W) normalised with
    IMAGENET_MEAN/STD, on `device` or the CPU; `imagenet_denormalize`, which undoes it).

    Introduced in notebooks/04_transfer_learning.ipynb. `images`: RGB, uint8 or float in [0, 1], as
    {name: (3, S, S)} (what `labkit.data.photos` gives), a list of (3, H, W) or a batch (N, 3, H, W).
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

    Not `model.train(previous)`: that sets every submodule alike, waking a batch-norm layer the caller
    had put in eval mode on purpose.
    """
    modes = [(m, m.training) for m in model.modules()]
    flags: list[tuple[torch.Tensor, bool]] = [(p, p.requires_grad) for p in model.parameters()]
    flags += [(t, t.requires_grad) for t in inputs if isinstance(t, torch.Tensor) and t.is_leaf]
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
        for tensor, flag in flags:
            tensor.requires_grad_(flag)


def offline() -> bool:
    """True when the LABKIT_OFFLINE environment variable is set (to anything but "" or "0")."""
    return os.environ.get("LABKIT_OFFLINE", "").strip() not in ("", "0")


def network_available(url: str, timeout: float = 3.0) -> bool:
    """True when a TCP connection to the host of `url` (or a bare host name, on port 443) opens within
    `timeout` seconds; always False when `offline()`, without trying."""
    if offline():
        return False
    parsed = urlparse(url if "//" in url else f"https://{url}")
    port = parsed.port or (80 if parsed.scheme == "http" else 443)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False
