"""Trained networks that later labs reuse, so each notebook also runs on its own.

Lab 02 trains the naive CNN on its dataset (shapes by default, or CIFAR-10, cats vs dogs, a folder)
and saves it with `save_naive_cnn`, one checkpoint per dataset; labs 05–08, run with the same
`dataset`, call `naive_cnn(lab)`, which loads that checkpoint when it fits the data, and otherwise
trains a quick one with lab 02's recipe for fewer epochs (`labkit.recipes`), saying so.
`lab02_splits(lab)` gives the very splits lab 02 used under the same dataset, profile and seed, so
the images a later lab explains were never trained on.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from torch import nn

from labkit import recipes
from labkit.core import dataset_key
from labkit.lab import Lab


def dataset_slug(dataset: str) -> str:
    """A file-name-safe name of a dataset: "cifar10", or "folder-<last folder name>" for folder:PATH."""
    key = dataset_key(dataset) or "shapes"
    if key != "folder":
        return key
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(dataset[len("folder:") :].rstrip("/\\")).name) or "root"
    return f"folder-{name}"


def _dataset(lab: Lab) -> str:
    return lab.params.get("dataset") or "shapes"


def lab02_splits(lab: Lab, **overrides: Any):
    """The splits lab 02 trains on for `lab.dataset` (default shapes), `lab.profile` and `lab.seed`:
    the same images in the same splits, so the test images a later lab explains were never trained on."""
    from labkit.data import load_dataset

    dataset = _dataset(lab)
    recipe = recipes.lab02(lab.profile, dataset)
    config = {"image_size": recipe["image_size"], "val_fraction": 0.1}
    if dataset_key(dataset) == "shapes":
        config["n_per_class"] = recipe["n_per_class"]
    config.update(overrides)
    return load_dataset(dataset, lab.params.get("data_root"), seed=lab.seed, **config)


def checkpoint_path(lab: Lab, seed: int | None = None) -> Path:
    """Where lab 02's network for `lab.dataset` is kept (another training seed: a file beside it)."""
    slug = dataset_slug(_dataset(lab))
    name = "02_naive_cnn" if slug == "shapes" else f"02_naive_cnn_{slug}"
    return lab.checkpoints_dir / f"{name}{'' if seed is None else f'_seed{seed}'}.pt"


def _data_record(splits) -> dict[str, Any]:
    return {
        "dataset": splits.name,
        "classes": list(splits.classes),
        "image_size": int(splits.image_size),
        "mean": [float(m) for m in splits.mean],
        "std": [float(s) for s in splits.std],
    }


def save_naive_cnn(lab: Lab, model: nn.Module, splits, *, variant: int | None = None, **extra: Any) -> Path:
    """Save a trained naive CNN where `naive_cnn(lab, seed=variant)` looks for it (atomic write);
    `extra` (test accuracy, epochs, seed, ...) is stored beside the weights."""
    from labkit.train import save_checkpoint

    path = checkpoint_path(lab, variant)
    save_checkpoint(path, model, data=_data_record(splits), **extra)
    return path


def _fits(saved: dict[str, Any], splits) -> str | None:
    """None when a checkpoint's data record fits `splits`; otherwise what differs."""
    wanted = _data_record(splits)
    for key in ("dataset", "classes", "image_size"):
        if saved.get(key) != wanted[key]:
            return f"{key} {saved.get(key)!r} != {wanted[key]!r}"
    return None


def naive_cnn(lab: Lab, splits=None, *, seed: int | None = None, verbose: bool = True) -> tuple[nn.Module, dict]:
    """The lab-02 network in eval mode, and a dict saying where it came from.

    Args:
        lab: the current lab (its profile, seed, device and checkpoints folder are used).
        splits: the data the network must fit; default `lab02_splits(lab)`.
        seed: train from another seed (a second, independent network, as lab 08 needs); its
            checkpoint is kept beside lab 02's.

    Returns:
        (model, info) with info = {"source": "checkpoint" | "trained now", "path", "test_accuracy", ...}.

    Raises:
        LabError: a layer parameter of the lab (`labkit.params.LAYER_PARAMETERS`: `layer`,
            `inversion_layers`) names no layer of the network; checked before it is trained.
    """
    from labkit.data import make_loaders
    from labkit.models import NaiveCNN
    from labkit.params import check_layers
    from labkit.train import evaluate, fit, load_checkpoint

    splits = splits if splits is not None else lab02_splits(lab)
    path = checkpoint_path(lab, seed)
    if path.is_file():
        model, extra = load_checkpoint(path)
        mismatch = _fits(extra.get("data", {}), splits)
        if mismatch is None:
            check_layers(model, lab.params, "the lab-02 network")  # a lab's layer parameters, before any use
            info = {"source": "checkpoint", "path": str(path), **{k: v for k, v in extra.items() if k != "data"}}
            if verbose:
                print(f"Loaded the lab-02 network from {path}.")
            return model.to(lab.device).eval(), info
        if verbose:
            print(f"The checkpoint {path} was trained on other data ({mismatch}); training a new one.")

    recipe = recipes.lab02(lab.profile, _dataset(lab))
    epochs = recipes.quick_epochs(lab.profile, _dataset(lab))
    train_seed = lab.seed if seed is None else seed
    if verbose:
        print(f"No lab-02 checkpoint for this data at {path}: training a quick naive CNN "
              f"({epochs} epochs, seed {train_seed}). Run lab 02 first to use its network.")
    import torch

    torch.manual_seed(train_seed)
    loaders = make_loaders(splits.with_augment(recipe["augment"]), recipe["batch_size"], seed=train_seed,
                           device=lab.device)  # fmt: skip
    model = NaiveCNN(splits.num_classes, **{k: recipe[k] for k in recipes.LAB02_NETWORK})
    check_layers(model, lab.params, "the lab-02 network")  # before minutes of training, not after
    start = time.perf_counter()
    history = fit(model, loaders.train, loaders.val, epochs=epochs, device=lab.device, optimizer=recipe["optimizer"],
                  lr=recipe["lr"], weight_decay=recipe["weight_decay"], label_smoothing=recipe["label_smoothing"],
                  scheduler="onecycle", channels_last=True, progress=verbose)  # fmt: skip
    seconds = time.perf_counter() - start
    test_accuracy = evaluate(model, loaders.test, tta=recipe["tta"])["accuracy"]
    info = {"source": "trained now", "path": str(path), "epochs": history.epochs_run,
            "train_seconds": round(seconds, 1), "test_accuracy": float(test_accuracy), "seed": train_seed}
    save_naive_cnn(lab, model, splits, variant=seed, **{k: v for k, v in info.items() if k not in ("source", "path")})
    if verbose:
        print(f"Trained in {seconds:.0f} s; test accuracy {test_accuracy:.3f}; saved to {path}.")
    return model.to(lab.device).eval(), info
