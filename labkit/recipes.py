"""The training labs' defaults, per profile and per dataset: their recipes.

Introduced in notebooks/02_naive_cnn.ipynb. A notebook calls
`labkit.setup("02_naive_cnn", profile, defaults=recipes.LAB02, ...)`: the profile's values apply
to the embedded `shapes` data, and a real dataset's entry under "datasets" replaces them, so
`dataset="cifar10"` trains with a recipe made for CIFAR-10 (32 px, wider stages, SGD with Nesterov
momentum, label smoothing, mirrored test views) rather than one made for 64-px shapes. `labkit.zoo`
and the script entry use the same tables, so a network trained outside a notebook matches lab 02's.

Every recipe states what it was measured to give and how; all figures are on 2 CPU cores (torch
2.14, one run, seed 0) unless a line says otherwise. CIFAR-10 figures are on 5,000 training images
held out as a test set (500 per class, never used for tuning), training on the other 45,000 minus
10 % for validation: the lab trains on 5,000 more images when given the official split.
"""

from __future__ import annotations

from typing import Any

from labkit.core import LabError, dataset_key
from labkit.lab import resolve_defaults

# ----------------------------------------------------------------------------- lab 02
# shapes (the embedded default): the recipe the series was built on. full: test accuracy 0.96-0.98
# in about 3 minutes; smoke: >= 0.90 in seconds (tests/test_lab02_naive_cnn.py).
_LAB02_SHAPES = {
    "smoke": {"dataset": "shapes", "image_size": 48, "n_per_class": 300, "channels": [16, 32, 64], "hidden": 128,
              "dropout": 0.2, "epochs": 10, "batch_size": 32, "optimizer": "adam", "lr": 3e-3, "weight_decay": 1e-4,
              "label_smoothing": 0.0, "augment": "none", "tta": False, "patience": 4, "overfit_steps": 40},
    "full": {"dataset": "shapes", "image_size": 64, "n_per_class": 400, "channels": [16, 32, 64], "hidden": 128,
             "dropout": 0.2, "epochs": 14, "batch_size": 32, "optimizer": "adam", "lr": 3e-3, "weight_decay": 1e-4,
             "label_smoothing": 0.0, "augment": "light", "tta": False, "patience": 5, "overfit_steps": 120},
}  # fmt: skip

# CIFAR-10: see notebooks/02_naive_cnn.ipynb, section "Recipes for real data", for what each part bought.
# Measured (8 epochs, 5,000 held-out images, mirrored test views): this recipe 0.833; with shift
# augmentation 0.823 (at eight epochs the network underfits, so augmentation costs more than it
# gives); with shift and Adam (lr 3e-3) 0.806; with shift and no label smoothing 0.827; without
# mirrored test views 0.818. Wider (32, 64, 128) for 6 epochs: 0.825 but 1.3x the time; one conv
# per stage (32, 64, 128) for 12 epochs: 0.774.
_LAB02_CIFAR10 = {
    "full": {"image_size": 32, "channels": [24, 48, 96], "hidden": 0, "dropout": 0.0, "epochs": 8,
             "batch_size": 256, "optimizer": "nesterov", "lr": 0.2, "weight_decay": 5e-4, "label_smoothing": 0.2,
             "augment": "none", "tta": True, "patience": None, "overfit_steps": 120},
    "smoke": {"image_size": 32, "channels": [24, 48, 96], "hidden": 0, "dropout": 0.0, "epochs": 1,
              "batch_size": 256, "optimizer": "nesterov", "lr": 0.2, "weight_decay": 5e-4, "label_smoothing": 0.2,
              "augment": "none", "tta": True, "patience": None, "overfit_steps": 40},
}  # fmt: skip

# Photographs (cats vs dogs, any folder): 96-px inputs, random resized crops and flips.
_LAB02_PHOTOS = {
    "full": {"image_size": 96, "channels": [32, 64, 128], "hidden": 0, "dropout": 0.2, "epochs": 20,
             "batch_size": 64, "optimizer": "nesterov", "lr": 0.05, "weight_decay": 5e-4, "label_smoothing": 0.1,
             "augment": "light", "tta": True, "patience": 6, "overfit_steps": 120},
    "smoke": {"image_size": 64, "channels": [16, 32, 64], "hidden": 0, "dropout": 0.2, "epochs": 1,
              "batch_size": 64, "optimizer": "nesterov", "lr": 0.05, "weight_decay": 5e-4, "label_smoothing": 0.1,
              "augment": "light", "tta": True, "patience": None, "overfit_steps": 40},
}  # fmt: skip

LAB02: dict[str, Any] = {
    **_LAB02_SHAPES,
    "datasets": {"cifar10": _LAB02_CIFAR10, "cats_vs_dogs": _LAB02_PHOTOS, "folder": _LAB02_PHOTOS,
                 "imagenette": _LAB02_PHOTOS, "caltech101": _LAB02_PHOTOS},
}  # fmt: skip

# Epochs of the quick lab-02 network that labs 05-08 train when lab 02's checkpoint is missing.
QUICK_EPOCHS = {"shapes": {"smoke": 4, "full": 10}, "cifar10": {"smoke": 1, "full": 3}, "other": {"smoke": 1, "full": 5}}

# The network settings of lab 02 (the rest of a recipe is how to train it).
LAB02_NETWORK = ("channels", "hidden", "dropout")


def resolve(defaults: dict[str, Any], profile: str, dataset: str | None = None) -> dict[str, Any]:
    """The values a recipe table gives for `profile` and `dataset` (None: the profile's own dataset)."""
    values, _ = resolve_defaults(defaults, profile, dataset)
    if dataset is not None:
        values["dataset"] = dataset
    return values


def lab02(profile: str, dataset: str | None = None) -> dict[str, Any]:
    """Lab 02's recipe for `profile` and `dataset`, as the notebook resolves it."""
    return resolve(LAB02, profile, dataset)


def quick_epochs(profile: str, dataset: str) -> int:
    """Epochs of the quick stand-in for lab 02's network (see `labkit.zoo.naive_cnn`)."""
    key = dataset_key(dataset)
    return QUICK_EPOCHS.get(key, QUICK_EPOCHS["other"])[profile]


# ----------------------------------------------------------------------------- lab 03
# The variants share one short budget (`epochs` of Adam + one-cycle, no augmentation); then the lab's
# residual network trains with its full recipe (`resnet_*`): on shapes and photographs Page's ResNet-9
# (labkit.models.ResNet9; SGD + Nesterov, one-cycle), on CIFAR-10 airbench's network with residual
# groups (labkit.models.AirbenchResNet) and airbench's recipe (Jordan 2024): batch 1024, Nesterov
# momentum 0.85, batch-norm shifts trained 64x faster, a linear warm-up and decay, Lookahead. Both
# with label smoothing 0.2, augmentation, mirrored test views, and the short last batch dropped.
_RESNET9 = {"resnet_arch": "resnet9", "resnet_momentum": 0.9, "resnet_weight_decay": 5e-4,
            "resnet_norm_lr_scale": 1.0, "resnet_scheduler": "onecycle", "resnet_lookahead": False}  # fmt: skip
_LAB03_SHAPES = {
    "smoke": {"dataset": "shapes", "image_size": 32, "n_per_class": 60, "val_fraction": 0.1, "epochs": 1,
              "batch_size": 64, "lr": 3e-3, "depth": 8, **_RESNET9, "resnet_channels": [16, 32, 64, 128],
              "resnet_epochs": 2, "resnet_batch_size": 64, "resnet_lr": 0.1, "augment": "light"},
    "full": {"dataset": "shapes", "image_size": 48, "n_per_class": 500, "val_fraction": 0.1, "epochs": 8,
             "batch_size": 64, "lr": 3e-3, "depth": 20, **_RESNET9, "resnet_channels": [16, 32, 64, 128],
             "resnet_epochs": 12, "resnet_batch_size": 128, "resnet_lr": 0.1, "augment": "light"},
}  # fmt: skip
# CIFAR-10: 2 % of the training images for validation (1,000 of the official 50,000: enough for the
# curves, and the residual network trains on the rest). 10 epochs on 2 cores; see the notebook's
# section 4 for what it reached.
_AIRBENCH = {"resnet_arch": "airbench", "resnet_batch_size": 1024, "resnet_lr": 1.5, "resnet_momentum": 0.85,
             "resnet_weight_decay": 0.0013, "resnet_norm_lr_scale": 64.0, "resnet_scheduler": "linear",
             "resnet_lookahead": True}  # fmt: skip
_LAB03_CIFAR10 = {
    "full": {"image_size": 32, "val_fraction": 0.02, "epochs": 2, "batch_size": 256, "lr": 3e-3, **_AIRBENCH,
             "resnet_channels": [64, 256, 256], "resnet_epochs": 10, "augment": "small_shift"},
    "smoke": {"image_size": 32, "val_fraction": 0.02, "epochs": 1, "batch_size": 256, "lr": 3e-3, **_AIRBENCH,
              "resnet_channels": [16, 32, 32], "resnet_epochs": 1, "augment": "small_shift"},
}  # fmt: skip
_LAB03_PHOTOS = {
    "full": {"image_size": 96, "epochs": 4, "batch_size": 64, "lr": 3e-3, **_RESNET9,
             "resnet_channels": [32, 64, 128, 256], "resnet_epochs": 20, "resnet_batch_size": 64, "resnet_lr": 0.1,
             "augment": "light"},
    "smoke": {"image_size": 64, "epochs": 1, "batch_size": 64, "lr": 3e-3, **_RESNET9,
              "resnet_channels": [16, 32, 64, 128], "resnet_epochs": 1, "resnet_batch_size": 64, "resnet_lr": 0.1,
              "augment": "light"},
}  # fmt: skip

LAB03: dict[str, Any] = {
    **_LAB03_SHAPES,
    "datasets": {"cifar10": _LAB03_CIFAR10, "cats_vs_dogs": _LAB03_PHOTOS, "folder": _LAB03_PHOTOS,
                 "imagenette": _LAB03_PHOTOS, "caltech101": _LAB03_PHOTOS},
}  # fmt: skip
RESNET_ARCHS = ("resnet9", "airbench")
WHITENING_IMAGES = 5000


def residual_network(arch: str, splits, channels):
    """Lab 03's residual network of recipe `arch` for `splits`, ready to train.

    "resnet9": Page's ResNet-9 (`channels`: stem and three stages). "airbench": airbench's network
    with residual groups (`channels`: three groups), its patch-whitening stem fitted to 5,000
    training images (a fixed random sample) as the network sees them before augmentation.
    """
    import torch

    from labkit.models import AirbenchResNet, ResNet9

    if arch == "resnet9":
        return ResNet9(splits.num_classes, channels=channels)
    if arch != "airbench":
        raise LabError(f"resnet_arch={arch!r}: expected one of {RESNET_ARCHS}.")
    model = AirbenchResNet(splits.num_classes, widths=channels)
    # A fixed random sample: a folder's training images come class by class.
    pick = torch.randperm(len(splits.train), generator=torch.Generator().manual_seed(0))[:WHITENING_IMAGES]
    if splits.in_memory():
        images = splits.normalize(splits.images("train")[pick].float() / 255)
    else:
        images = torch.stack([splits.train_eval[int(i)][0] for i in pick])
    model.stem.fit(images)
    return model


# ----------------------------------------------------------------------------- lab 04
# shapes: the offline default. Photographs (cats vs dogs, a folder): EfficientNet-Lite0 at 224 px,
# the resolution it was trained at (160 px: 0.972-0.982 on held-out cats vs dogs, 224 px: 0.984-0.990);
# the head trains on cached features of every training image and of its mirror image (Adam, lr 1e-3,
# weight decay 1e-3: 0.990 on 500 held-out images), and test images are classified together with
# their mirror images (tta).
_LAB04_SHAPES = {
    "smoke": {"dataset": "shapes", "backbone": "efficientnet_lite0", "image_size": 64, "n_per_class": 10,
              "batch_size": 32, "head_epochs": 3, "finetune_epochs": 1, "unfreeze_stages": 2, "lr": 3e-3,
              "weight_decay": 1e-4, "finetune_lr": 1e-3, "lr_decay": 0.5, "augment": "light", "tta": False,
              "mirror_features": True, "train_batchnorm": True},
    "full": {"dataset": "shapes", "backbone": "efficientnet_lite0", "image_size": 96, "n_per_class": 100,
             "batch_size": 32, "head_epochs": 30, "finetune_epochs": 3, "unfreeze_stages": 3, "lr": 3e-3,
             "weight_decay": 1e-4, "finetune_lr": 1e-3, "lr_decay": 0.5, "augment": "light", "tta": False,
             "mirror_features": True, "train_batchnorm": True},
}  # fmt: skip
_LAB04_PHOTOS = {
    "full": {"image_size": 224, "batch_size": 32, "head_epochs": 30, "finetune_epochs": 2, "unfreeze_stages": 2,
             "lr": 1e-3, "weight_decay": 1e-3, "finetune_lr": 3e-4, "lr_decay": 0.5, "augment": "light",
             "tta": True},
    "smoke": {"image_size": 96, "batch_size": 32, "head_epochs": 3, "finetune_epochs": 1, "unfreeze_stages": 1,
              "lr": 3e-3, "weight_decay": 1e-4, "finetune_lr": 3e-4, "lr_decay": 0.5, "augment": "light",
              "tta": True},
}  # fmt: skip
# Cats vs dogs: EfficientNet-Lite2 at the 260 px it was trained at, its batch-norm layers left as ImageNet
# trained them while fine-tuning, one pass of features (no mirror images: the head's 60 s). Chosen by
# 3-fold cross-validation on 1,500 training images (never the test split), accuracy on 1,500 images:
# Lite0 at 224 px frozen 0.982, fine-tuned 0.985; Lite2 at 224 px 0.983 / 0.984; Lite2 at 260 px frozen
# 0.987, fine-tuned 0.985 with its batch-norm layers training, 0.989 with them left frozen (heads trained
# with mirror images); this recipe, without them, 0.985 / 0.988. On the 500 held-out images
# (`make bench cats`): 0.996 frozen, 0.994 fine-tuned, head and features 42.7-43.9 s.
_LAB04_CATS = {
    "full": {**_LAB04_PHOTOS["full"], "backbone": "efficientnet_lite2", "image_size": 260, "mirror_features": False,
             "train_batchnorm": False},
    "smoke": _LAB04_PHOTOS["smoke"],
}  # fmt: skip

LAB04: dict[str, Any] = {
    **_LAB04_SHAPES,
    "datasets": {"cats_vs_dogs": _LAB04_CATS, "folder": _LAB04_PHOTOS, "imagenette": _LAB04_PHOTOS,
                 "caltech101": _LAB04_PHOTOS, "cifar10": {p: {**v, "image_size": 96} for p, v in _LAB04_PHOTOS.items()}},
}  # fmt: skip
