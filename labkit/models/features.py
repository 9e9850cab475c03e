"""Feature caching: a frozen base is a fixed function, so the head can train on features computed once.
Introduced in notebooks/04_transfer_learning.ipynb."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.utils.data import DataLoader, TensorDataset

from labkit.core import LabError, pick_device
from labkit.models.heads import find_head, set_submodule
from labkit.progress import tqdm
from labkit.util import preserved


class Headless(nn.Module):
    """The model without its head, (N, features): it shares the model's modules; during a forward pass
    the head is an `nn.Identity`, put back after."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.head_name, _ = find_head(model)

    def forward(self, x):
        head = self.model.get_submodule(self.head_name)
        set_submodule(self.model, self.head_name, nn.Identity())
        try:
            return self.model(x)  # (N, head.in_features)
        finally:
            set_submodule(self.model, self.head_name, head)


def headless(model: nn.Module) -> Headless:
    """The model's body: everything up to the input of its final linear layer."""
    return Headless(model)


def _fold_conv_bn(module: nn.Module, fold: bool = True) -> int:
    """Fold every batch-norm that follows a conv in an `nn.Sequential` into that conv (fold=False: only
    count them); returns how many."""
    count = 0
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = seq._modules[a], seq._modules[b]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.running_mean is not None:
                if conv.out_channels == bn.num_features:
                    count += 1
                    if fold:
                        seq._modules[a], seq._modules[b] = fuse_conv_bn_eval(conv, bn), nn.Identity()
    return count


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """For inference: a copy of `module` in eval mode with every batch-norm that follows a conv in an
    `nn.Sequential` folded into the conv; `module` itself (untouched) when it has no such pair."""
    if not _fold_conv_bn(module, fold=False):
        return module
    folded = copy.deepcopy(module).eval()
    _fold_conv_bn(folded)
    return folded


@torch.no_grad()
def extract_features(
    body: nn.Module, loader: DataLoader, device: str | torch.device = "cpu", progress: bool = False
) -> TensorDataset:
    """Features of every batch of `loader` (`(images, targets)`) through `body` (e.g. `headless(model)`)
    in eval mode on `device`: TensorDataset(features float32 (N, D), targets int64 (N,)) on the CPU.
    The body's mode is given back; its weights keep the channels-last layout this uses."""
    if not hasattr(loader, "__iter__"):
        raise LabError(f"loader must be a DataLoader of (images, targets), not {type(loader).__name__}.")
    device = pick_device(device)
    feats, targets = [], []
    body.to(memory_format=torch.channels_last)  # faster convolutions on CPUs; no result changes
    with preserved(body):
        body.eval()
        fast = fold_batchnorm(body)  # a folded copy: the body itself is not changed
        for x, y in tqdm(loader, desc="features", leave=False) if progress else loader:
            f = fast(x.to(device).contiguous(memory_format=torch.channels_last))
            feats.append(f.flatten(1).float().cpu())
            targets.append(torch.as_tensor(y).long().cpu())
    if not feats:
        raise LabError("the loader gave no batch: is the dataset split empty?")
    return TensorDataset(torch.cat(feats), torch.cat(targets))
