"""Batches straight from images held as one uint8 tensor: the fast path for data that fits in memory.

Introduced in notebooks/02_naive_cnn.ipynb. A DataLoader calls Python code once per image (index,
transform, collate); for 32-pixel images on two CPU cores that costs a sixth of every training step,
and on a GPU it leaves the GPU waiting. `TensorLoader` keeps the whole split as uint8 (N, 3, S, S)
on the training device (CIFAR-10's 45,000 images: 138 MB), and for each batch gathers the images by
index, scales and normalises them and augments them with `labkit.data.batch_aug`: a few tensor
operations per batch instead of a few hundred Python calls.

It behaves like the DataLoader it replaces: iterate it for (images float (B, 3, S, S), targets
int64 (B,)), `len()` is the number of batches, `.dataset` is the per-sample Dataset of the same
split. Shuffling and augmentation draw from `.generator` (a CPU torch.Generator), which
`labkit.train.fit` saves in its checkpoints, so an interrupted run resumes on the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from labkit.data.batch_aug import BatchAugment
from labkit.env import generator as seeded_generator
from labkit.env import pick_device


class TensorLoader:
    """Shuffled (or ordered), normalised, augmented batches from uint8 images in memory.

    Args:
        images: uint8 (N, 3, S, S).
        targets: int (N,).
        batch_size: images per batch (the last batch may be smaller unless `drop_last`).
        mean, std: per-channel statistics on the [0, 1] scale.
        augment: batch augmentation names (see `labkit.data.batch_aug`); () for none.
        shuffle: a new random order every epoch (drawn from `generator`).
        weights: per-sample weights: each epoch draws N indices with replacement in proportion to
            them (a class-balanced sampler) instead of shuffling.
        seed: seeds `generator`.
        device: where images live and batches are made ("auto", "cpu", "cuda", ...; None: cpu).
        dataset: the per-sample Dataset of the same split, exposed as `.dataset`.
    """

    def __init__(
        self,
        images: torch.Tensor,
        targets: Sequence[int] | np.ndarray | torch.Tensor,
        batch_size: int,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        augment: Sequence[str] = (),
        shuffle: bool = False,
        weights: torch.Tensor | None = None,
        drop_last: bool = False,
        seed: int = 0,
        device: str | torch.device | None = None,
        dataset=None,
    ):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, 3, S, S), got {images.dtype} {tuple(images.shape)}")
        self.device = pick_device(device) if device is not None else torch.device("cpu")
        self.images = images.to(self.device)
        self.targets = torch.as_tensor(np.asarray(targets), dtype=torch.long).to(self.device)
        self.batch_size = int(batch_size)
        self.augment = BatchAugment(augment, mean, std)
        self.shuffle = shuffle
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.double)
        self.drop_last = drop_last
        self.generator = seeded_generator(seed)
        self.dataset = dataset

    def __len__(self) -> int:
        n = len(self.targets)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self) -> torch.Tensor:
        n = len(self.targets)
        if self.weights is not None:
            return torch.multinomial(self.weights, n, replacement=True, generator=self.generator)
        if self.shuffle:
            return torch.randperm(n, generator=self.generator)
        return torch.arange(n)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self._order().to(self.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield self.augment(self.images[idx], self.generator), self.targets[idx]

    def __repr__(self) -> str:
        return (f"TensorLoader({len(self.targets)} images, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"augment={list(self.augment.names)}, device={self.device})")  # fmt: skip
