"""The classification head of a network: find it, replace it for a new set of classes.

Introduced in notebooks/04_transfer_learning.ipynb. The head is the network's LAST `nn.Linear`
(`fc` in a ResNet, `classifier.6` in VGG and AlexNet, `classifier.fc` in labkit's EfficientNet-Lite0,
`classifier.3` in MobileNet-v3): it maps the backbone's features to class scores.
"""

from __future__ import annotations

import torch
from torch import nn

from labkit.core import LabError


def check_num_classes(num_classes, allow_none: bool = False) -> None:
    """Raise a LabError unless `num_classes` is an int >= 2 (or None when `allow_none`)."""
    if num_classes is None and allow_none:
        return
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        keep = " (or None to keep the ImageNet head)" if allow_none else ""
        raise LabError(
            f"num_classes={num_classes!r}: expected an int >= 2, the number of classes of your dataset "
            f"(e.g. splits.num_classes){keep}."
        )


def find_head(model: nn.Module) -> tuple[str, nn.Linear]:
    """Return `(name, module)` of the model's final linear layer.

    Raises:
        LabError: the model has no `nn.Linear`.
    """
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise LabError(f"{type(model).__name__} has no nn.Linear layer, so it has no classification head to find.")
    return linears[-1]


def set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    """Put `module` at the dotted `name` inside `model` (replacing what was there)."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def replace_head(model: nn.Module, num_classes: int) -> nn.Linear:
    """Swap the final linear layer for a freshly initialised one with `num_classes` outputs.

    The new layer is on the old one's device and dtype and is trainable. A `config["num_classes"]`
    (labkit models) or an `arch` record (torchvision models made by labkit) is updated so that
    `labkit.models.build(model.arch)` makes the new shape.

    Returns:
        the new `nn.Linear`.
    """
    check_num_classes(num_classes)
    name, old = find_head(model)
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    new.to(device=old.weight.device, dtype=old.weight.dtype)
    set_submodule(model, name, new)
    config = getattr(model, "config", None)
    if isinstance(config, dict) and "num_classes" in config:
        config["num_classes"] = num_classes
    arch = model.__dict__.get("arch")  # an instance attribute (torchvision models), not a class property
    if isinstance(arch, dict):
        arch["kwargs"]["num_classes"] = num_classes
    return new


@torch.no_grad()
def head_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the head's weights (to compare heads trained two ways, or to restore one)."""
    return {k: v.detach().clone() for k, v in find_head(model)[1].state_dict().items()}
