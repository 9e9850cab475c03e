"""labkit.interpret.hooks, and the promise every part-one interpret function makes: the model comes
back as it was found (train/eval mode per module, requires_grad, in-place flags, no hook left),
also when something raises inside."""

from __future__ import annotations

import re
import warnings
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from captum.attr import Deconvolution, GuidedBackprop
from torch import nn

import labkit
import labkit.interpret as interp
from labkit.core import LabError
from labkit.interpret.hooks import capture, find_layer, preserved, relu_backward, relu_modules
from labkit.models import NaiveCNN


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def tiny_net(inplace: bool = False) -> nn.Sequential:
    net = nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(3, 4, 3, padding=1), bn1=nn.BatchNorm2d(4), relu1=nn.ReLU(inplace=inplace),
        pool1=nn.MaxPool2d(2),
        conv2=nn.Conv2d(4, 6, 3, padding=1), bn2=nn.BatchNorm2d(6), relu2=nn.ReLU(),
        pool2=nn.MaxPool2d(2),
        gap=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=nn.Linear(6, 3),
    ))  # fmt: skip
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
    return net


def hook_count(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks)
        + len(m._forward_pre_hooks)
        + len(m._backward_hooks)
        + len(m._backward_pre_hooks)
        for m in model.modules()
    )


def state(model: nn.Module):
    return (
        [(n, m.training) for n, m in model.named_modules()],
        [(n, p.requires_grad) for n, p in model.named_parameters()],
        [(n, m.inplace) for n, m in model.named_modules() if hasattr(m, "inplace")],
        {n: b.clone() for n, b in model.named_buffers()},
    )


def assert_same_state(before, after):
    assert before[:3] == after[:3]
    for name, buf in before[3].items():
        assert torch.equal(buf, after[3][name]), f"buffer {name} changed (batch-norm statistics updated?)"


# ---------------------------------------------------------------- find_layer


def test_find_layer_by_name_and_by_module():
    net = tiny_net()
    assert find_layer(net, "conv2") == ("conv2", net.conv2)
    assert find_layer(net, net.pool1) == ("pool1", net.pool1)


def test_find_layer_unknown_name_lists_close_matches():
    with pytest.raises(LabError, match=r"'conv3' does not exist.*Did you mean.*'conv1'"):
        find_layer(tiny_net(), "conv3")


def test_find_layer_foreign_module_is_refused():
    with pytest.raises(LabError, match="not part of this model"):
        find_layer(tiny_net(), nn.Conv2d(3, 3, 1))


# ---------------------------------------------------------------- preserved / capture


def test_preserved_restores_modes_and_flags_after_an_exception():
    net = tiny_net().train()
    net.conv1.weight.requires_grad_(False)
    x = torch.randn(2, 3, 8, 8)
    before = state(net)
    with pytest.raises(RuntimeError, match="boom"), preserved(net, [x]):
        net.eval()
        for p in net.parameters():
            p.requires_grad_(not p.requires_grad)
        x.requires_grad_(True)
        raise RuntimeError("boom")
    assert_same_state(before, state(net))
    assert not x.requires_grad


def test_capture_records_outputs_and_gradients_and_removes_hooks():
    net = tiny_net().eval()
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    with capture(net, ["conv2", net.relu2], gradients=True) as cap:
        net(x).sum().backward()
    assert hook_count(net) == 0
    expected = net.conv2(net.pool1(net.relu1(net.bn1(net.conv1(x)))))
    torch.testing.assert_close(cap.activations["conv2"], expected.detach())
    # d(sum of logits)/d(relu2 output): each of the 2x2 pool2 windows sends 1/4 (global average)
    # of fc's column sum to its maximum, so a channel's gradients add up to that column sum.
    per_channel = net.fc.weight.sum(0)
    grad = cap.gradients["relu2"]
    assert grad.shape == (2, 6, 4, 4)
    assert torch.allclose(grad.sum(dim=(2, 3)), per_channel.expand(2, 6), atol=1e-6)


def test_capture_copy_survives_a_later_inplace_relu():
    net = tiny_net(inplace=True).eval()
    x = torch.randn(1, 3, 8, 8)
    with capture(net, "bn1") as cap:
        net(x)
    assert (cap.activations["bn1"] < 0).any(), "the in-place ReLU after bn1 overwrote the recorded output"


def test_forward_to_stops_after_the_layer_and_keeps_the_graph():
    net = tiny_net().eval()
    calls = []
    counter = net.fc.register_forward_hook(lambda *a: calls.append(1))
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    cap = interp.hooks.forward_to(net, x, "relu1", detach=False)
    counter.remove()
    assert calls == [], "the layers after relu1 should not have run"
    assert hook_count(net) == 0
    expected = net.relu1(net.bn1(net.conv1(x)))
    torch.testing.assert_close(cap.activations["relu1"], expected)
    (grad,) = torch.autograd.grad(cap.activations["relu1"].sum(), x)
    (grad_ref,) = torch.autograd.grad(expected.sum(), x)
    torch.testing.assert_close(grad, grad_ref)


def test_forward_to_a_layer_the_model_does_not_use():
    class Skips(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Conv2d(3, 2, 1), nn.Conv2d(2, 2, 1)

        def forward(self, x):
            return self.used(x)

    with pytest.raises(LabError, match="not called in the forward pass"):
        interp.hooks.forward_to(Skips(), torch.randn(1, 3, 4, 4), "unused")


def test_capture_removes_hooks_when_the_forward_raises():
    net = tiny_net()
    with pytest.raises(RuntimeError), capture(net, ["conv1", "conv2"]):
        net(torch.randn(1, 5, 8, 8))  # wrong channel count
    assert hook_count(net) == 0


# ---------------------------------------------------------------- relu_backward vs captum


@pytest.mark.parametrize("rule, oracle", [("deconvnet", Deconvolution), ("guided", GuidedBackprop)])
def test_relu_backward_matches_captum(rule, oracle):
    net = tiny_net(inplace=True).eval()
    x = torch.randn(3, 3, 8, 8)
    xr = x.clone().requires_grad_(True)
    with relu_backward(net, rule):
        (grad,) = torch.autograd.grad(net(xr)[:, 1].sum(), xr)
    assert net.relu1.inplace, "in-place flag not restored"
    assert hook_count(net) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = oracle(net).attribute(x.clone(), target=1)
    assert (grad - expected).abs().max() <= 1e-6


def test_relu_backward_covers_relu6():
    net = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), nn.ReLU6())
    with torch.no_grad():
        net[0].weight.fill_(10.0)
    x = torch.tensor([[[[1.0, -1.0, 0.3]]]], requires_grad=True)  # conv: 10, -10, 3
    assert [n for n, _ in relu_modules(net)] == ["1"]
    with relu_backward(net, "deconvnet"):
        (grad,) = torch.autograd.grad(net(x).sum(), x)
    # deconvnet rule: relu(incoming gradient 1) = 1 everywhere, whatever the forward input
    assert torch.equal(grad, torch.full_like(x, 10.0))
    with relu_backward(net, "guided"):
        (grad,) = torch.autograd.grad(net(x).sum(), x)
    assert torch.equal(grad, torch.tensor([[[[0.0, 0.0, 10.0]]]]))  # 10 and -10 are outside (0, 6)


def test_relu_backward_rejects_unknown_rule():
    with pytest.raises(LabError, match="'deconvnet' or 'guided'"):
        with relu_backward(tiny_net(), "zeiler"):
            pass


# ---------------------------------------------------------------- every part-one function, raising inside

X = torch.randn(4, 3, 16, 16)


def _calls() -> dict:
    return {
        "filters": lambda m: interp.filters(m, "features.conv2_1"),
        "input_channel_norms": lambda m: interp.input_channel_norms(m, "features.conv2_1"),
        "feature_maps": lambda m: interp.feature_maps(m, X, ["features.conv1_1", "features.relu2_1"]),
        "receptive_field_walk": lambda m: interp.receptive_field(m, "features.pool2", 16).box(1, 1),
        "receptive_field_gradient": lambda m: interp.receptive_field(
            m, "features.pool2", 16, method="gradient"
        ).box(1, 1),
        "receptive_field_error": lambda m: interp.receptive_field_error(m, "features.pool2", 16, n_units=2),
        "max_activating_patches": lambda m: interp.max_activating_patches(
            m, X, "features.relu2_1", 2, k=2, batch_size=2
        ),
        "filter_pattern": lambda m: interp.filter_pattern(m, "features.relu2_1", 1, steps=3, image_size=16),
        "deconvnet": lambda m: interp.deconvnet(m, X, "features.pool2"),
        "deconvnet_gradient_rule": lambda m: _quiet(
            lambda: interp.deconvnet(m, X, "features.pool2", method="gradient_rule")
        ),
        "train_inversion": lambda m: interp.train_inversion(
            m, "features.relu2_1", X, test_images=X, epochs=1
        ),
    }


def _quiet(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()


def _naive() -> NaiveCNN:
    net = NaiveCNN(3, channels=(4, 6), convs_per_stage=1, hidden=0).train()
    net.features.conv1_1.weight.requires_grad_(False)  # a frozen layer must stay frozen
    return net


@pytest.mark.parametrize("name", list(_calls()))
def test_function_restores_model_when_it_returns(name):
    net = _naive()
    before = state(net)
    _calls()[name](net)
    assert hook_count(net) == 0
    assert_same_state(before, state(net))


@pytest.mark.parametrize("where", ["first", "last"])
@pytest.mark.parametrize("name", [n for n in _calls() if n not in ("filters", "input_channel_norms")])
def test_function_restores_model_when_it_raises(name, where):
    net = _naive()
    calls = []
    counter = net.features.conv2_1.register_forward_hook(lambda *a: calls.append(1))
    _calls()[name](net)
    counter.remove()
    assert calls, "the injected exception would never fire"
    fire_at = 1 if where == "first" else len(calls)
    seen = []

    def explode(module, args, output):
        seen.append(1)
        if len(seen) == fire_at:
            raise RuntimeError("injected failure")

    handle = net.features.conv2_1.register_forward_hook(explode)
    before = state(net)
    with pytest.raises(RuntimeError, match="injected failure"):
        _calls()[name](net)
    handle.remove()
    assert hook_count(net) == 0, "a hook was left registered"
    assert_same_state(before, state(net))


def test_functions_without_forward_pass_restore_on_bad_input():
    net = _naive()
    before = state(net)
    with pytest.raises(LabError):
        interp.filters(net, "features.relu1_1")
    with pytest.raises(LabError):
        interp.input_channel_norms(net, "features.relu2_1")
    assert hook_count(net) == 0
    assert_same_state(before, state(net))


def test_no_module_outside_interpret_hooks_registers_a_hook():
    """Hooks live in one place, where each one is removed in a `finally` (a permanent hook elsewhere
    would outlive every call that "gives the model back as it found it")."""
    root = Path(labkit.__file__).parent
    registers = re.compile(r"\.register_\w*hook\w*\(")  # module, tensor and global hooks, pre- and backward
    # An optimiser's step hook touches no module: it lives as long as the optimiser it belongs to, and
    # only labkit/train/optim.py (freeze_after) may add one.
    optimizer_step_hook = re.compile(r"optimizer\.register_step_(pre|post)_hook\(")
    found = [
        f"{path.relative_to(root)}:{number}: {line.strip()}"
        for path in sorted(root.rglob("*.py"))
        if path != root / "interpret" / "hooks.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if registers.search(line)
        and not (path == root / "train" / "optim.py" and optimizer_step_hook.search(line))
    ]
    assert found == [], "register hooks in labkit/interpret/hooks.py only:\n" + "\n".join(found)
    assert registers.search((root / "interpret" / "hooks.py").read_text())  # the pattern does find hooks
