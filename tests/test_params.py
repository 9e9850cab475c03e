"""Parameters are checked before any work: every lab, run with one bad value per kind of parameter,
fails in its setup cell (or, for a layer name, where the network is loaded) with a message naming
the parameter. The labs run in this process, cell by cell, up to the cell that fails, as papermill
would run them; one case goes through the runner and its kernel."""

import time

import nbformat
import pytest
from torch import nn

from course import run as runner
from labkit.core import LabError
from labkit.params import RULES, check_layers, validate

SETUP, NETWORK = "labkit.setup(", "zoo.naive_cnn("

# notebook -> [(parameter, bad value, the cell that must refuse it)], one per kind the lab has:
# a wrong type, out of range, not among the choices, a name that does not exist, a layer of the network.
CASES = {
    "01": [("image_size", "64", SETUP), ("batch_size", 0, SETUP), ("augment", "heavy", SETUP),
           ("dataset", "mnist", SETUP)],
    "02": [("epochs", -1, SETUP), ("dropout", 1.5, SETUP), ("optimizer", "adamax", SETUP),
           ("tta", "yes", SETUP), ("channels", [16, 0, 64], SETUP)],
    "03": [("depth", 0, SETUP), ("resnet_channels", [16, 32, 64], SETUP), ("resnet_lr", -0.1, SETUP),
           ("augment", "wild", SETUP), ("resnet_arch", "resnet50", SETUP), ("resnet_momentum", 1.0, SETUP)],
    "04": [("backbone", "resnet999", SETUP), ("lr_decay", 2.0, SETUP), ("unfreeze_stages", -1, SETUP),
           ("head_epochs", "30", SETUP)],
    "05": [("photos", ["chelsea", "dog"], SETUP), ("n_units", 0, SETUP), ("interactive", "yes", SETUP)],
    "06": [("inversion_layers", ["features.pool9"], NETWORK), ("n_show", 0, SETUP), ("photos", [], SETUP)],
    "07": [("layer", "features.conv9_9", NETWORK), ("n_images", -5, SETUP), ("photo_size", 8, SETUP),
           ("deletion_photos", ["chelsea", "kitten"], SETUP), ("occlusion_window", 0, SETUP)],
    "08": [("imagenet_classes", ["no such class at all"], SETUP), ("steps", 0, SETUP),
           ("objective", "prob", SETUP), ("second_seed", 0, SETUP), ("ensemble_seeds", [1, 2], SETUP),
           ("fooling_max_steps", 0.5, SETUP)],
}  # fmt: skip


def _notebook(number):
    (path,) = runner.resolve([number])
    return path, nbformat.read(path, as_version=4)


def _run_until_failure(nb, overrides):
    """Execute the code cells in order (parameters, then the overrides, as papermill injects them)
    until one raises; returns (that cell's source, the exception, seconds)."""
    scope = {"__name__": "__main__", "display": lambda *a, **k: None}
    start = time.perf_counter()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            exec(compile(cell.source, "<cell>", "exec"), scope)
            if "parameters" in cell.metadata.get("tags", []):
                scope.update(overrides)
        except Exception as err:  # noqa: BLE001 - the test inspects what was raised
            return cell.source, err, time.perf_counter() - start
    return None, None, time.perf_counter() - start


@pytest.mark.parametrize(("number", "name", "bad", "where"),
                         [(n, *case) for n, cases in CASES.items() for case in cases],
                         ids=[f"{n}-{c[0]}" for n, cases in CASES.items() for c in cases])  # fmt: skip
def test_a_bad_parameter_stops_the_lab_at_once_naming_it(number, name, bad, where, tmp_path):
    path, nb = _notebook(number)
    source, err, seconds = _run_until_failure(nb, {"profile": "smoke", "out_dir": str(tmp_path), name: bad})
    assert err is not None, f"{path.stem} ran through with {name}={bad!r}"
    assert isinstance(err, LabError), f"{type(err).__name__}: {err}"
    assert f"parameter {name}=" in str(err), str(err)
    assert where in source, f"{name}={bad!r} was refused only in the cell:\n{source[:300]}"
    assert seconds < 60, f"{name}={bad!r} took {seconds:.0f} s to refuse"


def test_every_parameter_of_every_lab_has_a_rule():
    declared = set().union(*(runner.declared_parameters(p) for p in runner.available()))
    # device: labkit.core.pick_device checks it; profile: labkit.recipes.resolve
    assert declared - set(RULES) == {"device", "profile"}


def test_the_runner_reports_the_bad_parameter_from_the_setup_cell(tmp_path):
    start = time.perf_counter()
    outcomes = runner.run(["02"], profile="smoke", params={"epochs": -1}, out=tmp_path, html_index=False)
    assert outcomes[0].status == "failed" and "parameter epochs=-1" in outcomes[0].error
    assert (
        time.perf_counter() - start < 120
    )  # the kernel's start and imports, then the setup cell: no training


def test_rules_say_what_the_parameter_takes():
    with pytest.raises(LabError, match=r"parameter lr=0: lr takes a number in \(0, ∞\)"):
        validate({"lr": 0})
    with pytest.raises(LabError, match=r"parameter patience=0: patience takes an int >= 1 or None"):
        validate({"patience": 0})
    validate({"patience": None, "interactive": None, "dataset": "folder:/any/where", "photos": ["coffee"]})
    with pytest.raises(LabError, match=r"unknown photo \['dog'\]; choose from \[.*'chelsea'"):
        validate({"photos": ["dog"]})
    with pytest.raises(LabError, match="for the shapes dataset"):
        validate({"dataset": "shapes", "image_size": 300})
    validate({"dataset": "cifar10", "image_size": 300})
    # lab 03's residual network: ResNet-9 takes four channel numbers, airbench's network three
    validate({"resnet_arch": "airbench", "resnet_channels": [64, 256, 256]})
    with pytest.raises(LabError, match=r"parameter resnet_channels=\[64, 256, 256\]: .*a list of 4 int"):
        validate({"resnet_arch": "resnet9", "resnet_channels": [64, 256, 256]})


def test_layer_names_are_checked_against_the_network():
    model = nn.Sequential()
    model.add_module("features", nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))
    check_layers(model, {"layer": "features.1", "inversion_layers": ["features.0"], "epochs": 3})
    with pytest.raises(LabError, match=r"parameter inversion_layers=\['features.0', 'x'\].*no layer \['x'\]"):
        check_layers(model, {"inversion_layers": ["features.0", "x"]})
