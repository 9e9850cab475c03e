"""labkit.zoo: later labs reuse lab 02's network when it fits their data, else train one and say so."""

import pytest
import torch

import labkit
from labkit import recipes, zoo

TINY = {
    "dataset": "shapes",
    "image_size": 32,
    "n_per_class": 8,
    "channels": [4, 8],
    "hidden": 8,
    "dropout": 0.0,
    "batch_size": 16,
    "optimizer": "adam",
    "lr": 1e-3,
    "weight_decay": 0.0,
    "label_smoothing": 0.0,
    "augment": "none",
    "tta": False,
}


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    monkeypatch.setitem(recipes.LAB02, "smoke", {**recipes.LAB02["smoke"], **TINY})
    monkeypatch.setitem(recipes.QUICK_EPOCHS, "shapes", {"smoke": 1, "full": 1})
    return labkit.setup(
        "05_test", profile="smoke", defaults={"smoke": {"dataset": "shapes"}}, out_dir=str(tmp_path)
    )


def test_trains_when_missing_then_reuses(tiny, capsys):
    model, info = zoo.naive_cnn(tiny)
    assert info["source"] == "trained now" and "training a quick naive CNN" in capsys.readouterr().out
    assert zoo.checkpoint_path(tiny).is_file() and not model.training
    assert model.config["channels"] == [4, 8]  # lab 02's recipe, not a network of the zoo's own
    again, info2 = zoo.naive_cnn(tiny)
    assert info2["source"] == "checkpoint" and "Loaded the lab-02 network" in capsys.readouterr().out
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_other_data_means_a_new_network(tiny, capsys):
    zoo.naive_cnn(tiny)
    capsys.readouterr()
    splits = zoo.lab02_splits(tiny, image_size=40)
    _, info = zoo.naive_cnn(tiny, splits)
    assert info["source"] == "trained now"
    assert "was trained on other data (image_size 32 != 40)" in capsys.readouterr().out


def test_second_seed_is_a_different_network(tiny):
    first, _ = zoo.naive_cnn(tiny)
    second, info = zoo.naive_cnn(tiny, seed=7)
    assert info["seed"] == 7 and zoo.checkpoint_path(tiny, 7).name == "02_naive_cnn_seed7.pt"
    assert not torch.equal(first.features.conv1_1.weight, second.features.conv1_1.weight)


def test_each_dataset_has_its_own_checkpoint_and_recipe(tmp_path):
    defaults = {"smoke": {"dataset": "shapes"}}
    for dataset, name in [
        ("shapes", "02_naive_cnn.pt"),
        ("cifar-10", "02_naive_cnn_cifar10.pt"),
        ("folder:/data/My Photos/", "02_naive_cnn_folder-My_Photos.pt"),
    ]:
        lab = labkit.setup(
            "05_test",
            profile="smoke",
            defaults={"smoke": {**defaults["smoke"]}},
            dataset=dataset,
            out_dir=str(tmp_path),
        )
        assert zoo.checkpoint_path(lab).name == name
    assert recipes.defaults("02_naive_cnn", "full", "cifar10")["image_size"] == 32
    assert (
        recipes.defaults("02_naive_cnn", "full", "folder:/x")["augment"]
        == recipes.defaults("02_naive_cnn", "full", "cats_vs_dogs")["augment"]
    )
    assert (
        recipes.defaults("02_naive_cnn", "full")["dataset"] == "shapes"
        and recipes.defaults("02_naive_cnn", "full")["image_size"] == 64
    )
