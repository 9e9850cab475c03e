"""DataLoaders for a `Splits`, class weights and a weighted sampler against class imbalance."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from sklearn.utils.class_weight import compute_class_weight
from torch.utils.data import DataLoader, WeightedRandomSampler

from labkit.core import LabError, generator, seed_worker
from labkit.data import batch_aug
from labkit.data.splits import Splits
from labkit.data.tensor_loader import TensorLoader
from labkit.data.transforms import augment_names


@dataclass
class Loaders:
    """Loaders of the splits: `train` (shuffled, augmented), `val`, `test`, `train_eval` (in order)."""

    train: DataLoader | TensorLoader
    val: DataLoader | TensorLoader
    test: DataLoader | TensorLoader
    train_eval: DataLoader | TensorLoader


def _labels(targets: ArrayLike | torch.Tensor) -> np.ndarray:
    return np.asarray(targets.cpu() if isinstance(targets, torch.Tensor) else targets, dtype=np.int64)


def class_weights(targets: ArrayLike | torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency class weights w_c = N / (num_classes * n_c), float32 (C,), for
    `nn.CrossEntropyLoss(weight=...)`; classes absent from `targets` (N,) get 0.

    Introduced in notebooks/01_data_prep.ipynb (exercise 2 writes it by hand).
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

    Introduced in notebooks/01_data_prep.ipynb. Splits in memory get `TensorLoader`s that make each
    batch on `device` at once; splits read from files, or augmentations without a batch version,
    get torch DataLoaders that transform image by image.

    Args:
        num_workers: DataLoader worker processes (None: 0 in memory, else up to 4 by CPU count).
        weighted_sampler: draw training samples with replacement so every class is equally
            frequent, instead of shuffling.
        in_memory: force (True) or refuse (False) the TensorLoader path; None decides as above.
        drop_last: leave out the last, smaller training batch of each epoch (a noisy step).
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
    tensors = fast and in_memory is not False
    if num_workers is None:
        num_workers = 0 if splits.in_memory() else min(4, os.cpu_count() or 1)

    def loader(split: str, **train: Any) -> DataLoader | TensorLoader:
        if tensors:
            train.update(mean=splits.mean, std=splits.std, device=device, dataset=getattr(splits, split))
            return TensorLoader(splits.images(split), splits.targets(split), batch_size, **train)
        train.update(num_workers=num_workers, persistent_workers=num_workers > 0, worker_init_fn=seed_worker)
        return DataLoader(getattr(splits, split), batch_size, **train)

    weights = _sample_weights(splits.targets("train")) if weighted_sampler else None
    if tensors:
        train = loader("train", augment=names, shuffle=True, weights=weights, seed=seed, drop_last=drop_last)
    else:
        sampler = None
        if weights is not None:  # draws with replacement, each class as often as the others
            sampler = WeightedRandomSampler(weights.tolist(), len(weights), generator=generator(seed))
        order = {"shuffle": sampler is None, "sampler": sampler, "generator": generator(seed)}
        train = loader("train", drop_last=drop_last, **order)
    return Loaders(train, loader("val"), loader("test"), loader("train_eval"))
