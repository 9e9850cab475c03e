"""Train/val/test splits: stratified index splits, image sources and the `Splits` object.

Introduced in notebooks/01_data_prep.ipynb. A `Splits` holds a source per split (a uint8 tensor in
memory, or image files) and hands out Datasets with the train or eval transform; mean and std come
from the training split only, so nothing of the validation or test images leaks into training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset

from labkit.core import LabError
from labkit.data.transforms import augment_names, eval_transform, raw_transform, train_transform
from labkit.data.verify import load_rgb

SPLIT_NAMES = ("train", "val", "test", "train_eval")


def stratified_split(
    targets: Sequence[int] | np.ndarray, fractions: Sequence[float], seed: int = 0
) -> list[np.ndarray]:
    """Split sample indices into parts with the given fractions, each with the class proportions of the whole.

    Introduced in notebooks/01_data_prep.ipynb (exercise 1 writes the class-by-class version). Parts
    are cut off with scikit-learn's `train_test_split(stratify=...)`, last first, each with at least
    one image per class. `targets`: (N,). Returns one sorted int64 index array per part.
    """
    fractions = [float(f) for f in fractions]
    if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise LabError(
            f"split fractions {fractions} must be non-negative and sum to 1, e.g. (0.7, 0.15, 0.15)."
        )
    targets = np.asarray(targets)
    n, k = len(targets), len(np.unique(targets))
    sizes = np.diff(np.round(np.cumsum([0.0, *fractions]) * n).astype(int))
    sizes[1:] = np.where(np.asarray(fractions[1:]) > 0, np.maximum(sizes[1:], k), 0)
    fix = "use more images per class, or fewer or larger parts"
    if n - sizes[1:].sum() < (k if fractions[0] > 0 else 0):
        raise LabError(
            f"{n} images of {k} classes are too few to split {fractions} with each class in each part; {fix}."
        )
    rest, parts = np.arange(n), list[np.ndarray]()
    for size in sizes[:0:-1]:
        part = rest[:0]
        if size:
            try:
                rest, part = train_test_split(
                    rest, test_size=int(size), stratify=targets[rest], random_state=seed
                )
            except ValueError as err:  # e.g. a class with a single image
                raise LabError(f"cannot split these {n} images stratified: {err} ({fix}).") from err
        parts.insert(0, part)
    return [np.sort(p).astype(np.int64) for p in (rest, *parts)]


class TensorSource:
    """Images held in memory: uint8 tensor (N, 3, H, W) and targets (N,)."""

    def __init__(self, images: torch.Tensor, targets: np.ndarray):
        self.images, self.targets = images, np.asarray(targets, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.targets)

    def load(self, index: int) -> torch.Tensor:
        return self.images[index]

    def subset(self, indices: np.ndarray) -> TensorSource:
        return TensorSource(self.images[torch.as_tensor(indices, dtype=torch.long)], self.targets[indices])


class FileSource:
    """Images as files on disk, decoded to RGB when a sample is asked for."""

    def __init__(self, paths: Sequence[str | Path], targets: np.ndarray):
        self.paths, self.targets = [str(p) for p in paths], np.asarray(targets, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.targets)

    def load(self, index: int) -> Image.Image:
        return load_rgb(self.paths[index])

    def subset(self, indices: np.ndarray) -> FileSource:
        return FileSource([self.paths[i] for i in indices], self.targets[indices])


class SplitDataset(Dataset):
    """A torch Dataset over one source: yields (transform(image), int target).

    `shortcut=(S, mean, std)` marks `transform` as the eval transform: a uint8 tensor already S x S
    is then only scaled and normalised, with the same arithmetic as v2 but no per-image pipeline.
    """

    def __init__(self, source: TensorSource | FileSource, transform, classes: list[str], shortcut=None):
        self.source, self.transform, self.classes, self.targets = source, transform, classes, source.targets
        self._shortcut = None
        if shortcut is not None:
            size, mean, std = shortcut
            self._shortcut = (size, torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1))

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.source.load(index)
        if self._shortcut is not None and isinstance(image, torch.Tensor) and image.dtype == torch.uint8:
            size, mean, std = self._shortcut
            if image.shape[-2:] == (size, size):
                return image.to(torch.float32).mul_(1.0 / 255).sub_(mean).div_(std), int(self.targets[index])
        return self.transform(image), int(self.targets[index])


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images (N, 3, H, W), on the [0, 1] scale."""
    x = images.to(torch.float64) / 255.0
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std)


class Splits:
    """Train/val/test splits of one dataset with their transforms.

    Introduced in notebooks/01_data_prep.ipynb. `train` is the training Dataset with augmentation,
    `train_eval` the same images with the eval transform, `val` and `test` eval; each yields
    (float (3, S, S), int target). `mean` and `std` normalise; `info` says where the data came from.
    """

    def __init__(
        self,
        name: str,
        classes: Sequence[str],
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        sources: Mapping[str, TensorSource | FileSource],
        augment="none",
        masks: dict[str, torch.Tensor] | None = None,
        info: dict | None = None,
    ):
        self.name, self.classes, self.num_classes = name, list(classes), len(classes)
        self.image_size = int(image_size)
        self.mean, self.std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        self.augment, self.info, self._masks = augment, dict(info or {}), masks
        src = self._sources = {k: sources[k] for k in ("train", "val", "test")}
        src["train_eval"] = src["train"]
        fast = (self.image_size, self.mean, self.std)
        eval_t, self._raw_t = eval_transform(*fast), raw_transform(self.image_size)
        train_t, train_fast = train_transform(*fast, augment), None if augment_names(augment) else fast
        self.train = SplitDataset(src["train"], train_t, self.classes, shortcut=train_fast)
        self.train_eval = SplitDataset(src["train"], eval_t, self.classes, shortcut=fast)
        self.val = SplitDataset(src["val"], eval_t, self.classes, shortcut=fast)
        self.test = SplitDataset(src["test"], eval_t, self.classes, shortcut=fast)

    def _source(self, split: str) -> TensorSource | FileSource:
        if split not in self._sources:
            raise LabError(f"unknown split {split!r}; use one of {list(SPLIT_NAMES)}.")
        return self._sources[split]

    def targets(self, split: str) -> np.ndarray:
        """Class index of every sample of `split`, int64 (N,), in the dataset's order."""
        return self._source(split).targets.copy()

    def class_counts(self, split: str) -> dict[str, int]:
        """Number of samples per class name in `split` (every class listed, zeros included)."""
        counts = np.bincount(self._source(split).targets, minlength=self.num_classes)
        return {c: int(n) for c, n in zip(self.classes, counts)}

    def raw(self, split: str, index: int) -> torch.Tensor:
        """Sample `index` of `split` as uint8 (3, S, S): resized and cropped as for eval, not normalised."""
        return self._raw_t(self._source(split).load(index))

    def in_memory(self) -> bool:
        """True when every split's images are held in memory (not read from files per sample)."""
        return all(isinstance(self._sources[k], TensorSource) for k in ("train", "val", "test"))

    def images(self, split: str) -> torch.Tensor:
        """All images of an in-memory `split` as uint8 (N, 3, S, S), resized and cropped as for eval."""
        source = self._source(split)
        if not isinstance(source, TensorSource):
            raise LabError(
                f"the {split} split is read from files, not held in memory; iterate splits.{split} instead."
            )
        images = source.images  # else v2 resizes and crops the whole batch at once
        return images if images.shape[-2:] == (self.image_size, self.image_size) else self._raw_t(images)

    def masks(self, split: str) -> torch.Tensor | None:
        """Object masks bool (N, S, S) aligned with `split`'s order (shapes only; None for photos)."""
        self._source(split)
        return None if self._masks is None else self._masks["train" if split == "train_eval" else split]

    def _stats(self, x: torch.Tensor) -> list[torch.Tensor]:
        """mean and std shaped (3, 1, 1), which broadcasts over (3, H, W) and (N, 3, H, W)."""
        return [torch.tensor(v, dtype=x.dtype, device=x.device).view(3, 1, 1) for v in (self.mean, self.std)]

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Float images in [0, 1], (3, H, W) or (N, 3, H, W) -> normalised as the model sees them."""
        x = x if x.is_floating_point() else x.float()
        mean, std = self._stats(x)
        return (x - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images (3, H, W) or (N, 3, H, W) -> float in [0, 1] (clamped), for display."""
        mean, std = self._stats(x)
        return (x * std + mean).clamp(0, 1)

    def with_augment(self, augment) -> Splits:
        """The same data and statistics with another train augmentation."""
        stats = self.image_size, self.mean, self.std
        return Splits(self.name, self.classes, *stats, self._sources, augment, self._masks, self.info)

    def sizes(self) -> dict[str, int]:
        """Number of samples per split."""
        return {k: len(self._sources[k]) for k in ("train", "val", "test")}

    def __repr__(self) -> str:
        s = self.sizes()
        return (
            f"Splits({self.name!r}, {self.num_classes} classes, {self.image_size}px, "
            f"train={s['train']}, val={s['val']}, test={s['test']}, augment={self.augment!r})"
        )
