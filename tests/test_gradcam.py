"""labkit.interpret.gradcam: against captum and pytorch-grad-cam, default layer, batching, bad input,
state."""

import numpy as np
import pytest
import torch
import torchvision
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn

from labkit.core import LabError
from labkit.interpret import default_gradcam_layer, gradcam, guided_backprop, guided_gradcam, spatial_layers
from labkit.interpret.gradcam import normalize_maps
from labkit.models.naive import NaiveCNN

pytestmark = pytest.mark.filterwarnings("ignore:(Input Tensor|Setting backward hooks):UserWarning")


def tiny_cnn(seed=0, num_classes=4):
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes),
    ).double()  # fmt: skip
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.fixture
def x():
    torch.manual_seed(1)
    return torch.randn(4, 3, 16, 16, dtype=torch.float64)


def captum_gradcam(model, layer, x, target):
    """captum's LayerGradCam, then the steps labkit documents: ReLU, bilinear upsampling, min-max per map."""
    cam = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)  # (N, 1, h, w)
    cam = LayerAttribution.interpolate(cam, x.shape[-2:], interpolate_mode="bilinear")[:, 0]
    flat = cam.flatten(1)
    low, high = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - low) / (high - low)).reshape(cam.shape)


@pytest.mark.parametrize("layer", ["0", "2", "3", "5"])
def test_gradcam_equals_captum_layer_gradcam(layer, x):
    model = tiny_cnn()
    target = [0, 1, 2, 3]
    ours = gradcam(model, x, target=target, layer=layer)
    theirs = captum_gradcam(model, dict(model.named_modules())[layer], x, target)
    assert ours.shape == (4, 16, 16)
    assert (ours - theirs).abs().max() <= 1e-4
    assert ours.min() == 0 and ours.amax(dim=(1, 2)).eq(1).all()


def test_gradcam_correlates_with_pytorch_grad_cam_on_a_resnet():
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(2, 3, 128, 128)
    target = [7, 281]
    ours = gradcam(model, x, target=target)
    assert default_gradcam_layer(model, x) == "layer4.1"  # found automatically: the last block's output
    with GradCAM(model, target_layers=[model.layer4[-1]]) as cam:
        theirs = cam(
            input_tensor=x, targets=[ClassifierOutputTarget(t) for t in target]
        )  # (N, H, W), cv2-resized
    for a, b in zip(ours.numpy(), theirs):
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] >= 0.99


def test_default_layer_is_the_last_spatial_output():
    model = NaiveCNN(5).eval()
    x = torch.randn(2, 3, 32, 32)
    assert default_gradcam_layer(model, x) == "features.pool3"
    assert torch.equal(gradcam(model, x), gradcam(model, x, layer="features.pool3"))
    names = [n for n, _ in spatial_layers(model, x)]
    assert names[-3:] == ["features.relu3_2", "features.pool3", "features"]
    assert "pool" not in names  # the global average pool's 1 x 1 output is not spatial
    # a module object works as well as its name
    assert torch.equal(
        gradcam(model, x, layer=model.features.relu2_2), gradcam(model, x, layer="features.relu2_2")
    )


def test_layer_resolution_without_upsampling(x):
    model = tiny_cnn()
    raw = gradcam(model, x, target=1, layer="5", upsample=False, normalize=False)
    assert raw.shape == (4, 8, 8) and raw.min() >= 0
    assert torch.allclose(normalize_maps(raw), gradcam(model, x, target=1, layer="5", upsample=False))


def test_batched_equals_one_image_at_a_time(x):
    model = tiny_cnn()
    target = [2, 2, 0, 1]
    batched = gradcam(model, x, target=target, layer="2")
    single = torch.cat([gradcam(model, x[i : i + 1], target=t, layer="2") for i, t in enumerate(target)])
    assert torch.allclose(batched, single, atol=1e-12)
    g_batched = guided_gradcam(model, x, target=target, layer="2")
    g_single = torch.cat(
        [guided_gradcam(model, x[i : i + 1], target=t, layer="2") for i, t in enumerate(target)]
    )
    assert torch.allclose(g_batched, g_single, atol=1e-12)


def test_guided_gradcam_is_guided_backprop_times_gradcam(x):
    model = tiny_cnn()
    expected = guided_backprop(model, x) * gradcam(model, x)[:, None]  # both on the predicted classes
    assert torch.allclose(guided_gradcam(model, x), expected, atol=1e-12)


def test_a_map_with_no_positive_evidence_is_all_zero():
    # Activations are >= 0 (after the ReLU) and the class score falls with every channel, so every
    # weighted sum is negative and the ReLU leaves nothing: the map is all zero, not 0/0.
    model = nn.Sequential(
        nn.Conv2d(1, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2)
    ).eval()
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.zero_()
        model[4].weight.copy_(torch.tensor([[-1.0, -2.0], [1.0, 1.0]]))
    x = torch.rand(3, 1, 6, 6) + 0.1
    assert torch.equal(gradcam(model, x, target=0, layer="1"), torch.zeros(3, 6, 6))
    assert gradcam(model, x, target=1, layer="1").amax(dim=(1, 2)).eq(1).all()


def test_a_layer_without_spatial_output_is_refused_with_the_spatial_layers_named(x):
    model = NaiveCNN(5).eval()
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(
        LabError, match=r"'classifier.fc2' has output shape \(1, 5\).*spatial.*'features.pool3'"
    ):
        gradcam(model, x, layer="classifier.fc2")
    with pytest.raises(LabError, match=r"'pool' has output shape \(1, 128, 1, 1\)"):
        gradcam(model, x, layer="pool")
    with pytest.raises(LabError, match="does not exist.*Did you mean.*'features.conv1_1'"):
        gradcam(model, x, layer="features.conv1")


def test_a_layer_changed_in_place_later_is_refused():
    model = torchvision.models.resnet18(weights=None).eval()
    with pytest.raises(
        LabError, match=r"'bn1' returns a tensor that the model then changes in place.*'layer4.1'"
    ):
        gradcam(model, torch.randn(1, 3, 64, 64), layer="bn1")


def test_target_out_of_range(x):
    with pytest.raises(LabError, match=r"target 9 is out of range.*0\.\.3"):
        gradcam(tiny_cnn(), x, target=9)


def test_training_mode_is_computed_in_eval_and_given_back(x):
    model = tiny_cnn()
    expected = gradcam(model, x, layer="2")
    model.train()
    stats = model[1].running_var.clone()
    with pytest.warns(UserWarning, match="gradcam: the model is in training mode"):
        got = gradcam(model, x, layer="2")
    assert torch.equal(got, expected)
    assert all(m.training for m in model.modules()) and torch.equal(model[1].running_var, stats)


@pytest.mark.parametrize("method", [gradcam, guided_gradcam])
def test_hooks_gone_and_state_restored_after_an_exception(method, x):
    model = tiny_cnn()
    model[0].bias.requires_grad_(False)

    def boom(module, args, output):
        if output.shape[0] > 1:  # let the one-image probe pass, fail in the real pass
            raise RuntimeError("injected")

    handle = model[6].register_forward_hook(boom)
    with pytest.raises(RuntimeError, match="injected"):
        method(model, x, layer="2")
    handle.remove()
    for m in model.modules():
        assert not m._forward_hooks and not m._backward_hooks and not m._forward_pre_hooks
    assert not any(m.training for m in model.modules())
    assert [p.requires_grad for p in model[0].parameters()] == [True, False]
    assert torch.allclose(method(model, x, layer="2"), method(tiny_cnn(), x, layer="2"))
