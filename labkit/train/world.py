"""The processes `fit` trains with (notebooks/02_naive_cnn.ipynb): `OneProcess`, this one alone, does
nothing at each hook; under torchrun, `course.distributed`'s world splits the data, wraps the model in
DistributedDataParallel and sums the figures over processes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn


class OneProcess:
    """Training in this process alone: every method gives its input back, or does nothing."""

    rank = 0  # this process's number among them
    size = 1  # processes training together
    main = True  # whether this process writes the checkpoint and shows progress bars

    def shard(self, loader: Any, *, train: bool) -> Any:
        """This process's part of `loader` (`train`: every process gets as many batches)."""
        return loader

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module the training pass calls (several processes: `DistributedDataParallel(model)`)."""
        return model

    def start_epoch(self, epoch: int) -> None:
        """Called before each epoch's training pass (several processes: reseed, set the samplers' epoch)."""

    def all_sum(self, values: Sequence[float]) -> list[float]:
        """`values` summed element by element over the processes; every process gets the same sums."""
        return list(values)

    def sync_buffers(self, model: nn.Module) -> None:
        """Called after each training pass (several processes: copy the main one's batch-norm statistics)."""

    def agree(self, ok: bool) -> list[int]:
        """The ranks of the processes whose `ok` is False; every process gets the same list."""
        return [] if ok else [0]

    def barrier(self) -> None:
        """Wait until every process gets here."""
