"""The naive CNN of lab 02: stages of (conv, batch-norm, ReLU) x k, pooling, then a dense head.

Introduced in notebooks/02_naive_cnn.ipynb. Layers carry readable names
(`features.conv1_1`, `features.relu1_1`, `features.pool1`, ..., `classifier.fc1`), so that the
interpretability labs can address them by name.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from labkit.core import LabError

POOLS = ("max", "avg", "stride", None)


def _check_positive(name: str, value, allow_zero: bool = False) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        kind = "a non-negative" if allow_zero else "a positive"
        raise LabError(f"{name}={value!r}: expected {kind} int.")


class NaiveCNN(nn.Module):
    """A plain convolutional classifier.

    Args:
        num_classes: number of output classes (>= 2).
        in_channels: 3 for colour images, 1 for grayscale.
        channels: output channels of each stage, e.g. (32, 64, 128).
        convs_per_stage: conv-BN-ReLU units per stage before its pooling.
        kernel_size: odd conv kernel size; padding keeps the spatial size.
        batch_norm: put a BatchNorm2d after every conv.
        pool: "max" (2x2 max-pool after each stage), "avg", "stride" (the last conv of a stage
            has stride 2 instead of a pooling layer) or None (no downsampling at all).
        dropout: dropout probability in the head.
        hidden: width of the hidden dense layer (0: a single linear layer after global pooling).

    Shapes: (N, in_channels, H, W) -> (N, num_classes), any H, W >= 2**len(channels).
    """

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
        if not isinstance(num_classes, int) or num_classes < 2:
            raise LabError(f"num_classes={num_classes!r}: a classifier needs an int >= 2.")
        _check_positive("in_channels", in_channels)
        _check_positive("convs_per_stage", convs_per_stage)
        _check_positive("hidden", hidden, allow_zero=True)
        if not channels or any(not isinstance(c, int) or c <= 0 for c in channels):
            raise LabError(f"channels={channels!r}: expected a non-empty sequence of positive ints.")
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise LabError(f"kernel_size={kernel_size!r}: expected an odd positive int (3, 5, ...).")
        if pool not in POOLS:
            raise LabError(f"pool={pool!r}: expected one of {POOLS}.")
        if not 0.0 <= float(dropout) < 1.0:
            raise LabError(f"dropout={dropout!r}: expected a probability in [0, 1).")
        self.config = dict(
            num_classes=num_classes, in_channels=in_channels, channels=list(channels),
            convs_per_stage=convs_per_stage, kernel_size=kernel_size, batch_norm=batch_norm,
            pool=pool, dropout=float(dropout), hidden=hidden,
        )  # fmt: skip

        layers: OrderedDict[str, nn.Module] = OrderedDict()
        c_in = in_channels
        for s, c_out in enumerate(channels, start=1):
            for k in range(1, convs_per_stage + 1):
                stride = 2 if pool == "stride" and k == convs_per_stage else 1
                layers[f"conv{s}_{k}"] = nn.Conv2d(
                    c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2, bias=not batch_norm
                )
                if batch_norm:
                    layers[f"bn{s}_{k}"] = nn.BatchNorm2d(c_out)
                layers[f"relu{s}_{k}"] = nn.ReLU()
                c_in = c_out
            if pool == "max":
                layers[f"pool{s}"] = nn.MaxPool2d(2)
            elif pool == "avg":
                layers[f"pool{s}"] = nn.AvgPool2d(2)
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

    @property
    def arch(self) -> dict:
        """What `labkit.models.build` needs to make this network again."""
        return {"name": "naive_cnn", "kwargs": dict(self.config)}
