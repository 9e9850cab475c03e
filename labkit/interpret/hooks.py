"""Hooks in one place: find layers by name, capture activations and gradients, override ReLU
backward passes, and always give the model back as it was found.

Introduced in notebooks/05_filters_feature_maps.ipynb. Every `labkit.interpret` function goes
through here, so that no hook is ever left registered and no `train()`/`eval()` mode or
`requires_grad` flag of the caller's model is changed after a call, also when it raises.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from labkit.env import LabError

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


@contextmanager
def preserved(model: nn.Module, inputs: Iterable[torch.Tensor] = ()) -> Iterator[nn.Module]:
    """Give back `model` (every module's train/eval mode, every parameter's `requires_grad`) and
    the `requires_grad` of `inputs` exactly as they were, however the block ends."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    input_flags = [(t, t.requires_grad) for t in inputs if isinstance(t, torch.Tensor) and t.is_leaf]
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
        for param, flag in flags:
            param.requires_grad_(flag)
        for tensor, flag in input_flags:
            tensor.requires_grad_(flag)


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
