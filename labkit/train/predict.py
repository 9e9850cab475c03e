"""Evaluation and prediction over a loader, with the model's modes left as they were found.

Introduced in notebooks/02_naive_cnn.ipynb."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from labkit.core import LabError, pick_device
from labkit.util import model_device, preserved

Device = str | torch.device | None  # "cpu", "cuda", "auto" ...; None: where the model is


def batch_to(batch, device: torch.device, channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, targets) of a loader's batch on `device`, extra items (masks, ids) dropped; images
    (N, C, H, W) channels-last when `channels_last`."""
    if not (isinstance(batch, (list, tuple)) and len(batch) >= 2):
        raise LabError(
            f"the loader gave a {type(batch).__name__}, not an (images, targets) pair; use a dataset whose "
            f"items are (image, label)."
        )
    x, y = batch[0].to(device, non_blocking=True), torch.as_tensor(batch[1]).to(device, non_blocking=True)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y


@dataclass
class Predictions:
    """Predictions over a loader, in its order: y_true (N,) and y_pred (N,) int64, probs (N, K) float32."""

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
        classes = self.probs.shape[1] if self.probs.ndim == 2 else "?"
        return f"Predictions(n={len(self)}, classes={classes}, accuracy={self.accuracy:.4f})"


TTA = (False, True, "mirror", "mirror_translate")  # True: "mirror"


def check_tta(tta) -> None:
    """A LabError unless `tta` is one of TTA."""
    if not any(tta is t or (isinstance(tta, str) and tta == t) for t in TTA):
        raise LabError(
            f"tta={tta!r}: expected False (one view), True or 'mirror' (each image and its mirror image), "
            "or 'mirror_translate' (those and both shifted by one pixel, as airbench does)."
        )


def _logits(model: nn.Module, x: torch.Tensor, tta: bool | str, amp: bool = False) -> torch.Tensor:
    """The model's logits (N, K) for x (N, C, H, W): one view; with `tta` ("mirror" or True) averaged
    with the mirror images'; "mirror_translate": half that average, half the average over the mirror
    pairs of x shifted one pixel up-left and down-right (reflect-padded), airbench's test-time views."""
    check_tta(tta)

    def mirrored(v: torch.Tensor) -> torch.Tensor:
        return 0.5 * (model(v).float() + model(v.flip(-1)).float())

    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        if not tta:
            return model(x).float()
        logits = mirrored(x)
        if tta == "mirror_translate":
            h, w = x.shape[-2:]
            padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")  # (N, C, H + 2, W + 2)
            shifted = [padded[..., :h, :w], padded[..., 2:, 2:]]
            logits = 0.5 * logits + 0.25 * (mirrored(shifted[0]) + mirrored(shifted[1]))
    return logits


def eval_sums(
    model: nn.Module,
    loader,
    criterion: nn.Module | None,
    device: torch.device,
    *,
    tta: bool | str = False,
    channels_last: bool = False,
    amp: bool = False,
) -> tuple[float, int, int]:
    """(summed loss, number correct, number seen) of `model` over `loader`, in eval mode without gradients,
    summed for processes' shares to add up; `criterion` defaults to cross-entropy."""
    criterion = criterion if criterion is not None else nn.CrossEntropyLoss()
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    with preserved(model), torch.no_grad():
        model.eval()
        for batch in loader:
            x, y = batch_to(batch, device, channels_last)
            logits = _logits(model, x, tta, amp)  # (N, K)
            total_loss += criterion(logits, y).double() * len(y)
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
    return float(total_loss), int(correct), seen


def means(sums, what: str = "loader") -> tuple[float, float]:
    """(mean loss, accuracy) from `eval_sums`' sums; a LabError when nothing was seen."""
    total_loss, correct, seen = sums
    if int(seen) == 0:
        raise LabError(f"the {what} is empty: it gave no batch. Check the split it was made from.")
    return total_loss / int(seen), int(correct) / int(seen)


def _placed(model: nn.Module, device: Device) -> tuple[torch.device, bool]:
    """Move `model` to `device` (None: where it is); return that and whether fit stored it channels-last."""
    device = pick_device(device) if device is not None else model_device(model)
    model.to(device)
    for p in model.parameters():  # the first 4-d weight
        if p.dim() == 4:
            return device, p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
    return device, False


def evaluate(
    model: nn.Module, loader, device: Device = None, *, tta: bool | str = False, amp: bool = False
) -> dict[str, float]:
    """{"loss": mean cross-entropy, "accuracy"} of `model` over `loader`, in eval mode (modes restored);
    `device=None` keeps the model where it is; `tta` True or "mirror" averages the logits of each image
    and its mirror, "mirror_translate" adds one-pixel shifts (`_logits`); `amp`: bfloat16 autocast."""
    check_tta(tta)
    device, channels_last = _placed(model, device)
    sums = eval_sums(model, loader, None, device, tta=tta, channels_last=channels_last, amp=amp)
    loss, accuracy = means(sums)
    return {"loss": loss, "accuracy": accuracy}


def predict(model: nn.Module, loader, device: Device = None, *, tta: bool | str = False) -> Predictions:
    """Targets, predicted classes and softmax probabilities over `loader`, in its order; eval mode
    without gradients, modes restored. `device` and `tta` as in `evaluate`."""
    check_tta(tta)
    device, channels_last = _placed(model, device)
    ys, probs = [], []
    with preserved(model), torch.no_grad():
        model.eval()
        for batch in loader:
            x, y = batch_to(batch, device, channels_last)
            probs.append(torch.softmax(_logits(model, x, tta), dim=1).cpu())  # (N, K)
            ys.append(y.cpu())
    if not ys:
        raise LabError("the loader is empty: nothing to predict. Check the split it was made from.")
    p = torch.cat(probs).numpy()
    return Predictions(y_true=torch.cat(ys).long().numpy(), y_pred=p.argmax(axis=1).astype(np.int64), probs=p)
