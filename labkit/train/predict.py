"""Evaluation and prediction over a loader, with the model's modes left as they were found.

Introduced in notebooks/02_naive_cnn.ipynb.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from labkit.env import LabError, pick_device


@contextmanager
def kept_modes(model: nn.Module) -> Iterator[nn.Module]:
    """Restore the `training` flag of every submodule on exit (also on error).

    `model.train(previous)` would not do: it sets every submodule alike, and would wake up a frozen
    batch-norm layer that the caller had put in eval mode on purpose.
    """
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield model
    finally:
        for m, mode in modes:
            m.training = mode


def split_batch(batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, targets) from a loader's batch (extra items, such as masks or ids, are ignored)."""
    if isinstance(batch, (list, tuple)) and len(batch) >= 2:
        return batch[0], batch[1]
    raise LabError(
        f"the loader gave a {type(batch).__name__}, not an (images, targets) pair; use a dataset whose "
        f"items are (image, label)."
    )


@dataclass
class Predictions:
    """Predictions over a loader, in the loader's order.

    Attributes:
        y_true: (N,) int64 targets.
        y_pred: (N,) int64 predicted classes (argmax of the logits).
        probs: (N, K) float32 softmax probabilities.
    """

    y_true: np.ndarray
    y_pred: np.ndarray
    probs: np.ndarray

    @property
    def confidence(self) -> np.ndarray:
        """(N,) probability of the predicted class."""
        return self.probs.max(axis=1) if len(self.probs) else np.zeros(0, dtype=np.float32)

    @property
    def correct(self) -> np.ndarray:
        return self.y_true == self.y_pred

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean()) if len(self.y_true) else float("nan")

    def __len__(self) -> int:
        return len(self.y_true)

    def __repr__(self) -> str:
        return f"Predictions(n={len(self)}, classes={self.probs.shape[1] if self.probs.ndim == 2 else '?'}, accuracy={self.accuracy:.4f})"


def _device_of(model: nn.Module, device) -> torch.device:
    return pick_device(device) if device is not None else next(model.parameters()).device


def run_eval(
    model: nn.Module, loader, criterion: nn.Module | None, device: torch.device
) -> tuple[float, float]:
    """(mean loss, accuracy) of `model` over `loader` in eval mode without gradients.

    The loss is the mean over samples of `criterion` (batches weighted by their size).
    """
    criterion = criterion if criterion is not None else nn.CrossEntropyLoss()
    total_loss, correct, seen = 0.0, 0, 0
    with kept_modes(model), torch.no_grad():
        model.eval()
        for batch in loader:
            x, y = split_batch(batch)
            x, y = x.to(device), y.to(device)
            logits = model(x)  # (B, K)
            total_loss += float(criterion(logits, y)) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
    if seen == 0:
        raise LabError("the loader is empty: nothing to evaluate. Check the split it was made from.")
    return total_loss / seen, correct / seen


def evaluate(model: nn.Module, loader, device: str | torch.device | None = "cpu") -> dict[str, float]:
    """Mean cross-entropy and accuracy of `model` over `loader`.

    Args:
        model: the network (moved to `device`); its train/eval modes are restored afterwards.
        loader: yields (images, targets).
        device: "cpu", "cuda", "auto" ...; None keeps the model where it is.

    Returns:
        {"loss": mean cross-entropy per sample, "accuracy": fraction correct}.
    """
    device = _device_of(model, device)
    model.to(device)
    loss, acc = run_eval(model, loader, None, device)
    return {"loss": loss, "accuracy": acc}


def predict(model: nn.Module, loader, device: str | torch.device | None = "cpu") -> Predictions:
    """Targets, predicted classes and softmax probabilities over `loader`, in its order.

    Runs in eval mode under `torch.no_grad()`; every submodule's mode is restored afterwards.

    Returns:
        Predictions with numpy arrays y_true (N,), y_pred (N,), probs (N, K) and confidence (N,).
    """
    device = _device_of(model, device)
    model.to(device)
    ys, probs = [], []
    with kept_modes(model), torch.no_grad():
        model.eval()
        for batch in loader:
            x, y = split_batch(batch)
            logits = model(x.to(device))  # (B, K)
            probs.append(torch.softmax(logits.float(), dim=1).cpu())
            ys.append(torch.as_tensor(y).cpu())
    if not ys:
        raise LabError("the loader is empty: nothing to predict. Check the split it was made from.")
    p = torch.cat(probs).numpy()
    return Predictions(y_true=torch.cat(ys).long().numpy(), y_pred=p.argmax(axis=1).astype(np.int64), probs=p)
