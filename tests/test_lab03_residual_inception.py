"""Lab 03 under the smoke profile: every variant trained and recorded, and the gradient measurement."""

import pytest

pytestmark = pytest.mark.notebook

VARIANTS = {"naive_cnn", "inception", "residual", "no_pooling", "small_resnet"}


def test_records_every_variant(smoke_metrics):
    m = smoke_metrics("03_residual_inception")
    variants = m["variants"]
    assert set(variants) == VARIANTS
    for name, v in variants.items():
        assert set(v) == {"params", "mult_adds_M", "train_seconds", "val_accuracy", "test_accuracy"}, name
        assert 0.0 <= v["val_accuracy"] <= 1.0 and 0.0 <= v["test_accuracy"] <= 1.0, name
        assert v["train_seconds"] > 0 and v["mult_adds_M"] > 0, name
    # the same weights, different downsampling; the extra blocks add parameters
    assert variants["no_pooling"]["params"] == variants["naive_cnn"]["params"]
    assert variants["inception"]["params"] > variants["naive_cnn"]["params"]
    assert variants["residual"]["params"] - variants["naive_cnn"]["params"] == 2 * (9 * 64 * 64 + 2 * 64)


def test_multiply_adds_follow_the_resolution_each_conv_computes_at(smoke_metrics):
    """What section 3's "Reading the table" says: no_pooling's strided convolutions compute a quarter of the
    outputs of the ones they replace (fewer multiply-adds than naive_cnn, for the same weights), and the small
    ResNet, at full resolution through its first block, computes the most."""
    variants = smoke_metrics("03_residual_inception")["variants"]
    cost = {name: v["mult_adds_M"] for name, v in variants.items()}
    assert cost["no_pooling"] < 0.6 * cost["naive_cnn"]
    assert max(cost, key=cost.get) == "small_resnet"
    assert cost["naive_cnn"] < cost["inception"] < cost["residual"]


def test_residual_twin_keeps_the_gradient(smoke_metrics):
    m = smoke_metrics("03_residual_inception")
    assert m["grad_ratio_plain"] < 1e-3, "the plain net's gradient should fade towards the input"
    assert 1e-2 < m["grad_ratio_residual"] < 1e2


def test_saves_its_figures(smoke_run):
    outcomes, out = smoke_run
    if "03_residual_inception" not in outcomes:
        pytest.skip("lab 03 not selected")
    for name in ("variant_curves", "resnet_curves", "gradient_norms"):
        assert (out / "figures" / "03_residual_inception" / f"{name}.png").stat().st_size > 10_000


def test_trains_and_keeps_the_residual_network(smoke_metrics, smoke_run):
    import torch

    from labkit.models import ResNet9, count_params
    from labkit.recipes import LAB03
    from labkit.train import load_checkpoint

    m = smoke_metrics("03_residual_inception")
    recipe = LAB03["smoke"]
    assert m["resnet_arch"] == recipe["resnet_arch"] == "resnet9"
    assert m["resnet_epochs"] == recipe["resnet_epochs"] and m["resnet_train_seconds"] > 0
    assert m["resnet_params"] == count_params(ResNet9(10, channels=recipe["resnet_channels"]))
    assert 0.0 <= m["resnet_test_accuracy"] <= 1.0 and 0.0 <= m["resnet_test_accuracy_no_tta"] <= 1.0
    _, out = smoke_run
    model, extra = load_checkpoint(out / "checkpoints" / "03_resnet_shapes.pt")
    assert isinstance(model, ResNet9) and extra["test_accuracy"] == pytest.approx(m["resnet_test_accuracy"])
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
