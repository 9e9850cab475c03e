"""Random generator states as plain data, so that a resumed `fit` draws exactly what it would have drawn:
Python's, numpy's, torch's CPU and CUDA generators, and the torch.Generators of the loaders (saved, not
reseeded per epoch, which would change the shuffling `make_loaders(seed=...)` gives)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from labkit.core import LabError


def loader_generators(loader: Any) -> list[torch.Generator]:
    """The distinct torch.Generators a DataLoader draws from (its own, its sampler's, its batch sampler's)."""
    sampler, batch_sampler = getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)
    owners = (loader, sampler, batch_sampler, getattr(batch_sampler, "sampler", None))
    found: list[torch.Generator] = []
    for g in (getattr(owner, "generator", None) for owner in owners):
        if isinstance(g, torch.Generator) and all(g is not h for h in found):
            found.append(g)
    return found


def capture(loaders: dict[str, Any]) -> dict:
    """The state of every generator training draws from, `loaders`' by name, as weights_only data."""
    version, mt_state, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)  # MT19937: keys uint32 (624,), pos, a cached gaussian
    keys, pos = np_state["state"]["key"], np_state["state"]["pos"]
    return {
        "python": [version, list(mt_state), gauss],
        "numpy": [torch.from_numpy(keys.astype(np.int64)), pos, np_state["has_gauss"], np_state["gauss"]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "loaders": {name: [g.get_state() for g in loader_generators(ld)] for name, ld in loaders.items()},
    }


def restore(state: dict, loaders: dict[str, Any]) -> None:
    """Put back the states `capture` saved; a LabError when a loader was made with other generators."""
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
