"""Lookahead (Zhang et al. 2019) with airbench's schedule, as an optimiser `fit` takes like any other.

Introduced in notebooks/03_residual_inception.ipynb. Every `every` steps a slow copy of the weights (and
float buffers) moves towards them, slow <- decay * slow + (1 - decay) * fast, and they restart from it;
decay = max_decay * (t / total_steps)^3: no averaging at the start, an average over the last steps."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from labkit.core import LabError


class Lookahead(torch.optim.Optimizer):
    """Wrap `optimizer`, built on `model`'s parameters, whose `param_groups` it shares (so schedules built on
    the Lookahead drive it); `total_steps` is the steps of all training (epochs x batches)."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        model: nn.Module,
        total_steps: int,
        every: int = 5,
        max_decay: float = 0.95**5,
    ) -> None:
        if not isinstance(total_steps, int) or isinstance(total_steps, bool) or total_steps < 1:
            raise LabError(f"total_steps={total_steps!r}: expected all training's steps (epochs x batches).")
        if not isinstance(every, int) or every < 1 or not 0.0 <= max_decay < 1.0:
            raise LabError(
                f"every={every!r}, max_decay={max_decay!r}: expected an int >= 1 and a decay in [0, 1)."
            )
        self.optimizer, self.model = optimizer, model
        self.total_steps, self.every, self.max_decay = total_steps, every, float(max_decay)
        self.steps = 0
        self.slow = {k: v.detach().clone() for k, v in self._averaged().items()}
        # Share the inner optimiser's groups and state: schedules and checkpoints see one optimiser.
        self.param_groups, self.state = optimizer.param_groups, optimizer.state
        self.defaults = optimizer.defaults
        # Optimizer.__init__ is not called (it would copy the groups); the hook tables its methods read:
        self._optimizer_step_pre_hooks, self._optimizer_step_post_hooks = OrderedDict(), OrderedDict()
        self._optimizer_state_dict_pre_hooks = OrderedDict()
        self._optimizer_state_dict_post_hooks = OrderedDict()
        self._optimizer_load_state_dict_pre_hooks = OrderedDict()
        self._optimizer_load_state_dict_post_hooks = OrderedDict()

    def _averaged(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.model.state_dict(keep_vars=True).items() if v.is_floating_point()}

    def decay(self, step: int) -> float:
        """The averaging decay at optimiser step `step`."""
        return self.max_decay * min(1.0, step / self.total_steps) ** 3

    @torch.no_grad()
    def _average(self, decay: float) -> None:
        for name, fast in self._averaged().items():
            slow = self.slow[name]
            if slow.device != fast.device:  # fit moved the model after this optimiser was made
                slow = self.slow[name] = slow.to(fast.device)
            slow.lerp_(fast.detach(), 1.0 - decay)
            fast.copy_(slow)

    def step(self, closure=None):
        loss = self.optimizer.step(closure)
        self.steps += 1
        if self.steps >= self.total_steps:
            self._average(1.0)  # the end: the weights become the slow ones
        elif self.steps % self.every == 0:
            self._average(self.decay(self.steps))
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        slow = {k: v.clone() for k, v in self.slow.items()}
        return {"inner": self.optimizer.state_dict(), "steps": self.steps, "slow": slow}

    def load_state_dict(self, state_dict: dict) -> None:
        self.optimizer.load_state_dict(state_dict["inner"])
        self.param_groups, self.state = self.optimizer.param_groups, self.optimizer.state
        self.steps = int(state_dict["steps"])
        for name, value in state_dict["slow"].items():
            self.slow[name].copy_(value)

    def __repr__(self) -> str:
        return f"Lookahead(every={self.every}, total_steps={self.total_steps}, {self.optimizer!r})"
