"""Several processes under torchrun: the process group, each process's share of the data, the sums.

Introduced for `labkit.train.fit`, which calls these helpers so that the same loop trains in a
notebook (one process: every helper here gives its input back unchanged) and under

    torchrun --nproc-per-node 4 -m course train resnet --dataset cifar10        # one machine, 4 GPUs

torchrun starts the processes and tells each one who it is through environment variables: RANK
(0 .. WORLD_SIZE-1 over all machines), WORLD_SIZE, LOCAL_RANK (its GPU on its machine) and
MASTER_ADDR/MASTER_PORT (where the processes meet). With them, `join` starts the process group
(NCCL between GPUs, gloo on CPUs) and gives each process its device; then, per epoch:
- `shard`: every process draws the same shuffled order of the training data from the loader's
  seeded generator and takes every WORLD_SIZE-th index of it (the order is padded by repeating its
  start, so every process runs the same number of steps); a torch DataLoader gets PyTorch's
  `DistributedSampler` instead, told the epoch with `set_epoch`. Validation is split without padding,
  so each image is counted exactly once.
- DistributedDataParallel averages the gradients, so every process takes the same optimiser step and
  the weights stay identical; `sync_buffers` gives every process rank 0's batch-norm statistics
  after each epoch's training.
- `all_sum` adds up the loss sums and counts of every process, so each process computes the same
  epoch figures from all the data, and so decides early stopping and divergence identically.
- `seed_epoch` reseeds the global generators (dropout, per-image transforms) per epoch from one
  shared seed, the epoch and the rank: the processes draw different numbers, and a resumed run
  draws the same numbers as the run it continues.
Only rank 0 writes checkpoints, TensorBoard logs and progress bars.

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
from dataclasses import dataclass
from functools import partial

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, IterableDataset, RandomSampler, SequentialSampler
from torch.utils.data.distributed import DistributedSampler

from labkit.core import LabError, seed_everything
from labkit.data.tensor_loader import TensorLoader

BACKENDS = ("gloo", "nccl")


@dataclass(frozen=True)
class World:
    """Who this process is: its `rank` among `size` processes, and its GPU index on its machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """True when several processes train together."""
        return self.size > 1

    @property
    def main(self) -> bool:
        """True for the process that writes checkpoints, logs and progress (rank 0)."""
        return self.rank == 0


SINGLE = World()


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError as err:
        raise LabError(f"the environment variable {name}={value!r} is not a number; torchrun sets it.") from err


def from_env() -> World:
    """The world torchrun describes in RANK, WORLD_SIZE and LOCAL_RANK; one process when they are unset.

    Raises:
        LabError: WORLD_SIZE says several processes but RANK is missing or out of range.
    """
    size = _env_int("WORLD_SIZE")
    if size is None or size <= 1:
        return SINGLE
    rank = _env_int("RANK")
    if rank is None or not 0 <= rank < size:
        raise LabError(
            f"WORLD_SIZE={size} is set but RANK={os.environ.get('RANK')!r} is not a rank 0..{size - 1}: start "
            f"the processes with torchrun (torchrun --nproc-per-node {size} -m course train ...), which sets both."
        )
    local = _env_int("LOCAL_RANK")
    return World(rank=rank, size=size, local_rank=rank if local is None else local)


def check_backend(backend: str, device: torch.device) -> None:
    """Raise a LabError, before anything starts, when `backend` cannot work with `device`."""
    if backend not in BACKENDS:
        raise LabError(f"backend={backend!r} is not known; use 'nccl' (between CUDA GPUs) or 'gloo' (CPUs).")
    if backend != "nccl":
        return
    if not torch.cuda.is_available():
        raise LabError(
            "the NCCL backend was asked for, but this machine has no CUDA GPU, and NCCL only connects GPUs. "
            "On CPUs use gloo: leave the backend out (labkit picks gloo on CPUs) or pass --backend gloo, "
            "and unset LABKIT_DIST_BACKEND if it says nccl."
        )
    if device.type != "cuda":
        raise LabError(f"the NCCL backend connects GPUs, but training runs on {device}: use device='cuda' "
                       f"(or 'auto'), or the gloo backend for CPU training.")  # fmt: skip


def _device_of(device: torch.device, world: World) -> torch.device:
    """The GPU of this process (cuda:LOCAL_RANK) when training on CUDA with several processes."""
    if not world.active or device.type != "cuda":
        return device
    count = torch.cuda.device_count()
    if world.local_rank >= count:
        raise LabError(
            f"process LOCAL_RANK={world.local_rank} has no GPU of its own: this machine has {count}. "
            f"Start at most {count} processes per machine (torchrun --nproc-per-node {count})."
        )
    if device.index is not None and device.index != world.local_rank:
        raise LabError(
            f"device={str(device)!r} in the process of LOCAL_RANK={world.local_rank}: under torchrun each "
            f"process trains on the GPU of its LOCAL_RANK; pass device='cuda' (or 'auto') without an index."
        )
    return torch.device("cuda", world.local_rank)


def join(device: torch.device, backend: str | None = None) -> tuple[World, torch.device]:
    """This process's place among torchrun's processes, and the device it trains on.

    Without torchrun (or with one process) nothing happens: `(SINGLE, device)`. Under torchrun the
    process group is started when no one has started it yet, with `backend` (None: the
    LABKIT_DIST_BACKEND environment variable, else NCCL on CUDA and gloo otherwise), and each
    process gets the GPU of its LOCAL_RANK. A process group the caller started is used as it is.

    Raises:
        LabError: (on every process, before any training) an unknown backend, NCCL without CUDA
            GPUs or with a CPU device, more processes on a machine than it has GPUs.
    """
    if backend is not None:
        check_backend(backend, device)
    if dist.is_available() and dist.is_initialized():
        world = World(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK") or 0)
        check_backend(str(dist.get_backend()), device)
        return world, _device_of(device, world)
    world = from_env()
    if not world.active:
        return SINGLE, device
    backend = backend or os.environ.get("LABKIT_DIST_BACKEND") or ("nccl" if device.type == "cuda" else "gloo")
    check_backend(backend, device)
    device = _device_of(device, world)
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing or not dist.is_available():
        raise LabError(
            f"WORLD_SIZE={world.size} asks for several processes, but "
            f"{'torch was built without torch.distributed' if not dist.is_available() else ' and '.join(missing) + ' is not set'}"
            f": start them with torchrun, which sets everything they need to meet."
        )
    bind = {}
    if device.type == "cuda":
        torch.cuda.set_device(device)
        if "device_id" in inspect.signature(dist.init_process_group).parameters:  # torch >= 2.3
            bind = {"device_id": device}  # NCCL then knows each process's GPU (barrier needs no guess)
    dist.init_process_group(backend=backend, **bind)
    atexit.register(leave)
    return world, device


def leave() -> None:
    """End the process group (when one is running): the last call of a torchrun process."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _comm_device() -> torch.device:
    """Where tensors sent between processes must live: the current GPU for NCCL, else the CPU."""
    if str(dist.get_backend()) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_sum(values: Sequence[float], world: World) -> list[float]:
    """Element-wise sums of `values` over every process (one process: the values unchanged).

    Every process receives the same sums, so decisions taken from them agree everywhere.
    """
    if not world.active:
        return list(values)
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return t.tolist()


def agree(ok: bool, world: World) -> list[int]:
    """The ranks whose `ok` is False (every process gets the same list; one process: its own)."""
    if not world.active:
        return [] if ok else [0]
    flags = torch.zeros(world.size, dtype=torch.float64, device=_comm_device())
    flags[world.rank] = 0.0 if ok else 1.0
    dist.all_reduce(flags)
    return [r for r, f in enumerate(flags.tolist()) if f]


def broadcast_int(value: int, world: World) -> int:
    """Rank 0's `value` on every process."""
    if not world.active:
        return int(value)
    t = torch.tensor([int(value)], dtype=torch.int64, device=_comm_device())
    dist.broadcast(t, src=0)
    return int(t.item())


def barrier(world: World) -> None:
    """Wait until every process gets here (e.g. until rank 0 has written a file the others read)."""
    if world.active:
        dist.barrier()


def shared_seed(world: World) -> int:
    """A seed drawn from torch's global generator on rank 0 and given to every process."""
    return broadcast_int(int(torch.randint(0, 2**62, ())), world)


def seed_epoch(world: World, seed: int, epoch: int) -> None:
    """Several processes: seed Python, numpy and torch from (`seed`, `epoch`, rank); one process: nothing.

    Each process then draws its own dropout masks and per-image augmentations, and the draws of an
    epoch depend only on the seed, the epoch and the rank, so a resumed run draws what the
    interrupted one would have.
    """
    if world.active:
        digest = hashlib.blake2b(f"{seed}:{epoch}:{world.rank}".encode(), digest_size=8).digest()
        seed_everything(int.from_bytes(digest, "little") >> 1, deterministic=False)


def wrap(model: nn.Module, world: World, device: torch.device) -> nn.Module:
    """`model` in DistributedDataParallel under several processes, else `model` itself.

    The wrapper trains `model`'s own parameters (its `.module` is `model`), so dropping the wrapper
    leaves the caller's model trained. Buffers (batch-norm statistics) are not sent with every
    step (`broadcast_buffers=False`): `sync_buffers` sends rank 0's once per epoch.
    """
    if not world.active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    sync_buffers(model, world)
    ids = [device.index] if device.type == "cuda" else None
    # torch 2.14 renamed broadcast_buffers (still accepted, with a warning); older versions know only it.
    known = inspect.signature(DistributedDataParallel.__init__).parameters
    no_sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in known else {"broadcast_buffers": False}
    return DistributedDataParallel(model, device_ids=ids, output_device=ids[0] if ids else None, **no_sync)


def sync_buffers(model: nn.Module, world: World) -> None:
    """Give every process rank 0's buffers (batch-norm running statistics and counts)."""
    if world.active:
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)


def set_epoch(loader, epoch: int) -> None:
    """Tell a DataLoader's DistributedSampler the epoch (its shuffle is seeded with seed + epoch)."""
    sampler = getattr(loader, "sampler", None)
    if isinstance(sampler, DistributedSampler):
        sampler.set_epoch(epoch)


# ----------------------------------------------------------------------------- each process's share
def shard(loader, world: World, *, train: bool):
    """The part of `loader` this process iterates (one process: `loader` itself).

    - a TensorLoader: a view of the same images and the same generator, taking every
      `world.size`-th index of each epoch's order from position `world.rank` (see
      `TensorLoader.shard`);
    - a DataLoader for training: the same dataset and settings with a `DistributedSampler`
      (shuffled when the loader shuffles, seeded from the loader's generator), padded so every
      process runs the same number of steps; call `set_epoch(loader, epoch)` before each epoch;
    - a DataLoader for validation (in order): indices rank, rank + size, ... without padding.

    The caller's loader is never changed, and the generators are shared with it, so saving the
    caller's loader's generator states (labkit.train.rng) saves the shard's.

    Raises:
        LabError: a loader that cannot be split this way (a weighted or custom sampler, a custom
            batch sampler, an iterable dataset, or an object that is neither), with the fix.
    """
    if loader is None or not world.active:
        return loader
    if isinstance(loader, TensorLoader):
        return loader.shard(world.rank, world.size, pad=train)
    if not isinstance(loader, DataLoader):
        raise LabError(
            f"under torchrun, fit splits the data between processes, which it can do for a labkit "
            f"TensorLoader or a torch DataLoader, not for a {type(loader).__name__}; make the loaders with "
            f"labkit.data.make_loaders."
        )
    return _distributed_dataloader(loader, world, train)


def _distributed_dataloader(loader: DataLoader, world: World, train: bool) -> DataLoader:
    sampler = loader.sampler
    plain_batches = isinstance(loader.batch_sampler, BatchSampler) and loader.batch_sampler.sampler is sampler
    if isinstance(loader.dataset, IterableDataset) or not plain_batches:
        raise LabError(
            "under torchrun, fit splits a DataLoader's samples between processes, which needs a map-style "
            "dataset and batch_size= (not an iterable dataset or a batch_sampler=); make the loaders with "
            "labkit.data.make_loaders, or shard your dataset yourself with a DistributedSampler."
        )
    if isinstance(sampler, DistributedSampler):
        return loader  # the caller split it already
    if train and isinstance(sampler, (RandomSampler, SequentialSampler)):
        gen = loader.generator
        seed = broadcast_int(gen.initial_seed() if gen is not None else int(torch.randint(0, 2**62, ())), world)
        new = DistributedSampler(loader.dataset, num_replicas=world.size, rank=world.rank,
                                 shuffle=isinstance(sampler, RandomSampler), seed=seed)  # fmt: skip
    elif not train and isinstance(sampler, SequentialSampler):
        new = range(world.rank, len(loader.dataset), world.size)
    else:
        raise LabError(
            f"under torchrun, fit cannot split a DataLoader drawing with a {type(sampler).__name__} between "
            f"processes (PyTorch's DistributedSampler shuffles or keeps the order, it does not weigh). For "
            f"class balance pass class_weights= to fit, or keep the data in memory "
            f"(make_loaders(..., in_memory=True)), whose TensorLoader splits weighted draws."
        )
    workers = loader.num_workers
    init = loader.worker_init_fn
    if workers > 0:
        init = partial(_worker_init, init, world.rank)
    return DataLoader(
        loader.dataset, batch_size=loader.batch_size, sampler=new, num_workers=workers,
        collate_fn=loader.collate_fn, pin_memory=loader.pin_memory, drop_last=loader.drop_last,
        timeout=loader.timeout, worker_init_fn=init, multiprocessing_context=loader.multiprocessing_context,
        generator=loader.generator, prefetch_factor=loader.prefetch_factor if workers > 0 else None,
        persistent_workers=loader.persistent_workers,
    )  # fmt: skip


def _worker_init(inner, rank: int, worker_id: int) -> None:
    """A loader worker's seed with the rank mixed in: the workers of two processes draw differently
    (they share the loader generator, so their base seeds are equal)."""
    digest = hashlib.blake2b(f"{torch.initial_seed()}:{rank}".encode(), digest_size=8).digest()
    torch.manual_seed(int.from_bytes(digest, "little") >> 1)
    if inner is not None:
        inner(worker_id)

