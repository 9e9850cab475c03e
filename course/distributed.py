"""Several processes under torchrun: the world `labkit.train.fit` trains with when started N times.

    torchrun --nproc-per-node 4 -m course train resnet --dataset cifar10        # one machine, 4 GPUs

`fit(..., world=world)` asks its world to split the data, wrap the model and sum the epoch figures;
in a notebook that world is `labkit.train.world.OneProcess`, which does nothing. Here is the one
for N processes. torchrun starts them and tells each one who it is through environment variables:
RANK (0 .. WORLD_SIZE-1 over all machines), WORLD_SIZE, LOCAL_RANK (its GPU on its machine) and
MASTER_ADDR/MASTER_PORT (where the processes meet). `join` starts the process group (NCCL between
GPUs, gloo on CPUs) and gives each process its device and its `Torchrun` world, which, for fit:
- `shard`: every process draws the same shuffled order of the training data from the loader's
  generator and takes every WORLD_SIZE-th index of it (padded by repeating its start, so every
  process runs the same number of steps); a torch DataLoader gets PyTorch's `DistributedSampler`
  instead. Validation is split without padding, so each image is counted exactly once.
- `wrap`: DistributedDataParallel averages the gradients, so every process takes the same step and
  the weights stay identical; `sync_buffers` gives every process rank 0's batch-norm statistics
  after each epoch's training.
- `all_sum`: adds up the loss sums and counts of every process, so each process computes the epoch
  figures of all the data, and decides early stopping and divergence as the others do.
- `start_epoch`: reseeds every process's global generators (dropout, per-image augmentation) from
  one draw of rank 0's torch generator and the rank: the processes draw different numbers, and as
  rank 0's generators are what fit's checkpoint saves, a resumed run draws what the interrupted one
  would have.
Only rank 0 writes checkpoints and shows progress.

Exact resume from an N-process checkpoint needs N processes again (same data, same device kind).
With two processes it is bit for bit: a + b = b + a in floating point. With more, the gradient
average's summation order follows DistributedDataParallel's gradient buckets, which are laid out
anew after a restart, so the weights can differ in their last bits.
"""

from __future__ import annotations

import atexit
import hashlib
import inspect
import os
from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, DataLoader, IterableDataset, RandomSampler, SequentialSampler
from torch.utils.data.distributed import DistributedSampler

from labkit.core import LabError, seed_everything
from labkit.data.tensor_loader import TensorLoader
from labkit.train.world import OneProcess

BACKENDS = ("gloo", "nccl")


class Torchrun(OneProcess):
    """Process `rank` of `size` started by torchrun, in a running process group (see `join`).

    Args:
        rank: 0 .. size - 1 over all machines.
        size: the number of processes (WORLD_SIZE).
        local_rank: the process's GPU on its machine.
        device: where this process trains (`cuda:local_rank` on GPUs).
    """

    def __init__(self, rank: int, size: int, local_rank: int = 0, device: torch.device | None = None) -> None:
        self.rank, self.size, self.local_rank = rank, size, local_rank
        self.device = device or torch.device("cpu")
        self._train: Any = None  # the training share that `start_epoch` tells the epoch

    @property
    def main(self) -> bool:
        return self.rank == 0

    def __repr__(self) -> str:
        return f"Torchrun(rank={self.rank}, size={self.size}, device={self.device})"

    # -------------------------------------------------------------------- what fit calls
    def shard(self, loader: Any, *, train: bool) -> Any:
        """The part of `loader` this process iterates.

        - a TensorLoader: a view of the same images and the same generator, taking every size-th
          index of each epoch's order from position `rank` (see `TensorLoader.shard`);
        - a DataLoader for training: the same dataset and settings with a `DistributedSampler`
          (shuffled when the loader shuffles, seeded from the loader's generator), padded so that
          every process runs the same number of steps;
        - a DataLoader for validation (in order): indices rank, rank + size, ... without padding.

        The caller's loader is never changed, and the generators are shared with it, so saving the
        caller's loader's generator states (labkit.train.rng) saves the share's.

        Raises:
            LabError: a loader that cannot be split this way (a weighted or custom sampler, a custom
                batch sampler, an iterable dataset, or an object that is neither), with the fix.
        """
        if loader is None:
            return None
        if isinstance(loader, TensorLoader):
            part = loader.shard(self.rank, self.size, pad=train)
        elif isinstance(loader, DataLoader):
            part = self._split_dataloader(loader, train)
        else:
            raise LabError(
                f"under torchrun, fit splits the data between processes, which it can do for a labkit "
                f"TensorLoader or a torch DataLoader, not for a {type(loader).__name__}; make the loaders "
                f"with labkit.data.make_loaders."
            )
        if train:
            self._train = part
        return part

    def wrap(self, model: nn.Module) -> nn.Module:
        """`model` in DistributedDataParallel; its `.module` is `model`, whose parameters it trains.

        Buffers (batch-norm statistics) are not sent with every step: `sync_buffers` sends rank 0's
        once per epoch.
        """
        self.sync_buffers(model)
        ids = [self.device.index] if self.device.type == "cuda" else None
        # torch 2.14 renamed broadcast_buffers (still accepted, with a warning); older versions know only it.
        known = inspect.signature(DistributedDataParallel.__init__).parameters
        no_sync = (
            {"forward_sync_buffers": False}
            if "forward_sync_buffers" in known
            else {"broadcast_buffers": False}
        )
        return DistributedDataParallel(
            model, device_ids=ids, output_device=ids[0] if ids else None, **no_sync
        )

    def start_epoch(self, epoch: int) -> None:
        """Tell a DistributedSampler the epoch, and reseed this process's global generators.

        The seed is drawn from rank 0's torch generator, whose state fit's checkpoint saves (and every
        process restores on resume), mixed with the rank: each process draws its own dropout masks
        and augmentations, and a resumed run draws what the interrupted one would have.
        """
        sampler = getattr(self._train, "sampler", None)
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)
        seed = self.broadcast_int(int(torch.randint(0, 2**62, ())))
        digest = hashlib.blake2b(f"{seed}:{self.rank}".encode(), digest_size=8).digest()
        seed_everything(int.from_bytes(digest, "little") >> 1, deterministic=False)

    def all_sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sums of `values` over every process; every process receives the same sums."""
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_comm_device())
        dist.all_reduce(t)
        return t.tolist()

    def sync_buffers(self, model: nn.Module) -> None:
        """Give every process rank 0's buffers (batch-norm running statistics and counts)."""
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)

    def agree(self, ok: bool) -> list[int]:
        """The ranks whose `ok` is False (every process gets the same list)."""
        flags = torch.zeros(self.size, dtype=torch.float64, device=_comm_device())
        flags[self.rank] = 0.0 if ok else 1.0
        dist.all_reduce(flags)
        return [r for r, f in enumerate(flags.tolist()) if f]

    def barrier(self) -> None:
        """Wait until every process gets here (e.g. until rank 0 has written a file the others read)."""
        dist.barrier()

    # -------------------------------------------------------------------- helpers
    def broadcast_int(self, value: int) -> int:
        """Rank 0's `value` on every process."""
        t = torch.tensor([int(value)], dtype=torch.int64, device=_comm_device())
        dist.broadcast(t, src=0)
        return int(t.item())

    def _split_dataloader(self, loader: DataLoader, train: bool) -> DataLoader:
        sampler = loader.sampler
        plain_batches = (
            isinstance(loader.batch_sampler, BatchSampler) and loader.batch_sampler.sampler is sampler
        )
        if isinstance(loader.dataset, IterableDataset) or not plain_batches:
            raise LabError(
                "under torchrun, fit splits a DataLoader's samples between processes, which needs a "
                "map-style dataset and batch_size= (not an iterable dataset or a batch_sampler=); make the "
                "loaders with labkit.data.make_loaders, or shard your dataset with a DistributedSampler."
            )
        if isinstance(sampler, DistributedSampler):
            return loader  # the caller split it already
        if train and isinstance(sampler, (RandomSampler, SequentialSampler)):
            gen = loader.generator
            seed = self.broadcast_int(
                gen.initial_seed() if gen is not None else int(torch.randint(0, 2**62, ()))
            )
            shuffle = isinstance(sampler, RandomSampler)
            new = DistributedSampler(loader.dataset, self.size, self.rank, shuffle=shuffle, seed=seed)
        elif not train and isinstance(sampler, SequentialSampler):
            new = range(self.rank, len(loader.dataset), self.size)
        else:
            raise LabError(
                f"under torchrun, fit cannot split a DataLoader drawing with a {type(sampler).__name__} "
                f"between processes (PyTorch's DistributedSampler shuffles or keeps the order, it does not "
                f"weigh). Keep the data in memory (make_loaders(..., in_memory=True)): a TensorLoader splits "
                f"weighted draws."
            )
        workers = loader.num_workers
        init = (
            partial(_worker_init, loader.worker_init_fn, self.rank) if workers > 0 else loader.worker_init_fn
        )
        return DataLoader(
            loader.dataset,
            batch_size=loader.batch_size,
            sampler=new,
            num_workers=workers,
            collate_fn=loader.collate_fn,
            pin_memory=loader.pin_memory,
            drop_last=loader.drop_last,
            timeout=loader.timeout,
            worker_init_fn=init,
            multiprocessing_context=loader.multiprocessing_context,
            generator=loader.generator,
            prefetch_factor=loader.prefetch_factor if workers > 0 else None,
            persistent_workers=loader.persistent_workers,
        )


def _worker_init(inner, rank: int, worker_id: int) -> None:
    """A loader worker's seed with the rank mixed in: the workers of two processes draw differently
    (they share the loader generator, so their base seeds are equal)."""
    digest = hashlib.blake2b(f"{torch.initial_seed()}:{rank}".encode(), digest_size=8).digest()
    torch.manual_seed(int.from_bytes(digest, "little") >> 1)
    if inner is not None:
        inner(worker_id)


def _comm_device() -> torch.device:
    """Where tensors sent between processes must live: the current GPU for NCCL, else the CPU."""
    if str(dist.get_backend()) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# ----------------------------------------------------------------------------- joining the processes
def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError as err:
        raise LabError(
            f"the environment variable {name}={value!r} is not a number; torchrun sets it."
        ) from err


def from_env() -> tuple[int, int, int]:
    """(rank, size, local_rank) as torchrun describes them; (0, 1, 0) when WORLD_SIZE is unset or 1.

    Raises:
        LabError: WORLD_SIZE says several processes but RANK is missing or out of range.
    """
    size = _env_int("WORLD_SIZE")
    if size is None or size <= 1:
        return 0, 1, 0
    rank = _env_int("RANK")
    if rank is None or not 0 <= rank < size:
        raise LabError(
            f"WORLD_SIZE={size} is set but RANK={os.environ.get('RANK')!r} is not a rank 0..{size - 1}: "
            f"start the processes with torchrun (torchrun --nproc-per-node {size} -m course train ...)."
        )
    local = _env_int("LOCAL_RANK")
    return rank, size, rank if local is None else local


def check_backend(backend: str, device: torch.device) -> None:
    """Raise a LabError, before anything starts, when `backend` cannot work with `device`."""
    if backend not in BACKENDS:
        raise LabError(f"backend={backend!r} is not known; use 'nccl' (between CUDA GPUs) or 'gloo' (CPUs).")
    if backend != "nccl":
        return
    if not torch.cuda.is_available():
        raise LabError(
            "the NCCL backend was asked for, but this machine has no CUDA GPU, and NCCL only connects GPUs. "
            "On CPUs use gloo: leave the backend out (gloo is the default on CPUs) or pass --backend gloo, "
            "and unset LABKIT_DIST_BACKEND if it says nccl."
        )
    if device.type != "cuda":
        raise LabError(
            f"the NCCL backend connects GPUs, but training runs on {device}: use device='cuda' (or 'auto'), "
            f"or the gloo backend for CPU training."
        )


def _device_of(device: torch.device, local_rank: int) -> torch.device:
    """The GPU of this process (cuda:LOCAL_RANK) when training on CUDA, else `device`."""
    if device.type != "cuda":
        return device
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise LabError(
            f"process LOCAL_RANK={local_rank} has no GPU of its own: this machine has {count}. "
            f"Start at most {count} processes per machine (torchrun --nproc-per-node {count})."
        )
    if device.index is not None and device.index != local_rank:
        raise LabError(
            f"device={str(device)!r} in the process of LOCAL_RANK={local_rank}: under torchrun each process "
            f"trains on the GPU of its LOCAL_RANK; pass device='cuda' (or 'auto') without an index."
        )
    return torch.device("cuda", local_rank)


def join(device: torch.device, backend: str | None = None) -> tuple[OneProcess, torch.device]:
    """This process's world (for `fit(..., world=...)`) and the device it trains on.

    Without torchrun (or with one process) nothing happens: `(OneProcess(), device)`. Under torchrun
    the process group is started when no one has started it yet, with `backend` (None: the
    LABKIT_DIST_BACKEND environment variable, else NCCL on CUDA and gloo otherwise), and each
    process gets the GPU of its LOCAL_RANK. A process group the caller started is used as it is.

    Raises:
        LabError: (on every process, before any training) an unknown backend, NCCL without CUDA
            GPUs or with a CPU device, more processes on a machine than it has GPUs.
    """
    if backend is not None:
        check_backend(backend, device)
    if dist.is_available() and dist.is_initialized():
        rank, size, local = dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK") or 0
        check_backend(str(dist.get_backend()), device)
        device = _device_of(device, local)
        return (Torchrun(rank, size, local, device) if size > 1 else OneProcess()), device
    rank, size, local = from_env()
    if size == 1:
        return OneProcess(), device
    backend = (
        backend or os.environ.get("LABKIT_DIST_BACKEND") or ("nccl" if device.type == "cuda" else "gloo")
    )
    check_backend(backend, device)
    device = _device_of(device, local)
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing or not dist.is_available():
        why = (
            " and ".join(missing) + " is not set" if dist.is_available() else "torch has no torch.distributed"
        )
        raise LabError(
            f"WORLD_SIZE={size} asks for several processes, but {why}: start them with torchrun, which sets "
            f"everything they need to meet."
        )
    bind = {}
    if device.type == "cuda":
        torch.cuda.set_device(device)
        if "device_id" in inspect.signature(dist.init_process_group).parameters:  # torch >= 2.3
            bind = {"device_id": device}  # NCCL then knows each process's GPU (barrier needs no guess)
    dist.init_process_group(backend=backend, **bind)
    atexit.register(leave)
    return Torchrun(rank, size, local, device), device


def leave() -> None:
    """End the process group (when one is running): the last call of a torchrun process."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
