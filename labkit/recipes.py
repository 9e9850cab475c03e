"""Every lab's defaults, per profile and per dataset: the recipes, in one place.

Introduced in notebooks/01_data_prep.ipynb. A lab's `parameters` cell lists its parameters; a value
left `None` there takes the value this module gives for the lab, the profile and the dataset.
`labkit.setup` reads it, and so do `labkit.zoo` and `python -m course train`, so a network trained
outside a notebook matches the lab's. A table is `{"smoke": {...}, "full": {...}}`, optionally with
`"datasets": {"cifar10": {"smoke": {...}, "full": {...}}, ...}`: a recipe per real dataset
("folder" for any folder:PATH) whose values replace the profile's when `dataset` names it.
What each recipe was measured to give is in the README's table of targets and in the labs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labkit.core import PROFILES, LabError, dataset_key

# Parameters every lab takes, with the same defaults under both profiles.
COMMON = {"seed": 0, "device": "auto", "out_dir": None, "data_root": None}

# ----------------------------------------------------------------------------- lab 01
LAB01: dict[str, Any] = {
    "smoke": {"dataset": "shapes", "image_size": 48, "n_per_class": 60, "augment": "light", "batch_size": 32},
    "full": {"dataset": "shapes", "image_size": 64, "n_per_class": 600, "augment": "light", "batch_size": 64},
}

# ----------------------------------------------------------------------------- lab 02
# shapes (the embedded default): the recipe the series was built on; labs 05-08 explain its network.
# In bfloat16 where it is native (amp None: 1.7-1.9x the float32 speed on an AMX processor; under full,
# test accuracy 0.988 against float32's 0.992). Smoke scores mirrored views too, and trains without
# early stopping: with patience 4 the one-cycle warm-up's noisy validation loss stopped bfloat16's run
# after 5 epochs, at chance. Smoke has no hidden layer and no dropout: the dense head with dropout slowed
# learning most (float32, AVX2 processor, bare loop 415-482 images/s, seed 1, 4 epochs: 0.642 with it,
# 0.807 without; with it, Adam at 1e-2 0.553, Nesterov SGD at 0.1 0.598), and without it 8 epochs
# reach 0.989-1.0 where the head needed 12 for 0.991 (8 epochs with the head: 0.907, and lab 06's
# occlusion then points worse than its centre prior). 6 epochs: 0.967. At 32 or 40 px (12 epochs, with
# the head) lab 06's pointing game could not beat its centre prior either, and 200 images a class gave
# 0.867.
_LAB02_SHAPES = {
    "smoke": {"dataset": "shapes", "image_size": 48, "n_per_class": 300, "channels": [16, 32, 64],
              "hidden": 0, "dropout": 0.0, "epochs": 8, "batch_size": 32, "optimizer": "adam", "lr": 3e-3,
              "weight_decay": 1e-4, "label_smoothing": 0.0, "augment": "none", "tta": True, "patience": None,
              "overfit_steps": 40, "amp": None},
    "full": {"dataset": "shapes", "image_size": 64, "n_per_class": 400, "channels": [16, 32, 64],
             "hidden": 128, "dropout": 0.2, "epochs": 14, "batch_size": 32, "optimizer": "adam", "lr": 3e-3,
             "weight_decay": 1e-4, "label_smoothing": 0.0, "augment": "light", "tta": False, "patience": 5,
             "overfit_steps": 120, "amp": None},
}  # fmt: skip

# CIFAR-10: notebooks/02_naive_cnn.ipynb, section "Recipes for real data", shows what each part bought:
# within five minutes of training, bfloat16 (where native) buys a wider network, 10 epochs and shifts.
_LAB02_CIFAR10 = {
    "full": {"image_size": 32, "channels": [32, 64, 128], "hidden": 0, "dropout": 0.0, "epochs": 10,
             "batch_size": 256, "optimizer": "nesterov", "lr": 0.2, "weight_decay": 5e-4,
             "label_smoothing": 0.2, "augment": "small_shift", "tta": True, "patience": None,
             "overfit_steps": 120, "amp": None},
    "smoke": {"image_size": 32, "channels": [32, 64, 128], "hidden": 0, "dropout": 0.0, "epochs": 1,
              "batch_size": 256, "optimizer": "nesterov", "lr": 0.2, "weight_decay": 5e-4,
              "label_smoothing": 0.2, "augment": "small_shift", "tta": True, "patience": None,
              "overfit_steps": 40, "amp": None},
}  # fmt: skip

# Photographs (cats vs dogs, any folder): 96-px inputs, random resized crops and flips.
_LAB02_PHOTOS = {
    "full": {"image_size": 96, "channels": [32, 64, 128], "hidden": 0, "dropout": 0.2, "epochs": 20,
             "batch_size": 64, "optimizer": "nesterov", "lr": 0.05, "weight_decay": 5e-4,
             "label_smoothing": 0.1, "augment": "light", "tta": True, "patience": 6, "overfit_steps": 120,
             "amp": False},
    "smoke": {"image_size": 64, "channels": [16, 32, 64], "hidden": 0, "dropout": 0.2, "epochs": 1,
              "batch_size": 64, "optimizer": "nesterov", "lr": 0.05, "weight_decay": 5e-4,
              "label_smoothing": 0.1, "augment": "light", "tta": True, "patience": None, "overfit_steps": 40,
              "amp": False},
}  # fmt: skip

LAB02: dict[str, Any] = {
    **_LAB02_SHAPES,
    "datasets": {"cifar10": _LAB02_CIFAR10, "cats_vs_dogs": _LAB02_PHOTOS, "folder": _LAB02_PHOTOS,
                 "imagenette": _LAB02_PHOTOS, "caltech101": _LAB02_PHOTOS},
}  # fmt: skip

# Epochs of the quick lab-02 network that labs 05-08 train when lab 02's checkpoint is missing.
QUICK_EPOCHS = {"shapes": {"smoke": 4, "full": 10}, "cifar10": {"smoke": 1, "full": 3},
                "other": {"smoke": 1, "full": 5}}  # fmt: skip


# ----------------------------------------------------------------------------- lab 03
# The variants share one short budget (`epochs` of Adam + one-cycle, no augmentation); then the lab's
# residual network trains with its full recipe (`resnet_*`): on shapes and photographs Page's ResNet-9
# (labkit.models.ResNet9; SGD + Nesterov, one-cycle), on CIFAR-10 airbench's network with residual
# groups (labkit.models.AirbenchResNet) and airbench's recipe (Jordan 2024): batch 1024, Nesterov
# momentum 0.85, batch-norm shifts trained 64x faster, a linear warm-up and decay, Lookahead. Both
# with label smoothing 0.2, augmentation, mirrored test views, and the short last batch dropped; airbench
# also with its whitening stem (whose bias trains for 3 epochs), identity-initialised convolutions,
# alternating flips and one-pixel shifted test views too. On shapes and CIFAR-10 in bfloat16 where the
# hardware has it natively (amp None: ResNet-9 on shapes, 12 epochs in 53 s against 113 s); photographs
# in float32, as their recipes were measured.
_RESNET9 = {"resnet_arch": "resnet9", "resnet_momentum": 0.9, "resnet_weight_decay": 5e-4,
            "resnet_norm_lr_scale": 1.0, "resnet_scheduler": "onecycle", "resnet_lookahead": False,
            "resnet_whitening": True, "resnet_dirac": True, "resnet_whiten_bias_epochs": None,
            "resnet_label_smoothing": 0.2, "resnet_tta": "mirror", "amp": False}  # fmt: skip
_LAB03_SHAPES = {
    "smoke": {"dataset": "shapes", "image_size": 32, "n_per_class": 60, "val_fraction": 0.1, "epochs": 1,
              "batch_size": 64, "lr": 3e-3, "depth": 8, **_RESNET9, "resnet_channels": [16, 32, 64, 128],
              "resnet_epochs": 2, "resnet_batch_size": 64, "resnet_lr": 0.1, "augment": "light", "amp": None},
    "full": {"dataset": "shapes", "image_size": 48, "n_per_class": 500, "val_fraction": 0.1, "epochs": 8,
             "batch_size": 64, "lr": 3e-3, "depth": 20, **_RESNET9, "resnet_channels": [16, 32, 64, 128],
             "resnet_epochs": 12, "resnet_batch_size": 128, "resnet_lr": 0.1, "augment": "light",
             "amp": None},
}  # fmt: skip
# CIFAR-10: 2 % of the training images for validation (1,000 of the official 50,000: enough for the
# curves, and the residual network trains on the rest); the notebook's section 4 shows what it reached.
_AIRBENCH = {"resnet_arch": "airbench", "resnet_batch_size": 1024, "resnet_lr": 1.5, "resnet_momentum": 0.85,
             "resnet_weight_decay": 0.0013, "resnet_norm_lr_scale": 64.0, "resnet_scheduler": "linear",
             "resnet_lookahead": True, "resnet_whitening": True, "resnet_dirac": True,
             "resnet_whiten_bias_epochs": 3, "resnet_label_smoothing": 0.2, "resnet_tta": "mirror_translate",
             "amp": None}  # fmt: skip
_LAB03_CIFAR10 = {
    "full": {"image_size": 32, "val_fraction": 0.02, "epochs": 2, "batch_size": 256, "lr": 3e-3, **_AIRBENCH,
             "resnet_channels": [64, 256, 256], "resnet_epochs": 15, "augment": "small_shift_alternating"},
    "smoke": {"image_size": 32, "val_fraction": 0.02, "epochs": 1, "batch_size": 256, "lr": 3e-3, **_AIRBENCH,
              "resnet_channels": [16, 32, 32], "resnet_epochs": 1, "augment": "small_shift_alternating"},
}  # fmt: skip
_LAB03_PHOTOS = {
    "full": {"image_size": 96, "epochs": 4, "batch_size": 64, "lr": 3e-3, **_RESNET9,
             "resnet_channels": [32, 64, 128, 256], "resnet_epochs": 20, "resnet_batch_size": 64,
             "resnet_lr": 0.1, "augment": "light"},
    "smoke": {"image_size": 64, "epochs": 1, "batch_size": 64, "lr": 3e-3, **_RESNET9,
              "resnet_channels": [16, 32, 64, 128], "resnet_epochs": 1, "resnet_batch_size": 64,
              "resnet_lr": 0.1, "augment": "light"},
}  # fmt: skip

LAB03: dict[str, Any] = {
    **_LAB03_SHAPES,
    "datasets": {"cifar10": _LAB03_CIFAR10, "cats_vs_dogs": _LAB03_PHOTOS, "folder": _LAB03_PHOTOS,
                 "imagenette": _LAB03_PHOTOS, "caltech101": _LAB03_PHOTOS},
}  # fmt: skip
RESNET_ARCHS = ("resnet9", "airbench")


# ----------------------------------------------------------------------------- lab 04
# shapes: the offline default. Photographs (Imagenette, Caltech-101): EfficientNet-Lite0 at 224 px,
# the resolution it was trained at; the head trains on cached features of every training image and of
# its mirror image, and test images are classified together with their mirror images (tta).
_LAB04_SHAPES = {
    "smoke": {"dataset": "shapes", "backbone": "efficientnet_lite0", "image_size": 64, "n_per_class": 10,
              "batch_size": 32, "scratch_batch_size": None, "head_epochs": 3, "finetune_epochs": 1,
              "unfreeze_stages": 2, "lr": 3e-3, "weight_decay": 1e-4, "finetune_lr": 1e-3, "lr_decay": 0.5,
              "augment": "light", "tta": False, "mirror_features": True, "train_batchnorm": True},
    "full": {"dataset": "shapes", "backbone": "efficientnet_lite0", "image_size": 96, "n_per_class": 100,
             "batch_size": 32, "scratch_batch_size": None, "head_epochs": 30, "finetune_epochs": 3,
             "unfreeze_stages": 3, "lr": 3e-3, "weight_decay": 1e-4, "finetune_lr": 1e-3, "lr_decay": 0.5,
             "augment": "light", "tta": False, "mirror_features": True, "train_batchnorm": True},
}  # fmt: skip
_LAB04_PHOTOS = {
    "full": {"image_size": 224, "batch_size": 32, "head_epochs": 30, "finetune_epochs": 2,
             "unfreeze_stages": 2, "lr": 1e-3, "weight_decay": 1e-3, "finetune_lr": 3e-4, "lr_decay": 0.5,
             "augment": "light", "tta": True},
    "smoke": {"image_size": 96, "batch_size": 32, "head_epochs": 3, "finetune_epochs": 1,
              "unfreeze_stages": 1, "lr": 3e-3, "weight_decay": 1e-4, "finetune_lr": 3e-4, "lr_decay": 0.5,
              "augment": "light", "tta": True},
}  # fmt: skip
# Cats vs dogs and any folder of photographs: EfficientNet-Lite2 at the 260 px it was trained at, its
# batch-norm layers left as ImageNet trained them while fine-tuning (cross-validation on cats vs dogs'
# training images, notebooks/04_transfer_learning.ipynb's appendix; on two development folders of 250
# images its frozen features beat Lite0's at 224 px by 2-4 points). From scratch, 16 images a step: the
# whole network's activations at 260 px take about 150 MB an image, so 32 would need 5 GB.
_LAB04_LITE2 = {
    **_LAB04_PHOTOS["full"],
    "backbone": "efficientnet_lite2",
    "image_size": 260,
    "scratch_batch_size": 16,
    "train_batchnorm": False,
}
_LAB04_CATS = {
    "full": {**_LAB04_LITE2, "mirror_features": False},
    "smoke": _LAB04_PHOTOS["smoke"],
}  # fmt: skip
# A folder may hold a few hundred images: the mirror images' features double the head's training set.
_LAB04_FOLDER = {"full": {**_LAB04_LITE2, "mirror_features": True}, "smoke": _LAB04_PHOTOS["smoke"]}

LAB04: dict[str, Any] = {
    **_LAB04_SHAPES,
    "datasets": {"cats_vs_dogs": _LAB04_CATS, "folder": _LAB04_FOLDER, "imagenette": _LAB04_PHOTOS,
                 "caltech101": _LAB04_PHOTOS, "cifar10": {p: {**v, "image_size": 96} for p,
                 v in _LAB04_PHOTOS.items()}},
}  # fmt: skip


# ----------------------------------------------------------------------------- labs 05-08
# They explain lab 02's network (`labkit.zoo.naive_cnn`) on the lab's `dataset`, and photographs
# (`skimage.data`) with the pretrained EfficientNet-Lite0.
LAB05: dict[str, Any] = {
    "smoke": {"dataset": "shapes", "n_patch_images": 64, "n_units": 2, "pattern_steps": 16, "photo_size": 128,
              "photos": ["chelsea", "coffee"], "nopool_epochs": 1, "interactive": None},
    "full": {"dataset": "shapes", "n_patch_images": 600, "n_units": 6, "pattern_steps": 96, "photo_size": 192,
             "photos": ["chelsea", "coffee", "astronaut", "rocket", "motorcycle_left"], "nopool_epochs": 3,
             "interactive": None},
}  # fmt: skip
LAB06: dict[str, Any] = {
    "smoke": {"dataset": "shapes", "n_show": 3, "photo_size": 128, "photos": ["chelsea", "coffee"],
              "inversion_layers": ["features.pool1", "features.pool2", "features.pool3"],
              "inversion_images": 128, "inversion_epochs": 2, "n_occlusion": 16, "occlusion_window": 0.17,
              "interactive": None},
    "full": {"dataset": "shapes", "n_show": 5, "photo_size": 192,
             "photos": ["chelsea", "coffee", "astronaut", "rocket"],
             "inversion_layers": ["features.relu1_2", "features.pool1", "features.pool2", "features.pool3"],
             "inversion_images": 640, "inversion_epochs": 6, "n_occlusion": 64, "occlusion_window": 0.17,
             "interactive": None},
}  # fmt: skip
LAB07: dict[str, Any] = {
    "smoke": {"dataset": "shapes", "n_images": 40, "n_show": 4, "batch_size": 64,
              "photos": ["chelsea", "coffee"], "photo_size": 160, "interactive": None,
              "layer": "features.relu3_2", "n_sanity": 6, "n_deletion": 16, "deletion_steps": 6,
              "occlusion_window": 0.25, "deletion_photos": ["chelsea"], "deletion_photo_size": 128},
    "full": {"dataset": "shapes", "n_images": 750, "n_show": 6, "batch_size": 125,
             "photos": ["chelsea", "coffee", "astronaut", "rocket", "motorcycle_left"], "photo_size": 224,
             "interactive": None, "layer": "features.relu3_2", "n_sanity": 24, "n_deletion": 40,
             "deletion_steps": 12, "occlusion_window": 0.25,
             "deletion_photos": ["chelsea", "coffee", "astronaut", "rocket"], "deletion_photo_size": 160},
}  # fmt: skip
# Lab 08's ImageNet classes under full, fixed before the comparison was run (the lab's settings were
# chosen on ten other classes): animals, plants, food, objects and a scene, no two of one family.
IMAGENET_CLASSES = ["goldfish", "flamingo", "monarch", "pineapple", "tree frog", "bald eagle", "peacock",
                    "jellyfish", "starfish", "king penguin", "zebra", "ladybug", "strawberry", "lemon",
                    "broccoli", "volcano", "daisy", "espresso", "pizza", "school bus"]  # fmt: skip
# Smoke's ensemble is two networks (one quick training fewer), full's three.
LAB08: dict[str, Any] = {
    "smoke": {"dataset": "shapes", "steps": 30, "lr": 0.1, "objective": "log_softmax", "second_seed": 1,
              "images_per_class": 1, "ensemble_seeds": [2], "imagenet_classes": ["goldfish", "flamingo"],
              "imagenet_steps": 20, "imagenet_size": 96, "imagenet_shown": 2, "n_fooling": 8,
              "fooling_max_steps": 100},
    "full": {"dataset": "shapes", "steps": 120, "lr": 0.1, "objective": "log_softmax", "second_seed": 1,
             "images_per_class": 3, "ensemble_seeds": [2, 3],
             "imagenet_classes": IMAGENET_CLASSES, "imagenet_steps": 128, "imagenet_size": 128,
             "imagenet_shown": 5, "n_fooling": 40, "fooling_max_steps": 200},
}  # fmt: skip

LABS: dict[str, dict[str, Any]] = {
    "01_data_prep": LAB01, "02_naive_cnn": LAB02, "03_residual_inception": LAB03,
    "04_transfer_learning": LAB04,
    "05_filters_feature_maps": LAB05, "06_deconvnet": LAB06, "07_gradcam": LAB07,
    "08_class_model_synthesis": LAB08,
}  # fmt: skip


def _overrides(table: Mapping[str, Any], profile: str, values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    key = dataset_key(values.get("dataset")) or "default"
    return key, table.get("datasets", {}).get(key, {}).get(profile) or {}


def resolve(table: Mapping[str, Any], profile: str, dataset: str | None = None) -> dict[str, Any]:
    """A lab's values for `profile` (with COMMON), with the recipe of `dataset` (None: the profile's own
    dataset) laid over them; a dataset's recipe only changes values the profile has."""
    if profile not in PROFILES:
        raise LabError(f"profile={profile!r} is not a profile; use one of {PROFILES}.")
    values = {**COMMON, **table.get(profile, {})}
    if dataset is not None and "dataset" in values:
        values["dataset"] = dataset
    _, overrides = _overrides(table, profile, values)
    values.update({k: v for k, v in overrides.items() if k in values})
    return values


def recipe_name(table: Mapping[str, Any], profile: str, dataset: str | None = None) -> str:
    """Which recipe `resolve` applies: "cifar10/full", or "default/full" for the profile's own."""
    key, overrides = _overrides(table, profile, resolve(table, profile, dataset))
    return f"{key if overrides else 'default'}/{profile}"


def defaults(notebook: str, profile: str, dataset: str | None = None) -> dict[str, Any]:
    """Lab `notebook`'s parameter values for `profile` and `dataset`, e.g. `defaults("02_naive_cnn",
    "full", "cifar10")["lr"]`; every parameter of the lab is a key (`profile` aside)."""
    if notebook not in LABS:
        raise LabError(f"no lab {notebook!r}; the labs are {sorted(LABS)}.")
    return resolve(LABS[notebook], profile, dataset)


def quick_epochs(profile: str, dataset: str) -> int:
    """Epochs of the quick stand-in for lab 02's network (see `labkit.zoo.naive_cnn`)."""
    return QUICK_EPOCHS.get(dataset_key(dataset) or "shapes", QUICK_EPOCHS["other"])[profile]


def naive_training(params: dict[str, Any]) -> dict[str, Any]:
    """How lab 02 trains its network, from the lab's resolved parameters: what `labkit.zoo.fit_recipe`
    takes (Adam or SGD, a one-cycle schedule, label smoothing, early stopping, mirrored test views,
    bfloat16 autocast as `amp` says: None where the hardware computes it natively)."""
    keys = "epochs batch_size augment optimizer lr weight_decay label_smoothing patience tta".split()
    return {**{k: params[k] for k in keys}, "momentum": 0.9, "norm_lr_scale": 1.0, "scheduler": "onecycle",
            "lookahead": False, "amp": params.get("amp", False)}  # fmt: skip


def resnet_training(params: dict[str, Any]) -> dict[str, Any]:
    """How lab 03 trains its residual network (section 4), from the lab's resolved parameters:
    SGD with Nesterov momentum and the `resnet_*` values (label smoothing, test-time views, the
    whitening stem's bias epochs), and bfloat16 autocast as `amp` says (None: where it is native)."""
    tta = {"none": False, "mirror": "mirror", "mirror_translate": "mirror_translate"}
    return {"epochs": params["resnet_epochs"], "batch_size": params["resnet_batch_size"],
            "augment": params["augment"], "optimizer": "nesterov", "lr": params["resnet_lr"],
            "weight_decay": params["resnet_weight_decay"],
            "label_smoothing": params.get("resnet_label_smoothing", 0.2), "patience": None,
            "tta": tta[params.get("resnet_tta", "mirror")], "momentum": params["resnet_momentum"],
            "norm_lr_scale": params["resnet_norm_lr_scale"], "scheduler": params["resnet_scheduler"],
            "lookahead": params["resnet_lookahead"],
            "whiten_bias_epochs": params.get("resnet_whiten_bias_epochs"),
            "amp": params.get("amp")}  # fmt: skip
