"""Receptive fields: which input pixels a unit sees, as boxes `(top, left, bottom, right)`, bottom and
right exclusive, by a walk of a plain conv/pool stack one axis at a time (exact, at the borders too) or,
in any network, the support of a unit's gradient in a twin of the network with only positive paths.

Introduced in notebooks/05_filters_feature_maps.ipynb.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

from labkit.core import LabError
from labkit.interpret.attribution import check_choice, in_channels, inspecting, layer_output, model_device
from labkit.interpret.hooks import LayerRef, find_layer, forward_to

Box = tuple[int, int, int, int]
Pair = tuple[int, int]
GEOMETRIC = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)  # modules that change which pixels a unit sees
POINTWISE: tuple[type[nn.Module], ...] = (nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.SiLU, nn.GELU)
POINTWISE += (nn.ELU, nn.Tanh, nn.Sigmoid, nn.Hardswish, nn.Hardtanh, nn.Dropout, nn.Dropout2d, nn.Identity)
SUPPORTED = GEOMETRIC + POINTWISE


@dataclass
class Step:
    """One module of a plain chain, with the shapes around it on a forward pass."""

    name: str
    module: nn.Module
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]


def _walk(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """Leaf modules and supported modules (not looked into), in registration order."""
    for child_name, child in module.named_children():
        full = f"{prefix}{child_name}"
        # a supported class is one step even when a subclass adds children (e.g. a padding module)
        if isinstance(child, SUPPORTED) or not any(True for _ in child.children()):
            yield full, child
        else:
            yield from _walk(child, full + ".")


def modules_up_to(model: nn.Module, layer: LayerRef) -> tuple[str, list[tuple[str, nn.Module]]]:
    """The layer's name and the modules from the input up to it (its last one, for a container)."""
    name, _ = find_layer(model, layer)
    if name == "":
        raise LabError("layer='' is the whole model; name one of its layers instead.")
    walked = list(_walk(model))
    ends = [i for i, (n, _) in enumerate(walked) if n == name or n.startswith(name + ".")]
    if not ends:
        raise LabError(f"layer {name!r} holds no module this walk can follow.")
    return name, walked[: ends[-1] + 1]


def plain_chain(model: nn.Module, layer: LayerRef, x: torch.Tensor) -> tuple[str, list[Step]]:
    """(layer name, steps with their shapes on x), once the modules up to `layer` are checked to be
    supported (their class's own forward) and, applied one after the other, to give its output on x."""
    name, modules = modules_up_to(model, layer)
    for step_name, module in modules:
        if not any(isinstance(module, b) and type(module).forward is b.forward for b in SUPPORTED):
            kinds = ", ".join(sorted({b.__name__ for b in SUPPORTED}))
            raise LabError(
                f"module {step_name!r} ({type(module).__name__}) on the way to layer {name!r} is not "
                f"supported; a plain stack may hold only {kinds}."
            )
    steps, h = [], x
    with torch.no_grad():
        target = layer_output(model, x, name)
        for step_name, module in modules:
            # a channel mismatch means the chain is not how the model runs (other errors are real)
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


def _pair(value) -> Pair:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def geometry(module: nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d) -> tuple[Pair, Pair, Pair, Pair]:
    """(kernel, stride, padding before, dilation) of a conv or pooling module, per axis."""
    kernel, padding = _pair(module.kernel_size), module.padding
    if isinstance(module, nn.Conv2d):
        if module.padding_mode != "zeros":
            raise LabError(
                f"conv with padding_mode={module.padding_mode!r} is not supported (its border pixels "
                "come from the other side or are repeated); use padding_mode='zeros'."
            )
        if padding == "valid":
            padding = 0
        elif padding == "same":  # torch pads d * (k - 1) in all, the smaller half first
            padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, _pair(module.dilation)))
    stride = _pair(module.stride if module.stride is not None else module.kernel_size)
    return kernel, stride, _pair(padding), _pair(getattr(module, "dilation", 1))  # AvgPool2d: no dilation


def _span(seen: torch.Tensor) -> Pair:
    """The first and one past the last True of a bool vector; (0, 0) for none (a unit seeing only padding)."""
    where = seen.nonzero().flatten()
    return (int(where[0]), int(where[-1]) + 1) if where.numel() else (0, 0)


def _support(steps: list[Step], axis: int, unit: int) -> Pair:
    """Follow one axis from `unit` down to the input: the span of input positions it sees."""
    seen = torch.zeros(steps[-1].out_shape[2 + axis], dtype=torch.bool)
    seen[unit] = True
    for step in reversed(steps):
        if not isinstance(step.module, GEOMETRIC):
            continue
        kernel, stride, pad, dil = (g[axis] for g in geometry(step.module))
        n_in = step.in_shape[2 + axis]
        below = torch.zeros(n_in, dtype=torch.bool)
        units = seen.nonzero().flatten()
        for t in range(kernel):
            taps = units * stride - pad + dil * t
            below[taps[(taps >= 0) & (taps < n_in)]] = True  # outside the map: padding, feeds nothing
        seen = below
    return _span(seen)


def _geometry_twin(model: nn.Module) -> nn.Module:
    """A copy in which a pixel reaches a unit by a positive weight exactly when it does in `model`: convs
    and max-pools average their windows (1 / fan-in keeps float32 values near 1), pointwise modules go."""
    twin = copy.deepcopy(model).float().eval().requires_grad_(False)
    for name, module in list(twin.named_modules()):
        replacement: nn.Module | None = None
        if isinstance(module, nn.Conv2d):
            with torch.no_grad():
                module.weight.fill_(1.0 / module.weight[0].numel())
                if module.bias is not None:
                    module.bias.zero_()
        elif isinstance(module, nn.MaxPool2d):
            kernel, stride, pad, dil = geometry(module)
            if dil != (1, 1):
                raise LabError(
                    f"max-pool {name!r} is dilated; method='gradient' cannot model it, use method='walk'."
                )
            replacement = nn.AvgPool2d(kernel, stride, pad, ceil_mode=module.ceil_mode)
        elif isinstance(module, POINTWISE):
            replacement = nn.Identity()
        if replacement is not None and name:
            parent_name, _, child = name.rpartition(".")
            setattr(twin.get_submodule(parent_name), child, replacement)
    return twin


def gradient_support_boxes(
    model: nn.Module, layer: LayerRef, input_size: Pair, units: list[Pair], *, twin: nn.Module | None = None
) -> list[Box]:
    """Bounding boxes of the input pixels on which units (y, x) of `layer`'s first channel depend, from
    the gradient of the geometry twin, in one batched backward pass."""
    name, _ = find_layer(model, layer)
    twin = _geometry_twin(model) if twin is None else twin
    n, c = len(units), in_channels(model)
    x = torch.ones(n, c, *input_size, device=model_device(model), requires_grad=True)
    act = forward_to(twin, x, name, detach=False).activations[name]  # (U, C, h, w)
    ys, xs = torch.tensor([u[0] for u in units]), torch.tensor([u[1] for u in units])
    (grad,) = torch.autograd.grad(act[torch.arange(n), 0, ys, xs].sum(), x)
    spans = [(_span(g.any(1)), _span(g.any(0))) for g in grad.abs().sum(1) != 0]  # (H, W) per unit
    return [(top, left, bottom, right) for (top, bottom), (left, right) in spans]


@dataclass
class ReceptiveField:
    """The receptive field of the units of `layer` for images of `input_size` (H, W): the layer's
    `output_size` (h, w), the `size` (rows, cols) a unit spans away from the borders, the `jump` in
    input pixels between neighbouring units, the `method` ("walk" or "gradient")."""

    layer: str
    input_size: Pair
    output_size: Pair
    size: Pair
    jump: Pair
    method: str
    _model: nn.Module = field(repr=False)
    _steps: list[Step] | None = field(default=None, repr=False)  # the walk's; None for "gradient"
    _twin: nn.Module | None = field(default=None, repr=False)

    def box(self, y: int, x: int) -> Box:
        """The (top, left, bottom, right) box of unit (y, x), clipped to the image, bottom/right exclusive."""
        return self.boxes([(y, x)])[0]

    def boxes(self, units: list[Pair]) -> list[Box]:
        """The boxes of several units (y, x)."""
        units = [(int(y), int(x)) for y, x in units]
        h, w = self.output_size
        for y, x in units:
            if not (0 <= y < h and 0 <= x < w):
                raise LabError(f"unit ({y}, {x}) is outside layer {self.layer!r}'s {h}x{w} feature map.")
        if self._steps is None:
            return gradient_support_boxes(self._model, self.layer, self.input_size, units, twin=self._twin)
        spans = [(_support(self._steps, 0, y), _support(self._steps, 1, x)) for y, x in units]
        return [(top, left, bottom, right) for (top, bottom), (left, right) in spans]


def receptive_field(
    model: nn.Module, layer: LayerRef, input_size: Pair | int, *, method: str = "auto"
) -> ReceptiveField:
    """The receptive field of `layer`'s units for images of `input_size` ((H, W), or an int), by `method`
    "walk" (plain stacks of conv, pooling, batch-norm, activation, dropout), "gradient" (any network) or
    "auto" (the walk where it applies); `.box(y, x)` gives a unit's box."""
    check_choice("method", method, ("auto", "walk", "gradient"))
    size = _pair(input_size) if isinstance(input_size, int) else tuple(input_size)
    if len(size) != 2 or any(not isinstance(s, int) or s < 1 for s in size):
        raise LabError(f"input_size={input_size!r}: expected (H, W) positive ints or one int.")
    name, _ = find_layer(model, layer)
    probe = torch.randn(1, in_channels(model), *size, device=model_device(model))
    with inspecting(model):
        if method in ("auto", "walk"):
            try:
                name, steps = plain_chain(model, name, probe)
            except LabError:
                if method == "walk":
                    raise
            else:
                jump, extent = [1, 1], [1, 1]
                for step in steps:
                    if isinstance(step.module, GEOMETRIC):
                        kernel, stride, _, dil = geometry(step.module)
                        for a in range(2):
                            extent[a] += dil[a] * (kernel[a] - 1) * jump[a]
                            jump[a] *= stride[a]
                out = _pair(steps[-1].out_shape[2:])
                return ReceptiveField(name, size, out, _pair(extent), _pair(jump), "walk", model, steps)
        twin = _geometry_twin(model)
        with torch.no_grad():
            out = _pair(forward_to(twin, probe, name).activations[name].shape[2:])
        center = [(out[0] // 2, out[1] // 2)]
        (top, left, bottom, right), *_ = gradient_support_boxes(model, name, size, center, twin=twin)
        steps_apart = (max(1, round(size[0] / out[0])), max(1, round(size[1] / out[1])))
        extents = (bottom - top, right - left)
        return ReceptiveField(name, size, out, extents, steps_apart, "gradient", model, _twin=twin)


def receptive_field_error(
    model: nn.Module, layer: LayerRef, input_size: Pair | int, *, n_units: int = 8, seed: int = 0
) -> int:
    """The largest difference, in pixels, between the walked boxes and the gradient boxes of the four
    corner units of `layer` and `n_units` random ones: 0 when the walk is exact."""
    rf = receptive_field(model, layer, input_size, method="walk")
    h, w = rf.output_size
    rng = random.Random(seed)
    units = [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1)]
    units += [(rng.randrange(h), rng.randrange(w)) for _ in range(n_units)]
    with inspecting(model):
        grads = gradient_support_boxes(model, rf.layer, rf.input_size, units)
    return max(abs(a - b) for g, wk in zip(grads, rf.boxes(units)) for a, b in zip(g, wk))


def receptive_field_table(model: nn.Module, input_size: Pair | int) -> pd.DataFrame:
    """One row per conv and pooling layer: its output, jump, rf_size, central unit's box, method."""
    rows = []
    for layer in [n for n, m in model.named_modules() if isinstance(m, GEOMETRIC)]:
        rf = receptive_field(model, layer, input_size)
        (h, w), kind = rf.output_size, type(find_layer(model, rf.layer)[1]).__name__
        row = dict(layer=rf.layer, type=kind, output=f"{h}x{w}", jump=rf.jump[0], rf_size=rf.size[0])
        rows.append(dict(row, center_box=rf.box(h // 2, w // 2), method=rf.method))
    return pd.DataFrame(rows)
