"""The labs' networks, how they are trained, and the trained networks later labs reuse.

Introduced in notebooks/02_naive_cnn.ipynb. `fit_recipe` is the one place lab 02's and lab 03's
recipes run (the notebooks, the quick networks below and `python -m course train` call it). Labs
05-08 call `naive_cnn(lab)`: lab 02's checkpoint for the lab's dataset when it fits the data, else a
quick one trained with lab 02's recipe, saying so, on `lab02_splits(lab)`, the very splits lab 02
used. `lab` is a `labkit.lab.Lab`.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from labkit import recipes
from labkit.core import LabError, dataset_key, native_bfloat16
from labkit.data import load_dataset, make_loaders
from labkit.models import AirbenchResNet, NaiveCNN, ResNet9
from labkit.models.airbench import PatchWhitening
from labkit.params import check_layers
from labkit.train import History, Lookahead, evaluate, fit, load_checkpoint, save_checkpoint
from labkit.train.optim import build_optimizer, freeze_after, norm_scaled_groups

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
    """Train `model` in place on `loaders` (`make_loaders`) with a lab's recipe and return fit's History.

    `training` is `labkit.recipes.naive_training(...)` or `resnet_training(...)`: the optimiser and
    its rates, batch-norm's rate factor, Lookahead, the schedule, label smoothing, patience, how many
    epochs a whitening stem's bias trains (`whiten_bias_epochs`, None: all) and `amp` (bfloat16
    autocast; None: where the device computes it natively, `labkit.core.native_bfloat16`).
    `steps_per_epoch` (default `len(loaders.train)`) sizes Lookahead's schedule under torchrun;
    `fit_options` go to `labkit.train.fit` (checkpoint, resume, progress, world; `amp` overrides).
    """
    epochs = epochs or training["epochs"]
    steps = steps_per_epoch or len(loaders.train)
    groups = norm_scaled_groups(model, training["lr"], training["weight_decay"], training["norm_lr_scale"])
    optimizer = build_optimizer(
        training["optimizer"], model, lr=training["lr"], momentum=training["momentum"], param_groups=groups
    )
    bias_epochs, stem = training.get("whiten_bias_epochs"), getattr(model, "stem", None)
    if bias_epochs is not None and isinstance(stem, PatchWhitening):
        freeze_after(optimizer, [stem.get_parameter("bias")], bias_epochs * steps)  # airbench: 3 epochs
    if training["lookahead"]:  # every 5 steps, average the weights with a slow copy (Zhang et al. 2019)
        optimizer = Lookahead(optimizer, model, total_steps=epochs * steps)
    amp = fit_options.pop("amp", None)
    options = {k: training[k] for k in ("label_smoothing", "scheduler", "patience")}
    options.update(epochs=epochs, device=device, optimizer=optimizer, channels_last=True)
    options.update(
        amp=uses_bfloat16({**training, "amp": training.get("amp") if amp is None else amp}, device)
    )
    return fit(model, loaders.train, loaders.val, **options, **fit_options)


def uses_bfloat16(training: dict[str, Any], device) -> bool:
    """Whether `fit_recipe` trains with bfloat16 autocast: `training["amp"]`, or where it is None (or
    absent) whether `device` computes bfloat16 natively (`labkit.core.native_bfloat16`)."""
    amp = training.get("amp")
    return native_bfloat16(device) if amp is None else bool(amp)


def naive_network(num_classes: int, params: dict[str, Any]) -> NaiveCNN:
    """Lab 02's network with the channels, hidden width and dropout of `params` (a lab's or a recipe's)."""
    return NaiveCNN(num_classes, **{k: params[k] for k in ("channels", "hidden", "dropout")})


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
    switches = {k: params.get(f"resnet_{k}", True) for k in ("whitening", "dirac")}  # off: ablations
    model = AirbenchResNet(splits.num_classes, widths=channels, **switches)
    if not isinstance(model.stem, PatchWhitening):  # resnet_whitening=False: an ordinary trained stem
        return model
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


def lab02_splits(lab, **overrides: Any):
    """The splits lab 02 trains on for `lab.dataset` (default shapes), `lab.profile` and `lab.seed`:
    the same images in the same splits, so the test images a later lab explains were never trained on."""
    dataset = lab.params.get("dataset") or "shapes"
    recipe = recipes.defaults("02_naive_cnn", lab.profile, dataset)
    config = {"image_size": recipe["image_size"], "val_fraction": 0.1}
    if dataset_key(dataset) == "shapes":
        config["n_per_class"] = recipe["n_per_class"]
    config.update(overrides)
    return load_dataset(dataset, lab.params.get("data_root"), seed=lab.seed, **config)


def checkpoint_path(lab, seed: int | None = None) -> Path:
    """Where lab 02's network for `lab.dataset` is kept (another training seed: a file beside it)."""
    slug = dataset_slug(lab.params.get("dataset") or "shapes")
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
    """The lab-02 network in eval mode, and {"source": "checkpoint" | "trained now", "path", ...}.

    `splits`: the data it must fit (default `lab02_splits(lab)`); `seed`: another training seed (an
    independent network, as lab 08 needs), kept beside lab 02's. The lab's layer parameters are
    checked against the network before it is trained or used (LabError).
    """
    splits = splits if splits is not None else lab02_splits(lab)
    path = checkpoint_path(lab, seed)
    if path.is_file():
        model, extra = load_checkpoint(path)
        mismatch = _fits(extra.get("data", {}), splits)
        if mismatch is None:
            check_layers(model, lab.params, "the lab-02 network")  # a lab's layer parameters, before any use
            info = {"source": "checkpoint", "path": str(path), **extra}
            info.pop("data", None)
            if verbose:
                print(f"Loaded the lab-02 network from {path}.")
            return model.to(lab.device).eval(), info
        if verbose:
            print(f"The checkpoint {path} was trained on other data ({mismatch}); training a new one.")

    dataset = lab.params.get("dataset") or "shapes"
    recipe = recipes.defaults("02_naive_cnn", lab.profile, dataset)
    training = recipes.naive_training(recipe)
    epochs = recipes.quick_epochs(lab.profile, dataset)
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
    extra = dict(epochs=history.epochs_run, seed=train_seed, train_seconds=round(seconds, 1))
    save_naive_cnn(lab, model, splits, variant=seed, test_accuracy=float(test_accuracy), **extra)
    info = {"source": "trained now", "path": str(path), "test_accuracy": float(test_accuracy), **extra}
    if verbose:
        print(f"Trained in {seconds:.0f} s; test accuracy {test_accuracy:.3f}; saved to {path}.")
    return model.to(lab.device).eval(), info
