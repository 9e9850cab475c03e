"""Batches straight from images held as one uint8 tensor: the fast path for data that fits in memory.

Introduced in notebooks/01_data_prep.ipynb. A DataLoader calls Python code once per image (index,
transform, collate), which leaves a GPU waiting and costs a CPU a share of every step.
`TensorLoader` keeps the whole split as uint8 (N, 3, S, S) on the training device and for each batch
gathers the images by index, normalises and augments them with `labkit.data.batch_aug`: a few
tensor operations per batch instead of a few hundred Python calls.

It behaves like the DataLoader it replaces: iterate it for (images float (B, 3, S, S), targets
int64 (B,)), `len()` is the number of batches, `.dataset` is the per-sample Dataset of the same
split. Shuffling and augmentation draw from `.generator` (a CPU torch.Generator), which
`labkit.train.fit` saves in its checkpoints, so an interrupted run resumes on the same batches.
Under torchrun, `fit` iterates `loader.shard(rank, world_size)` in each process instead.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from labkit.core import generator as seeded_generator
from labkit.core import pick_device
from labkit.data.batch_aug import BatchAugment


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
        self.rank, self.world_size, self.pad = 0, 1, False  # all of the data (see `shard`)

    def shard(self, rank: int, world_size: int, *, pad: bool = True) -> TensorLoader:
        """The share of process `rank` among `world_size`: a view of the same images and generator.

        Each epoch every process draws the same order from the shared `.generator` (so their
        generators stay equal), and takes the indices at positions rank, rank + world_size, ...
        With `pad` (training) the order is first lengthened by repeating its start to a multiple of
        `world_size`, as PyTorch's DistributedSampler does, so every process runs the same number of
        steps; without it (validation) every image is in exactly one share. Each process augments
        its share with its own generator, seeded per epoch from one draw of the shared generator
        and the rank, so the processes' augmentations differ and still repeat with the seed.
        """
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        part = copy.copy(self)  # shares the tensors and the generator with this loader
        part.rank, part.world_size, part.pad = int(rank), int(world_size), bool(pad)
        return part

    def _share(self) -> int:
        """Images this process takes per epoch."""
        n = len(self.targets)
        if self.world_size == 1:
            return n
        return -(-n // self.world_size) if self.pad else len(range(self.rank, n, self.world_size))

    def __len__(self) -> int:
        n = self._share()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self) -> torch.Tensor:
        n = len(self.targets)
        if self.weights is not None:
            return torch.multinomial(self.weights, n, replacement=True, generator=self.generator)
        if self.shuffle:
            return torch.randperm(n, generator=self.generator)
        return torch.arange(n)

    def _my_share(self, order: torch.Tensor) -> tuple[torch.Tensor, torch.Generator]:
        """This process's part of the epoch's `order`, and the generator its augmentation draws from."""
        n, size = len(order), self.world_size
        if self.pad and n:
            total = -(-n // size) * size
            order = order.repeat(-(-total // n))[:total]  # (total,): the order, then its start again
        generator = torch.Generator()
        if self.augment.names:
            seed = int(torch.randint(0, 2**62, (), generator=self.generator))
            generator.manual_seed(seed + self.rank)
        return order[self.rank :: size], generator

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order, generator = self._order(), self.generator
        if self.world_size > 1:
            order, generator = self._my_share(order)
        order = order.to(self.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield self.augment(self.images[idx], generator), self.targets[idx]

    def __repr__(self) -> str:
        share = f", share {self.rank} of {self.world_size}" if self.world_size > 1 else ""
        return (
            f"TensorLoader({len(self.targets)} images, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"augment={list(self.augment.names)}, device={self.device}{share})"
        )
