"""DataLoaders for a `Splits`, class weights and a weighted sampler against class imbalance.

Introduced in notebooks/01_data_prep.ipynb.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from sklearn.utils.class_weight import compute_class_weight
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from labkit.core import LabError, generator, seed_worker
from labkit.data import batch_aug
from labkit.data.splits import Splits
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


def _labels(targets: ArrayLike | torch.Tensor) -> np.ndarray:
    return np.asarray(targets.cpu() if isinstance(targets, torch.Tensor) else targets, dtype=np.int64)


def class_weights(targets: ArrayLike | torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency class weights for a weighted loss: w_c = N / (num_classes * n_c).

    A balanced set gives every weight 1; a class half as frequent as average gets 2. Classes absent
    from `targets` get weight 0 (they never appear in the loss anyway). scikit-learn's
    `compute_class_weight("balanced")` computes it over the classes present; lab 01's exercise 2 has
    the student write it by hand.

    Args:
        targets: class index of each training sample, shape (N,).
        num_classes: number of classes C.

    Returns:
        float32 tensor (C,), for `nn.CrossEntropyLoss(weight=...)`.
    """
    t = _labels(targets)
    if t.size and (t.min() < 0 or t.max() >= num_classes):
        raise LabError(f"targets must lie in 0..{num_classes - 1}; found {t.min()}..{t.max()}.")
    w = np.zeros(num_classes)
    present = np.unique(t)
    if present.size:
        # scikit-learn divides by the number of classes present, the formula by all C of them.
        w[present] = compute_class_weight("balanced", classes=present, y=t) * len(present) / num_classes
    return torch.tensor(w, dtype=torch.float32)


def _sample_weights(targets: ArrayLike | torch.Tensor) -> torch.Tensor:
    """1 / (count of the sample's class) per sample, float64 (N,): every class weighs the same."""
    t = _labels(targets)
    return torch.as_tensor(1.0 / np.bincount(t)[t], dtype=torch.double)


def make_loaders(
    splits: Splits,
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
        weighted_sampler: draw training samples with replacement so every class is equally
            frequent (one epoch: as many draws as training images) instead of shuffling.
        device: where TensorLoaders keep the images and make the batches (None: the CPU; pass
            `lab.device` to augment on the GPU).
        in_memory: force (True) or refuse (False) the TensorLoader path; None decides as above.
        drop_last: leave out the last, smaller training batch of each epoch: its step is as long
            as a full batch's but noisier, and batch-norm statistics from a few images are poor.

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

    def loader(dataset: Dataset, **order: Any) -> DataLoader:
        order.update(num_workers=num_workers, persistent_workers=num_workers > 0, worker_init_fn=seed_worker)
        return DataLoader(dataset, batch_size, **order)

    sampler = None
    if weighted_sampler:  # draws with replacement, each class as often as the others
        w = _sample_weights(splits.targets("train"))
        sampler = WeightedRandomSampler(w.tolist(), num_samples=len(w), generator=generator(seed))
    order = {"shuffle": sampler is None, "sampler": sampler, "generator": generator(seed)}
    train = loader(splits.train, drop_last=drop_last, **order)
    return Loaders(train, loader(splits.val), loader(splits.test), loader(splits.train_eval))


def _tensor_loaders(
    splits: Splits, batch_size: int, names: list, seed: int, weighted: bool, device, drop_last: bool
) -> Loaders:
    def loader(split: str, **train: Any) -> TensorLoader:
        train.update(mean=splits.mean, std=splits.std, device=device, dataset=getattr(splits, split))
        return TensorLoader(splits.images(split), splits.targets(split), batch_size, **train)

    weights = _sample_weights(splits.targets("train")) if weighted else None
    train = loader("train", augment=names, shuffle=True, weights=weights, seed=seed, drop_last=drop_last)
    return Loaders(train, loader("val"), loader("test"), loader("train_eval"))
