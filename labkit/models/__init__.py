"""The networks of the series: the naive CNN (lab 02), residual and inception blocks and small ResNets
(lab 03), pretrained backbones (lab 04), summaries, and networks made again from a checkpoint's record."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from labkit.core import LabError
from labkit.models.airbench import AirbenchResNet, PatchWhitening
from labkit.models.efficientnet_lite import (
    LITE_CLASSES,
    EfficientNetLite,
    EfficientNetLite0,
    efficientnet_lite,
)
from labkit.models.features import extract_features, headless
from labkit.models.freezing import freeze, param_groups, stage_table, train_mode, trainable_stages, unfreeze
from labkit.models.heads import find_head, replace_head
from labkit.models.inception import InceptionBlock, NaiveInception
from labkit.models.naive import NaiveCNN
from labkit.models.pretrained import imagenet_classes, pretrained, top_classes, torchvision_model
from labkit.models.residual import BasicBlock, ResNet, ResNet9, resnet18, small_resnet
from labkit.models.summary import count_params, summary
from labkit.models.variants import DeepNet, NaiveCNNVariant, gradient_norms

# name -> constructor, for `build` and checkpoints
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "naive_cnn": NaiveCNN,
    "naive_cnn_variant": NaiveCNNVariant,
    "resnet": ResNet,
    "resnet9": ResNet9,
    "airbench_resnet": AirbenchResNet,
    "deep_net": DeepNet,
    **{f"efficientnet_lite{variant}": cls for variant, cls in LITE_CLASSES.items()},
    "torchvision": torchvision_model,  # random weights: a checkpoint supplies them
}


def build(arch: dict) -> nn.Module:
    """A network made from its `arch` record ({"name": ..., "kwargs": {...}}), as checkpoints save it."""
    name = arch.get("name") if isinstance(arch, dict) else None
    if name not in ARCHITECTURES:
        raise LabError(f"unknown architecture {name!r}; known: {sorted(ARCHITECTURES)}.")
    return ARCHITECTURES[name](**arch.get("kwargs", {}))


__all__ = [
    "ARCHITECTURES", "AirbenchResNet", "BasicBlock", "DeepNet", "EfficientNetLite", "EfficientNetLite0",
    "InceptionBlock", "NaiveCNN", "NaiveCNNVariant", "NaiveInception", "PatchWhitening", "ResNet", "ResNet9",
    "build", "count_params", "efficientnet_lite", "extract_features", "find_head", "freeze", "gradient_norms",
    "headless", "imagenet_classes", "param_groups", "pretrained", "replace_head", "resnet18", "small_resnet",
    "stage_table", "summary", "top_classes", "torchvision_model", "train_mode", "trainable_stages",
    "unfreeze",
]  # fmt: skip
