"""labkit.lab.setup: parameters read from the notebook, recipes per profile and dataset, types, seeding,
device choice, record."""

import json

import pytest
import torch

import labkit
from labkit import recipes
from labkit.core import LabError, pick_device
from labkit.lab import environment, setup

DEFAULTS = {
    "smoke": {"epochs": 1, "lr": 0.01, "dataset": "shapes"},
    "full": {"epochs": 5, "lr": 0.001, "dataset": "shapes"},
}


def test_none_takes_the_profile_default(tmp_path):
    lab = setup("99_test", profile="smoke", defaults=DEFAULTS, epochs=None, lr=None, out_dir=str(tmp_path))
    assert (lab.epochs, lab.lr, lab.dataset) == (1, 0.01, "shapes")
    lab = setup("99_test", profile="full", defaults=DEFAULTS, epochs=7, out_dir=str(tmp_path))
    assert (lab.epochs, lab.lr) == (7, 0.001)
    assert lab.figures_dir == tmp_path / "figures" / "99_test"
    assert lab.figures_dir.is_dir() and lab.checkpoints_dir.is_dir()


def test_wrong_type_says_what_to_write(tmp_path):
    with pytest.raises(LabError, match=r"epochs='3' is a str, but epochs takes a int.*-p epochs=1"):
        setup("99_test", profile="smoke", defaults=DEFAULTS, epochs="3", out_dir=str(tmp_path))
    with pytest.raises(LabError, match="lr=True is a bool"):
        setup("99_test", profile="smoke", defaults=DEFAULTS, lr=True, out_dir=str(tmp_path))
    lab = setup("99_test", profile="smoke", defaults=DEFAULTS, lr=1, out_dir=str(tmp_path))
    assert lab.lr == 1.0 and isinstance(lab.lr, float)


def test_unknown_parameter_and_profile(tmp_path):
    with pytest.raises(LabError, match=r"unknown parameter\(s\) \['epoch'\].*takes \[.*'epochs'"):
        setup("99_test", profile="smoke", defaults=DEFAULTS, epoch=3, out_dir=str(tmp_path))
    with pytest.raises(LabError, match="profile='fast' is not a profile"):
        setup("99_test", profile="fast", defaults=DEFAULTS)


def test_parameters_come_from_the_notebooks_names(tmp_path):
    # what a notebook's globals() holds after its parameters cell: the parameters and much else
    namespace = {
        "profile": "full",
        "epochs": None,
        "lr": 0.5,
        "out_dir": str(tmp_path),
        "In": [],
        "np": object(),
    }
    lab = setup("99_test", namespace, defaults=DEFAULTS)
    assert (lab.profile, lab.epochs, lab.lr) == ("full", 5, 0.5)
    assert "In" not in lab.params and "np" not in lab.params
    lab = setup("99_test", namespace, defaults=DEFAULTS, lr=0.25)  # a name given beats the namespace's
    assert lab.lr == 0.25
    with pytest.raises(LabError, match=r"epochs='3' is a str"):
        setup("99_test", {**namespace, "epochs": "3"}, defaults=DEFAULTS)


def test_every_lab_has_a_recipe_and_an_unknown_lab_is_refused(tmp_path):
    for notebook in recipes.LABS:
        lab = setup(notebook, {"profile": "smoke", "out_dir": str(tmp_path)})
        assert lab.recipe == "default/smoke" and lab.params["seed"] == 0
    with pytest.raises(LabError, match=r"no recipe for a notebook '99_nothing'"):
        setup("99_nothing", {"profile": "smoke"})


def test_record_writes_json_and_rerun_starts_afresh(tmp_path):
    lab = setup("99_test", profile="smoke", defaults=DEFAULTS, out_dir=str(tmp_path))
    labkit.record(accuracy=torch.tensor(0.5), counts={"a": 3}, seconds=1.25)
    assert json.loads(lab.metrics_path.read_text()) == {"accuracy": 0.5, "counts": {"a": 3}, "seconds": 1.25}
    setup("99_test", profile="smoke", defaults=DEFAULTS, out_dir=str(tmp_path))
    assert json.loads(lab.metrics_path.read_text()) == {}


def test_seed_makes_torch_repeatable(tmp_path):
    setup("99_test", profile="smoke", defaults=DEFAULTS, seed=3, out_dir=str(tmp_path))
    a = torch.rand(4)
    setup("99_test", profile="smoke", defaults=DEFAULTS, seed=3, out_dir=str(tmp_path))
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


def test_a_dataset_gets_its_own_recipe_and_the_lab_says_which(tmp_path):
    defaults = {
        "smoke": {"dataset": "shapes", "epochs": 1, "lr": 0.01},
        "full": {"dataset": "shapes", "epochs": 5, "lr": 0.001},
        "datasets": {
            "cifar10": {"full": {"epochs": 8, "lr": 0.2, "unknown_key": 1}},
            "folder": {"full": {"epochs": 20}, "smoke": {"epochs": 2}},
        },
    }
    lab = setup("99_test", profile="full", defaults=defaults, out_dir=str(tmp_path))
    assert (lab.epochs, lab.lr, lab.recipe) == (5, 0.001, "default/full")
    lab = setup("99_test", profile="full", defaults=defaults, dataset="CIFAR-10", out_dir=str(tmp_path))
    assert (lab.epochs, lab.lr, lab.recipe) == (8, 0.2, "cifar10/full")
    assert "unknown_key" not in lab.params  # a recipe cannot add parameters the notebook does not declare
    lab = setup(
        "99_test", profile="full", defaults=defaults, dataset="cifar10", epochs=3, out_dir=str(tmp_path)
    )
    assert (lab.epochs, lab.lr) == (3, 0.2)  # the student's value beats the recipe's
    lab = setup("99_test", profile="smoke", defaults=defaults, dataset="cifar10", out_dir=str(tmp_path))
    assert (lab.epochs, lab.recipe) == (1, "default/smoke")  # no smoke recipe for cifar10: the profile's
    lab = setup(
        "99_test", profile="smoke", defaults=defaults, dataset="folder:/any/path", out_dir=str(tmp_path)
    )
    assert (lab.epochs, lab.recipe) == (2, "folder/smoke")
    assert "recipe=folder/smoke" in repr(lab)


def test_environment_says_versions_device_places_and_whether_lab02s_network_is_there(tmp_path):
    defaults = {"smoke": {"dataset": "shapes", "interactive": None}}
    lab = setup("07_gradcam", profile="smoke", defaults=defaults, out_dir=str(tmp_path))
    rows = {what: (value, advice) for what, value, advice in environment(lab)}
    assert f"labkit {labkit.__version__}, torch {torch.__version__}" in rows["versions"][0]
    assert rows["device"][0].startswith(lab.device.type) and str(tmp_path) in rows["outputs"][0]
    assert rows["lab-02 network"][0].startswith("not found") and "run lab 02" in rows["lab-02 network"][1]
    assert rows["explorers"][0].startswith("static figures")  # LABKIT_HEADLESS=1 in the tests
    (tmp_path / "checkpoints" / "02_naive_cnn.pt").write_bytes(b"")
    assert dict((w, v) for w, v, _ in environment(lab))["lab-02 network"].startswith("found")
    html = lab._repr_html_()
    assert "lab-02 network" in html and "parameters" in html
    lab = setup(
        "99_test",
        profile="smoke",
        defaults={"smoke": {"dataset": "cifar10"}},
        data_root=str(tmp_path),
        out_dir=str(tmp_path),
    )
    rows = {what: (value, advice) for what, value, advice in environment(lab)}
    assert "cifar10" in rows["data"][0] and "not there yet" in rows["data"][1]
    assert "lab-02 network" not in rows  # only the labs that explain it (and lab 02) say where it is
