"""Batches straight from images held as one uint8 tensor: the fast path for data that fits in memory.

Introduced in notebooks/01_data_prep.ipynb. A DataLoader runs Python code per image; `TensorLoader`
makes each batch with a few tensor operations on the training device. Its draws come from
`.generator`, which `labkit.train.fit` checkpoints, so an interrupted run resumes on the same batches.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from labkit.core import generator as seeded_generator
from labkit.core import pick_device
from labkit.data.batch_aug import PER_EPOCH, BatchAugment, alternating_flip, flip_parity


class TensorLoader:
    """Shuffled (or ordered), normalised, augmented batches from uint8 images (N, 3, S, S) in memory.

    `augment` names batch augmentations (`labkit.data.batch_aug`; "alternating_flip" mirrors a fixed
    half of the images in even epochs and the other half in odd ones: call `set_epoch` before each
    epoch, as `labkit.train.fit` does, else epochs count iterations); with `weights` (N,) each epoch
    draws N indices with replacement in proportion to them (a class-balanced sampler) instead of
    shuffling; `dataset` is the per-sample Dataset of the same split; `device` None: the CPU.
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
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), shuffle, drop_last
        batch_names = [a for a in augment if a not in PER_EPOCH]
        self.augment, self.generator = BatchAugment(batch_names, mean, std), seeded_generator(seed)
        self.epoch, self.parity = 0, None  # alternating flips: the epoch, and which flip in odd ones
        if "alternating_flip" in augment:
            self.parity = flip_parity(len(self.targets), seed)
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.double)
        self.dataset = dataset
        self.rank, self.world_size, self.pad = 0, 1, False  # all of the data (see `shard`)

    def set_epoch(self, epoch: int) -> None:
        """The epoch (from 1) the next pass over the data belongs to; it decides the alternating flips."""
        self.epoch = int(epoch) - 1

    def shard(self, rank: int, world_size: int, *, pad: bool = True) -> TensorLoader:
        """The share of process `rank` among `world_size`: a view of the same images and generator.

        Every process draws the same order each epoch and takes positions rank, rank + world_size,
        ...; `pad` (training) first lengthens the order to a multiple of `world_size`, as
        DistributedSampler does, so all run the same number of steps.
        """
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        part = copy.copy(self)  # shares the tensors and the generator with this loader
        part.rank, part.world_size, part.pad = int(rank), int(world_size), bool(pad)
        return part

    def __len__(self) -> int:
        n = len(self.targets)  # then the images this process takes per epoch
        if self.world_size > 1:
            n = -(-n // self.world_size) if self.pad else len(range(self.rank, n, self.world_size))
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self) -> torch.Tensor:
        n = len(self.targets)
        if self.weights is not None:
            return torch.multinomial(self.weights, n, replacement=True, generator=self.generator)
        if self.shuffle:
            return torch.randperm(n, generator=self.generator)
        return torch.arange(n)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order, generator, n, size = self._order(), self.generator, len(self.targets), self.world_size
        if size > 1:  # this process's part of the order, and a generator of its own for augmentation
            if self.pad and n:
                total = -(-n // size) * size
                order = order.repeat(-(-total // n))[:total]  # (total,): the order, then its start again
            generator = torch.Generator()
            if self.augment.names:
                generator.manual_seed(int(torch.randint(0, 2**62, (), generator=self.generator)) + self.rank)
            order = order[self.rank :: size]
        order = order.to(self.device)
        self.epoch += 1
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            x = self.augment(self.images[idx], generator)
            if self.parity is not None:
                x = alternating_flip(x, self.parity[idx.cpu()], self.epoch)
            yield x, self.targets[idx]

    def __repr__(self) -> str:
        share = f", share {self.rank} of {self.world_size}" if self.world_size > 1 else ""
        names = [*self.augment.names, *(["alternating_flip"] if self.parity is not None else [])]
        return (
            f"TensorLoader({len(self.targets)} images, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"augment={names}, device={self.device}{share})"
        )
