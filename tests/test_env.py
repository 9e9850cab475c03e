"""labkit.env: parameters and profiles, types, seeding, device choice, record."""

import json

import pytest
import torch

import labkit
from labkit.env import LabError, pick_device, setup

DEFAULTS = {"smoke": {"epochs": 1, "lr": 0.01, "dataset": "shapes"}, "full": {"epochs": 5, "lr": 0.001, "dataset": "shapes"}}


def test_none_takes_the_profile_default(tmp_path):
    lab = setup("99_test", "smoke", defaults=DEFAULTS, epochs=None, lr=None, out_dir=str(tmp_path))
    assert (lab.epochs, lab.lr, lab.dataset) == (1, 0.01, "shapes")
    lab = setup("99_test", "full", defaults=DEFAULTS, epochs=7, out_dir=str(tmp_path))
    assert (lab.epochs, lab.lr) == (7, 0.001)
    assert lab.figures_dir == tmp_path / "figures" / "99_test"
    assert lab.figures_dir.is_dir() and lab.checkpoints_dir.is_dir()


def test_wrong_type_says_what_to_write(tmp_path):
    with pytest.raises(LabError, match=r"epochs='3' is a str, but epochs takes a int.*-p epochs=1"):
        setup("99_test", "smoke", defaults=DEFAULTS, epochs="3", out_dir=str(tmp_path))
    with pytest.raises(LabError, match="lr=True is a bool"):
        setup("99_test", "smoke", defaults=DEFAULTS, lr=True, out_dir=str(tmp_path))
    lab = setup("99_test", "smoke", defaults=DEFAULTS, lr=1, out_dir=str(tmp_path))
    assert lab.lr == 1.0 and isinstance(lab.lr, float)


def test_unknown_parameter_and_profile(tmp_path):
    with pytest.raises(LabError, match=r"unknown parameter\(s\) \['epoch'\].*takes \[.*'epochs'"):
        setup("99_test", "smoke", defaults=DEFAULTS, epoch=3, out_dir=str(tmp_path))
    with pytest.raises(LabError, match="profile='fast' is not a profile"):
        setup("99_test", "fast", defaults=DEFAULTS)


def test_record_writes_json_and_rerun_starts_afresh(tmp_path):
    lab = setup("99_test", "smoke", defaults=DEFAULTS, out_dir=str(tmp_path))
    labkit.record(accuracy=torch.tensor(0.5), counts={"a": 3}, seconds=1.25)
    assert json.loads(lab.metrics_path.read_text()) == {"accuracy": 0.5, "counts": {"a": 3}, "seconds": 1.25}
    setup("99_test", "smoke", defaults=DEFAULTS, out_dir=str(tmp_path))
    assert json.loads(lab.metrics_path.read_text()) == {}


def test_seed_makes_torch_repeatable(tmp_path):
    setup("99_test", "smoke", defaults=DEFAULTS, seed=3, out_dir=str(tmp_path))
    a = torch.rand(4)
    setup("99_test", "smoke", defaults=DEFAULTS, seed=3, out_dir=str(tmp_path))
    assert torch.equal(a, torch.rand(4))


def test_device_choice():
    assert pick_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        assert pick_device("auto").type in ("cpu", "mps")
        with pytest.raises(LabError, match="no CUDA GPU is visible"):
            pick_device("cuda")
    else:
        assert pick_device("auto").type == expected
    with pytest.raises(LabError, match="not a device name"):
        pick_device("tpu0")
