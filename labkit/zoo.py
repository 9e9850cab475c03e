"""The labs' networks and how they are trained, and the trained networks later labs reuse.

Introduced in notebooks/02_naive_cnn.ipynb. `fit_recipe` is the one place lab 02's and lab 03's
training recipes run (the notebooks, the quick networks below and `python -m course train` call it):
the optimiser the recipe names, batch-norm parameters at their own rate, Lookahead where the recipe
asks, then `labkit.train.fit` with its schedule, label smoothing and early stopping.

Lab 02 trains the naive CNN on its dataset (shapes by default, or CIFAR-10, cats vs dogs, a folder)
and saves it with `save_naive_cnn`, one checkpoint per dataset; labs 05–08, run with the same
`dataset`, call `naive_cnn(lab)`, which loads that checkpoint when it fits the data, and otherwise
trains a quick one with lab 02's recipe for fewer epochs, saying so. `lab02_splits(lab)` gives the
very splits lab 02 used under the same dataset, profile and seed, so the images a later lab explains
were never trained on. `lab` is a `labkit.lab.Lab` (its profile, seed, device, params, folders).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from labkit import recipes
from labkit.core import LabError, dataset_key
from labkit.data import load_dataset, make_loaders
from labkit.models import AirbenchResNet, NaiveCNN, ResNet9
from labkit.params import check_layers
from labkit.train import (
    History,
    Lookahead,
    evaluate,
    fit,
    load_checkpoint,
    norm_scaled_groups,
    save_checkpoint,
)
from labkit.train.optim import build_optimizer

WHITENING_IMAGES = 5000  # training images airbench's patch-whitening stem is fitted to


def fit_recipe(
    model: nn.Module,
    loaders,
    training: dict[str, Any],
    *,
    device: torch.device,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    **fit_options: Any,
) -> History:
    """Train `model` with a lab's recipe (`labkit.recipes.naive_training` / `resnet_training`).

    Args:
        model: the network, trained in place.
        loaders: `labkit.data.make_loaders(...)` of the splits (`.train`, `.val`).
        training: the recipe: optimizer, lr, weight_decay, momentum, norm_lr_scale, lookahead,
            scheduler, label_smoothing, patience, epochs.
        device: where to train.
        epochs: None: the recipe's.
        steps_per_epoch: optimiser steps per epoch, for Lookahead's schedule (None: `len(loaders.train)`).
        **fit_options: passed on to `labkit.train.fit` (checkpoint, resume, progress, amp, ...).

    Returns:
        fit's History.
    """
    epochs = epochs or training["epochs"]
    groups = norm_scaled_groups(model, training["lr"], training["weight_decay"], training["norm_lr_scale"])
    optimizer = build_optimizer(
        training["optimizer"], model, lr=training["lr"], momentum=training["momentum"], param_groups=groups
    )
    if training["lookahead"]:  # every 5 steps, average the weights with a slow copy (Zhang et al. 2019)
        optimizer = Lookahead(optimizer, model, total_steps=epochs * (steps_per_epoch or len(loaders.train)))
    return fit(
        model,
        loaders.train,
        loaders.val,
        epochs=epochs,
        device=device,
        optimizer=optimizer,
        label_smoothing=training["label_smoothing"],
        scheduler=training["scheduler"],
        patience=training["patience"],
        channels_last=True,
        **fit_options,
    )


def naive_network(num_classes: int, params: dict[str, Any]) -> NaiveCNN:
    """Lab 02's network with the channels, hidden width and dropout of `params` (a lab's or a recipe's)."""
    return NaiveCNN(
        num_classes, channels=params["channels"], hidden=params["hidden"], dropout=params["dropout"]
    )


def residual_network(params: dict[str, Any], splits) -> nn.Module:
    """Lab 03's residual network of `params["resnet_arch"]` for `splits`, ready to train.

    "resnet9": Page's ResNet-9 (`resnet_channels`: stem and three stages). "airbench": airbench's
    network with residual groups (`resnet_channels`: three groups), its patch-whitening stem fitted
    to 5,000 training images (a fixed random sample) as the network sees them before augmentation.
    """
    arch, channels = params["resnet_arch"], params["resnet_channels"]
    if arch == "resnet9":
        return ResNet9(splits.num_classes, channels=channels)
    if arch != "airbench":
        raise LabError(f"resnet_arch={arch!r}: expected one of {recipes.RESNET_ARCHS}.")
    model = AirbenchResNet(splits.num_classes, widths=channels)
    # A fixed random sample: a folder's training images come class by class.
    pick = torch.randperm(len(splits.train), generator=torch.Generator().manual_seed(0))[:WHITENING_IMAGES]
    if splits.in_memory():
        images = splits.normalize(splits.images("train")[pick].float() / 255)
    else:
        images = torch.stack([splits.train_eval[int(i)][0] for i in pick])
    model.stem.fit(images)
    return model


def dataset_slug(dataset: str) -> str:
    """A file-name-safe name of a dataset: "cifar10", or "folder-<last folder name>" for folder:PATH."""
    key = dataset_key(dataset) or "shapes"
    if key != "folder":
        return key
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(dataset[len("folder:") :].rstrip("/\\")).name) or "root"
    return f"folder-{name}"


def _dataset(lab) -> str:
    return lab.params.get("dataset") or "shapes"


def lab02_splits(lab, **overrides: Any):
    """The splits lab 02 trains on for `lab.dataset` (default shapes), `lab.profile` and `lab.seed`:
    the same images in the same splits, so the test images a later lab explains were never trained on."""
    dataset = _dataset(lab)
    recipe = recipes.defaults("02_naive_cnn", lab.profile, dataset)
    config = {"image_size": recipe["image_size"], "val_fraction": 0.1}
    if dataset_key(dataset) == "shapes":
        config["n_per_class"] = recipe["n_per_class"]
    config.update(overrides)
    return load_dataset(dataset, lab.params.get("data_root"), seed=lab.seed, **config)


def checkpoint_path(lab, seed: int | None = None) -> Path:
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


def save_naive_cnn(lab, model: nn.Module, splits, *, variant: int | None = None, **extra: Any) -> Path:
    """Save a trained naive CNN where `naive_cnn(lab, seed=variant)` looks for it (atomic write);
    `extra` (test accuracy, epochs, seed, ...) is stored beside the weights."""
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


def naive_cnn(lab, splits=None, *, seed: int | None = None, verbose: bool = True) -> tuple[nn.Module, dict]:
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
    splits = splits if splits is not None else lab02_splits(lab)
    path = checkpoint_path(lab, seed)
    if path.is_file():
        model, extra = load_checkpoint(path)
        mismatch = _fits(extra.get("data", {}), splits)
        if mismatch is None:
            check_layers(model, lab.params, "the lab-02 network")  # a lab's layer parameters, before any use
            info = {
                "source": "checkpoint",
                "path": str(path),
                **{k: v for k, v in extra.items() if k != "data"},
            }
            if verbose:
                print(f"Loaded the lab-02 network from {path}.")
            return model.to(lab.device).eval(), info
        if verbose:
            print(f"The checkpoint {path} was trained on other data ({mismatch}); training a new one.")

    recipe = recipes.defaults("02_naive_cnn", lab.profile, _dataset(lab))
    training = recipes.naive_training(recipe)
    epochs = recipes.quick_epochs(lab.profile, _dataset(lab))
    train_seed = lab.seed if seed is None else seed
    if verbose:
        print(
            f"No lab-02 checkpoint for this data at {path}: training a quick naive CNN "
            f"({epochs} epochs, seed {train_seed}). Run lab 02 first to use its network."
        )
    torch.manual_seed(train_seed)
    loaders = make_loaders(
        splits.with_augment(recipe["augment"]), recipe["batch_size"], seed=train_seed, device=lab.device
    )
    model = naive_network(splits.num_classes, recipe)
    check_layers(model, lab.params, "the lab-02 network")  # before minutes of training, not after
    start = time.perf_counter()
    # Without early stopping: a few epochs of the one-cycle schedule, each of them needed.
    history = fit_recipe(
        model, loaders, {**training, "patience": None}, device=lab.device, epochs=epochs, progress=verbose
    )
    seconds = time.perf_counter() - start
    test_accuracy = evaluate(model, loaders.test, tta=recipe["tta"])["accuracy"]
    info = {
        "source": "trained now",
        "path": str(path),
        "epochs": history.epochs_run,
        "train_seconds": round(seconds, 1),
        "test_accuracy": float(test_accuracy),
        "seed": train_seed,
    }
    save_naive_cnn(
        lab, model, splits, variant=seed, **{k: v for k, v in info.items() if k not in ("source", "path")}
    )
    if verbose:
        print(f"Trained in {seconds:.0f} s; test accuracy {test_accuracy:.3f}; saved to {path}.")
    return model.to(lab.device).eval(), info
