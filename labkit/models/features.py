"""Feature caching: a frozen base is a fixed function image -> features, so every image runs through it
once and the head trains on the stored features, giving the head that training through the base
gives (tests/test_pretrained.py checks it). Augmented images would need new features every epoch.

Introduced in notebooks/04_transfer_learning.ipynb.
"""

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
    """The model without its head: `Headless(model)(x)` is what the head receives, (N, features). It
    shares the model's modules; during a forward pass the head is an `nn.Identity`, put back after."""

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


def _conv_bn_pairs(module: nn.Module) -> list[tuple[nn.Sequential, str, str]]:
    """(sequential, conv name, batch-norm name) of every conv followed by its batch-norm."""
    pairs = []
    for seq in module.modules():
        if isinstance(seq, nn.Sequential):
            names = list(seq._modules)
            for a, b in zip(names, names[1:]):
                conv, bn = seq._modules[a], seq._modules[b]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    if bn.running_mean is not None and conv.out_channels == bn.num_features:
                        pairs.append((seq, a, b))
    return pairs


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """For inference: a copy of `module`, in eval mode, in which every batch-norm that follows a conv
    in an `nn.Sequential` is folded into the conv's weights and bias (in eval mode it is a fixed
    affine map per channel): the same function with a layer fewer per block. `module` is untouched,
    and returned as it is when it has no such pair."""
    if not _conv_bn_pairs(module):
        return module
    folded = copy.deepcopy(module).eval()
    for seq, a, b in _conv_bn_pairs(folded):
        seq._modules[a] = fuse_conv_bn_eval(seq._modules[a], seq._modules[b])
        seq._modules[b] = nn.Identity()
    return folded


@torch.no_grad()
def extract_features(
    body: nn.Module, loader: DataLoader, device: str | torch.device = "cpu", progress: bool = False
) -> TensorDataset:
    """Features of every batch of `loader` (`(images, targets)`, without augmentation) through `body`
    (e.g. `headless(model)` of a frozen model), in eval mode on `device`, with a progress bar if
    asked: TensorDataset(features float32 (N, D), targets int64 (N,)) on the CPU. The body's mode is
    given back; its weights keep the channels-last layout this uses."""
    if not isinstance(loader, DataLoader) and not hasattr(loader, "__iter__"):
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
