"""What each lab parameter may hold, checked before any work starts.

Introduced in notebooks/01_data_prep.ipynb (through `labkit.setup`, after it checks each type against
the default in `labkit.recipes`). A rule checks a range, or a choice or a name against the catalogue
of the module that owns it (augmentation presets, optimisers, photos, backbones, ImageNet classes).
Layer names only the network can answer are checked by `check_layers` where the network is loaded
(`labkit.zoo.naive_cnn`), before it is trained. Every message names the parameter and what it takes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from labkit.core import DATASET_ALIASES, LabError
from labkit.data.photos import PHOTOS
from labkit.data.registry import KNOWN_DATASETS
from labkit.data.shapes import MAX_SIZE, MIN_SIZE
from labkit.data.transforms import PRESETS
from labkit.interpret.attribution import class_index
from labkit.interpret.class_model import OBJECTIVES
from labkit.models.pretrained import BACKBONES, imagenet_classes
from labkit.recipes import RESNET_ARCHS
from labkit.train.optim import OPTIMIZERS, SCHEDULERS

Rule = Callable[[str, Any, Mapping[str, Any]], None]


def _refuse(name: str, value: Any, takes: str) -> None:
    raise LabError(f"parameter {name}={value!r}: {name} takes {takes}.")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def integer(low: int = 1, high: int | None = None, *, none: bool = False) -> Rule:
    """An int in [low, high] (None allowed with `none`)."""

    def rule(name, value, params):
        if value is None and none:
            return
        if not _is_int(value) or value < low or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f">= {low}"
            _refuse(name, value, f"an int {span}" + (" or None" if none else ""))

    return rule


def number(low: float, high: float | None = None, *, low_open: bool = False, high_open: bool = False) -> Rule:
    """A number in the interval between low and high (open ends where asked)."""

    def rule(name, value, params):
        ok = _is_number(value) and (value > low if low_open else value >= low)
        ok = ok and (high is None or (value < high if high_open else value <= high))
        if not ok:
            left, right = "(" if low_open else "[", ")" if high_open or high is None else "]"
            _refuse(name, value, f"a number in {left}{low}, {'∞' if high is None else high}{right}")

    return rule


def choice(options: Iterable[str]) -> Rule:
    options = tuple(options)

    def rule(name, value, params):
        if value not in options:
            _refuse(name, value, f"one of {list(options)}")

    return rule


def flag(*, none: bool = False) -> Rule:
    def rule(name, value, params):
        if not (isinstance(value, bool) or (none and value is None)):
            _refuse(
                name, value, "True or False" + (" (or None: decided by where the lab runs)" if none else "")
            )

    return rule


def int_list(low: int = 1, length: int | None = None, *, min_length: int = 1) -> Rule:
    """A list of ints >= low (of exactly `length` items, or at least `min_length`)."""

    def rule(name, value, params):
        ok = isinstance(value, (list, tuple)) and all(_is_int(v) and v >= low for v in value)
        ok = ok and (len(value) == length if length is not None else len(value) >= min_length)
        if not ok:
            count = f"{length}" if length is not None else f"at least {min_length}"
            _refuse(
                name,
                value,
                f"a list of {count} int(s) >= {low}, e.g. {[2 ** (4 + i) for i in range(length or 3)]}",
            )

    return rule


def names(known: Iterable[str], what: str, *, single: bool = False) -> Rule:
    """Names (a list, or one name with `single`) that must be among `known`."""
    catalogue = list(known)

    def rule(name, value, params):
        values = [value] if single else value
        if not isinstance(values, (list, tuple)) or not values or not all(isinstance(v, str) for v in values):
            _refuse(name, value, f"{'a' if single else 'a non-empty list of'} {what} name(s)")
        unknown = [v for v in values if v not in catalogue]
        if unknown:
            raise LabError(f"parameter {name}={value!r}: unknown {what} {unknown}; choose from {catalogue}.")

    return rule


def _shapes_image_size(name, value, params):
    integer(16)(name, value, params)
    if (params.get("dataset") or "shapes") == "shapes" and not MIN_SIZE <= value <= MAX_SIZE:
        _refuse(name, value, f"an int from {MIN_SIZE} to {MAX_SIZE} for the shapes dataset")


def _dataset(name, value, params):
    if not isinstance(value, str):
        _refuse(name, value, "a dataset name such as 'shapes' or 'folder:/path/to/images'")
    if value.startswith("folder:"):
        return  # whether the folder is there (also under data_root) is checked where the data loads
    if DATASET_ALIASES.get(value.lower(), value.lower()) not in KNOWN_DATASETS:
        _refuse(name, value, f"one of {list(KNOWN_DATASETS)} or 'folder:PATH'")


def _path(name, value, params):
    if value is not None and not isinstance(value, (str, Path)):
        _refuse(name, value, "a folder path (a string) or None")


def _imagenet_classes(name, value, params):
    if not isinstance(value, (list, tuple)) or not value:
        _refuse(name, value, "a non-empty list of ImageNet class names (or indices), e.g. ['goldfish']")
    classes = imagenet_classes()
    for item in value:
        if _is_int(item) and 0 <= item < len(classes):
            continue
        if not isinstance(item, str):
            _refuse(name, value, "ImageNet class names, or indices from 0 to 999")
        try:
            class_index(item, classes)
        except LabError as err:
            raise LabError(f"parameter {name}={value!r}: {err}") from None


def _seed_lists(name, value, params):
    int_list(0, min_length=1)(name, value, params)
    taken = {params.get("seed"), params.get("second_seed")}
    if taken & set(value) or len(set(value)) != len(value):
        raise LabError(
            f"parameter {name}={value!r}: the ensemble's seeds must differ from each other, from "
            f"seed={params.get('seed')} and from second_seed={params.get('second_seed')} (the judge "
            f"must not be one of the networks it judges)."
        )


def _second_seed(name, value, params):
    integer(0)(name, value, params)
    if value == params.get("seed"):
        raise LabError(
            f"parameter {name}={value!r}: the judge must be trained from another seed than the "
            f"network it judges (seed={params.get('seed')})."
        )


def _layer_names(name, value, params):
    single = name in SINGLE_LAYER
    values = [value] if single else value
    if not isinstance(values, (list, tuple)) or not values or not all(isinstance(v, str) for v in values):
        example = "'features.relu3_2'" if single else "['features.pool1']"
        _refuse(
            name, value, f"{'a layer name' if single else 'a non-empty list of layer names'}, e.g. {example}"
        )


def _resnet_channels(name, value, params):
    # Page's ResNet-9: stem and three stages; airbench's network: three groups.
    length = 3 if params.get("resnet_arch") == "airbench" else 4
    int_list(1, length)(name, value, params)


POSITIVE = integer(1)
SINGLE_LAYER = {"layer"}
LAYER_PARAMETERS = ("layer", "inversion_layers")  # names only the network can check: see check_layers

# every lab
_EVERY_LAB: dict[str, Rule] = {"seed": integer(0), "dataset": _dataset, "data_root": _path, "out_dir": _path,
                               "interactive": flag(none=True)}  # fmt: skip
# data and training
_TRAINING: dict[str, Rule] = {"image_size": _shapes_image_size, "n_per_class": integer(3),
                              "batch_size": POSITIVE, "epochs": POSITIVE, "augment": choice(PRESETS),
                              "channels": int_list(1), "hidden": integer(0),
                              "dropout": number(0, 1, high_open=True), "optimizer": choice(OPTIMIZERS),
                              "lr": number(0, low_open=True), "weight_decay": number(0),
                              "label_smoothing": number(0, 1, high_open=True), "tta": flag(),
                              "patience": integer(1, none=True), "overfit_steps": POSITIVE, "depth": POSITIVE,
                              "resnet_channels": _resnet_channels, "resnet_epochs": POSITIVE,
                              "resnet_batch_size": POSITIVE, "resnet_lr": number(0, low_open=True),
                              "resnet_arch": choice(RESNET_ARCHS),
                              "resnet_momentum": number(0, 1, high_open=True),
                              "resnet_weight_decay": number(0),
                              "resnet_norm_lr_scale": number(0, low_open=True),
                              "resnet_scheduler": choice(s for s in SCHEDULERS if s),
                              "resnet_lookahead": flag(),
                              "resnet_whitening": flag(), "resnet_dirac": flag(),
                              "resnet_whiten_bias_epochs": integer(0, none=True),
                              "resnet_label_smoothing": number(0, 1, high_open=True),
                              "resnet_tta": choice(["none", "mirror", "mirror_translate"]),
                              "amp": flag(none=True),
                              "val_fraction": number(0, 1, low_open=True, high_open=True),
                              "backbone": names(BACKBONES, "backbone", single=True), "head_epochs": POSITIVE,
                              "finetune_epochs": POSITIVE, "unfreeze_stages": integer(0),
                              "finetune_lr": number(0, low_open=True),
                              "lr_decay": number(0, 1, low_open=True), "mirror_features": flag(),
                              "train_batchnorm": flag(),
                              "scratch_batch_size": integer(1, none=True)}  # fmt: skip
# interpretability
_INTERPRETING: dict[str, Rule] = {"n_patch_images": POSITIVE, "n_units": POSITIVE, "pattern_steps": POSITIVE,
                                  "photo_size": integer(32), "photos": names(PHOTOS, "photo"),
                                  "nopool_epochs": POSITIVE, "n_show": POSITIVE, "inversion_images": POSITIVE,
                                  "inversion_epochs": POSITIVE, "inversion_layers": _layer_names,
                                  "n_occlusion": POSITIVE, "occlusion_window": number(0, 1, low_open=True),
                                  "n_sanity": POSITIVE, "n_deletion": POSITIVE, "deletion_steps": POSITIVE,
                                  "deletion_photos": names(PHOTOS, "photo"),
                                  "deletion_photo_size": integer(32), "n_fooling": POSITIVE,
                                  "fooling_max_steps": POSITIVE, "n_images": POSITIVE, "layer": _layer_names,
                                  "steps": POSITIVE, "objective": choice(OBJECTIVES),
                                  "second_seed": _second_seed, "images_per_class": POSITIVE,
                                  "ensemble_seeds": _seed_lists, "imagenet_classes": _imagenet_classes,
                                  "imagenet_steps": POSITIVE, "imagenet_size": integer(32),
                                  "imagenet_shown": POSITIVE}  # fmt: skip
RULES: dict[str, Rule] = {**_EVERY_LAB, **_TRAINING, **_INTERPRETING}


def validate(params: Mapping[str, Any]) -> None:
    """Check every parameter that has a rule (see the module docstring); the first bad one raises
    a LabError naming it. `device` is checked by `labkit.core.pick_device`."""
    for name, value in params.items():
        rule = RULES.get(name)
        if rule is not None:
            rule(name, value, params)


def check_layers(model, params: Mapping[str, Any], what: str = "the network") -> None:
    """Check the layer-name parameters among `params` against `model`'s modules (LabError naming them)."""
    known = [n for n, _ in model.named_modules() if n]
    for name in LAYER_PARAMETERS:
        if name not in params or params[name] is None:
            continue
        value = params[name]
        missing = [v for v in ([value] if name in SINGLE_LAYER else value) if v not in known]
        if missing:
            spatial = [n for n in known if n.startswith("features.")] or known
            raise LabError(
                f"parameter {name}={value!r}: {what} has no layer {missing}; its layers are {spatial}."
            )
