"""Freezing and unfreezing a pretrained network by stage (ResNet's stem, layer1, ...; a VGG's convolutions
split at its pools; "head", the last linear layer, last), and discriminative learning rates. Frozen batch-norm
layers run in eval mode, lest their running statistics quietly change the frozen features.
Introduced in notebooks/04_transfer_learning.ipynb."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence

import pandas as pd
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from labkit.core import LabError
from labkit.models.heads import find_head

HEAD = "head"
_POOLS = (nn.MaxPool2d, nn.AvgPool2d)


def stages(model: nn.Module) -> OrderedDict[str, list[str]]:
    """The model's stages, {stage name: module-name prefixes}, input side first, "head" last; every
    parameter belongs to exactly one stage."""
    head_name, _ = find_head(model)
    out: OrderedDict[str, list[str]] = OrderedDict()
    children = OrderedDict(model.named_children())
    if "layer1" in children and "conv1" in children:  # ResNet family
        out["stem"] = [n for n in ("conv1", "bn1") if n in children]
        out.update((name, [name]) for name in children if name.startswith("layer"))
    elif isinstance(children.get("features"), nn.Sequential):
        feats = OrderedDict(children["features"].named_children())
        if any(isinstance(m, _POOLS) for m in feats.values()):  # a flat conv stack: split at the pools
            block: list[str] = []
            for name, m in feats.items():
                if list(m.parameters()):
                    block.append(f"features.{name}")
                if (isinstance(m, _POOLS) or name == list(feats)[-1]) and block:
                    out[f"block{len(out) + 1}"], block = block, []
        else:  # a sequence of blocks, each a stage
            for name, m in feats.items():
                if list(m.parameters()):
                    out[f"features.{name}" if name.isdigit() else name] = [f"features.{name}"]
    # whatever holds parameters and is not covered yet (the classifier minus its last layer, ...)
    covered = [p for prefixes in out.values() for p in prefixes] + [head_name]
    rest: OrderedDict[str, list[str]] = OrderedDict()
    for pname, _ in model.named_parameters():
        if not any(pname == p or pname.startswith(p + ".") for p in covered):
            module_name = pname.rpartition(".")[0]
            covered.append(module_name)
            rest.setdefault(module_name.split(".")[0], []).append(module_name)
    for top, prefixes in rest.items():
        out[top if top not in out else f"{top}_rest"] = prefixes
    out[HEAD] = [head_name]
    return out


_stages = stages  # `unfreeze`'s argument `stages` hides the function


def _params_of(model: nn.Module, prefixes: Sequence[str]) -> Iterator:
    for name, p in model.named_parameters():
        if any(name == pre or name.startswith(pre + ".") for pre in prefixes):
            yield name, p


def _eval_frozen_bn(model: nn.Module) -> nn.Module:
    for m in model.modules():
        params = list(m.parameters(recurse=False))
        if isinstance(m, _BatchNorm) and params and not any(p.requires_grad for p in params):
            m.eval()
    return model


def train_mode(model: nn.Module) -> nn.Module:
    """`model.train()`, but batch-norm layers whose parameters are all frozen go to eval mode; returns it."""
    return _eval_frozen_bn(model.train())


def freeze(model: nn.Module, train_head: bool = True) -> nn.Module:
    """Freeze every parameter but the head's (with `train_head`), and return the model."""
    head_prefixes = stages(model)[HEAD]
    for name, p in model.named_parameters():
        p.requires_grad_(train_head and any(name == h or name.startswith(h + ".") for h in head_prefixes))
    return _eval_frozen_bn(model)


def unfreeze(
    model: nn.Module,
    stages: int | str | Sequence[str] | None = None,
    prefixes: Sequence[str] | None = None,
    batchnorm: bool = True,
) -> nn.Module:
    """Make parts of the model trainable again (the head always is), and return it. `stages`: an int k
    (the last k stages before the head), "all", or stage names such as ["layer4"]; `prefixes`: module-name
    prefixes, e.g. ["features.stage7"]; `batchnorm=False` keeps the batch-norm layers frozen, with their
    pretrained statistics (Keras's advice for fine-tuning on small batches)."""
    table = _stages(model)
    body = [s for s in table if s != HEAD]
    chosen: list[str] = [HEAD]
    if isinstance(stages, str) and stages == "all":
        chosen += body
    elif isinstance(stages, int):
        if isinstance(stages, bool) or not 0 <= stages <= len(body):
            raise LabError(f"stages={stages}: this model has {len(body)} stages before the head ({body}).")
        chosen += body[len(body) - stages :]
    elif stages is not None:
        names = [stages] if isinstance(stages, str) else list(stages)
        if unknown := [s for s in names if s not in table]:
            raise LabError(f"unknown stage(s) {unknown}; the model's stages: {[*table]}, an int, or 'all'.")
        chosen += names
    selected = [p for s in chosen for p in table[s]]
    for pre in prefixes or []:
        if not any(True for _ in _params_of(model, [pre])):
            raise LabError(f"prefix {pre!r} matches no parameter (names come from model.named_modules()).")
        selected.append(pre)
    if not isinstance(batchnorm, bool):
        raise LabError(f"batchnorm={batchnorm!r}: expected True (it trains) or False (it stays frozen).")
    bn = {id(p) for m in model.modules() if isinstance(m, _BatchNorm) for p in m.parameters(recurse=False)}
    for _, p in _params_of(model, selected):
        if batchnorm or id(p) not in bn:
            p.requires_grad_(True)
    return model


def trainable_stages(model: nn.Module) -> list[str]:
    """The stages with at least one trainable parameter."""
    return [s for s, pre in stages(model).items() if any(p.requires_grad for _, p in _params_of(model, pre))]


def stage_table(model: nn.Module) -> pd.DataFrame:
    """One row per stage: `stage`, `modules` (prefixes), `params`, `trainable` (parameters with grad)."""
    rows = []
    for s, pre in stages(model).items():
        ps = [p for _, p in _params_of(model, pre)]
        params, trainable = sum(p.numel() for p in ps), sum(p.numel() for p in ps if p.requires_grad)
        rows.append(dict(stage=s, modules=", ".join(pre), params=params, trainable=trainable))
    return pd.DataFrame(rows)


def param_groups(model: nn.Module, base_lr: float, decay: float = 0.5) -> list[dict]:
    """Discriminative learning rates (Howard & Ruder 2018): groups {"params", "lr", "name"} for `torch.optim`,
    head first at `base_lr`, each stage below at `decay` times the rate above; trainable parameters only."""
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
        raise LabError("no trainable parameter: unfreeze some stages first (labkit.models.unfreeze).")
    return groups
