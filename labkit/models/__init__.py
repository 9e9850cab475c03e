"""Networks of the series: the naive CNN (lab 02), residual and inception blocks and small
ResNets (lab 03), pretrained backbones (lab 04), plus summaries and rebuilding from a checkpoint."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from labkit.core import LabError
from labkit.models.airbench import AirbenchResNet, PatchWhitening
from labkit.models.efficientnet_lite import (
    EfficientNetLite,
    EfficientNetLite0,
    EfficientNetLite1,
    EfficientNetLite2,
    efficientnet_lite,
    efficientnet_lite0,
)
from labkit.models.features import Headless, extract_features, headless
from labkit.models.freezing import (
    freeze,
    frozen_bn_layers,
    param_groups,
    stage_names,
    stage_table,
    stages,
    train_mode,
    trainable_stages,
    unfreeze,
)
from labkit.models.heads import find_head, replace_head
from labkit.models.inception import InceptionBlock, NaiveInception
from labkit.models.naive import NaiveCNN
from labkit.models.pretrained import (
    BACKBONES,
    cached_weights_path,
    imagenet_classes,
    pretrained,
    top_classes,
    torchvision_model,
)
from labkit.models.residual import BasicBlock, ResNet, ResNet9, resnet18, small_resnet
from labkit.models.summary import count_params, summary
from labkit.models.variants import DeepNet, NaiveCNNVariant, gradient_norms
from labkit.util import IMAGENET_MEAN, IMAGENET_STD

# name -> constructor; `build` and checkpoints use it. Other model files add their entries below.
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "naive_cnn": NaiveCNN,
    "naive_cnn_variant": NaiveCNNVariant,
    "resnet": ResNet,
    "resnet9": ResNet9,
    "airbench_resnet": AirbenchResNet,
    "deep_net": DeepNet,
    "efficientnet_lite0": EfficientNetLite0,
    "efficientnet_lite1": EfficientNetLite1,
    "efficientnet_lite2": EfficientNetLite2,
    "torchvision": torchvision_model,  # random weights: a checkpoint supplies them
}


def build(arch: dict) -> nn.Module:
    """Make a network from its `arch` record ({"name": ..., "kwargs": {...}}), as saved in checkpoints."""
    name = arch.get("name") if isinstance(arch, dict) else None
    if name not in ARCHITECTURES:
        raise LabError(f"unknown architecture {name!r}; known: {sorted(ARCHITECTURES)}.")
    return ARCHITECTURES[name](**arch.get("kwargs", {}))


__all__ = [
    "ARCHITECTURES", "AirbenchResNet", "BACKBONES", "BasicBlock", "DeepNet", "EfficientNetLite", "EfficientNetLite0", "EfficientNetLite1", "EfficientNetLite2", "Headless",
    "IMAGENET_MEAN", "IMAGENET_STD", "InceptionBlock", "NaiveCNN", "NaiveCNNVariant", "NaiveInception",
    "PatchWhitening", "ResNet", "ResNet9", "build",
    "cached_weights_path", "count_params", "efficientnet_lite", "efficientnet_lite0", "extract_features", "find_head", "freeze",
    "frozen_bn_layers", "gradient_norms", "headless", "imagenet_classes", "param_groups",
    "pretrained", "replace_head", "resnet18", "small_resnet", "stage_names", "stage_table", "stages", "summary",
    "top_classes", "torchvision_model", "train_mode", "trainable_stages", "unfreeze",
]  # fmt: skip
