"""Freezing and unfreezing a pretrained network by stage, keeping frozen batch-norm layers in eval
mode, and discriminative learning rates for fine-tuning.

Introduced in notebooks/04_transfer_learning.ipynb.

A *stage* is a group of layers at one depth of the network, listed input side first and ending
with "head" (the final linear layer):

    ResNet                      stem, layer1, layer2, layer3, layer4, head
    EfficientNet-Lite (labkit)  stem, stage1, ..., stage7, top, head
    VGG, AlexNet, NaiveCNN      block1, block2, ... (split at the pooling layers), classifier, head
    MobileNet, EfficientNet-B0  features.0, features.1, ..., classifier, head

Why batch-norm needs care: a frozen network's batch-norm layers still *update their running
statistics* in train mode, and normalise with the batch's statistics instead of the ImageNet ones;
with small batches of a new dataset this quietly changes the frozen features. One rule, one place:
a batch-norm layer whose parameters are all frozen runs in eval mode. `freeze` applies it at once,
and `train_mode(model)` is `model.train()` with the rule applied; `fit` calls it every epoch (a
training loop of your own should call it instead of `model.train()`). Unfrozen batch-norm layers
train normally.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import pandas as pd
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from labkit.core import LabError
from labkit.models.heads import find_head

HEAD = "head"
_POOLS = (nn.MaxPool2d, nn.AvgPool2d)


def _has_params(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def stages(model: nn.Module) -> OrderedDict[str, list[str]]:
    """The model's stages: stage name -> module-name prefixes, input side first, "head" last.

    Every parameter of the model belongs to exactly one stage.
    """
    return _stages(model)


def _stages(model: nn.Module) -> OrderedDict[str, list[str]]:
    head_name, _ = find_head(model)
    out: OrderedDict[str, list[str]] = OrderedDict()
    children = OrderedDict(model.named_children())
    if "layer1" in children and "conv1" in children:  # ResNet family
        out["stem"] = [n for n in ("conv1", "bn1") if n in children]
        for name in children:
            if name.startswith("layer"):
                out[name] = [name]
    elif isinstance(children.get("features"), nn.Sequential):
        feats = OrderedDict(children["features"].named_children())
        if any(isinstance(m, _POOLS) for m in feats.values()):  # flat conv stack: split at the pools
            block: list[str] = []
            for name, m in feats.items():
                if _has_params(m):
                    block.append(f"features.{name}")
                if isinstance(m, _POOLS) and block:
                    out[f"block{len(out) + 1}"] = block
                    block = []
            if block:
                out[f"block{len(out) + 1}"] = block
        else:  # a sequence of blocks: each is a stage
            for name, m in feats.items():
                if _has_params(m):
                    out[f"features.{name}" if name.isdigit() else name] = [f"features.{name}"]
    # whatever holds parameters and is not yet covered (the classifier minus its last layer, ...)
    covered = [p for prefixes in out.values() for p in prefixes] + [head_name]
    rest = []
    for pname, _ in model.named_parameters():
        if not any(pname == p or pname.startswith(p + ".") for p in covered + rest):
            module_name = pname.rpartition(".")[0]
            rest.append(module_name)
    if rest:
        by_top: OrderedDict[str, list[str]] = OrderedDict()
        for m in rest:
            by_top.setdefault(m.split(".")[0], []).append(m)
        for top, prefixes in by_top.items():
            out[top if top not in out else f"{top}_rest"] = prefixes
    out[HEAD] = [head_name]
    return out


def stage_names(model: nn.Module) -> list[str]:
    """Names of the stages, input side first, ending with "head"."""
    return list(stages(model))


def _params_of(model: nn.Module, prefixes: Sequence[str]):
    for name, p in model.named_parameters():
        if any(name == pre or name.startswith(pre + ".") for pre in prefixes):
            yield name, p


def frozen_bn_layers(model: nn.Module) -> list[str]:
    """Names of batch-norm layers whose parameters are all frozen."""
    return [name for name, m in model.named_modules() if isinstance(m, _BatchNorm) and _frozen(m)]


def _frozen(module: nn.Module) -> bool:
    params = list(module.parameters(recurse=False))
    return bool(params) and not any(p.requires_grad for p in params)


def train_mode(model: nn.Module) -> nn.Module:
    """`model.train()`, except that batch-norm layers whose parameters are all frozen go to eval mode.

    A frozen pretrained backbone then stays exactly as it was: in train mode its batch-norm layers
    would still update their running statistics from the new data (Keras does the same). Returns the model.
    """
    return _eval_frozen_bn(model.train())


def _eval_frozen_bn(model: nn.Module) -> nn.Module:
    for name in frozen_bn_layers(model):
        model.get_submodule(name).eval()
    return model


def freeze(model: nn.Module, train_head: bool = True) -> nn.Module:
    """Freeze every parameter (`requires_grad=False`), except the head's when `train_head`.

    Frozen batch-norm layers go to eval mode now (and stay there under `train_mode`). Returns the model.
    """
    head_prefixes = _stages(model)[HEAD]
    for name, p in model.named_parameters():
        p.requires_grad_(train_head and any(name == h or name.startswith(h + ".") for h in head_prefixes))
    return _eval_frozen_bn(model)


def unfreeze(
    model: nn.Module,
    stages: int | str | Sequence[str] | None = None,
    prefixes: Sequence[str] | None = None,
    batchnorm: bool = True,
) -> nn.Module:
    """Make parts of the model trainable again (the head always is); nothing else changes.

    Args:
        stages: an int k: the last k stages before the head; "all": every stage; or stage names
            from `stage_names(model)`, e.g. ["layer4"].
        prefixes: module-name prefixes, e.g. ["features.stage7", "features.top"].
        batchnorm: False leaves the batch-norm layers of the unfrozen stages frozen, so that under
            `train_mode` they keep normalising with the pretrained running statistics while the
            convolutions around them learn (Keras's advice for fine-tuning; with small batches of a new
            dataset, batch statistics differ from the ones the head was trained on).

    Returns:
        the model. Unfrozen batch-norm layers go back to normal behaviour at the next `model.train()`.

    Raises:
        LabError: k out of range, an unknown stage name, or a prefix that matches no parameter.
    """
    table = _stages(model)
    body = [s for s in table if s != HEAD]
    chosen: list[str] = [HEAD]
    if isinstance(stages, str) and stages == "all":
        chosen += body
    elif isinstance(stages, int) and not isinstance(stages, bool):
        if not 0 <= stages <= len(body):
            raise LabError(f"stages={stages}: this model has {len(body)} stages before the head ({body}); use 0..{len(body)}.")
        chosen += body[len(body) - stages :]
    elif stages is not None:
        names = [stages] if isinstance(stages, str) else list(stages)
        unknown = [s for s in names if s not in table]
        if unknown:
            raise LabError(f"unknown stage(s) {unknown}; this model's stages are {list(table)} (or pass an int, or 'all').")
        chosen += names
    selected = [p for s in chosen for p in table[s]]
    for pre in prefixes or []:
        if not any(True for _ in _params_of(model, [pre])):
            raise LabError(f"prefix {pre!r} matches no parameter; module names come from model.named_modules().")
        selected.append(pre)
    if not isinstance(batchnorm, bool):
        raise LabError(f"batchnorm={batchnorm!r}: expected True (batch-norm layers train too) or False (they stay frozen).")
    keep_frozen = set() if batchnorm else {id(p) for m in model.modules() if isinstance(m, _BatchNorm) for p in m.parameters(recurse=False)}
    for _, p in _params_of(model, selected):
        if id(p) not in keep_frozen:
            p.requires_grad_(True)
    return model


def trainable_stages(model: nn.Module) -> list[str]:
    """Stages with at least one trainable parameter."""
    return [s for s, pre in stages(model).items() if any(p.requires_grad for _, p in _params_of(model, pre))]


def stage_table(model: nn.Module) -> pd.DataFrame:
    """One row per stage: `stage`, `modules` (prefixes), `params`, `trainable` (parameters with grad)."""
    rows = []
    for s, pre in stages(model).items():
        ps = [p for _, p in _params_of(model, pre)]
        rows.append(
            dict(stage=s, modules=", ".join(pre), params=sum(p.numel() for p in ps), trainable=sum(p.numel() for p in ps if p.requires_grad))
        )
    return pd.DataFrame(rows)


def param_groups(model: nn.Module, base_lr: float, decay: float = 0.5) -> list[dict]:
    """Discriminative learning rates: the head learns at `base_lr`, each stage below it at `decay`
    times the rate of the stage above (Howard & Ruder 2018, ULMFiT). Only trainable parameters.

    Args:
        base_lr: learning rate of the head (> 0).
        decay: factor per stage, in (0, 1]; 1 gives every stage the same rate.

    Returns:
        a list of {"params": [...], "lr": float, "name": stage} for `torch.optim` (or `fit(param_groups=...)`),
        head first.
    """
    if not isinstance(base_lr, (int, float)) or isinstance(base_lr, bool) or base_lr <= 0:
        raise LabError(f"base_lr={base_lr!r}: expected a positive learning rate such as 1e-3.")
    if not isinstance(decay, (int, float)) or isinstance(decay, bool) or not 0 < decay <= 1:
        raise LabError(f"decay={decay!r}: expected a factor in (0, 1], e.g. 0.5 halves the rate per stage.")
    groups = []
    for depth, (s, pre) in enumerate(reversed(stages(model).items())):
        ps = [p for _, p in _params_of(model, pre) if p.requires_grad]
        if ps:
            groups.append({"params": ps, "lr": base_lr * decay**depth, "name": s})
    if not groups:
        raise LabError("no trainable parameter: unfreeze some stages first (labkit.models.unfreeze(model, stages=2)).")
    return groups

