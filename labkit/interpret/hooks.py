"""Hooks in one place: find layers by name, capture activations and gradients, trace every module
call of a forward pass, and override ReLU backward passes.

Introduced in notebooks/05_filters_feature_maps.ipynb. This is the only module of labkit that
registers hooks (a test checks it); each one is removed in a `finally`, so no hook is ever left
registered, also when a call raises. `preserved` (from `labkit.util`) gives back every
`train()`/`eval()` mode and `requires_grad` flag.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from labkit.core import LabError
from labkit.util import preserved

LayerRef = str | nn.Module


def find_layer(model: nn.Module, layer: LayerRef) -> tuple[str, nn.Module]:
    """Return `(name, module)` for a layer given by its `named_modules()` name or as the module.

    Raises:
        LabError: the name does not exist (the message lists close matches) or the module is not
            part of `model`.
    """
    modules = dict(model.named_modules())
    if isinstance(layer, nn.Module):
        for name, module in modules.items():
            if module is layer:
                return name, module
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


@dataclass
class Capture:
    """What `capture` recorded: activations (outputs) and, after a backward pass, their gradients."""

    names: list[str]
    activations: dict[str, torch.Tensor] = field(default_factory=dict)
    gradients: dict[str, torch.Tensor] = field(default_factory=dict)


@contextmanager
def capture(
    model: nn.Module,
    layers: LayerRef | Iterable[LayerRef],
    *,
    gradients: bool = False,
    detach: bool = True,
    stop: bool = False,
) -> Iterator[Capture]:
    """Record the outputs of `layers` during the forward passes run inside the block.

    Args:
        model: the network.
        layers: a name or module, or several.
        gradients: also record d(whatever is backpropagated)/d(output) of each layer.
        detach: store detached activations (set False to keep them in the graph, e.g. to build
            a loss on them).
        stop: raise `StopForward` as soon as every layer has been recorded, to skip the rest of
            the forward pass (use `forward_to`, which catches it).

    Yields:
        a `Capture`, keyed by layer name. Hooks are removed when the block ends, whatever happens.
    """
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    found = [find_layer(model, layer) for layer in layers]
    record = Capture(names=[name for name, _ in found])
    handles = []

    def make_hook(name: str) -> Callable:
        def hook(module, args, output):
            if not isinstance(output, torch.Tensor):
                raise LabError(f"layer {name!r} returns {type(output).__name__}, not a tensor; pick a layer with a tensor output.")
            # Detached: a copy, so that a later in-place op (ReLU(inplace=True) after a conv, as in
            # VGG and ResNet) cannot overwrite what was recorded. Not detached: the output itself,
            # so that gradients with respect to it can be taken.
            record.activations[name] = output.detach().clone() if detach else output
            if gradients and output.requires_grad:
                # A tensor hook, set here on this very output, sees the gradient that reaches the
                # layer's output even where later in-place ops would confuse a module backward hook.
                def keep(grad, name=name):
                    record.gradients[name] = grad.detach()

                output.register_hook(keep)
            if stop and all(n in record.activations for n in record.names):
                raise StopForward

        return hook

    try:
        for name, module in found:
            handles.append(module.register_forward_hook(make_hook(name)))
        yield record
    finally:
        for handle in handles:
            handle.remove()


class StopForward(Exception):
    """Raised by `capture(..., stop=True)` once every layer is recorded; `forward_to` catches it."""


def forward_to(model: nn.Module, x: torch.Tensor, layers: LayerRef | Iterable[LayerRef], *, detach: bool = True) -> Capture:
    """Run `model(x)` only as far as needed to record `layers`, and return the `Capture`.

    The rest of the forward pass (later layers, the classifier) is skipped. A layer called several
    times is recorded at its first call. With `detach=False` the activations stay in the graph, so
    gradients with respect to `x` can be taken from them.

    Raises:
        LabError: a layer was not reached by the forward pass.
    """
    with capture(model, layers, detach=detach, stop=True) as record:
        try:
            model(x)
        except StopForward:
            pass
    missing = [n for n in record.names if n not in record.activations]
    if missing:
        raise LabError(f"layers {missing} were not called in the forward pass; pick layers the model uses.")
    return record


@dataclass
class LayerCall:
    """One module call during a traced forward pass.

    Attributes:
        name: the module's name in `model.named_modules()`.
        shape: the shape of its output (() when the output is not a tensor).
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


def trace_calls(model: nn.Module, x: torch.Tensor) -> list[LayerCall]:
    """Every module call of one forward pass of `x` (eval mode, no gradients), in the order the calls
    finished. `capture` keeps one output per name and cannot tell the order of repeated calls or
    later in-place changes, which this trace records (Grad-CAM uses it to choose and check layers)."""
    order: list[tuple[str, torch.Tensor | None, int]] = []
    counts: dict[str, int] = {}

    def make_hook(name: str) -> Callable:
        def hook(module, args, output):
            counts[name] = counts.get(name, 0) + 1
            tensor = output if isinstance(output, torch.Tensor) else None
            # The version counter rises with every in-place change; compared after the pass.
            order.append((name, tensor, tensor._version if tensor is not None else 0))

        return hook

    handles = []
    with preserved(model), torch.no_grad():
        model.eval()
        try:
            for name, module in model.named_modules():
                if name:  # the model itself is not a layer
                    handles.append(module.register_forward_hook(make_hook(name)))
            model(x)
        finally:
            for handle in handles:
                handle.remove()
    return [
        LayerCall(name, tuple(out.shape) if out is not None else (), counts[name],
                  out is not None and out._version != version, out)
        for name, out, version in order
    ]  # fmt: skip


# ReLU6 (MobileNet, EfficientNet-Lite) is a clipped ReLU; it is not a subclass of nn.ReLU.
RELU_TYPES = (nn.ReLU, nn.ReLU6)


def relu_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The `nn.ReLU` and `nn.ReLU6` modules of `model` (functional `F.relu` calls cannot be
    hooked; see docs)."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, RELU_TYPES)]


@contextmanager
def relu_backward(model: nn.Module, rule: str) -> Iterator[None]:
    """Replace the backward pass of every `nn.ReLU` (and `nn.ReLU6`) inside the block.

    rule:
        "deconvnet": grad_in = relu(grad_out)  (Zeiler & Fergus 2014; ignores the forward input)
        "guided":    grad_in = relu(grad_out) * (input > 0)  (Springenberg et al. 2015)

    In-place ReLUs are switched to out-of-place for the duration (a full backward hook cannot sit on
    an in-place op) and switched back afterwards.
    """
    if rule not in ("deconvnet", "guided"):
        raise LabError(f"rule={rule!r}; use 'deconvnet' or 'guided'.")
    relus = relu_modules(model)
    inplace = [(m, m.inplace) for _, m in relus]
    handles = []

    def hook(module, grad_input, grad_output):
        # ReLU's own grad_input is grad_out * (input > 0), so its positive part is the guided rule.
        # ReLU6's grad_input is grad_out * (0 < input < 6): the same reasoning holds.
        source = grad_input[0] if rule == "guided" else grad_output[0]
        if grad_input[0] is None:  # the ReLU's input needs no gradient: nothing to replace
            return None
        return (source.clamp(min=0),)

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
