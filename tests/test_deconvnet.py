"""deconvnet: switch unpooling + rectification + transposed filters equals the gradient of
1/2 * sum(kept map**2) with ReLU backward replaced by ReLU(incoming gradient), checked against
captum's NeuronDeconvolution; batch-norm handling; the gradient rule for residual / ReLU6 nets."""

from __future__ import annotations

import warnings
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from captum.attr import NeuronDeconvolution
from torch import nn

import labkit.interpret as interp
from labkit.core import LabError
from labkit.models import NaiveCNN


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def randomise_bn(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.3, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model


def plain_stack() -> nn.Sequential:
    """conv/BN/ReLU/max-pool with an overlapping pool (3, stride 2), a strided conv and a dilated one."""
    return randomise_bn(nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(3, 5, 3, padding=1), bn1=nn.BatchNorm2d(5), relu1=nn.ReLU(),
        pool1=nn.MaxPool2d(3, stride=2, padding=1),
        conv2=nn.Conv2d(5, 6, 3, stride=2, padding=1, bias=False), bn2=nn.BatchNorm2d(6), relu2=nn.ReLU(),
        conv3=nn.Conv2d(6, 7, 3, padding=2, dilation=2), relu3=nn.ReLU(), pool3=nn.MaxPool2d(2),
        gap=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=nn.Linear(7, 3),
    )))  # fmt: skip


def captum_reference(model: nn.Module, x: torch.Tensor, layer: str, channels: torch.Tensor) -> torch.Tensor:
    """captum's deconvolution of the neuron 1/2 * sum((layer output * one-hot channel mask)**2)."""
    module = dict(model.named_modules())[layer]
    with torch.no_grad(), interp.capture(model, layer) as cap:
        model(x)
    mask = F.one_hot(channels, cap.activations[layer].shape[1]).float()[:, :, None, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return NeuronDeconvolution(model, module).attribute(
            x.clone(), neuron_selector=lambda out: 0.5 * (out * mask).pow(2).sum(dim=(1, 2, 3))
        )


CASES = [
    ("plain", "relu1"), ("plain", "pool1"), ("plain", "bn2"),
    ("plain", "relu2"), ("plain", "conv3"), ("plain", "pool3"),
    ("naive", "features.relu1_2"), ("naive", "features.pool2"), ("naive", "features.conv3_1"),
]  # fmt: skip


@pytest.mark.parametrize("kind, layer", CASES)
@pytest.mark.parametrize("channel", [None, 2])
def test_switch_construction_equals_captum_gradient_rule(kind, layer, channel):
    model = plain_stack() if kind == "plain" else randomise_bn(NaiveCNN(4, channels=(4, 6, 8)))
    model.eval()
    x = torch.randn(3, 3, 19, 21)  # odd sizes: strided convs drop a row/column, output_padding restores it
    with warnings.catch_warnings():
        warnings.simplefilter("error", interp.GradientRuleWarning)  # must not fall back
        out, info = interp.deconvnet(model, x, layer, channel, return_info=True)
    assert info.method == "switches"
    assert out.shape == x.shape
    if channel is None:  # the strongest map of each image is not all zero, nor is its projection
        assert (out.abs().amax(dim=(1, 2, 3)) > 0).all()
    expected = captum_reference(model, x, layer, info.channels)
    assert (out - expected).abs().max() <= 1e-5


def test_default_channel_is_the_strongest_map_per_image():
    model = plain_stack().eval()
    x = torch.randn(4, 3, 16, 16)
    _, info = interp.deconvnet(model, x, "relu2", return_info=True)
    maps = interp.feature_maps(model, x, "relu2")["relu2"]
    assert torch.equal(info.channels, maps.amax(dim=(2, 3)).argmax(dim=1))


def test_only_the_kept_channel_matters():
    model = plain_stack().eval()
    x = torch.randn(1, 3, 16, 16)
    a = interp.deconvnet(model, x, "conv3", 4)
    with torch.no_grad():  # change every other conv3 filter: the projection of channel 4 stays put
        keep = model.conv3.weight[4].clone()
        model.conv3.weight.mul_(-3.0)
        model.conv3.weight[4] = keep
    b = interp.deconvnet(model, x, "conv3", 4)
    torch.testing.assert_close(a, b)


def test_bn_skip_leaves_out_exactly_the_bn_scale():
    model = plain_stack().eval()
    with torch.no_grad():  # every BN scale gamma / sqrt(var + eps) = 2
        for bn in (model.bn1, model.bn2):
            bn.weight.fill_(2.0)
            bn.running_var.fill_(1.0 - bn.eps)
    x = torch.randn(2, 3, 16, 16)
    transpose = interp.deconvnet(model, x, "relu2", 1, bn="transpose")
    skip = interp.deconvnet(model, x, "relu2", 1, bn="skip")
    # unpooling, rectification and transposed convs are positively homogeneous: two BNs -> x4
    torch.testing.assert_close(transpose, 4 * skip)


class Residual(nn.Module):
    def __init__(self, act: type[nn.Module] = nn.ReLU):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.act1 = act()
        self.body = nn.Conv2d(4, 4, 3, padding=1)
        self.act2 = act()
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        h = self.act1(self.stem(x))
        return self.pool(self.act2(h + self.body(h)))


def test_residual_net_uses_the_gradient_rule_and_says_so():
    model = Residual().eval()
    x = torch.randn(2, 3, 12, 12)
    with pytest.warns(interp.GradientRuleWarning, match="gradient rule"):
        out, info = interp.deconvnet(model, x, "pool", return_info=True)
    assert info.method == "gradient_rule" and "not a plain chain" in info.reason
    assert (out - captum_reference(model, x, "pool", info.channels)).abs().max() <= 1e-5
    with pytest.raises(LabError, match="method='switches' cannot run"):
        interp.deconvnet(model, x, "pool", method="switches")
    with pytest.raises(LabError, match="bn='skip' needs the explicit construction"):
        interp.deconvnet(model, x, "pool", bn="skip")


def test_relu6_backward_is_rectified_too():
    model = nn.Sequential(
        OrderedDict(conv1=nn.Conv2d(3, 4, 3, padding=1), act=nn.ReLU6(), conv2=nn.Conv2d(4, 2, 3))
    )
    with torch.no_grad():
        model.conv1.weight.mul_(20)  # many inputs of ReLU6 above 6, where its plain gradient is 0
    x = torch.randn(1, 3, 10, 10)
    with pytest.warns(interp.GradientRuleWarning, match="ReLU6"):
        out = interp.deconvnet(model, x, "conv2", 1)
    with torch.no_grad():  # by hand: kept map -> conv2^T -> ReLU -> conv1^T
        kept = model.conv2(model.act(model.conv1(x)))[:, 1:2]
        down = F.conv_transpose2d(kept, model.conv2.weight[1:2]).clamp(min=0)
        expected = F.conv_transpose2d(down, model.conv1.weight, padding=1)
    torch.testing.assert_close(out, expected)


def test_bad_input():
    model = plain_stack().eval()
    x = torch.randn(1, 3, 16, 16)
    with pytest.raises(LabError, match=r"channel 9 is out of range: layer 'relu2' has 6 channels"):
        interp.deconvnet(model, x, "relu2", 9)
    with pytest.raises(LabError, match=r"Did you mean.*'relu2'"):
        interp.deconvnet(model, x, "relu22")
    with pytest.raises(LabError, match="bn="):
        interp.deconvnet(model, x, "relu2", bn="inverse")
    with pytest.raises(LabError, match=r"unsqueeze\(0\)"):
        interp.deconvnet(model, x[0], "relu2")
