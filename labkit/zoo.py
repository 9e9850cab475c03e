"""Trained networks that later labs reuse, so each notebook also runs on its own.

Lab 02 trains the naive CNN on `shapes` and saves it with `save_naive_cnn`; labs 05–08 call
`naive_cnn(lab)`, which loads that checkpoint when it fits the data, and otherwise trains a quick
one with the recipe below, saying so. `lab02_splits(lab)` gives the very splits lab 02 used under
the same profile and seed, so the images a later lab explains were never trained on.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from torch import nn

from labkit.env import Lab

# Lab 02's data and network, per profile. notebooks/02_naive_cnn.ipynb uses the same values.
LAB02_DATA = {
    "smoke": {"dataset": "shapes", "image_size": 48, "n_per_class": 300},
    "full": {"dataset": "shapes", "image_size": 64, "n_per_class": 400},
}
# Small enough to train in minutes on two CPU cores; shapes need resolution more than width
# (measured: 48 px beats 32 px by far more than doubling the channels does).
LAB02_MODEL = {"channels": (16, 32, 64), "convs_per_stage": 2, "dropout": 0.2, "hidden": 128}
# The quick recipe, used when no lab-02 checkpoint is there: fewer epochs than lab 02 itself.
QUICK_TRAINING = {
    "smoke": {"epochs": 6, "lr": 3e-3, "batch_size": 32},
    "full": {"epochs": 10, "lr": 3e-3, "batch_size": 32},
}


def lab02_splits(lab: Lab, **overrides: Any):
    """The `shapes` splits lab 02 trains on under `lab.profile` and `lab.seed`."""
    from labkit.data import load_dataset

    config = {**LAB02_DATA[lab.profile], **overrides}
    name = config.pop("dataset")
    return load_dataset(name, lab.params.get("data_root"), seed=lab.seed, **config)


def checkpoint_path(lab: Lab, seed: int | None = None) -> Path:
    suffix = "" if seed is None else f"_seed{seed}"
    return lab.checkpoints_dir / f"02_naive_cnn{suffix}.pt"


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
    """
    from labkit.data import make_loaders
    from labkit.models import NaiveCNN
    from labkit.train import evaluate, fit, load_checkpoint

    splits = splits if splits is not None else lab02_splits(lab)
    path = checkpoint_path(lab, seed)
    if path.is_file():
        model, extra = load_checkpoint(path)
        mismatch = _fits(extra.get("data", {}), splits)
        if mismatch is None:
            info = {"source": "checkpoint", "path": str(path), **{k: v for k, v in extra.items() if k != "data"}}
            if verbose:
                print(f"Loaded the lab-02 network from {path}.")
            return model.to(lab.device).eval(), info
        if verbose:
            print(f"The checkpoint {path} was trained on other data ({mismatch}); training a new one.")

    recipe = QUICK_TRAINING[lab.profile]
    train_seed = lab.seed if seed is None else seed
    if verbose:
        print(f"No lab-02 checkpoint for this data at {path}: training a quick naive CNN "
              f"({recipe['epochs']} epochs, seed {train_seed}). Run lab 02 first to use its network.")
    import torch

    torch.manual_seed(train_seed)
    loaders = make_loaders(splits, recipe["batch_size"], seed=train_seed)
    model = NaiveCNN(splits.num_classes, **LAB02_MODEL)
    start = time.perf_counter()
    history = fit(model, loaders.train, loaders.val, epochs=recipe["epochs"], device=lab.device, optimizer="adam",
                  lr=recipe["lr"], scheduler="onecycle", progress=False)
    seconds = time.perf_counter() - start
    test_accuracy = evaluate(model, loaders.test, device=lab.device)["accuracy"]
    info = {"source": "trained now", "path": str(path), "epochs": history.epochs_run,
            "train_seconds": round(seconds, 1), "test_accuracy": float(test_accuracy), "seed": train_seed}
    save_naive_cnn(lab, model, splits, variant=seed, **{k: v for k, v in info.items() if k not in ("source", "path")})
    if verbose:
        print(f"Trained in {seconds:.0f} s; test accuracy {test_accuracy:.3f}; saved to {path}.")
    return model.to(lab.device).eval(), info


def backbone(name: str = "efficientnet_lite0", num_classes: int | None = None) -> nn.Module:
    """A pretrained backbone in eval mode (see `labkit.models.pretrained`)."""
    from labkit.models import pretrained

    return pretrained(name, num_classes=num_classes, freeze=True).eval()
