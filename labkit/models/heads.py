"""A network's classification head, its LAST `nn.Linear` (`fc` in a ResNet): find it, replace it.
Introduced in notebooks/04_transfer_learning.ipynb."""

from __future__ import annotations

from torch import nn

from labkit.core import LabError
from labkit.models.base import check_int


def find_head(model: nn.Module) -> tuple[str, nn.Linear]:
    """`(name, module)` of the model's last `nn.Linear`; a LabError for a model without."""
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise LabError(f"{type(model).__name__} has no nn.Linear layer, so no classification head.")
    return linears[-1]


def set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    """Put `module` at the dotted `name` inside `model`, replacing what was there."""
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, module)


def replace_head(model: nn.Module, num_classes: int) -> nn.Linear:
    """Swap the head for a new, trainable `nn.Linear` with `num_classes` outputs (on the old one's device
    and dtype), and return it; the model's `config` or `arch` record follows, for `labkit.models.build`."""
    check_int("num_classes", num_classes, 2, ", the number of classes of your dataset (splits.num_classes)")
    name, old = find_head(model)
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    set_submodule(model, name, new.to(device=old.weight.device, dtype=old.weight.dtype))
    config = getattr(model, "config", None)
    if isinstance(config, dict) and "num_classes" in config:
        config["num_classes"] = num_classes
    arch = model.__dict__.get("arch")  # an instance attribute (torchvision models), not a class property
    if isinstance(arch, dict):
        arch["kwargs"]["num_classes"] = num_classes
    return new
