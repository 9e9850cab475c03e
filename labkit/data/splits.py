"""Train/val/test splits: stratified index splits, image sources and the `Splits` object.

Introduced in notebooks/01_data_prep.ipynb. A `Splits` holds, for each split, a *source* (images in
memory as a uint8 tensor, or image files on disk) and hands out torch Datasets that apply the
train or eval transform. Statistics (mean, std) come from the training split only, so nothing about
the validation or test images leaks into training.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from labkit.core import LabError
from labkit.data.transforms import augment_names, eval_transform, raw_transform, train_transform
from labkit.data.verify import load_rgb

SPLIT_NAMES = ("train", "val", "test", "train_eval")


def stratified_split(targets: Sequence[int] | np.ndarray, fractions: Sequence[float], seed: int = 0) -> list[np.ndarray]:
    """Split sample indices into parts with the given fractions, class by class.

    Every class is shuffled with the seed and cut into the fractions (rounded), so each part has
    (almost exactly) the class proportions of the whole. A class with at least as many samples as
    parts gets at least one sample in every part.

    Args:
        targets: class index of every sample, shape (N,).
        fractions: one fraction per part, summing to 1, e.g. (0.7, 0.15, 0.15).
        seed: seed of the shuffle.

    Returns:
        one sorted int64 index array per part.

    Raises:
        LabError: fractions that are negative or do not sum to 1.
    """
    fractions = [float(f) for f in fractions]
    if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise LabError(f"split fractions {fractions} must be non-negative and sum to 1, e.g. (0.7, 0.15, 0.15).")
    targets = np.asarray(targets)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for c in np.unique(targets):
        idx = np.flatnonzero(targets == c)
        idx = idx[rng.permutation(len(idx))]
        n = len(idx)
        # Sizes of all parts but the first (train); the first takes the rest.
        sizes = [int(round(n * f)) for f in fractions[1:]]
        if n >= len(fractions):
            sizes = [max(1, s) if f > 0 else 0 for s, f in zip(sizes, fractions[1:])]
        while sum(sizes) > n - (1 if fractions[0] > 0 and n > 0 else 0) and any(sizes):
            sizes[int(np.argmax(sizes))] -= 1
        cuts = np.cumsum([n - sum(sizes), *sizes])[:-1]
        for part, chunk in zip(parts, np.split(idx, cuts)):
            part.append(chunk)
    return [np.sort(np.concatenate(p)).astype(np.int64) if p else np.zeros(0, np.int64) for p in parts]


class TensorSource:
    """Images held in memory: uint8 tensor (N, 3, H, W) and targets (N,)."""

    def __init__(self, images: torch.Tensor, targets: np.ndarray):
        self.images = images
        self.targets = np.asarray(targets, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.targets)

    def load(self, index: int) -> torch.Tensor:
        return self.images[index]

    def subset(self, indices: np.ndarray) -> TensorSource:
        return TensorSource(self.images[torch.as_tensor(indices, dtype=torch.long)], self.targets[indices])


class FileSource:
    """Images as files on disk, decoded (and converted to RGB) when a sample is asked for."""

    def __init__(self, paths: Sequence[str | Path], targets: np.ndarray):
        self.paths = [str(p) for p in paths]
        self.targets = np.asarray(targets, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.targets)

    def load(self, index: int):
        return load_rgb(self.paths[index])

    def subset(self, indices: np.ndarray) -> FileSource:
        return FileSource([self.paths[i] for i in indices], self.targets[indices])


class SplitDataset(Dataset):
    """A torch Dataset over one source: yields (transform(image), int target).

    `shortcut=(S, mean, std)` marks `transform` as the deterministic eval transform: a uint8 tensor
    already S x S then only needs scaling and normalising, done here with the same arithmetic as
    v2's ToDtype + Normalize (identical values, several times faster than the v2 pipeline).
    """

    def __init__(self, source: TensorSource | FileSource, transform, classes: list[str], shortcut=None):
        self.source = source
        self.transform = transform
        self.classes = classes
        self.targets = source.targets
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
                x = image.to(torch.float32).mul_(1.0 / 255).sub_(mean).div_(std)
                return x, int(self.targets[index])
        return self.transform(image), int(self.targets[index])


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and standard deviation of uint8 images (N, 3, H, W), on the [0, 1] scale."""
    x = images.to(torch.float64) / 255.0
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std)


class Splits:
    """Train/val/test splits of one dataset with their transforms.

    Attributes:
        name, classes, num_classes, image_size: what the data is.
        mean, std: per-channel statistics used to normalise (tuples of 3 floats).
        augment: the train augmentation (preset name or list).
        train: training Dataset with augmentation; train_eval: the same images, eval transform;
        val, test: eval transform. Each yields (float tensor (3, S, S), int target).
        info: where the data came from (paths, notes).
    """

    def __init__(
        self,
        name: str,
        classes: Sequence[str],
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        sources: dict[str, TensorSource | FileSource],
        augment="none",
        masks: dict[str, torch.Tensor] | None = None,
        info: dict | None = None,
    ):
        self.name = name
        self.classes = list(classes)
        self.num_classes = len(self.classes)
        self.image_size = int(image_size)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.augment = augment
        self.info = dict(info or {})
        self._sources = {"train": sources["train"], "val": sources["val"], "test": sources["test"]}
        self._sources["train_eval"] = self._sources["train"]
        self._masks = masks
        eval_t = eval_transform(self.image_size, self.mean, self.std)
        self._raw_t = raw_transform(self.image_size)
        fast = (self.image_size, self.mean, self.std)
        no_augment = not augment_names(augment)
        self.train = SplitDataset(
            self._sources["train"], train_transform(self.image_size, self.mean, self.std, augment), self.classes,
            shortcut=fast if no_augment else None,
        )  # fmt: skip
        self.train_eval = SplitDataset(self._sources["train"], eval_t, self.classes, shortcut=fast)
        self.val = SplitDataset(self._sources["val"], eval_t, self.classes, shortcut=fast)
        self.test = SplitDataset(self._sources["test"], eval_t, self.classes, shortcut=fast)

    def _source(self, split: str):
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
        """All images of an in-memory `split` as uint8 (N, 3, S, S), resized and cropped as for eval.

        Raises:
            LabError: the split is read from files (see `in_memory`).
        """
        source = self._source(split)
        if not isinstance(source, TensorSource):
            raise LabError(f"the {split} split is read from files, not held in memory; iterate splits.{split} instead.")
        images = source.images
        if images.shape[-2:] != (self.image_size, self.image_size):
            images = self._raw_t(images)  # v2 resizes and crops a whole batch at once
        return images

    def masks(self, split: str) -> torch.Tensor | None:
        """Object masks bool (N, S, S) aligned with `split`'s order (shapes only; None for photos)."""
        self._source(split)
        if self._masks is None:
            return None
        return self._masks["train" if split == "train_eval" else split]

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (3, 1, 1) if x.dim() == 3 else (1, 3, 1, 1)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape)
        return mean, std

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Float images in [0, 1], (3, H, W) or (N, 3, H, W) -> normalised as the model sees them."""
        x = x.float() if not x.is_floating_point() else x
        mean, std = self._stats(x)
        return (x - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images (3, H, W) or (N, 3, H, W) -> float in [0, 1] (clamped), for display."""
        mean, std = self._stats(x)
        return (x * std + mean).clamp(0, 1)

    def with_augment(self, augment) -> Splits:
        """The same data and statistics with another train augmentation."""
        return Splits(
            self.name, self.classes, self.image_size, self.mean, self.std,
            {k: self._sources[k] for k in ("train", "val", "test")},
            augment=augment, masks=self._masks, info=self.info,
        )  # fmt: skip

    def sizes(self) -> dict[str, int]:
        """Number of samples per split."""
        return {k: len(self._sources[k]) for k in ("train", "val", "test")}

    def __repr__(self) -> str:
        s = self.sizes()
        return (
            f"Splits({self.name!r}, {self.num_classes} classes, {self.image_size}px, "
            f"train={s['train']}, val={s['val']}, test={s['test']}, augment={self.augment!r})"
        )
