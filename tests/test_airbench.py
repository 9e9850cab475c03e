"""airbench's network with residual groups (lab 03 on CIFAR-10), its whitening stem, and the parts of
its recipe that live in labkit.train (batch-norm parameter groups, the linear schedule)."""

import pytest
import torch
from torch import nn

from labkit import recipes
from labkit.core import LabError
from labkit.models import AirbenchResNet, PatchWhitening, build, count_params
from labkit.train import norm_scaled_groups
from labkit.train.optim import build_optimizer, build_scheduler


def _correlated_images(n=200, side=12, seed=0):
    # Neighbouring pixels and the three channels strongly correlated, as in photographs.
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 1, side // 2, side // 2, generator=g)
    base = nn.functional.interpolate(base, size=(side, side), mode="bilinear", align_corners=False)
    return base.repeat(1, 3, 1, 1) + 0.1 * torch.randn(n, 3, side, side, generator=g)


def test_whitening_stem_decorrelates_patches():
    images = _correlated_images()
    stem = PatchWhitening(3, 2).fit(images, eps=0.0)
    out = stem(images) - stem.bias.view(1, -1, 1, 1)  # (N, 24, 11, 11)
    assert out.shape == (200, 24, 11, 11)
    first_half = out[:, :12].permute(0, 2, 3, 1).reshape(-1, 12).double()
    covariance = first_half.T @ first_half / len(first_half)
    torch.testing.assert_close(covariance, torch.eye(12, dtype=torch.float64), atol=1e-3, rtol=0)
    torch.testing.assert_close(out[:, 12:], -out[:, :12])  # the negatives
    raw = images.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 12)
    assert torch.corrcoef(raw.T).abs().mean() > 0.5  # and the input was far from white
    assert not stem.weight.requires_grad and stem.bias.requires_grad


def test_whitening_stem_orders_filters_by_variance_and_refuses_bad_images():
    images = _correlated_images()
    stem = PatchWhitening(3, 2).fit(images, eps=0.0)
    norms = stem.weight[:12].flatten(1).norm(dim=1)  # 1 / sqrt(eigenvalue): smallest for the main direction
    assert torch.all(norms[1:] >= norms[:-1] - 1e-6)
    with pytest.raises(LabError, match=r"expected \(N, 3, H, W\).*normalised training images"):
        stem.fit(torch.randn(10, 1, 8, 8))


def test_airbench_resnet_shapes_identity_start_and_rebuild():
    model = AirbenchResNet(10, widths=(16, 32, 32))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert model(torch.randn(1, 3, 48, 40)).shape == (1, 10)
    conv = model.group2.conv1.weight  # 16 -> 32: its first 16 filters copy their input channel
    centre_only = torch.zeros_like(conv[:16])
    centre_only[torch.arange(16), torch.arange(16), 1, 1] = 1
    torch.testing.assert_close(conv[:16], centre_only)
    for norm in (model.group1.norm1, model.group3.norm2):
        assert not norm.weight.requires_grad and norm.bias.requires_grad and norm.eps == 1e-12
    twin = build(model.arch)
    assert isinstance(twin, AirbenchResNet) and count_params(twin) == count_params(model)
    with pytest.raises(LabError, match="widths=.*three positive ints"):
        AirbenchResNet(10, widths=(16, 32))


def test_each_group_adds_its_input_back():
    model = AirbenchResNet(3, widths=(8, 8, 8)).eval()
    group, x = model.group2, torch.randn(2, 8, 8, 8)
    pooled = group.act1(group.norm1(group.pool(group.conv1(x))))
    torch.testing.assert_close(group(x), pooled + group.act2(group.norm2(group.conv2(pooled))))


def test_norm_scaled_groups_scale_lr_and_keep_the_decay_per_step():
    model = AirbenchResNet(10, widths=(8, 16, 16))
    groups = norm_scaled_groups(model, lr=0.5, weight_decay=1e-3, norm_lr_scale=64)
    weights, norms = groups
    assert (weights["name"], norms["name"]) == ("weights", "batch_norm")
    norm_biases = [m.bias for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert {id(p) for p in norms["params"]} == {id(p) for p in norm_biases}  # scales are frozen: left out
    assert all(p.requires_grad for g in groups for p in g["params"])
    assert len(weights["params"]) + len(norms["params"]) == sum(p.requires_grad for p in model.parameters())
    assert norms["lr"] == 32.0 and norms["lr"] * norms["weight_decay"] == pytest.approx(0.5 * 1e-3)
    with pytest.raises(LabError, match="norm_lr_scale=0"):
        norm_scaled_groups(model, 0.5, 1e-3, 0)


def test_linear_schedule_warms_up_then_decays_linearly():
    model = nn.Linear(2, 2)
    opt = build_optimizer("nesterov", model, lr=1.0, momentum=0.85)
    sched, per_batch = build_scheduler("linear", opt, epochs=10, steps_per_epoch=10)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert per_batch and lrs[0] == pytest.approx(0.2) and max(lrs) == pytest.approx(1.0)
    peak = lrs.index(max(lrs))
    assert 20 <= peak <= 23 and lrs[-1] == pytest.approx(0.07, abs=0.01)
    assert all(a < b for a, b in zip(lrs[:peak], lrs[1 : peak + 1])) and all(
        a > b for a, b in zip(lrs[peak:], lrs[peak + 1 :])
    )
    assert opt.param_groups[0]["momentum"] == 0.85  # not cycled


def test_cifar10_gets_airbench_and_the_rest_resnet9():
    cifar, shapes = recipes.resolve(recipes.LAB03, "full", "cifar10"), recipes.resolve(recipes.LAB03, "full")
    assert cifar["resnet_arch"] == "airbench" and len(cifar["resnet_channels"]) == 3
    assert cifar["resnet_scheduler"] == "linear" and cifar["resnet_norm_lr_scale"] == 64
    assert shapes["resnet_arch"] == "resnet9" and len(shapes["resnet_channels"]) == 4
    assert recipes.resolve(recipes.LAB03, "full", "folder:/x")["resnet_arch"] == "resnet9"


def test_train_resnet_on_cifar10_trains_airbench_with_its_recipe(tmp_path, monkeypatch):
    import pickle

    import numpy as np

    from course.train import train_recipe
    from labkit.data import registry
    from labkit.train import load_checkpoint

    monkeypatch.setattr(registry, "network_available", lambda url, timeout=3.0: False)
    folder = tmp_path / "data" / "cifar-10-batches-py"  # torchvision's layout, random images
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as fh:
            pickle.dump(
                {
                    "data": rng.integers(0, 256, (240, 3072), dtype=np.uint8),
                    "labels": [i % 10 for i in range(240)],
                },
                fh,
            )
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, fh)
    result = train_recipe(
        "resnet",
        "cifar10",
        str(tmp_path / "data"),
        profile="smoke",
        epochs=1,
        out=tmp_path / "out",
        progress=False,
    )
    model, extra = load_checkpoint(result["checkpoint"])
    assert (
        isinstance(model, AirbenchResNet) and model.config["widths"] == LAB03_SMOKE_CIFAR["resnet_channels"]
    )
    assert 0.0 <= extra["test_accuracy"] <= 1.0 and result["epochs"] == 1
    assert torch.equal(
        model.stem.weight[12:], -model.stem.weight[:12]
    )  # whitened (random filters are not paired)


LAB03_SMOKE_CIFAR = recipes.resolve(recipes.LAB03, "smoke", "cifar10")


def test_freeze_after_updates_for_the_first_steps_only_and_survives_a_checkpoint():
    from labkit.train.optim import freeze_after

    def make():
        torch.manual_seed(0)
        stem, rest = nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(3))
        opt = torch.optim.SGD([stem, rest], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)
        freeze_after(opt, [stem], 2)
        return stem, rest, opt

    def step(stem, rest, opt):
        opt.zero_grad()
        ((stem * 2).sum() + (rest * 2).sum()).backward()
        opt.step()

    stem, rest, opt = make()
    values = []
    for _ in range(5):
        step(stem, rest, opt)
        values.append((stem.detach().clone(), rest.detach().clone()))
    assert not torch.equal(values[0][0], values[1][0])  # steps 1 and 2 move it
    assert all(torch.equal(values[1][0], v[0]) for v in values[2:])  # then nothing: no momentum, no decay
    assert all(not torch.equal(a[1], b[1]) for a, b in zip(values, values[1:]))  # the others go on
    # The count is in the optimiser's state: a resumed optimiser freezes at the same step.
    stem2, rest2, opt2 = make()
    step(stem2, rest2, opt2)
    saved = opt2.state_dict()
    stem3, rest3, opt3 = make()
    stem3.data.copy_(stem2.data), rest3.data.copy_(rest2.data)
    opt3.load_state_dict(saved)
    for _ in range(4):
        step(stem3, rest3, opt3)
    torch.testing.assert_close(stem3.detach(), values[-1][0])
    with pytest.raises(LabError, match="steps=-1"):
        freeze_after(opt, [stem], -1)
    with pytest.raises(LabError, match="parameters the optimiser updates"):
        freeze_after(opt, [nn.Parameter(torch.ones(1))], 1)


def test_the_whitening_bias_trains_for_its_epochs_then_stays():
    from labkit.zoo import fit_recipe

    torch.manual_seed(0)
    model = AirbenchResNet(3, widths=(8, 8, 8))
    model.stem.fit(torch.randn(64, 3, 12, 12))
    batches = [(torch.randn(8, 3, 12, 12), torch.randint(0, 3, (8,))) for _ in range(3)]

    class Loaders:
        train, val = batches, None

    training = dict(recipes.resnet_training(recipes.defaults("03_residual_inception", "smoke", "cifar10")))
    training.update(epochs=1, whiten_bias_epochs=1, lookahead=False, amp=False)
    fit_recipe(model, Loaders, training, device=torch.device("cpu"), progress=False)
    after_one = model.stem.bias.detach().clone()
    assert after_one.abs().sum() > 0  # it trained in epoch 1
    training.update(whiten_bias_epochs=0)
    fit_recipe(model, Loaders, training, device=torch.device("cpu"), progress=False)
    torch.testing.assert_close(model.stem.bias.detach(), after_one, rtol=0, atol=0)  # 0 epochs: frozen
    assert not model.stem.weight.requires_grad


def test_ablation_switches_replace_the_stem_and_the_identity_start():
    plain = AirbenchResNet(10, widths=(8, 16, 16), whitening=False, dirac=False)
    assert type(plain.stem) is nn.Conv2d and plain.stem.weight.requires_grad and plain.stem.out_channels == 24
    assert plain(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    w = plain.group1.conv2.weight
    assert not torch.equal(w[:, :, 1, 1].diagonal(), torch.ones(8))  # not an identity start
    rebuilt = build(plain.arch)
    assert type(rebuilt.stem) is nn.Conv2d and rebuilt.config == plain.config
    default = AirbenchResNet(10, widths=(8, 16, 16))
    assert (
        isinstance(default.stem, PatchWhitening) and default.config["whitening"] and default.config["dirac"]
    )


def test_native_bfloat16_reads_the_cpu_flags(monkeypatch):
    import builtins
    import io

    from labkit.core import native_bfloat16

    real_open = builtins.open

    def fake(flags):
        def opener(path, *args, **kwargs):
            if str(path) == "/proc/cpuinfo":
                return io.StringIO(f"processor\t: 0\nflags\t\t: {flags}\n")
            return real_open(path, *args, **kwargs)

        return opener

    monkeypatch.setattr(builtins, "open", fake("fpu sse avx2 avx512f"))
    assert native_bfloat16("cpu") is False  # AVX-512 alone emulates bfloat16: slower than float32
    monkeypatch.setattr(builtins, "open", fake("fpu avx512f amx_tile amx_bf16"))
    assert native_bfloat16("cpu") is True
    monkeypatch.setattr(builtins, "open", fake("fpu avx512f avx512_bf16"))
    assert native_bfloat16("cpu") is True
