"""Run by tests/test_distributed.py under torchrun (2 CPU processes, gloo); not a test module itself.

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_worker.py OUT

Trains the shapes naive CNN several ways, one after the other in the same two processes, and saves
what each process ends with as OUT/<run>_rank<r>.pt (weights and history), for the tests to compare:
- straight: 5 epochs on TensorLoaders, checkpointing to OUT/straight_state.pt;
- resumed: 4 epochs to OUT/resumed_state.pt, then everything random scrambled and rebuilt
  differently, and resumed to 5 epochs from that file;
- dataloader: 2 epochs on torch DataLoaders (DistributedSampler);
- missing: train_recipe on a folder dataset that only rank 0 has (each rank's error is saved).
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.optim.lr_scheduler import StepLR

from course import distributed
from course.train import train_recipe
from labkit.core import LabError, seed_everything
from labkit.data import load_dataset, make_loaders
from labkit.models import NaiveCNN
from labkit.train import fit

EPOCHS = 5
# images per shape class: 206 training and 45 validation images (shares of 23 and 22)
COUNTS = [30] * 9 + [25]


def splits():
    return load_dataset("shapes", n_per_class=COUNTS, image_size=32, seed=0, augment=["translate", "flip"])


def loaders(seed: int = 0, in_memory: bool | None = None):
    return make_loaders(splits(), 8, seed=seed, in_memory=in_memory, num_workers=0)


def model(seed: int = 0) -> NaiveCNN:
    torch.manual_seed(seed)
    return NaiveCNN(10, channels=(8, 16), convs_per_stage=1, hidden=16, dropout=0.3)


def train(epochs: int, seed: int = 0, in_memory: bool | None = None, **kwargs):
    """Same settings for every run; restore_best=False, so the weights are those of the last epoch.
    The learning rate decays by epoch with a schedule of our own, which a resumed run may extend.
    Under torchrun the processes train together (course.distributed); in pytest's process, alone."""
    world, device = distributed.join(torch.device("cpu"))
    net = model(seed)
    ld = loaders(seed, in_memory)
    schedule = partial(StepLR, step_size=1, gamma=0.8)
    options = {
        "optimizer": "adam",
        "lr": 1e-2,
        "weight_decay": 1e-4,
        "scheduler": schedule,
        "channels_last": True,
    }
    history = fit(
        net,
        ld.train,
        ld.val,
        epochs=epochs,
        device=device,
        restore_best=False,
        progress=False,
        world=world,
        **options,
        **kwargs,
    )
    return net, history


def save(out: Path, run: str, net, history) -> None:
    rank = torch.distributed.get_rank()
    df = history.df.drop(columns="seconds")
    torch.save({"state": net.state_dict(), "history": df.to_dict("list")}, out / f"{run}_rank{rank}.pt")


def main(out: Path) -> None:
    seed_everything(0)
    net, history = train(EPOCHS, checkpoint=out / "straight_state.pt")
    save(out, "straight", net, history)  # train() started the process group; it is up from here on

    seed_everything(0)
    train(EPOCHS - 1, checkpoint=out / "resumed_state.pt")
    seed_everything(1234)  # nothing the resumed run draws may come from here: it all comes from the file
    net, history = train(EPOCHS, seed=99, checkpoint=out / "resumed_state.pt", resume=True)
    save(out, "resumed", net, history)

    seed_everything(0)
    net, history = train(2, in_memory=False)
    save(out, "dataloader", net, history)

    rank = torch.distributed.get_rank()
    root = out / f"data_rank{rank}"
    if rank == 0:  # only rank 0 has the images
        for c in ("ants", "bees"):
            (root / "imgs" / c).mkdir(parents=True)
            for i in range(6):
                pixels = np.random.default_rng(i).integers(0, 255, (24, 24, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / "imgs" / c / f"{i}.png")
    try:
        train_recipe(
            "naive",
            "folder:imgs",
            data_root=root,
            profile="smoke",
            epochs=1,
            out=out / "recipe",
            progress=False,
        )
        message = "no error"
    except LabError as err:
        message = str(err)
    (out / f"missing_rank{rank}.txt").write_text(message)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
