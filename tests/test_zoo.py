"""labkit.zoo: later labs reuse lab 02's network when it fits their data, else train one and say so."""

import pytest
import torch

import labkit
from labkit import zoo


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    monkeypatch.setitem(zoo.LAB02_DATA, "smoke", {"dataset": "shapes", "image_size": 32, "n_per_class": 8})
    monkeypatch.setitem(zoo.QUICK_TRAINING, "smoke", {"epochs": 1, "lr": 1e-3, "batch_size": 16})
    monkeypatch.setattr(zoo, "LAB02_MODEL", {"channels": (4, 8), "convs_per_stage": 1, "hidden": 8})
    return labkit.setup("05_test", "smoke", out_dir=str(tmp_path))


def test_trains_when_missing_then_reuses(tiny, capsys):
    model, info = zoo.naive_cnn(tiny)
    assert info["source"] == "trained now" and "training a quick naive CNN" in capsys.readouterr().out
    assert zoo.checkpoint_path(tiny).is_file() and not model.training
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
