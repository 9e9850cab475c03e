"""Datasets, splits, transforms and loaders for the labs (see labkit/data/registry.py).

Introduced in notebooks/01_data_prep.ipynb.
"""

from labkit.data.loaders import Loaders, class_weights, make_loaders
from labkit.data.photos import PHOTOS, photos
from labkit.data.registry import KNOWN_DATASETS, default_cache, load_dataset, resolve_root
from labkit.data.shapes import SHAPE_CLASSES, ShapesData, make_shapes
from labkit.data.splits import Splits, channel_stats, stratified_split
from labkit.data.transforms import AUGMENTATIONS, PRESETS, eval_transform, train_transform
from labkit.data.verify import VerifyReport, load_rgb, verify_images
from labkit.util import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["AUGMENTATIONS", "IMAGENET_MEAN", "IMAGENET_STD", "KNOWN_DATASETS", "PHOTOS", "PRESETS"]
__all__ += ["SHAPE_CLASSES", "Loaders", "ShapesData", "Splits", "VerifyReport", "channel_stats"]
__all__ += ["class_weights", "default_cache", "eval_transform", "load_dataset", "load_rgb", "make_loaders"]
__all__ += ["make_shapes", "photos", "resolve_root", "stratified_split", "train_transform", "verify_images"]
