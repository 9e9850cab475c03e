"""Receptive fields: the walked box of a unit equals the bounding box of the non-zero support of
d(unit)/d(input), computed here independently with autograd on an all-positive network."""

from __future__ import annotations

import random
from collections import OrderedDict

import pytest
import torch
from torch import nn

import labkit.interpret as interp
from labkit.core import LabError
from labkit.models import NaiveCNN

# Stacks with padding, stride, dilation, non-square kernels, overlapping and ceil-mode pooling.
STACKS = {
    "plain": [("conv", dict(kernel_size=3, padding=1)), ("pool", dict(kernel_size=2)),
              ("conv", dict(kernel_size=3, padding=1)), ("pool", dict(kernel_size=2))],
    "strided_dilated": [("conv", dict(kernel_size=5, stride=2, padding=1)),
                        ("conv", dict(kernel_size=3, dilation=2, padding=2)),
                        ("pool", dict(kernel_size=3, stride=2, padding=1)),
                        ("conv", dict(kernel_size=3, dilation=3, padding=1))],
    "anisotropic": [("conv", dict(kernel_size=(3, 5), stride=(1, 2), padding=(0, 2))),
                    ("pool", dict(kernel_size=(2, 3), stride=2, ceil_mode=True)),
                    ("conv", dict(kernel_size=(5, 3), dilation=(2, 1), padding=(3, 0)))],
    "no_padding": [("conv", dict(kernel_size=2, stride=2)), ("conv", dict(kernel_size=3, padding=1)),
                   ("pool", dict(kernel_size=2, stride=1)),
                   ("conv", dict(kernel_size=3, stride=3, padding=2))],
}  # fmt: skip


def build(spec, pool: type[nn.Module], positive: bool) -> nn.Sequential:
    """conv -> BN -> ReLU per conv entry, `pool` per pool entry. With `positive`: no BN, weights in
    [0.1, 1] and float64, so that every path from a pixel to a unit carries a positive gradient."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    channels = 3
    for i, (kind, kwargs) in enumerate(spec):
        if kind == "conv":
            conv = nn.Conv2d(channels, 4, **kwargs)
            if positive:
                with torch.no_grad():
                    conv.weight.uniform_(0.1, 1.0)
                    conv.bias.zero_()
            layers[f"conv{i}"] = conv
            if not positive:
                layers[f"bn{i}"] = nn.BatchNorm2d(4)
            layers[f"relu{i}"] = nn.ReLU()
            channels = 4
        else:
            k = dict(kwargs)
            if pool is nn.AvgPool2d:
                k.pop("dilation", None)
            layers[f"pool{i}"] = pool(**k)
    net = nn.Sequential(layers).eval()
    return net.double() if positive else net


def gradient_box(net: nn.Module, layer: str, size: tuple[int, int], unit: tuple[int, int]):
    x = torch.rand(1, 3, *size, dtype=torch.float64) + 0.5  # all positive
    x.requires_grad_(True)
    out = {}
    handle = dict(net.named_modules())[layer].register_forward_hook(lambda m, a, o: out.setdefault("y", o))
    try:
        net(x)
    finally:
        handle.remove()
    (grad,) = torch.autograd.grad(out["y"][0, 1, unit[0], unit[1]], x)
    nz = grad[0].abs().sum(0).nonzero()
    return (int(nz[:, 0].min()), int(nz[:, 1].min()), int(nz[:, 0].max()) + 1, int(nz[:, 1].max()) + 1)


@pytest.mark.parametrize("stack", list(STACKS))
@pytest.mark.parametrize("size", [(23, 23), (32, 27)])
def test_walked_box_equals_the_gradient_support(stack, size):
    torch.manual_seed(0)
    rng = random.Random(f"{stack}{size}")
    real = build(STACKS[stack], nn.MaxPool2d, positive=False)  # the network analysed
    oracle = build(STACKS[stack], nn.AvgPool2d, positive=True)  # same geometry, every path positive
    for layer, module in real.named_modules():
        if not isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
            continue
        rf = interp.receptive_field(real, layer, size, method="walk")
        assert rf.method == "walk"
        h, w = rf.output_size
        units = {(0, 0), (h - 1, w - 1), (0, w - 1)} | {
            (rng.randrange(h), rng.randrange(w)) for _ in range(4)
        }
        for unit in sorted(units):
            assert rf.box(*unit) == gradient_box(oracle, layer, size, unit), (layer, unit)


def test_naive_cnn_receptive_field_sizes():
    model = NaiveCNN(3)  # 3x3 convs, two per stage, 2x2 max-pools
    expected = {"features.conv1_1": (3, 1), "features.conv1_2": (5, 1), "features.pool1": (6, 2),
                "features.conv2_2": (14, 2), "features.pool2": (16, 4), "features.conv3_2": (32, 4),
                "features.pool3": (36, 8)}  # fmt: skip
    for layer, (size, jump) in expected.items():
        rf = interp.receptive_field(model, layer, 64)
        assert rf.size == (size, size) and rf.jump == (jump, jump), layer
    rf = interp.receptive_field(model, "features.conv3_2", 64)
    # unit u of conv3_2 (jump 4) sees input rows 4u - 14 ... 4u + 17, cut by the image border
    assert rf.box(0, 0) == (0, 0, 18, 18)
    assert rf.box(7, 7) == (14, 14, 46, 46)
    assert rf.box(15, 15) == (46, 46, 64, 64)


def test_receptive_field_error_is_zero_on_naive_cnn():
    model = NaiveCNN(3, channels=(4, 6, 8))
    for layer in ("features.conv1_2", "features.pool2", "features.relu3_2"):
        assert interp.receptive_field_error(model, layer, 40, n_units=4) == 0


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.body = nn.Conv2d(4, 4, 5, padding=2)
        self.relu = nn.ReLU()

    def forward(self, x):
        h = self.stem(x)
        return self.relu(h + self.body(h))


def test_residual_network_needs_the_gradient_method():
    model = Residual()
    with pytest.raises(LabError, match="not a plain chain"):
        interp.receptive_field(model, "relu", 16, method="walk")
    rf = interp.receptive_field(model, "relu", 16)  # auto: falls back to the gradient
    assert rf.method == "gradient"
    assert rf.box(8, 8) == (5, 5, 12, 12)  # 3 + 5 - 1 = 7 wide
    assert rf.box(0, 15) == (0, 12, 4, 16)


def test_unsupported_module_on_the_way_is_named():
    class Gate(nn.Module):
        def forward(self, x):
            return x * 2

    model = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 2, 3), gate=Gate(), conv2=nn.Conv2d(2, 2, 3)))
    with pytest.raises(
        LabError, match=r"module 'gate' \(Gate\) on the way to layer 'conv2' is not supported"
    ):
        interp.receptive_field(model, "conv2", 16, method="walk")


def test_table_and_bad_input():
    model = NaiveCNN(3, channels=(4, 6), convs_per_stage=1)
    table = interp.receptive_field_table(model, 32)
    assert list(table["layer"]) == [
        "features.conv1_1",
        "features.pool1",
        "features.conv2_1",
        "features.pool2",
    ]
    assert list(table["rf_size"]) == [3, 4, 8, 10]
    rf = interp.receptive_field(model, "features.pool2", 32)
    with pytest.raises(LabError, match="outside layer 'features.pool2'"):
        rf.box(8, 0)
    with pytest.raises(LabError, match="input_size"):
        interp.receptive_field(model, "features.pool2", (32, -1))
