"""Receptive fields: which input pixels a unit of a conv/pool stack can see.

Introduced in notebooks/05_filters_feature_maps.ipynb.

The exact box is found by walking the modules in order from the input up to the layer and, along
each image axis, following which positions feed which (kernel taps at `u * stride - padding +
dilation * t`, positions outside the map are padding and feed nothing). Walking one axis at a time
is enough because every kernel is a full rectangle. The result is exact at the borders too, where
padding cuts the field short, and with dilation.

`method="gradient"` works for any network (residual connections too): a copy of the network whose
convs average their windows (all weights equal and positive), with batch-norm and activations replaced by identities and max-pooling by
average pooling over the same windows, is differentiated; the box is the bounding box of the input
pixels where the gradient of the unit is not zero.

Boxes are `(top, left, bottom, right)` in input pixels, bottom and right exclusive, so
`image[:, top:bottom, left:right]` is the patch.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from labkit.core import LabError
from labkit.interpret.attribution import in_channels, inspecting, layer_output, model_device
from labkit.interpret.hooks import LayerRef, find_layer, forward_to

Box = tuple[int, int, int, int]
# Modules that change the geometry (which input pixels a unit sees).
GEOMETRIC = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
# Modules that act on each value (or each channel) on its own: no change of geometry.
POINTWISE = (
    nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.SiLU, nn.GELU, nn.ELU, nn.Tanh, nn.Sigmoid,
    nn.Hardswish, nn.Hardtanh, nn.Dropout, nn.Dropout2d, nn.Identity,
)  # fmt: skip
SUPPORTED = GEOMETRIC + POINTWISE


# ---------------------------------------------------------------------------------- plain chains
# A "plain chain" is what the walk below and Zeiler & Fergus's deconvnet need: the modules, in the
# order they were registered, applied one after the other, give the layer's output. That is checked,
# not assumed: the chain is recomputed on an input and compared with the real forward pass (a
# residual connection or an op inside `forward` makes them differ).


@dataclass
class Step:
    """One module of a plain chain and the shapes around it (from a forward pass)."""

    name: str
    module: nn.Module
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]


def _walk(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """Leaf modules and supported modules (not looked into), in registration order."""
    for child_name, child in module.named_children():
        full = f"{prefix}{child_name}"
        # A supported class is one step even when a subclass adds children (e.g. a padding module).
        if isinstance(child, SUPPORTED) or not any(True for _ in child.children()):
            yield full, child
        else:
            yield from _walk(child, full + ".")


def modules_up_to(model: nn.Module, layer: LayerRef) -> tuple[str, list[tuple[str, nn.Module]]]:
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


def plain_chain(model: nn.Module, layer: LayerRef, x: torch.Tensor) -> tuple[str, list[Step]]:
    """Check that `layer`'s output is the chain of modules up to it applied in order, on input `x`.

    Returns:
        (layer name, steps with the shapes seen on `x`).

    Raises:
        LabError: a module on the way is not supported (only its class's own forward is), or the
            chain does not reproduce the layer's output (residual connections, ops inside `forward`,
            modules used in another order than registered).
    """
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


# ---------------------------------------------------------------------------------- geometry


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def geometry(module: nn.Module) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(kernel, stride, padding before, dilation) of a conv or pooling module, per axis."""
    if isinstance(module, nn.Conv2d):
        if module.padding_mode != "zeros":
            raise LabError(
                f"conv with padding_mode={module.padding_mode!r} is not supported (its border pixels "
                "come from the other side or are repeated); use padding_mode='zeros'."
            )
        kernel, stride, dilation = _pair(module.kernel_size), _pair(module.stride), _pair(module.dilation)
        padding = module.padding
        if padding == "valid":
            padding = (0, 0)
        elif padding == "same":  # torch pads d*(k-1) in total, the smaller half first
            padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
        return kernel, stride, _pair(padding), dilation
    if isinstance(module, nn.MaxPool2d):
        kernel = _pair(module.kernel_size)
        stride = _pair(module.stride if module.stride is not None else module.kernel_size)
        return kernel, stride, _pair(module.padding), _pair(module.dilation)
    if isinstance(module, nn.AvgPool2d):
        kernel = _pair(module.kernel_size)
        stride = _pair(module.stride if module.stride is not None else module.kernel_size)
        return kernel, stride, _pair(module.padding), (1, 1)
    raise LabError(f"{type(module).__name__} has no receptive-field geometry.")  # pragma: no cover


def _support(steps: list[Step], axis: int, unit: int) -> tuple[int, int]:
    """Follow one axis down from `unit` to the input: the first and last input position it sees."""
    out_len = steps[-1].out_shape[2 + axis]
    seen = torch.zeros(out_len, dtype=torch.bool)
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
            taps = taps[(taps >= 0) & (taps < n_in)]  # outside the map: padding, feeds nothing
            below[taps] = True
        seen = below
    where = seen.nonzero().flatten()
    if where.numel() == 0:
        return 0, 0  # a unit that sees only padding sees no pixel
    return int(where[0]), int(where[-1]) + 1


def _geometry_twin(model: nn.Module) -> nn.Module:
    """A copy in which each input pixel reaches a unit with a positive weight exactly when it does
    in `model`: every conv averages its window (weights 1 / fan-in, so values stay near 1 and float32
    neither overflows nor underflows), no bias, batch-norm/activations/dropout -> identity,
    max-pooling -> average pooling over the same windows (its gradient reaches every pixel of a
    window, not only the maximum). Sums of positive numbers cannot cancel to zero."""
    twin = copy.deepcopy(model).float().eval()
    for name, module in list(twin.named_modules()):
        replacement = None
        if isinstance(module, nn.Conv2d):
            with torch.no_grad():
                module.weight.fill_(1.0 / module.weight[0].numel())
                if module.bias is not None:
                    module.bias.zero_()
        elif isinstance(module, nn.MaxPool2d):
            kernel, stride, pad, dil = geometry(module)
            if dil != (1, 1):
                raise LabError(f"max-pool {name!r} is dilated; method='gradient' cannot model it, use method='walk'.")
            replacement = nn.AvgPool2d(kernel, stride, pad, ceil_mode=module.ceil_mode)
        elif isinstance(module, POINTWISE):
            replacement = nn.Identity()
        if replacement is not None and name:
            parent_name, _, child = name.rpartition(".")
            setattr(twin.get_submodule(parent_name), child, replacement)
    for param in twin.parameters():
        param.requires_grad_(False)
    return twin


def gradient_support_boxes(
    model: nn.Module, layer: LayerRef, input_size: tuple[int, int], units: list[tuple[int, int]], *,
    twin: nn.Module | None = None,
) -> list[Box]:
    """Bounding boxes of the input pixels on which units (y, x) of `layer`'s first channel depend,
    from the gradient of the geometry twin (see module docstring). One batched backward pass."""
    name, _ = find_layer(model, layer)
    twin = _geometry_twin(model) if twin is None else twin
    height, width = input_size
    x = torch.ones(len(units), in_channels(model), height, width, device=model_device(model), requires_grad=True)
    act = forward_to(twin, x, name, detach=False).activations[name]  # (U, C, h, w)
    rows = torch.arange(len(units))
    ys = torch.tensor([u[0] for u in units])
    xs = torch.tensor([u[1] for u in units])
    (grad,) = torch.autograd.grad(act[rows, 0, ys, xs].sum(), x)
    boxes = []
    for g in grad.abs().sum(1):  # (H, W) per unit
        nz = g.nonzero()
        if nz.numel() == 0:
            boxes.append((0, 0, 0, 0))
            continue
        boxes.append((int(nz[:, 0].min()), int(nz[:, 1].min()), int(nz[:, 0].max()) + 1, int(nz[:, 1].max()) + 1))
    return boxes


@dataclass
class ReceptiveField:
    """The receptive field of the units of one layer for one input size.

    Attributes:
        layer: the layer's name.
        input_size: (H, W) of the input images.
        output_size: (h, w) of the layer's feature maps.
        size: (rows, cols) the field of a unit spans away from the borders (the theoretical size).
        jump: (rows, cols) input pixels between neighbouring units (the product of the strides).
        method: "walk" (exact arithmetic along the modules) or "gradient" (gradient support).
    """

    layer: str
    input_size: tuple[int, int]
    output_size: tuple[int, int]
    size: tuple[int, int]
    jump: tuple[int, int]
    method: str
    _steps: list[Step] = field(default=None, repr=False)
    _model: nn.Module = field(default=None, repr=False)
    _twin: nn.Module = field(default=None, repr=False)

    def _check_unit(self, y: int, x: int) -> None:
        h, w = self.output_size
        if not (0 <= int(y) < h and 0 <= int(x) < w):
            raise LabError(f"unit ({y}, {x}) is outside layer {self.layer!r}'s {h}x{w} feature map.")

    def box(self, y: int, x: int) -> Box:
        """The (top, left, bottom, right) box of unit (y, x), clipped to the image, bottom/right exclusive."""
        return self.boxes([(y, x)])[0]

    def boxes(self, units: list[tuple[int, int]]) -> list[Box]:
        """Boxes of several units (y, x) at once."""
        units = [(int(y), int(x)) for y, x in units]
        for y, x in units:
            self._check_unit(y, x)
        if self.method == "walk":
            out = []
            for y, x in units:
                top, bottom = _support(self._steps, 0, y)
                left, right = _support(self._steps, 1, x)
                out.append((top, left, bottom, right))
            return out
        return gradient_support_boxes(self._model, self.layer, self.input_size, units, twin=self._twin)


def receptive_field(
    model: nn.Module, layer: LayerRef, input_size: tuple[int, int] | int, *, method: str = "auto"
) -> ReceptiveField:
    """The receptive field of `layer`'s units for images of `input_size`.

    Args:
        model: the network (mode and flags restored afterwards).
        layer: a layer name or module.
        input_size: (H, W) or an int for square images.
        method: "walk" (plain conv/pool stacks: exact arithmetic, a module that is not a conv,
            pooling, batch-norm, activation or dropout on the way raises LabError), "gradient" (any
            network, from the gradient of a twin network), "auto" (walk where it applies, else
            gradient).

    Returns:
        a `ReceptiveField`; `.box(y, x)` gives a unit's box.

    Raises:
        LabError: unknown layer, bad input size, unsupported module on the way (method="walk").
    """
    if method not in ("auto", "walk", "gradient"):
        raise LabError(f"method={method!r}; use 'auto', 'walk' or 'gradient'.")
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
                return _walked(name, size, steps)
        twin = _geometry_twin(model)
        with torch.no_grad():
            out = tuple(forward_to(twin, probe, name).activations[name].shape[2:])
        center = (out[0] // 2, out[1] // 2)
        top, left, bottom, right = gradient_support_boxes(model, name, size, [center], twin=twin)[0]
        jump = (max(1, round(size[0] / out[0])), max(1, round(size[1] / out[1])))
        return ReceptiveField(name, size, out, (bottom - top, right - left), jump, "gradient",
                              _model=model, _twin=twin)  # fmt: skip


def _walked(name: str, size: tuple[int, int], steps: list[Step]) -> ReceptiveField:
    jump, extent = [1, 1], [1, 1]
    for step in steps:
        if isinstance(step.module, GEOMETRIC):
            kernel, stride, _, dil = geometry(step.module)
            for a in range(2):
                extent[a] += (dil[a] * (kernel[a] - 1)) * jump[a]
                jump[a] *= stride[a]
    out = tuple(steps[-1].out_shape[2:])
    return ReceptiveField(name, size, out, tuple(extent), tuple(jump), "walk", _steps=steps)


def receptive_field_error(
    model: nn.Module, layer: LayerRef, input_size: tuple[int, int] | int, *, n_units: int = 8, seed: int = 0
) -> int:
    """Largest difference, in pixels, between the walked boxes and the gradient-support boxes of
    `n_units` random units of `layer` plus its four corner units. 0 when the walk is exact."""
    rf = receptive_field(model, layer, input_size, method="walk")
    h, w = rf.output_size
    rng = random.Random(seed)
    units = [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1)]
    units += [(rng.randrange(h), rng.randrange(w)) for _ in range(n_units)]
    with inspecting(model):
        grads = gradient_support_boxes(model, rf.layer, rf.input_size, units)
    walked = rf.boxes(units)
    return max(abs(a - b) for g, wk in zip(grads, walked) for a, b in zip(g, wk))


def receptive_field_table(model: nn.Module, input_size: tuple[int, int] | int, layers=None):
    """One row per conv/pooling layer (or per given layer): output size, jump, theoretical
    receptive-field size and the clipped box of the central unit.

    Returns:
        pandas.DataFrame with columns layer, type, output, jump, rf_size, center_box.
    """
    import pandas as pd  # only tables need pandas

    if layers is None:
        layers = [n for n, m in model.named_modules() if isinstance(m, GEOMETRIC)]
    rows = []
    for layer in layers:
        rf = receptive_field(model, layer, input_size)
        h, w = rf.output_size
        rows.append({
            "layer": rf.layer, "type": type(find_layer(model, rf.layer)[1]).__name__,
            "output": f"{h}x{w}", "jump": rf.jump[0], "rf_size": rf.size[0],
            "center_box": rf.box(h // 2, w // 2), "method": rf.method,
        })  # fmt: skip
    return pd.DataFrame(rows)
