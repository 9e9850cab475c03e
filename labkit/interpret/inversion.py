"""Feature inversion (after Dosovitskiy & Brox 2016): how well a small decoder reconstructs held-out
images from one layer's activations measures what the layer has kept.

Introduced in notebooks/06_deconvnet.ipynb.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sized
from dataclasses import dataclass, field
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from labkit.core import LabError
from labkit.interpret.attribution import check_images, check_numbers, inspecting, layer_output, model_device
from labkit.interpret.filters import feature_maps
from labkit.interpret.hooks import LayerRef, find_layer


class Decoder(nn.Module):
    """Activations (N, C_l, h, w) -> image (N, C, H, W): conv, then ceil(log2(H / h)) stages of
    (x2 bilinear upsampling, 3x3 conv, ReLU), a 3x3 conv to C channels, resized to (H, W)."""

    def __init__(
        self, c_in: int, out_channels: int, in_hw: tuple[int, int], out_hw: tuple[int, int], width: int = 32
    ):
        super().__init__()
        self.out_hw = tuple(out_hw)
        n_up = max(0, math.ceil(math.log2(max(out_hw[0] / in_hw[0], out_hw[1] / in_hw[1], 1))))
        layers: list[nn.Module] = [nn.Conv2d(c_in, width, 3, padding=1), nn.ReLU()]
        for _ in range(n_up):
            up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
            layers += [up, nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
        layers.append(nn.Conv2d(width, out_channels, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        y = self.body(a)
        if tuple(y.shape[2:]) != self.out_hw:
            y = F.interpolate(y, size=self.out_hw, mode="bilinear", align_corners=False)
        return y


def relative_error(reconstruction: torch.Tensor, x: torch.Tensor) -> float:
    """mean((reconstruction - x)**2) / mean((x - per-channel mean of x)**2): 0 perfect, 1 the mean image."""
    spread = (x - x.mean(dim=(0, 2, 3), keepdim=True)).pow(2).mean()
    return float((reconstruction - x).pow(2).mean() / spread.clamp(min=1e-12))


def _as_tensor(images, what: str) -> torch.Tensor:
    if isinstance(images, Dataset):
        items = [images[i] for i in range(len(cast(Sized, images)))]
        images = torch.stack([it[0] if isinstance(it, (tuple, list)) else it for it in items])
    if len(check_images(images, what)) == 0:
        raise LabError(f"{what} is empty; pass at least one image.")
    return images


@dataclass
class Inversion:
    """A decoder (eval mode) trained to invert `layer`, its training loss per epoch and its relative
    error on the test images (None without them)."""

    layer: str
    decoder: Decoder
    train_loss: list[float] = field(default_factory=list)
    test_error: float | None = None

    def reconstruct(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Decode the activations of x (N, C, H, W) at `layer`: Tensor like x."""
        acts = feature_maps(model, x, self.layer)[self.layer]
        with torch.no_grad():
            return self.decoder(acts.to(next(self.decoder.parameters()).device)).to(x.device)


def train_inversion(
    model: nn.Module,
    layer: LayerRef,
    images,
    *,
    test_images=None,
    epochs: int = 20,
    batch_size: int = 32,
    lr: float = 2e-3,
    width: int = 32,
    seed: int = 0,
) -> Inversion:
    """Train a decoder (`width` channels; Adam on the mean squared error) from `layer`'s activations back
    to `images`, and measure it on `test_images` (Tensors (N, C, H, W) or Datasets of (x, target));
    `seed` sets its initialisation and the batch order, not the global random state."""
    name, _ = find_layer(model, layer)
    check_numbers(epochs=epochs, batch_size=batch_size, width=width, minimum=1, integer=True)
    x = _as_tensor(images, "images")
    device = model_device(model)
    with inspecting(model), torch.no_grad():
        acts = layer_output(model, x.to(device), name)  # (N, C_l, h, w)
    target = x.to(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        in_hw, out_hw = (acts.shape[2], acts.shape[3]), (x.shape[2], x.shape[3])
        decoder = Decoder(acts.shape[1], x.shape[1], in_hw, out_hw, width).to(device)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(decoder.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size].to(device)
            loss = F.mse_loss(decoder(acts[idx]), target[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(x))
    decoder.eval().requires_grad_(False)
    inversion = Inversion(name, decoder, losses)
    if test_images is not None:
        xt = _as_tensor(test_images, "test_images")
        inversion.test_error = relative_error(inversion.reconstruct(model, xt), xt)
    return inversion


def invert_layers(
    model: nn.Module, layers: Iterable[LayerRef], images, test_images, **kwargs
) -> dict[str, Inversion]:
    """`train_inversion` (with `kwargs`) for each layer: {layer name: Inversion}."""
    trained = [train_inversion(model, layer, images, test_images=test_images, **kwargs) for layer in layers]
    return {inversion.layer: inversion for inversion in trained}
