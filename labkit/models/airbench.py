"""airbench's fast CIFAR-10 network (Jordan 2024), with a shortcut in each of its three groups.
Introduced in notebooks/03_residual_inception.ipynb."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from labkit.core import LabError
from labkit.models.base import Rebuildable, check_int


class PatchWhitening(nn.Conv2d):
    """A frozen k x k convolution that whitens image patches, (N, C, H, W) -> (N, 2 * C * k * k, H - k + 1,
    W - k + 1). `fit(images)` sets its filters to the patch covariance's eigenvectors scaled by
    1 / sqrt(eigenvalue + eps), and their negatives (so an activation after it loses nothing)."""

    def __init__(self, in_channels: int = 3, kernel_size: int = 2) -> None:
        super().__init__(in_channels, 2 * in_channels * kernel_size**2, kernel_size, bias=True)
        self.weight.requires_grad_(False)
        nn.init.zeros_(self.get_parameter("bias"))

    @torch.no_grad()
    def fit(self, images: torch.Tensor, eps: float = 5e-4) -> PatchWhitening:
        """Whiten the patches of `images` (N, C, H, W), normalised as the network sees them; returns self."""
        c, k = self.in_channels, self.kernel_size[0]
        if images.ndim != 4 or images.shape[1] != c or min(images.shape[-2:]) < k:
            raise LabError(
                f"images of shape {tuple(images.shape)}: expected (N, {c}, H, W) with H, W >= {k}, "
                "normalised training images (a few thousand are enough)."
            )
        patches = images.float().unfold(2, k, 1).unfold(3, k, 1)  # (N, C, H', W', k, k)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k).double()
        eigenvalues, eigenvectors = torch.linalg.eigh(patches.T @ patches / len(patches))  # ascending
        filters = (eigenvectors.T / torch.sqrt(eigenvalues.clamp_min(0) + eps)[:, None]).flip(0)
        filters = filters.reshape(c * k * k, c, k, k).to(self.weight)
        self.weight.copy_(torch.cat([filters, -filters]))
        return self


class ResidualGroup(nn.Module):
    """conv 3x3 -> max-pool 2 -> BN -> GELU, then `x + GELU(BN(conv 3x3(x)))`:
    (N, in_channels, H, W) -> (N, out_channels, H // 2, W // 2). `dirac`: both convolutions start as
    identities (their first filters copy an input channel each)."""

    def __init__(
        self, in_channels: int, out_channels: int, bn_momentum: float = 0.4, dirac: bool = True
    ) -> None:
        super().__init__()
        self.conv1 = _conv(in_channels, out_channels, dirac)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = _batch_norm(out_channels, bn_momentum)
        self.act1 = nn.GELU()
        self.conv2 = _conv(out_channels, out_channels, dirac)
        self.norm2 = _batch_norm(out_channels, bn_momentum)
        self.act2 = nn.GELU()

    def forward(self, x):
        x = self.act1(self.norm1(self.pool(self.conv1(x))))
        return x + self.act2(self.norm2(self.conv2(x)))


class AirbenchResNet(Rebuildable, nn.Module):
    """A whitening stem, three `ResidualGroup`s of `widths` channels, global max pooling and logits scaled
    by `logit_scale`: (N, 3, H, W) -> (N, num_classes), H, W >= 9. Call `model.stem.fit(images)` with a
    few thousand normalised training images before training. For ablations: `whitening=False` makes the
    stem an ordinary trained 2x2 convolution of the same width, `dirac=False` keeps PyTorch's random
    initialisation of the convolutions."""

    ARCH = "airbench_resnet"

    def __init__(
        self,
        num_classes: int,
        widths: Sequence[int] = (64, 256, 256),
        logit_scale: float = 1 / 9,
        bn_momentum: float = 0.4,
        whitening: bool = True,
        dirac: bool = True,
    ) -> None:
        super().__init__()
        check_int("num_classes", num_classes, 2)
        widths = list(widths)
        if len(widths) != 3 or any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in widths):
            raise LabError(f"widths={widths!r}: expected three positive ints, one per group.")
        self.config = dict(num_classes=num_classes, widths=widths)
        self.config.update(logit_scale=float(logit_scale), bn_momentum=float(bn_momentum))
        self.config.update(whitening=bool(whitening), dirac=bool(dirac))
        self.stem: nn.Conv2d = PatchWhitening(3, 2) if whitening else nn.Conv2d(3, 24, 2)
        self.stem_act = nn.GELU()
        c_in = self.stem.out_channels
        for g, width in enumerate(widths, start=1):
            self.add_module(f"group{g}", ResidualGroup(c_in, width, bn_momentum, dirac))
            c_in = width
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c_in, num_classes, bias=False)
        self.logit_scale = float(logit_scale)

    def forward(self, x):
        x = self.stem_act(self.stem(x))  # (N, 24, H - 1, W - 1)
        x = self.group3(self.group2(self.group1(x)))  # (N, widths[2], (H - 1) // 8, (W - 1) // 8)
        return self.fc(self.flatten(self.pool(x))) * self.logit_scale  # (N, num_classes)


def _conv(c_in: int, c_out: int, dirac: bool = True) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    if dirac:
        with torch.no_grad():  # starts as an identity: the first min(c_in, c_out) filters copy their input
            nn.init.dirac_(conv.weight[: min(c_in, c_out)])
    return conv


def _batch_norm(channels: int, momentum: float) -> nn.BatchNorm2d:
    norm = nn.BatchNorm2d(channels, eps=1e-12, momentum=momentum)
    norm.weight.requires_grad_(False)  # the scale stays 1; only the shift learns
    return norm
