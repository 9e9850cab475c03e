"""DataLoaders for a `Splits`, class weights and a weighted sampler against class imbalance.

Introduced in notebooks/01_data_prep.ipynb.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler

from labkit.core import LabError, generator, seed_worker
from labkit.data import batch_aug
from labkit.data.tensor_loader import TensorLoader
from labkit.data.transforms import augment_names


@dataclass
class Loaders:
    """Loaders of the splits: `train` (shuffled, augmented), `val`, `test`, `train_eval` (in order).

    Each is a `TensorLoader` (data in memory) or a torch `DataLoader` (see `make_loaders`).
    """

    train: DataLoader | TensorLoader
    val: DataLoader | TensorLoader
    test: DataLoader | TensorLoader
    train_eval: DataLoader | TensorLoader

    def __iter__(self):
        return iter((self.train, self.val, self.test))


def _counts(targets, num_classes: int) -> np.ndarray:
    t = np.asarray(targets.cpu() if isinstance(targets, torch.Tensor) else targets, dtype=np.int64)
    if t.size and (t.min() < 0 or t.max() >= num_classes):
        raise LabError(f"targets must lie in 0..{num_classes - 1}; found {t.min()}..{t.max()}.")
    return np.bincount(t, minlength=num_classes)


def class_weights(targets: Sequence[int] | np.ndarray | torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency class weights for a weighted loss: w_c = N / (num_classes * n_c).

    A balanced set gives every weight 1; a class half as frequent as average gets 2. Classes absent
    from `targets` get weight 0 (they never appear in the loss anyway). Same as scikit-learn's
    `compute_class_weight("balanced", ...)`.

    Args:
        targets: class index of each training sample, shape (N,).
        num_classes: number of classes C.

    Returns:
        float32 tensor (C,), for `nn.CrossEntropyLoss(weight=...)`.
    """
    counts = _counts(targets, num_classes).astype(np.float64)
    total = counts.sum()
    w = np.where(counts > 0, total / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def weighted_sampler(targets: Sequence[int] | np.ndarray | torch.Tensor, seed: int = 0) -> WeightedRandomSampler:
    """A sampler that draws every class equally often (with replacement), one epoch = len(targets) draws.

    Each sample's weight is 1 / (count of its class), so every class has the same total weight.

    Args:
        targets: class index of each training sample, shape (N,).
        seed: seeds the sampler's own generator, so the drawn order repeats.
    """
    t = np.asarray(targets.cpu() if isinstance(targets, torch.Tensor) else targets, dtype=np.int64)
    counts = np.bincount(t)
    weights = 1.0 / counts[t]
    return WeightedRandomSampler(
        torch.as_tensor(weights, dtype=torch.double), num_samples=len(t), replacement=True, generator=generator(seed)
    )


_balanced_sampler = weighted_sampler  # make_loaders' flag of the same name shadows the function


def make_loaders(
    splits,
    batch_size: int,
    *,
    seed: int = 0,
    num_workers: int | None = None,
    weighted_sampler: bool = False,
    device: str | torch.device | None = None,
    in_memory: bool | None = None,
    drop_last: bool = False,
) -> Loaders:
    """Loaders for train (shuffled with the seed, augmented), val, test and train_eval (in order).

    Splits held in memory (shapes, CIFAR-10, folders that were preloaded) get `TensorLoader`s: the
    images stay one uint8 tensor on `device` and each batch is normalised and augmented at once
    (`labkit.data.batch_aug`). Splits read from files, or an augmentation without a batch version
    ("perspective", your own v2 transforms), get torch DataLoaders that transform image by image,
    with `num_workers` worker processes.

    Args:
        splits: a `Splits` from `load_dataset`.
        batch_size: samples per batch.
        seed: seeds the shuffling, the augmentation draws (or the weighted sampler): same seed,
            same batches.
        num_workers: DataLoader worker processes (None: 0 in memory, else up to 4 by CPU count;
            workers are seeded with `seed_worker`). Not used by TensorLoaders.
        weighted_sampler: draw training samples so every class is equally frequent (see
            `weighted_sampler`) instead of shuffling.
        device: where TensorLoaders keep the images and make the batches (None: the CPU; pass
            `lab.device` to augment on the GPU).
        in_memory: force (True) or refuse (False) the TensorLoader path; None decides as above.
        drop_last: leave out the last, smaller training batch of each epoch. With large batches and
            a large learning rate its step is as long as a full batch's but far noisier, and
            batch-norm statistics from a few images are poor (airbench drops it).

    Returns:
        Loaders with `.train .val .test .train_eval`.
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise LabError(f"batch_size={batch_size!r} must be a positive int, e.g. 64.")
    names = augment_names(splits.augment)
    fast = splits.in_memory() and batch_aug.supports(names)
    if in_memory and not fast:
        raise LabError(
            f"in_memory=True needs the splits in memory and augmentations with a batch version "
            f"({list(batch_aug.BATCH_AUGMENTATIONS)}); this one has augment={splits.augment!r} and "
            f"in_memory={splits.in_memory()}."
        )
    if fast and in_memory is not False:
        return _tensor_loaders(splits, batch_size, names, seed, weighted_sampler, device, drop_last)
    if num_workers is None:
        num_workers = 0 if splits.in_memory() else min(4, os.cpu_count() or 1)
    common = {"batch_size": batch_size, "num_workers": num_workers, "worker_init_fn": seed_worker}
    if num_workers > 0:
        common["persistent_workers"] = True
    if weighted_sampler:
        sampler = _balanced_sampler(splits.targets("train"), seed)
        train = DataLoader(splits.train, sampler=sampler, generator=generator(seed), drop_last=drop_last, **common)
    else:
        train = DataLoader(splits.train, shuffle=True, generator=generator(seed), drop_last=drop_last, **common)
    return Loaders(
        train=train,
        val=DataLoader(splits.val, shuffle=False, **common),
        test=DataLoader(splits.test, shuffle=False, **common),
        train_eval=DataLoader(splits.train_eval, shuffle=False, **common),
    )


def _tensor_loaders(splits, batch_size: int, names, seed: int, weighted: bool, device, drop_last: bool) -> Loaders:
    stats = {"mean": splits.mean, "std": splits.std, "device": device}
    loaders = {}
    for split in ("val", "test", "train_eval"):
        loaders[split] = TensorLoader(splits.images(split), splits.targets(split), batch_size, **stats,
                                      dataset=getattr(splits, split))  # fmt: skip
    weights = None
    if weighted:
        t = splits.targets("train")
        weights = torch.as_tensor(1.0 / np.bincount(t)[t], dtype=torch.double)
    loaders["train"] = TensorLoader(splits.images("train"), splits.targets("train"), batch_size, **stats,
                                    augment=names, shuffle=True, weights=weights, seed=seed, drop_last=drop_last,
                                    dataset=splits.train)  # fmt: skip
    return Loaders(**loaders)
