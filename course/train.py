"""`python -m course train naive|resnet`: the labs' recipes outside a notebook, in one process or many.

    python -m course train naive --dataset cifar10 --out runs/full
    torchrun --nproc-per-node 4 -m course train resnet --dataset folder:/data/imagenet10

"naive" is lab 02's network with lab 02's recipe (`labkit.recipes.naive_training`), saved where labs
05-08 look for it (`labkit.zoo.checkpoint_path`); "resnet" is lab 03's residual network with its full
recipe (`labkit.recipes.resnet_training`: Page's ResNet-9, or airbench's network on CIFAR-10), saved
as lab 03 saves it. Both train through `labkit.zoo.fit_recipe`, with the data, splits, seed and
settings the notebooks use under the same profile, so that
`python -m course run 07 --profile full --out DIR` explains the network trained with
`--profile full --out DIR` on the same dataset.

Under torchrun (`course.distributed`) the recipe's batch is split between the processes (batch 256
under 4 processes: 64 each), so an epoch has the recipe's number of optimiser steps with the recipe's
batch, learning rate and schedule; only the batch-norm statistics are taken over each process's part
of a batch. Rank 0 prints and writes; a bad argument or missing data stops every process, before
training.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from course import distributed
from labkit import recipes, zoo
from labkit.core import (
    PROFILES,
    LabError,
    dataset_key,
    pick_device,
    project_root,
    seed_everything,
    write_json_atomic,
)
from labkit.data import load_dataset, make_loaders
from labkit.lab import Lab
from labkit.train import save_checkpoint
from labkit.train.predict import eval_sums, means
from labkit.train.world import OneProcess

RECIPES = ("naive", "resnet")
LABS = {"naive": "02_naive_cnn", "resnet": "03_residual_inception"}


def settings(name: str, profile: str, dataset: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the lab's parameters, its training recipe) for recipe `name` under `profile` on `dataset`,
    as the notebook resolves them."""
    params = recipes.defaults(LABS[name], profile, dataset)
    training = recipes.naive_training(params) if name == "naive" else recipes.resnet_training(params)
    return params, training


def _check_args(name, profile, epochs, target) -> None:
    if name not in RECIPES:
        raise LabError(
            f"recipe {name!r} is not known; train one of {list(RECIPES)} (lab 02's naive CNN, "
            f"lab 03's ResNet-9)."
        )
    if profile not in PROFILES:
        raise LabError(f"profile={profile!r} is not a profile; use one of {PROFILES}.")
    if epochs is not None and (not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1):
        raise LabError(f"epochs={epochs!r}: expected a positive int, or none for the recipe's own number.")
    if target is not None and not 0.0 < float(target) <= 1.0:
        raise LabError(f"target={target!r}: expected a validation accuracy in (0, 1], e.g. 0.94.")


def _everywhere(world: OneProcess, what: str, load):
    """`load()` in every process; when it fails in any of them, a LabError in all of them, before training."""
    try:
        result, error = load(), None
    except (LabError, OSError) as err:
        result, error = None, err
    failed = world.agree(error is None)
    if error is not None:
        if world.size == 1:
            raise error
        raise LabError(f"rank {world.rank}: {error}") from error
    if failed:
        raise LabError(
            f"{what} failed in the process(es) of rank {failed} (their messages say why), so no process "
            f"trains: every machine needs the data at the same path (--data-root or LABKIT_DATA)."
        )
    return result


def _seconds_to(history, target: float) -> float | None:
    """Training seconds until the validation accuracy first reached `target` (None: it never did)."""
    df = history.df
    reached = df.index[df["val_acc"] >= target]
    return None if len(reached) == 0 else round(float(df["seconds"].loc[: reached[0]].sum()), 1)


def train_recipe(
    name: str,
    dataset: str = "shapes",
    data_root: str | os.PathLike | None = None,
    profile: str = "full",
    epochs: int | None = None,
    device: str = "auto",
    amp: bool | None = None,
    out: str | os.PathLike | None = None,
    target: float | None = None,
    *,
    seed: int = 0,
    backend: str | None = None,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train lab 02's ("naive") or lab 03's ("resnet") network with its recipe; save it where labs look.

    Runs as it is in one process, and under torchrun in each of its processes (see the module docstring).

    Args:
        name: "naive" or "resnet".
        dataset: "shapes", "cifar10", "cats_vs_dogs", "folder:PATH", ... (each has its recipe).
        data_root: where real datasets live (None: $LABKIT_DATA, else the user cache).
        profile: "full" or "smoke": the recipe's profile; a lab finds the checkpoint under the same one.
        epochs: None: the recipe's; else this many (the one-cycle schedule spans them).
        device: "auto", "cpu", "cuda", ... (under torchrun each process takes the GPU of its LOCAL_RANK).
        amp: bfloat16 autocast; None: the recipe's (shapes, CIFAR-10: where the hardware computes it natively,
            `labkit.core.native_bfloat16`; elsewhere float32).
        out: the output folder, as a lab's `out_dir` (None: runs/{profile}); the network goes to
            `{out}/checkpoints/`, the figures to `{out}/metrics/train_{name}_{dataset}.json`.
        target: a validation accuracy; the result then says after how many seconds it was reached.
        seed: seeds the splits, the initial weights and the shuffles, as a lab's `seed`.
        backend: "nccl" or "gloo" under torchrun (None: NCCL on CUDA, else gloo).
        resume: continue from the training state of an interrupted run with the same arguments
            (`{out}/checkpoints/train_{name}_{dataset}_state.pt`), e.g. after torchrun restarts it.
        progress: progress bars and printed figures (rank 0 only in any case).

    Returns:
        {"recipe", "dataset", "profile", "processes", "device", "epochs", "best_epoch", "train_seconds",
        "images_per_second", "val_accuracy", "test_accuracy" (with the recipe's mirrored views when it
        uses them), "checkpoint"}, and "target", "seconds_to_target" when `target` is given.

    Raises:
        LabError: (before any training, in every process) an unknown recipe, profile or dataset, a bad
            `epochs`, data missing in some process, NCCL without GPUs, a device that is not there.
    """
    _check_args(name, profile, epochs, target)
    world, device = distributed.join(pick_device(device), backend)
    say = print if (progress and world.main) else (lambda *a, **k: None)
    out_dir = (Path(out) if out is not None else project_root() / "runs" / profile).expanduser().resolve()
    lab = Lab(
        notebook=f"train_{name}",
        profile=profile,
        device=device,
        out_dir=out_dir,
        params={"dataset": dataset, "data_root": data_root, "seed": seed},
    )
    params, training = settings(name, profile, dataset)
    epochs = epochs or training["epochs"]
    per_process = max(1, training["batch_size"] // world.size)
    seed_everything(seed)

    def load():
        if name == "naive":
            splits = zoo.lab02_splits(lab)  # the very splits lab 02 trains on
        else:
            shapes_only = {"n_per_class": params["n_per_class"]} if dataset_key(dataset) == "shapes" else {}
            splits = load_dataset(
                dataset,
                data_root,
                image_size=params["image_size"],
                seed=seed,
                val_fraction=params["val_fraction"],
                **shapes_only,
            )
        splits = splits.with_augment(training["augment"])
        return splits, make_loaders(splits, per_process, seed=seed, device=device, drop_last=name == "resnet")

    splits, loaders = _everywhere(world, f"loading {dataset!r}", load)
    slug = zoo.dataset_slug(dataset)
    split = f" = {world.size} processes x {per_process}" if world.size > 1 else ""
    say(
        f"[labkit] train {name} on {splits.name} ({len(splits.train)} training images, "
        f"{splits.image_size} px), {profile} recipe: {epochs} epochs, batch {training['batch_size']}{split}, "
        f"{training['optimizer']} lr {training['lr']:g}; {world.size} process(es) on {device}."
    )
    if per_process * world.size != training["batch_size"]:
        say(
            f"[labkit] the recipe's batch {training['batch_size']} does not split evenly into {world.size} "
            f"processes: each takes {per_process}, {per_process * world.size} in all."
        )

    seed_everything(seed)
    if name == "naive":
        model = zoo.naive_network(splits.num_classes, params)
    else:
        model = zoo.residual_network(params, splits)
    history = zoo.fit_recipe(
        model,
        loaders,
        training,
        device=device,
        epochs=epochs,
        steps_per_epoch=len(world.shard(loaders.train, train=True)),
        amp=amp,
        checkpoint=lab.checkpoints_dir / f"train_{name}_{slug}_state.pt",
        resume=resume,
        progress=progress,
        world=world,
    )
    test_part = world.shard(loaders.test, train=False)
    sums = eval_sums(model, test_part, None, device, tta=training["tta"], channels_last=True)
    _, test_accuracy = means(world.all_sum(sums), "test loader")
    extra = {
        "test_accuracy": float(test_accuracy),
        "epochs": history.epochs_run,
        "seed": seed,
        "train_seconds": round(history.seconds, 1),
        "processes": world.size,
    }
    path = zoo.checkpoint_path(lab) if name == "naive" else lab.checkpoints_dir / f"03_resnet_{slug}.pt"
    result = {
        "recipe": name,
        "dataset": splits.name,
        "profile": profile,
        "processes": world.size,
        "device": str(device),
        "epochs": history.epochs_run,
        "best_epoch": history.best_epoch,
        "train_seconds": round(history.seconds, 1),
        "images_per_second": round(len(splits.train) * history.epochs_run / max(history.seconds, 1e-9)),
        "val_accuracy": history.best_val_acc,
        "test_accuracy": float(test_accuracy),
        "checkpoint": str(path),
    }
    if target is not None:
        result.update(target=float(target), seconds_to_target=_seconds_to(history, float(target)))
    if world.main:
        if name == "naive":
            zoo.save_naive_cnn(lab, model, splits, **extra)
        else:
            save_checkpoint(path, model, **extra)
        history.to_csv(out_dir / "metrics" / f"train_{name}_{slug}_history.csv")
        write_json_atomic(out_dir / "metrics" / f"train_{name}_{slug}.json", result)
    world.barrier()  # every process returns once the checkpoint is there
    say(
        f"[labkit] test accuracy {test_accuracy:.4f}{' (with mirrored views)' if training['tta'] else ''} "
        f"after {history.epochs_run} epochs in {history.seconds:.0f} s ({result['images_per_second']} "
        f"images/s); saved {path}"
    )
    return result


# ----------------------------------------------------------------------------- command line
def parser() -> argparse.ArgumentParser:
    """The arguments of `python -m course train`."""
    p = argparse.ArgumentParser(prog="python -m course train", description=__doc__.split("\n\n")[0])
    p.add_argument("recipe", help=f"one of {', '.join(RECIPES)}")
    p.add_argument("--dataset", default="shapes", help="shapes, cifar10, cats_vs_dogs, folder:PATH, ...")
    p.add_argument("--data-root", default=None, help="where real datasets live (else $LABKIT_DATA)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: the recipe's)")
    p.add_argument("--profile", default="full", choices=PROFILES, help="the recipe's profile (default full)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    p.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bfloat16 autocast, --amp or --no-amp (default: the recipe's; shapes, CIFAR-10: where native)",
    )
    p.add_argument("--out", default=None, help="output folder, as the labs' --out (default runs/{profile})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--backend",
        default=None,
        choices=distributed.BACKENDS,
        help="under torchrun (default: nccl on GPUs, gloo on CPUs)",
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted run of the same command")
    p.add_argument(
        "--target", type=float, default=None, help="report the seconds to this validation accuracy"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Run `python -m course train ...`; 0 on success, 2 with the message on stderr for bad input."""
    args = parser().parse_args(argv)
    try:
        train_recipe(
            args.recipe,
            args.dataset,
            args.data_root,
            args.profile,
            args.epochs,
            args.device,
            args.amp,
            args.out,
            args.target,
            seed=args.seed,
            backend=args.backend,
            resume=args.resume,
        )
    except LabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        distributed.leave()
    return 0
