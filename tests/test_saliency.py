"""labkit.interpret saliency, guided backprop and targets: against captum, batched, bad input, state
restored."""

import copy

import pytest
import torch
from captum.attr import GuidedBackprop, Saliency
from torch import nn

from labkit.core import LabError
from labkit.interpret import abs_max_channels, guided_backprop, maps_for_targets, saliency, topk_targets
from labkit.interpret.attribution import resolve_targets

pytestmark = pytest.mark.filterwarnings("ignore:(Input Tensor|Setting backward hooks):UserWarning")


def tiny_cnn(act=nn.ReLU, inplace=False, num_classes=4, seed=0, dropout=0.0):
    """conv-BN-act-pool-conv-act-pool-linear, float64, batch-norm with non-trivial running statistics."""
    torch.manual_seed(seed)
    make = (lambda: act(inplace=True)) if inplace else act
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), make(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1), make(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Dropout(dropout), nn.Linear(32, num_classes),
    ).double()  # fmt: skip
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.2, 0.2)
        model[1].running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture
def x():
    torch.manual_seed(1)
    return torch.randn(5, 3, 12, 12, dtype=torch.float64)


def test_saliency_equals_captum_saliency(x):
    model = tiny_cnn()
    target = [0, 3, 1, 2, 3]
    ours = saliency(model, x, target=target)
    theirs = Saliency(model).attribute(x, target=target, abs=True).amax(dim=1)
    assert ours.shape == (5, 12, 12)
    assert torch.allclose(ours, theirs, atol=1e-12)


def test_saliency_default_target_is_the_predicted_class(x):
    model = tiny_cnn()
    predicted = model(x).argmax(1)
    assert torch.equal(saliency(model, x), saliency(model, x, target=predicted))
    assert not torch.equal(saliency(model, x), saliency(model, x, target=(predicted + 1) % 4))


def test_guided_backprop_equals_captum(x):
    model = tiny_cnn()
    target = [1, 1, 0, 2, 3]
    ours = guided_backprop(model, x, target=target)
    theirs = GuidedBackprop(model).attribute(x, target=target)
    assert ours.shape == x.shape
    assert (ours - theirs).abs().max() <= 1e-5
    # and it is not the plain gradient (the hooks did act)
    plain = Saliency(model).attribute(x, target=target, abs=False)
    assert (ours - plain).abs().max() > 1e-3


def test_guided_backprop_with_inplace_relus_equals_captum_and_restores_inplace(x):
    model = tiny_cnn(inplace=True)
    reference = tiny_cnn(inplace=False)  # same seed, same weights
    ours = guided_backprop(model, x, target=2)
    theirs = GuidedBackprop(reference).attribute(x, target=2)
    assert (ours - theirs).abs().max() <= 1e-5
    assert all(m.inplace for m in model.modules() if isinstance(m, nn.ReLU))


def test_guided_rule_applies_to_relu6():
    # With small inputs no pre-activation reaches 6, so ReLU6 behaves as ReLU and the guided result must be
    # captum's on the same network with nn.ReLU (captum itself guides nn.ReLU only).
    model6, model = tiny_cnn(act=nn.ReLU6), tiny_cnn(act=nn.ReLU)
    torch.manual_seed(2)
    x = 0.5 * torch.randn(3, 3, 12, 12, dtype=torch.float64)
    with torch.no_grad():
        assert model6[:2](x).max() < 6 and model6[:5](x).max() < 6
    ours = guided_backprop(model6, x, target=[0, 1, 2])
    theirs = GuidedBackprop(model).attribute(x, target=[0, 1, 2])
    assert (ours - theirs).abs().max() <= 1e-5


def test_other_activations_are_named_in_a_warning(x):
    with pytest.warns(UserWarning, match="no nn.ReLU / nn.ReLU6 module"):
        guided_backprop(tiny_cnn(act=nn.SiLU), x)
    mixed = tiny_cnn()
    mixed[5] = nn.SiLU().eval()
    with pytest.warns(UserWarning, match=r"other than ReLU/ReLU6 \(e.g. '5'\)"):
        guided_backprop(mixed, x)


@pytest.mark.parametrize("method", [saliency, guided_backprop])
def test_batched_equals_one_image_at_a_time(method, x):
    model = tiny_cnn()
    target = [3, 0, 0, 1, 2]
    batched = method(model, x, target=target)
    single = torch.cat([method(model, x[i : i + 1], target=t) for i, t in enumerate(target)])
    assert torch.allclose(batched, single, atol=1e-12)


def test_target_out_of_range_names_the_range(x):
    with pytest.raises(LabError, match=r"target 4 is out of range: the model has 4 classes.*0\.\.3"):
        saliency(tiny_cnn(), x, target=4)
    with pytest.raises(LabError, match="target -1 is out of range"):
        guided_backprop(tiny_cnn(), x, target=[0, 1, -1, 0, 0])
    with pytest.raises(LabError, match="x holds 5 image"):
        saliency(tiny_cnn(), x, target=[0, 1])
    with pytest.raises(LabError, match="unsqueeze"):
        saliency(tiny_cnn(), x[0])


def test_targets_by_class_name():
    logits = torch.zeros(2, 3)
    classes = ["circle", "square", "triangle"]
    assert resolve_targets("Square", logits, classes).tolist() == [1, 1]
    assert resolve_targets(["tri", "circle"], logits, classes).tolist() == [2, 0]
    with pytest.raises(LabError, match="not one of the 3 classes"):
        resolve_targets("hexagon", logits, classes)
    with pytest.raises(LabError, match="pass classes="):
        resolve_targets("square", logits)


def test_training_mode_is_computed_in_eval_and_given_back(x):
    model = tiny_cnn(dropout=0.5)
    expected = saliency(model, x, target=1)
    model.train()
    stats = model[1].running_mean.clone()
    with pytest.warns(UserWarning, match="training mode.*model.eval"):
        got = saliency(model, x, target=1)
    assert torch.equal(got, expected)  # no dropout, running statistics used
    assert all(m.training for m in model.modules())
    assert torch.equal(model[1].running_mean, stats)  # batch-norm statistics not updated


@pytest.mark.filterwarnings("ignore:.*training mode")
@pytest.mark.parametrize("method", [saliency, guided_backprop])
def test_hooks_gone_and_state_restored_after_an_exception(method, x):
    model = tiny_cnn(inplace=True)
    model[3].train()  # a mixed mode, to be given back exactly
    model[0].weight.requires_grad_(False)
    x.requires_grad_(True)

    def boom(module, args, output):
        raise RuntimeError("injected")

    handle = model[4].register_forward_hook(boom)
    with pytest.raises(RuntimeError, match="injected"):
        method(model, x)
    handle.remove()
    for m in model.modules():
        assert not m._forward_hooks and not m._backward_hooks and not m._forward_pre_hooks
    assert [m.training for m in model] == [m is model[3] for m in model]
    assert [p.requires_grad for p in model.parameters()][:2] == [False, True]
    assert x.requires_grad and x.grad is None
    assert all(m.inplace for m in model.modules() if isinstance(m, nn.ReLU))
    model.eval()
    assert torch.allclose(
        method(model, x.detach(), target=0), method(copy.deepcopy(model), x.detach(), target=0)
    )


def test_topk_and_maps_for_targets_in_one_pass(x):
    model = tiny_cnn()
    top = topk_targets(model, x, 3)
    assert torch.equal(top, model(x).topk(3, dim=1).indices)
    maps = maps_for_targets(saliency, model, x, top)
    assert maps.shape == (5, 3, 12, 12)
    for j in range(3):
        assert torch.allclose(maps[:, j], saliency(model, x, target=top[:, j]), atol=1e-12)
    fixed = maps_for_targets(guided_backprop, model, x, [2, 0])
    assert fixed.shape == (5, 2, 3, 12, 12)
    assert torch.allclose(fixed[:, 1], guided_backprop(model, x, target=0), atol=1e-12)
    with pytest.raises(LabError, match="only 4 classes"):
        topk_targets(model, x, 5)


def test_abs_max_channels():
    a = torch.tensor([[[[1.0, -3.0]], [[-2.0, 2.0]]]])  # (1, 2, 1, 2)
    assert abs_max_channels(a).tolist() == [[[2.0, 3.0]]]
