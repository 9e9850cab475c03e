"""A fast residual network for small images, after airbench (Jordan 2024, "94% on CIFAR-10 in 3.29
Seconds on a Single GPU", arXiv:2404.00498).

Introduced in notebooks/03_residual_inception.ipynb, as the residual network lab 03 trains with its
full recipe on CIFAR-10. airbench's network is itself a plain conv-BN-activation-pool stack; this
one adds a shortcut around the second convolution of each group, so that each group computes
`x + act(bn(conv(x)))` after its pooling, as a residual block with an identity shortcut does.

What makes it train fast (each measured by Jordan; see the lab for what they bought here):
- a **patch-whitening stem**: a 2x2 convolution whose 24 filters are fixed before training to the
  eigenvectors of the covariance of 2x2 patches of training images (and their negatives), scaled
  to unit variance; its weights never train, only its bias (`PatchWhitening.fit`);
- **identity initialisation**: each convolution starts with its first `in_channels` filters as
  identities (`torch.nn.init.dirac_`), so the untrained network passes its input through;
- batch-norm without a learned scale (the scale stays 1, only the shift trains), eps 1e-12;
- GELU activations, global max pooling, and logits scaled by 1/9 (small early logits, as a
  lower learning rate for the head would give).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from labkit.core import LabError

WHITENING_EPS = 5e-4


class PatchWhitening(nn.Conv2d):
    """A k x k convolution (no padding) from `in_channels` to 2 * in_channels * k * k whitened channels.

    `fit(images)` sets the filters to the eigenvectors of the covariance of all k x k patches of
    `images`, each divided by the square root of its eigenvalue (+ eps), together with their
    negatives (so that a ReLU-like activation after it loses nothing); the weights then stay fixed.

    Shapes: (N, C, H, W) -> (N, 2 * C * k * k, H - k + 1, W - k + 1).
    """

    def __init__(self, in_channels: int = 3, kernel_size: int = 2) -> None:
        super().__init__(in_channels, 2 * in_channels * kernel_size**2, kernel_size, bias=True)
        self.weight.requires_grad_(False)
        nn.init.zeros_(self.bias)

    @torch.no_grad()
    def fit(self, images: torch.Tensor, eps: float = WHITENING_EPS) -> PatchWhitening:
        """Whiten the patches of `images` (N, C, H, W), normalised as the network sees them. Returns self."""
        c, k = self.in_channels, self.kernel_size[0]
        if images.ndim != 4 or images.shape[1] != c or min(images.shape[-2:]) < k:
            raise LabError(f"images of shape {tuple(images.shape)}: expected (N, {c}, H, W) with H, W >= {k}, "
                           f"normalised training images (a few thousand are enough).")  # fmt: skip
        patches = images.float().unfold(2, k, 1).unfold(3, k, 1)  # (N, C, H', W', k, k)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k).double()
        covariance = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending; columns are eigenvectors
        filters = (eigenvectors.T / torch.sqrt(eigenvalues.clamp_min(0) + eps)[:, None]).flip(0)
        filters = filters.reshape(c * k * k, c, k, k).to(self.weight)
        self.weight.copy_(torch.cat([filters, -filters]))
        return self


class ResidualGroup(nn.Module):
    """conv 3x3 -> max-pool 2 -> BN -> GELU, then `x + GELU(BN(conv 3x3(x)))`.

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H // 2, W // 2).
    """

    def __init__(self, in_channels: int, out_channels: int, bn_momentum: float = 0.4) -> None:
        super().__init__()
        self.conv1 = _conv(in_channels, out_channels)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = _batch_norm(out_channels, bn_momentum)
        self.act1 = nn.GELU()
        self.conv2 = _conv(out_channels, out_channels)
        self.norm2 = _batch_norm(out_channels, bn_momentum)
        self.act2 = nn.GELU()

    def forward(self, x):
        x = self.act1(self.norm1(self.pool(self.conv1(x))))
        return x + self.act2(self.norm2(self.conv2(x)))


class AirbenchResNet(nn.Module):
    """airbench's CIFAR-10 network with a residual connection in each of its three groups.

    Args:
        num_classes: number of output classes (>= 2).
        widths: output channels of the three groups; airbench94's are (64, 256, 256).
        logit_scale: factor on the logits (airbench: 1/9).
        bn_momentum: batch-norm running-statistics momentum, torch's convention (airbench: 0.4).

    Call `model.stem.fit(images)` with a few thousand normalised training images before training.

    Shapes: (N, 3, H, W) -> (N, num_classes); any H, W >= 9.
    """

    def __init__(
        self,
        num_classes: int,
        widths: Sequence[int] = (64, 256, 256),
        logit_scale: float = 1 / 9,
        bn_momentum: float = 0.4,
    ) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
            raise LabError(f"num_classes={num_classes!r}: a classifier needs an int >= 2.")
        widths = list(widths)
        if len(widths) != 3 or any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in widths):
            raise LabError(f"widths={widths!r}: expected three positive ints, the channels of the three groups.")
        self.config = dict(num_classes=num_classes, widths=widths, logit_scale=float(logit_scale),
                           bn_momentum=float(bn_momentum))  # fmt: skip
        self.stem = PatchWhitening(3, 2)
        self.stem_act = nn.GELU()
        c_in = self.stem.out_channels
        for g, width in enumerate(widths, start=1):
            self.add_module(f"group{g}", ResidualGroup(c_in, width, bn_momentum))
            c_in = width
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c_in, num_classes, bias=False)
        self.logit_scale = float(logit_scale)

    def forward(self, x):
        x = self.stem_act(self.stem(x))  # (N, 24, H - 1, W - 1)
        x = self.group3(self.group2(self.group1(x)))  # (N, widths[2], (H - 1) // 8, (W - 1) // 8)
        return self.fc(self.flatten(self.pool(x))) * self.logit_scale  # (N, num_classes)

    @property
    def arch(self) -> dict:
        """What `labkit.models.build` needs to make this network again."""
        return {"name": "airbench_resnet", "kwargs": {k: (list(v) if isinstance(v, list) else v) for k, v in self.config.items()}}


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    # Identity start: the first min(c_in, c_out) filters copy their input channel (the rest stay random).
    with torch.no_grad():
        nn.init.dirac_(conv.weight[: min(c_in, c_out)])
    return conv


def _batch_norm(channels: int, momentum: float) -> nn.BatchNorm2d:
    norm = nn.BatchNorm2d(channels, eps=1e-12, momentum=momentum)
    norm.weight.requires_grad_(False)  # the scale stays 1; only the shift learns
    return norm
