"""labkit.models architectures: residual blocks and ResNets, inception blocks, the lab-03 variants and
the deep plain/residual twins. Shapes, parameter counts against hand formulas, torchvision key
compatibility, shortcut behaviour, gradient flow, argument checks. Tiny inputs only."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from labkit.core import LabError
from labkit.models import (
    ARCHITECTURES,
    BasicBlock,
    DeepNet,
    InceptionBlock,
    NaiveCNN,
    NaiveCNNVariant,
    NaiveInception,
    ResNet,
    build,
    count_params,
    gradient_norms,
    resnet18,
    small_resnet,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def conv_bn(c_in: int, c_out: int, k: int) -> int:
    """Parameters of a bias-free k x k conv followed by batch-norm (weight + bias)."""
    return k * k * c_in * c_out + 2 * c_out


# ------------------------------------------------------------------------------------- residual block


@pytest.mark.parametrize(
    "c_in, c_out, stride, size, projection, out_size",
    [(8, 8, 1, 10, False, 10), (8, 16, 1, 10, True, 10), (8, 8, 2, 10, True, 5), (8, 16, 2, 9, True, 5)],
)
def test_basic_block_shape_and_projection_iff_shape_changes(c_in, c_out, stride, size, projection, out_size):
    block = BasicBlock(c_in, c_out, stride)
    assert block.projection is projection
    assert (block.downsample is not None) is projection
    assert block(torch.randn(2, c_in, size, size)).shape == (2, c_out, out_size, out_size)
    expected = (
        conv_bn(c_in, c_out, 3) + conv_bn(c_out, c_out, 3) + (conv_bn(c_in, c_out, 1) if projection else 0)
    )
    assert count_params(block) == expected


def test_identity_shortcut_passes_input_through():
    # with the residual branch silenced (conv2 = 0, BN in eval with zero stats), out = relu(x + 0)
    block = BasicBlock(4, 4).eval()
    nn.init.zeros_(block.conv2.weight)
    x = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(block(x), torch.relu(x))


def test_projection_shortcut_is_used_when_shape_changes():
    block = BasicBlock(4, 6, stride=2).eval()
    nn.init.zeros_(block.conv2.weight)
    x = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(block(x), torch.relu(block.downsample(x)))
    assert block.shortcut is block.downsample
    assert isinstance(BasicBlock(4, 4).shortcut, nn.Identity)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(in_channels=0, out_channels=4), "in_channels"),
        (dict(in_channels=4, out_channels=4, stride=3), "stride"),
        (dict(in_channels=4, out_channels=2.5), "out_channels"),
    ],
)
def test_basic_block_rejects_bad_arguments(kwargs, match):
    with pytest.raises(LabError, match=match):
        BasicBlock(**kwargs)


# ----------------------------------------------------------------------------------------- ResNets


def test_resnet18_state_dict_matches_torchvision():
    ours, theirs = resnet18(), torchvision.models.resnet18(weights=None)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert all(v.shape == theirs.state_dict()[k].shape for k, v in ours.state_dict().items())
    assert count_params(ours) == count_params(theirs) == 11_689_512


def test_resnet18_with_torchvision_weights_computes_the_same_function():
    theirs = torchvision.models.resnet18(weights=None).eval()
    with torch.no_grad():  # non-trivial BN statistics, so a mislabelled buffer would show
        for m in theirs.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    ours = resnet18().eval()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))


@pytest.mark.parametrize("size", [32, 48, 64])
def test_small_resnet_shapes_and_parameter_count(size):
    model = small_resnet(5, channels=(8, 16, 32), blocks=(1, 2, 1))
    assert model(torch.randn(2, 3, size, size)).shape == (2, 5)
    expected = (
        conv_bn(3, 8, 3)  # stem
        + conv_bn(8, 8, 3) * 2  # layer1: one identity block
        + conv_bn(8, 16, 3) + conv_bn(16, 16, 3) + conv_bn(8, 16, 1)  # layer2.0: projection
        + conv_bn(16, 16, 3) * 2  # layer2.1: identity
        + conv_bn(16, 32, 3) + conv_bn(32, 32, 3) + conv_bn(16, 32, 1)  # layer3.0: projection
        + 32 * 5 + 5  # fc
    )  # fmt: skip
    assert count_params(model) == expected
    projections = [n for n, m in model.named_modules() if isinstance(m, BasicBlock) and m.projection]
    assert projections == ["layer2.0", "layer3.0"]


def test_small_resnet_keeps_resolution_in_the_stem():
    model = small_resnet(3)
    x = model.relu(model.bn1(model.conv1(torch.randn(1, 3, 32, 32))))
    assert model.maxpool(x).shape == (1, 16, 32, 32)
    assert model.layer1(model.maxpool(x)).shape == (1, 16, 32, 32)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_classes=1), "num_classes"),
        (dict(num_classes=3, blocks=(2, 2), channels=(8,)), "one positive int per stage"),
        (dict(num_classes=3, stem="cifar"), "stem"),
        (dict(num_classes=3, blocks=()), "blocks"),
    ],
)
def test_resnet_rejects_bad_arguments(kwargs, match):
    with pytest.raises(LabError, match=match):
        ResNet(**kwargs)


# ---------------------------------------------------------------------------------------- inception


def test_naive_inception_shape_and_parameter_count():
    block = NaiveInception(8, c1=4, c3=6, c5=2)
    assert block.out_channels == 4 + 6 + 2 + 8
    assert block(torch.randn(2, 8, 7, 7)).shape == (2, 20, 7, 7)
    assert count_params(block) == conv_bn(8, 4, 1) + conv_bn(8, 6, 3) + conv_bn(8, 2, 5)
    no_bn = NaiveInception(8, 4, 6, 2, batch_norm=False)
    assert count_params(no_bn) == (8 + 1) * 4 + (72 + 1) * 6 + (200 + 1) * 2


def test_naive_inception_pool_branch_is_max_pool_of_input():
    block = NaiveInception(3, 2, 2, 2).eval()
    x = torch.randn(1, 3, 5, 5)
    torch.testing.assert_close(block(x)[:, -3:], nn.functional.max_pool2d(x, 3, 1, 1))


def test_inception_block_googlenet_3a_numbers():
    # GoogLeNet inception (3a): 192 -> 64 + 128 + 32 + 32 = 256 channels
    block = InceptionBlock(192, 64, 96, 128, 16, 32, 32)
    assert block(torch.randn(1, 192, 4, 4)).shape == (1, 256, 4, 4)
    expected = (
        conv_bn(192, 64, 1)
        + conv_bn(192, 96, 1) + conv_bn(96, 128, 3)
        + conv_bn(192, 16, 1) + conv_bn(16, 32, 5)
        + conv_bn(192, 32, 1)
    )  # fmt: skip
    assert count_params(block) == expected
    # reductions pay off: the naive block with the same branch widths is much bigger
    assert count_params(NaiveInception(192, 64, 128, 32)) > 2 * expected


def test_inception_with_width():
    block = InceptionBlock.with_width(16, 32)
    assert block.out_channels == 32
    assert block(torch.randn(2, 16, 6, 6)).shape == (2, 32, 6, 6)
    with pytest.raises(LabError, match="multiple of 8"):
        InceptionBlock.with_width(16, 30)


@pytest.mark.parametrize("args", [(8, 0, 4, 4), (8, 4, -1, 4), (8, 4, 4, 2.0)])
def test_inception_rejects_bad_sizes(args):
    with pytest.raises(LabError, match="expected an int >= 1"):
        NaiveInception(*args)


# ----------------------------------------------------------------------------------------- variants


@pytest.mark.parametrize("extra", ["inception", "naive_inception", "residual", None])
def test_variant_shapes_names_and_rebuild(extra):
    model = NaiveCNNVariant(5, extra=extra, channels=(8, 16, 32))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    names = dict(model.named_modules())
    assert "features.conv1_1" in names and "classifier" in names
    if extra:
        assert f"features.{extra}" in names
    again = build(model.arch)
    assert type(again) is NaiveCNNVariant
    assert {k: v.shape for k, v in again.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }


def test_variant_extra_block_adds_exactly_its_parameters():
    base = NaiveCNN(5, channels=(8, 16, 32), convs_per_stage=1, dropout=0.2, hidden=0)
    res = NaiveCNNVariant(5, extra="residual", channels=(8, 16, 32))
    assert count_params(res) - count_params(base) == 2 * conv_bn(32, 32, 3)
    naive = NaiveCNNVariant(5, extra="naive_inception", channels=(8, 16, 32))
    widened_head = (32 + 8 * 3) * 5 - 32 * 5  # the head now sees 32 + 3 * 8 channels
    assert (
        count_params(naive) - count_params(base) == count_params(NaiveInception(32, 8, 8, 8)) + widened_head
    )


def test_variant_without_pooling_has_no_pool_layers():
    model = NaiveCNNVariant(3, pool="stride", channels=(8, 16))
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in model.features)
    assert model(torch.randn(1, 3, 16, 16)).shape == (1, 3)


def test_variant_rejects_unknown_extra():
    with pytest.raises(LabError, match="extra='attention'"):
        NaiveCNNVariant(3, extra="attention")
    with pytest.raises(LabError, match="divisible by 8"):
        NaiveCNNVariant(3, extra="inception", channels=(8, 12))


def test_deep_twins_have_the_same_parameters():
    plain, res = DeepNet(3, depth=4, width=8), DeepNet(3, depth=4, width=8, residual=True)
    assert count_params(plain) == count_params(res) == (27 * 8 + 8) + 4 * 2 * (72 * 8 + 8) + 8 * 3 + 3
    assert plain(torch.randn(2, 3, 8, 8)).shape == (2, 3)


def test_gradient_norms_plain_net_fades_residual_twin_does_not():
    x, y = torch.randn(8, 3, 16, 16), torch.arange(8) % 4
    plain = list(gradient_norms(DeepNet(4, depth=12, width=8), x, y).values())
    torch.manual_seed(0)
    res = list(gradient_norms(DeepNet(4, depth=12, width=8, residual=True), x, y).values())
    assert len(plain) == len(res) == 1 + 2 * 12
    assert plain[0] / plain[-1] < 1e-4  # vanishes towards the input
    assert res[0] / res[-1] > 1e-2  # the identity path carries the gradient back


def test_gradient_norms_leaves_no_grad_behind():
    model = DeepNet(3, depth=2, width=4)
    gradient_norms(model, torch.randn(2, 3, 8, 8), torch.tensor([0, 1]))
    assert all(p.grad is None for p in model.parameters())


# ----------------------------------------------------------------------------------- common checks

MODELS = {
    "basic_block_net": lambda: nn.Sequential(
        BasicBlock(3, 8, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)
    ),
    "small_resnet": lambda: small_resnet(3, channels=(8, 16)),
    "inception": lambda: NaiveCNNVariant(3, extra="inception", channels=(8, 16)),
    "naive_inception": lambda: NaiveCNNVariant(3, extra="naive_inception", channels=(8, 16)),
    "residual": lambda: NaiveCNNVariant(3, extra="residual", channels=(8, 16)),
    "deep_residual": lambda: DeepNet(3, depth=3, width=4, residual=True, batch_norm=True),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_gradient_reaches_every_parameter(name):
    model = MODELS[name]().train()
    nn.functional.cross_entropy(model(torch.randn(4, 3, 16, 16)), torch.tensor([0, 1, 2, 0])).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


def test_every_registered_architecture_rebuilds_from_its_arch():
    made = [
        NaiveCNNVariant(3, extra="residual", channels=(8, 16)),
        small_resnet(4, channels=(8,), blocks=(1,)),
        DeepNet(3, depth=2, width=4, residual=True),
    ]
    for model in made:
        assert model.arch["name"] in ARCHITECTURES
        again = build(model.arch)
        assert again.arch == model.arch


def test_activations_are_separate_non_inplace_modules():
    model = small_resnet(3, channels=(8, 16))
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == len({id(m) for m in relus}) == 1 + 2 * 2
    assert not any(m.inplace for m in relus)
