"""Hooks in one place (a test checks that no other module registers one), each removed in a `finally`:
layers by name, captured activations and gradients, traced module calls, ReLU backward rules.

Introduced in notebooks/05_filters_feature_maps.ipynb.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import nn

from labkit.core import LabError
from labkit.util import preserved

LayerRef = str | nn.Module
RELU_TYPES = (nn.ReLU, nn.ReLU6)  # ReLU6 (MobileNet, EfficientNet-Lite) is no nn.ReLU subclass


def find_layer(model: nn.Module, layer: LayerRef) -> tuple[str, nn.Module]:
    """`(name, module)` of a layer given by its `model.named_modules()` name or as the module."""
    modules = dict(model.named_modules())
    if isinstance(layer, nn.Module):
        names = [name for name, module in modules.items() if module is layer]
        if names:
            return names[0], layer
        raise LabError(f"the module {type(layer).__name__} passed as layer is not part of this model.")
    if not isinstance(layer, str):
        raise LabError(f"layer must be a module name (str) or an nn.Module, not {type(layer).__name__}.")
    if layer in modules:
        return layer, modules[layer]
    names = [n for n in modules if n]
    close = difflib.get_close_matches(layer, names, n=5, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    shown = ", ".join(repr(n) for n in names[:12]) + (", ..." if len(names) > 12 else "")
    raise LabError(
        f"layer {layer!r} does not exist in {type(model).__name__}.{hint} "
        f"Names come from model.named_modules(): {shown}"
    )


@contextmanager
def _forward_hooks(modules: Iterable[tuple[str, nn.Module]], hook: Callable) -> Iterator[None]:
    """`hook(name, module, args, output)` on each of `modules` (name, module) for the block."""
    handles = []
    try:
        for name, module in modules:
            handles.append(module.register_forward_hook(partial(hook, name)))
        yield
    finally:
        for handle in handles:
            handle.remove()


@dataclass
class Capture:
    """What `capture` recorded, by layer name: outputs and, after a backward pass, their gradients."""

    names: list[str]
    activations: dict[str, torch.Tensor] = field(default_factory=dict)
    gradients: dict[str, torch.Tensor] = field(default_factory=dict)


class StopForward(Exception):
    """Raised by `capture(..., stop=True)` once every layer is recorded; `forward_to` catches it."""


@contextmanager
def capture(
    model: nn.Module,
    layers: LayerRef | Iterable[LayerRef],
    *,
    gradients: bool = False,
    detach: bool = True,
    stop: bool = False,
) -> Iterator[Capture]:
    """Record in a `Capture` the outputs of `layers` (a name or module, or several) in the block's forward
    passes, as detached copies (`detach=False`: the outputs themselves, to build a loss on), and with
    `gradients` what a backward pass sends them; with `stop`, `StopForward` once all are recorded."""
    layers = [layers] if isinstance(layers, (str, nn.Module)) else layers
    found = [find_layer(model, layer) for layer in layers]
    record = Capture(names=[name for name, _ in found])

    def hook(name: str, module, args, output):
        if not isinstance(output, torch.Tensor):
            raise LabError(f"layer {name!r} returns {type(output).__name__}, not a tensor.")
        # A copy: a later in-place op (ReLU(inplace=True) in VGG, ResNet) cannot overwrite it.
        record.activations[name] = output.detach().clone() if detach else output
        if gradients and output.requires_grad:
            # a hook on this very tensor: later in-place ops would confuse a module backward hook
            output.register_hook(lambda grad: record.gradients.update({name: grad.detach()}))
        if stop and all(n in record.activations for n in record.names):
            raise StopForward

    with _forward_hooks(found, hook):
        yield record


def forward_to(
    model: nn.Module, x: torch.Tensor, layers: LayerRef | Iterable[LayerRef], *, detach: bool = True
) -> Capture:
    """Run `model(x)` only as far as needed to record `layers` (at their first call): their `Capture`;
    with `detach=False` the activations stay in x's graph."""
    with capture(model, layers, detach=detach, stop=True) as record, suppress(StopForward):
        model(x)
    missing = [n for n in record.names if n not in record.activations]
    if missing:
        raise LabError(f"layers {missing} were not called in the forward pass; pick layers the model uses.")
    return record


@dataclass
class LayerCall:
    """One module call of a traced forward pass: the module's name, its output's shape (() when not a
    tensor), the module's calls in the pass, whether an in-place op (ReLU, `+=`) changed the output later."""

    name: str
    shape: tuple[int, ...]
    calls: int
    changed_later: bool
    output: torch.Tensor | None = field(default=None, repr=False)


def trace_calls(model: nn.Module, x: torch.Tensor) -> list[LayerCall]:
    """Every module call of one forward pass of `x` (eval mode, no gradients), in the order the calls
    finished; unlike `capture` it sees repeated calls and later in-place changes (Grad-CAM uses it)."""
    order: list[tuple[str, torch.Tensor | None, int]] = []
    counts: dict[str, int] = {}

    def hook(name: str, module, args, output):
        counts[name] = counts.get(name, 0) + 1
        out = output if isinstance(output, torch.Tensor) else None
        order.append((name, out, getattr(out, "_version", 0)))  # it rises with every in-place change

    layers = [(name, module) for name, module in model.named_modules() if name]  # not the model itself
    with preserved(model), torch.no_grad(), _forward_hooks(layers, hook):
        model.eval()
        model(x)
    return [
        LayerCall(n, tuple(getattr(out, "shape", ())), counts[n], getattr(out, "_version", 0) != v, out)
        for n, out, v in order
    ]


def relu_modules(model: nn.Module) -> list[tuple[str, nn.ReLU | nn.ReLU6]]:
    """The `nn.ReLU` and `nn.ReLU6` modules of `model` (functional `F.relu` calls cannot be hooked)."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, RELU_TYPES)]


@contextmanager
def relu_backward(model: nn.Module, rule: str) -> Iterator[None]:
    """Inside the block, every `nn.ReLU`/`nn.ReLU6` backward follows `rule`: "deconvnet", relu(grad_out)
    (Zeiler & Fergus 2014), or "guided", relu(grad_out) * (input > 0) (Springenberg et al. 2015); in-place
    ReLUs run out of place (a full backward hook cannot sit on an in-place op)."""
    if rule not in ("deconvnet", "guided"):
        raise LabError(f"rule={rule!r}; use 'deconvnet' or 'guided'.")
    inplace = [(m, m.inplace) for _, m in relu_modules(model)]
    handles = []

    def hook(module, grad_input, grad_output):
        # guided: ReLU's own grad_input, grad_out * (input > 0) (ReLU6's: 0 < input < 6), made positive
        if grad_input[0] is None:  # the input needs no gradient: nothing to replace
            return None
        return ((grad_input[0] if rule == "guided" else grad_output[0]).clamp(min=0),)

    try:
        for module, _ in inplace:
            module.inplace = False
            handles.append(module.register_full_backward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()
        for module, flag in inplace:
            module.inplace = flag
