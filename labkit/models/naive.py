"""The naive CNN, with the layer names (`features.conv1_1`, ..., `classifier.fc1`) the later labs hook.
Introduced in notebooks/02_naive_cnn.ipynb."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from labkit.core import LabError
from labkit.models.base import Rebuildable, check_int

POOLS = ("max", "avg", "stride", None)


class NaiveCNN(Rebuildable, nn.Module):
    """A stage of `convs_per_stage` conv-[BN]-ReLU units per entry of `channels`, each downsampled by `pool`
    ("max", "avg", "stride": the last conv strides by 2; None: not at all), global average pooling and a
    head with a `hidden` dense layer (0: none): (N, in_channels, H, W) -> (N, num_classes)."""

    ARCH = "naive_cnn"

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        channels: Sequence[int] = (32, 64, 128),
        convs_per_stage: int = 2,
        kernel_size: int = 3,
        batch_norm: bool = True,
        pool: str | None = "max",
        dropout: float = 0.3,
        hidden: int = 128,
    ) -> None:
        super().__init__()
        check_int("num_classes", num_classes, 2)
        check_int("in_channels", in_channels)
        check_int("convs_per_stage", convs_per_stage)
        check_int("hidden", hidden, 0)
        if not channels or any(not isinstance(c, int) or c <= 0 for c in channels):
            raise LabError(f"channels={channels!r}: expected a non-empty sequence of positive ints.")
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise LabError(f"kernel_size={kernel_size!r}: expected an odd positive int (3, 5, ...).")
        if pool not in POOLS:
            raise LabError(f"pool={pool!r}: expected one of {POOLS}.")
        if not 0.0 <= float(dropout) < 1.0:
            raise LabError(f"dropout={dropout!r}: expected a probability in [0, 1).")
        self.config = dict(num_classes=num_classes, in_channels=in_channels, channels=list(channels))
        self.config.update(convs_per_stage=convs_per_stage, kernel_size=kernel_size, batch_norm=batch_norm)
        self.config.update(pool=pool, dropout=float(dropout), hidden=hidden)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        c_in = in_channels
        for s, c_out in enumerate(channels, start=1):
            for k in range(1, convs_per_stage + 1):
                stride = 2 if pool == "stride" and k == convs_per_stage else 1
                conv = nn.Conv2d(c_in, c_out, kernel_size, stride, kernel_size // 2, bias=not batch_norm)
                layers[f"conv{s}_{k}"] = conv
                if batch_norm:
                    layers[f"bn{s}_{k}"] = nn.BatchNorm2d(c_out)
                layers[f"relu{s}_{k}"] = nn.ReLU()
                c_in = c_out
            if pool in ("max", "avg"):
                layers[f"pool{s}"] = nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2)
        self.features = nn.Sequential(layers)
        self.pool = nn.AdaptiveAvgPool2d(1)  # global average: the head works at any input size
        head: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten(), drop1=nn.Dropout(dropout))
        if hidden:
            head.update(fc1=nn.Linear(c_in, hidden), relu=nn.ReLU(), drop2=nn.Dropout(dropout))
            head["fc2"] = nn.Linear(hidden, num_classes)
        else:
            head["fc1"] = nn.Linear(c_in, num_classes)
        self.classifier = nn.Sequential(head)

    def forward(self, x):
        x = self.features(x)  # (N, C, H / 2**stages, W / 2**stages)
        return self.classifier(self.pool(x))  # (N, num_classes)
