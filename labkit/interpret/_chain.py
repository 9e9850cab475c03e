"""Shared plumbing of part one (filters, receptive fields, patches, deconvnet): checking inputs,
layers and channels, and finding out whether a network is a plain chain of modules up to a layer.

A "plain chain" is what Zeiler & Fergus's deconvnet and the receptive-field arithmetic need: the
modules, taken in the order they were registered, applied one after the other, give the layer's
output. That is checked, not assumed: the chain is recomputed on an input and compared with the
activation the real forward pass produces (a residual connection or an op inside `forward` makes
them differ).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, SequentialSampler

from labkit.env import LabError
from labkit.interpret.hooks import find_layer, forward_to

# Modules that change the geometry (which input pixels a unit sees).
GEOMETRIC = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
# Modules that act on each value (or each channel) on its own: no change of geometry.
POINTWISE = (
    nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.SiLU, nn.GELU, nn.ELU, nn.Tanh, nn.Sigmoid,
    nn.Hardswish, nn.Hardtanh, nn.Dropout, nn.Dropout2d, nn.Identity,
)  # fmt: skip
SUPPORTED = GEOMETRIC + POINTWISE
# Modules with a learned or fixed linear map that feeds later layers: what "conv layer" means here.
CONV = (nn.Conv2d,)


def check_images(x, what: str = "x") -> torch.Tensor:
    """A float batch (N, C, H, W), or a clear error that says how to get one."""
    if not isinstance(x, torch.Tensor):
        raise LabError(f"{what} must be a torch.Tensor of shape (N, C, H, W), not {type(x).__name__}.")
    if x.dim() != 4:
        hint = " Add the batch dimension with x.unsqueeze(0)." if x.dim() == 3 else ""
        raise LabError(f"{what} has shape {tuple(x.shape)}; expected a batch (N, C, H, W).{hint}")
    if not x.is_floating_point():
        raise LabError(
            f"{what} has dtype {x.dtype}; expected float images as the model takes them "
            "(normalised, e.g. from a Splits dataset), not uint8."
        )
    return x


def iter_batches(images, batch_size: int):
    """Yield float batches (N, C, H, W) in dataset order from a tensor, Dataset or DataLoader."""
    if isinstance(images, torch.Tensor):
        check_images(images, "images")
        for start in range(0, len(images), batch_size):
            yield images[start : start + batch_size]
        return
    if isinstance(images, DataLoader):
        if not isinstance(images.sampler, SequentialSampler):
            raise LabError(
                "images is a DataLoader that does not go through the data in order (shuffle=True or a "
                "sampler), so image indices would mean nothing; pass the Dataset, or a loader with shuffle=False."
            )
        loader = images
    elif isinstance(images, Dataset):
        loader = DataLoader(images, batch_size=batch_size, shuffle=False)
    else:
        raise LabError(f"images must be a Tensor (N, C, H, W), a Dataset or a DataLoader, not {type(images).__name__}.")
    for batch in loader:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        yield check_images(x, "a batch of images")


def model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def model_dtype(model: nn.Module) -> torch.dtype:
    param = next(model.parameters(), None)
    return param.dtype if param is not None else torch.float32


def in_channels(model: nn.Module) -> int:
    """Channels of the images the model takes: those of its first conv layer."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    raise LabError(f"{type(model).__name__} has no nn.Conv2d layer; these tools look inside CNNs.")


def conv_layers(model: nn.Module) -> list[str]:
    """Names of the `nn.Conv2d` layers of `model`, in registration order."""
    return [name for name, m in model.named_modules() if isinstance(m, CONV)]


def find_conv(model: nn.Module, layer) -> tuple[str, nn.Conv2d]:
    """Like `find_layer`, but the layer must be a conv layer; the error lists those available."""
    name, module = find_layer(model, layer)
    if not isinstance(module, CONV):
        convs = conv_layers(model)
        shown = ", ".join(repr(c) for c in convs[:10]) + (", ..." if len(convs) > 10 else "")
        raise LabError(
            f"layer {name!r} is a {type(module).__name__}, not a conv layer; filters live in conv "
            f"layers. Conv layers of this model: {shown}."
        )
    return name, module


def check_channel(name: str, n_channels: int, channel) -> int:
    """`channel` as an int in [0, n_channels), or an error naming the layer and its channel count."""
    if isinstance(channel, torch.Tensor) and channel.numel() == 1:
        channel = int(channel)
    if not isinstance(channel, int) or isinstance(channel, bool):
        raise LabError(f"channel={channel!r}: expected an int channel index of layer {name!r}.")
    if not 0 <= channel < n_channels:
        raise LabError(
            f"channel {channel} is out of range: layer {name!r} has {n_channels} channels "
            f"(0 to {n_channels - 1})."
        )
    return channel


def output_channels(model: nn.Module, layer, x: torch.Tensor) -> tuple[str, torch.Tensor]:
    """Run `model` on `x` (no grad) and return the layer's name and activation (N, C, h, w)."""
    name, _ = find_layer(model, layer)
    with torch.no_grad():
        act = forward_to(model, x, name).activations[name]
    if act.dim() != 4:
        raise LabError(
            f"layer {name!r} gives shape {tuple(act.shape)}, not feature maps (N, C, h, w); "
            "pick a convolutional layer (or the ReLU / pooling after it)."
        )
    return name, act


def _plain_forward(module: nn.Module) -> bool:
    """True when `module` is one of SUPPORTED and keeps that class's own `forward`."""
    for base in SUPPORTED:
        if isinstance(module, base):
            return type(module).forward is base.forward
    return False


def _walk(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """Leaf modules and supported modules (not looked into), in registration order."""
    for child_name, child in module.named_children():
        full = f"{prefix}{child_name}"
        # A supported class is one step even when a subclass adds children (e.g. a padding module).
        if isinstance(child, SUPPORTED) or not any(True for _ in child.children()):
            yield full, child
        else:
            yield from _walk(child, full + ".")


@dataclass
class Step:
    """One module of a plain chain and the shapes around it (from a forward pass)."""

    name: str
    module: nn.Module
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]


def modules_up_to(model: nn.Module, layer) -> tuple[str, list[tuple[str, nn.Module]]]:
    """The modules, in registration order, from the input up to `layer` (its last module when it
    is a container), supported or not."""
    name, _ = find_layer(model, layer)
    if name == "":
        raise LabError("layer='' is the whole model; name one of its layers instead.")
    walked = list(_walk(model))
    ends = [i for i, (n, _) in enumerate(walked) if n == name or n.startswith(name + ".")]
    if not ends:
        raise LabError(f"layer {name!r} holds no module this walk can follow.")
    return name, walked[: ends[-1] + 1]


def chain_modules(model: nn.Module, layer) -> tuple[str, list[tuple[str, nn.Module]]]:
    """`modules_up_to`, raising LabError when one of them is not a supported module."""
    name, steps = modules_up_to(model, layer)
    for step_name, module in steps:
        if not _plain_forward(module):
            kinds = sorted({b.__name__ for b in SUPPORTED})
            raise LabError(
                f"module {step_name!r} ({type(module).__name__}) on the way to layer {name!r} is not "
                f"supported; a plain stack may hold only {', '.join(kinds)}."
            )
    return name, steps


def plain_chain(model: nn.Module, layer, x: torch.Tensor) -> tuple[str, list[Step]]:
    """Check that `layer`'s output is the chain of modules up to it applied in order, on input `x`.

    Returns:
        (layer name, steps with the shapes seen on `x`).

    Raises:
        LabError: a module on the way is not supported, or the chain does not reproduce the
            layer's output (residual connections, ops inside `forward`, modules used in another
            order than registered).
    """
    name, modules = chain_modules(model, layer)
    _, target = output_channels(model, name, x)
    steps = []
    h = x
    with torch.no_grad():
        for step_name, module in modules:
            # Channel counts are checked first: a mismatch means the chain is not how the model
            # runs (any other error is real and propagates).
            wanted = getattr(module, "in_channels", getattr(module, "num_features", h.shape[1]))
            if h.dim() != 4 or wanted != h.shape[1]:
                raise LabError(
                    f"module {step_name!r} expects {wanted} channels but the modules before it give "
                    f"{tuple(h.shape)}: the model is not a plain chain of modules up to {name!r}."
                )
            out = module(h)
            steps.append(Step(step_name, module, tuple(h.shape), tuple(out.shape)))
            h = out
    if h.shape != target.shape or not torch.allclose(h, target, rtol=1e-4, atol=1e-5):
        raise LabError(
            f"the modules up to {name!r}, applied one after the other in registration order, do not "
            "give the layer's output: the model is not a plain chain (residual connections or "
            "operations inside forward())."
        )
    return name, steps
