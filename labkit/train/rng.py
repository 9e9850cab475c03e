"""Random number generator states as plain data, for exact resume.

Everything random in a training epoch draws from one of these:
- Python's `random` and numpy's global generator (augmentations, `seed_worker` in loader workers);
- torch's global CPU generator (dropout on CPU, transforms, and the sampler of a loader made
  without a generator) and the CUDA generators (dropout on a GPU);
- `torch.Generator` objects owned by a DataLoader (`loader.generator`, which also seeds its
  workers) or by its sampler (`loader.sampler.generator`; a `WeightedRandomSampler` has its own).

`capture` turns their states into tensors and lists that `torch.load(weights_only=True)` reads back;
`restore` puts them back, so the next epoch draws exactly what it would have drawn without the
interruption. Reseeding the loader per epoch (seed + epoch) would also be exact, but it would change
the shuffling a loader made with `make_loaders(seed=...)` gives; saving its state changes nothing.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from labkit.core import LabError


def loader_generators(loader: Any) -> list[torch.Generator]:
    """The distinct torch.Generators a DataLoader draws from (its own, its sampler's, its batch sampler's)."""
    if loader is None:
        return []
    sampler = getattr(loader, "sampler", None)
    batch_sampler = getattr(loader, "batch_sampler", None)
    found: list[torch.Generator] = []
    for g in (
        getattr(loader, "generator", None),
        getattr(sampler, "generator", None),
        getattr(batch_sampler, "generator", None),
        getattr(getattr(batch_sampler, "sampler", None), "generator", None),
    ):
        if isinstance(g, torch.Generator) and all(g is not h for h in found):
            found.append(g)
    return found


def capture(loaders: dict[str, Any]) -> dict:
    """The state of every generator that training draws from, as plain data.

    Args:
        loaders: {"train": train_loader, "val": val_loader}; their generators are saved by name.
    """
    version, mt_state, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()  # "MT19937", keys uint32 (624,), ...
    return {
        "python": [version, list(mt_state), gauss],
        "numpy": [torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "loaders": {name: [g.get_state() for g in loader_generators(ld)] for name, ld in loaders.items()},
    }


def restore(state: dict, loaders: dict[str, Any]) -> None:
    """Put back the states `capture` saved.

    Raises:
        LabError: a loader now has a different number of generators than when the state was saved
            (it was made differently: shuffle, generator or sampler changed).
    """
    for name, loader in loaders.items():
        saved = state["loaders"].get(name, [])
        gens = loader_generators(loader)
        if len(saved) != len(gens):
            raise LabError(
                f"the {name} loader draws from {len(gens)} torch.Generator(s), but the checkpoint saved "
                f"{len(saved)}: make the {name} loader exactly as in the interrupted run (same shuffle, "
                f"generator and sampler), or start afresh with resume=False."
            )
        for g, s in zip(gens, saved):
            g.set_state(s)
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(mt_state), gauss))
    keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
