"""The dataset registry: `load_dataset(name, ...)` for shapes, CIFAR-10, cats vs dogs, Imagenette,
Caltech-101 and any ImageFolder tree (`folder:PATH`).

Introduced in notebooks/01_data_prep.ipynb. Data lives under `resolve_root`, each dataset in the
folders its public archive unpacks to; missing data is downloaded when the network answers, else
the load stops before any work with a message listing the folders looked in and the offline choices.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch
from torchvision.datasets import CIFAR10, Caltech101, Imagenette
from torchvision.datasets.folder import find_classes, make_dataset
from torchvision.datasets.utils import download_and_extract_archive

from labkit.core import DATASET_ALIASES, LabError
from labkit.data import cache, shapes
from labkit.data.cache import default_cache
from labkit.data.shapes import ShapesData, make_shapes
from labkit.data.splits import FileSource, Splits, TensorSource, channel_stats, stratified_split
from labkit.data.transforms import augment_names, raw_transform
from labkit.data.verify import check_image, is_image_file, load_rgb, with_progress
from labkit.util import IMAGENET_MEAN, IMAGENET_STD, network_available

KNOWN_DATASETS = ("shapes", "cifar10", "cats_vs_dogs", "imagenette", "caltech101")
DEFAULT_IMAGE_SIZE = {"shapes": 64, "cifar10": 32}  # every other dataset: 128
HELD_OUT = ("test", "validation", "val")  # a folder beside train/ that is the test split
STATS_SAMPLE = 500  # training images read to estimate a folder dataset's mean and std
PRELOAD_BYTES = 1 << 30  # folder datasets whose decoded images fit in this are kept in memory

# The published CIFAR-10 training-set statistics: no need to read 50,000 images for them.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

# Where each dataset may sit inside the data root, and the layout a person can put there by hand.
LAYOUTS = {
    "cifar10": "cifar-10-batches-py/ (torchvision's pickles) or cifar10/train/<class>/*.jpg [+ test/]",
    "cats_vs_dogs": "cats_and_dogs_filtered/{train,validation}/{cats,dogs}/*.jpg or cats_and_dogs/train/...",
    "imagenette": "imagenette2-160/{train,val}/<wnid>/*.JPEG (also imagenette2-320/, imagenette2/)",
    "caltech101": "caltech101/101_ObjectCategories/<class>/*.jpg",
}
CANDIDATES = {
    "cifar10": ("cifar-10-batches-py", "cifar10/cifar-10-batches-py", "cifar10", ""),
    "cats_vs_dogs": ("cats_and_dogs_filtered", "cats_and_dogs", ""),
    "imagenette": ("imagenette2-160", "imagenette2-320", "imagenette2", "imagenette", ""),
    "caltech101": ("caltech101/101_ObjectCategories", "101_ObjectCategories"),
}
DOWNLOAD_URLS = {
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "cats_vs_dogs": "https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip",
    "imagenette": "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz",
    "caltech101": "https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip",
}


# ----------------------------------------------------------------------------- where data lives
def resolve_root(data_root: str | Path | None = None) -> tuple[Path, str]:
    """The data root and where it came from: the argument, else $LABKIT_DATA, else the user cache."""
    if data_root not in (None, ""):
        return Path(data_root).expanduser(), "the data_root argument"
    env = os.environ.get("LABKIT_DATA")
    if env:
        return Path(env).expanduser(), "the LABKIT_DATA environment variable"
    return default_cache(), "the default cache folder (set data_root= or LABKIT_DATA to change it)"


def _download(name: str, root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    print(f"downloading {name} into {root} ...")
    if name == "cifar10":
        CIFAR10(str(root), train=True, download=True)
    elif name == "imagenette":
        Imagenette(str(root), split="train", size="160px", download=True)
    elif name == "caltech101":
        Caltech101(str(root), download=True)
    else:
        download_and_extract_archive(DOWNLOAD_URLS[name], str(root))


# ----------------------------------------------------------------------------- folder datasets
def scan_image_folder(
    folder: Path, classes: Sequence[str] | None = None, exclude: Sequence[str] = ()
) -> tuple[list[str], list[str], np.ndarray]:
    """List an ImageFolder tree `folder/<class>/**/image` as (classes, paths, targets int64 (N,)), in
    class order; hidden folders and `exclude` are not classes, and a tree with no class, an empty
    class or a class not in `classes` (the training classes, for a held-out tree) is a LabError.
    """
    try:
        found = [c for c in find_classes(folder)[0] if not c.startswith(".") and c not in exclude]
    except FileNotFoundError:  # torchvision's "no class folder"
        found = []
    if not found:
        raise LabError(
            f"{folder} has no class folders; an ImageFolder tree is {folder}/<class name>/<images>, "
            f"one sub-folder per class."
        )
    classes = found if classes is None else list(classes)
    extra = sorted(set(found) - set(classes))
    if extra:
        raise LabError(
            f"{folder} has class folders {extra} that the training folder lacks ({classes}); rename or "
            "remove them."
        )
    index = {c: classes.index(c) for c in found}
    samples = make_dataset(folder, index, is_valid_file=is_image_file, allow_empty=True)
    empty = sorted(set(found) - {classes[t] for _, t in samples})
    if empty:
        raise LabError(
            f"class folder {folder / empty[0]} holds no images (extensions .jpg, .png, ...); put images in "
            f"it or delete the folder."
        )
    return classes, [p for p, _ in samples], np.asarray([t for _, t in samples], dtype=np.int64)


def _decode(path: str, transform) -> tuple[torch.Tensor | None, str | None]:
    """Decode one file to uint8 (3, S, S); (None, reason) when it cannot be decoded."""
    try:
        return transform(load_rgb(path)), None
    except LabError as err:
        cause = err.__cause__
        return None, f"{type(cause).__name__}: {cause}" if cause else str(err)


def _check_files(
    paths: list[str], where: Path, skip_corrupt: bool, decode_size: int | None, use_cache: bool = True
) -> tuple[np.ndarray, torch.Tensor | None, int]:
    """Check every file before anything else; refuse, or skip with a count, the unreadable ones.

    With `decode_size` every image is decoded and kept (a complete check, then fast training), else
    PIL's cheap verify. Returns (indices kept, their images uint8 (K, 3, S, S) or None, number left out).
    """
    images = None
    if decode_size is not None:
        images, bad = _decode_cached(paths, where, decode_size, use_cache)  # the kept files' images
    else:
        checked = with_progress(paths, len(paths), f"checking images in {where.name}")
        bad = [(p, r) for p in checked if (r := check_image(p)) is not None]
    if bad and not skip_corrupt:
        listed = "\n".join(f"  - {p}  ({r})" for p, r in bad[:10])
        more = f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise LabError(
            f"{len(bad)} image file(s) under {where} cannot be read:\n{listed}{more}\n"
            f"Fix: delete these files, or pass skip_corrupt=True to leave them out (a count is printed)."
        )
    if bad:
        print(f"skip_corrupt=True: left out {len(bad)} unreadable image(s) under {where}.")
    bad_set = {p for p, _ in bad}
    keep = [i for i, p in enumerate(paths) if p not in bad_set]
    return np.asarray(keep, dtype=np.int64), images, len(bad)


def _decode_cached(
    paths: list[str], where: Path, size: int, use_cache: bool
) -> tuple[torch.Tensor, list[tuple[str, str]]]:
    """The readable files decoded to uint8 (K, 3, S, S) and (path, reason) for the others, kept in
    the tensor cache under the files' paths, sizes and times."""
    key = {"kind": "folder", "image_size": size, "files": cache.files_fingerprint(paths), "n": len(paths)}
    key["decoder"] = cache.source_fingerprint(raw_transform, load_rgb)  # new decoding code, new cache

    def build():
        transform = raw_transform(size)
        # PIL releases the GIL while decoding, so a few threads overlap file reads and decodes.
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            decoded = pool.map(lambda p: _decode(p, transform), paths)
            results = list(with_progress(decoded, len(paths), f"loading images from {where.name}"))
        good = [img for img, reason in results if reason is None]
        images = torch.stack(good) if good else torch.zeros(0, 3, size, size, dtype=torch.uint8)
        return {"images": images}, {"bad": [[p, r] for p, (_, r) in zip(paths, results) if r is not None]}

    tensors, meta = cache.cached(f"{where.name}-{size}px", key, build, use_cache=use_cache)
    return tensors["images"], [(p, r) for p, r in meta["bad"]]


def _folder_sources(
    folder: Path,
    *,
    seed: int,
    split: Sequence[float],
    val_fraction: float,
    skip_corrupt: bool,
    image_size: int,
    preload: bool | None,
    exclude: Sequence[str] = (),
    cache: bool = True,
) -> tuple[list[str], dict, dict]:
    """Sources for an ImageFolder tree: train/ [+ test/|validation/|val/], or class folders only."""
    has_train = (folder / "train").is_dir()
    held = next((folder / h for h in HELD_OUT if (folder / h).is_dir()), None) if has_train else None
    classes, paths, targets = scan_image_folder(folder / "train" if has_train else folder, exclude=exclude)
    test_paths, test_targets = list[str](), np.zeros(0, np.int64)
    if held is not None:
        _, test_paths, test_targets = scan_image_folder(held, classes=classes, exclude=exclude)

    files = paths + test_paths
    if preload is None:
        preload = len(files) * 3 * image_size**2 <= PRELOAD_BYTES
    # One check over training and held-out files, so a refusal lists the bad files of both.
    keep, images, n_bad = _check_files(files, folder, skip_corrupt, image_size if preload else None, cache)
    kept = np.concatenate([targets, test_targets])[keep]
    whole = FileSource([files[i] for i in keep], kept) if images is None else TensorSource(images, kept)
    train = whole.subset(np.flatnonzero(keep < len(paths)))
    info: dict = {"root": str(folder), "skipped_corrupt": n_bad, "in_memory": bool(preload)}
    if held is not None:
        tr, va = stratified_split(train.targets, (1 - val_fraction, val_fraction), seed)
        test = whole.subset(np.flatnonzero(keep >= len(paths)))
        sources = {"train": train.subset(tr), "val": train.subset(va), "test": test}
        info["layout"] = f"train/ + {held.name}/ (test); val carved from train ({val_fraction:.0%})"
    else:
        parts = stratified_split(train.targets, split, seed)
        sources = {k: train.subset(i) for k, i in zip(("train", "val", "test"), parts)}
        layout = "train/ only" if has_train else "class folders"
        info["layout"] = f"{layout}; stratified split {tuple(split)}"
    return classes, sources, info


# ----------------------------------------------------------------------------- CIFAR-10 pickles
class _LocalCIFAR10(CIFAR10):
    """torchvision's CIFAR-10 reader that checks the files exist instead of hashing 180 MB on every
    load; a damaged file still fails when unpickled (reported by `_cifar_sources`)."""

    def _check_integrity(self) -> bool:
        folder = Path(self.root) / self.base_folder
        names = [f for f, _ in (*self.train_list, *self.test_list)] + [self.meta["filename"]]
        return all((folder / f).is_file() for f in names)

    def _load_meta(self) -> None:
        with open(Path(self.root) / self.base_folder / self.meta["filename"], "rb") as fh:
            data = pickle.load(fh, encoding="latin1")
        self.classes = data[self.meta["key"]]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}


def _cifar_sources(
    batches: Path, seed: int, val_fraction: float
) -> tuple[list[str], dict[str, TensorSource]]:
    try:
        train = _LocalCIFAR10(str(batches.parent), train=True, download=False)
        test = _LocalCIFAR10(str(batches.parent), train=False, download=False)
    except (RuntimeError, OSError, EOFError, KeyError, ValueError, pickle.UnpicklingError) as err:
        raise LabError(
            f"{batches} is incomplete or damaged ({type(err).__name__}: {err}). It needs data_batch_1..5, "
            f"test_batch and batches.meta; delete the folder and download again (download=True), or use "
            f"dataset='shapes'."
        ) from err

    def to_source(ds: CIFAR10) -> TensorSource:
        images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # from (N, 32, 32, 3)
        return TensorSource(images, np.asarray(ds.targets, dtype=np.int64))

    whole = to_source(train)
    tr, va = stratified_split(whole.targets, (1 - val_fraction, val_fraction), seed)
    return list(train.classes), {"train": whole.subset(tr), "val": whole.subset(va), "test": to_source(test)}


# ----------------------------------------------------------------------------- candidates
def _present(name: str, folder: Path) -> bool:
    if name == "cifar10" and folder.name == "cifar-10-batches-py":
        return (folder / "data_batch_1").is_file()
    if name == "caltech101":
        return folder.is_dir() and any(folder.iterdir())
    # A root that is itself a dataset folder counts only when it has the right shape.
    return (folder / "train").is_dir()


def _found(name: str, root: Path) -> Path | None:
    return next((root / f for f in CANDIDATES[name] if _present(name, root / f)), None)


def local_copy(name: str, data_root: str | Path | None = None) -> Path | None:
    """Where a torchvision dataset (cifar10, cats_vs_dogs, ...) already lies under the data root, or
    None when it is not there (nothing is downloaded; shapes and folder:PATH are not looked for)."""
    key = DATASET_ALIASES.get(name.lower(), name.lower())
    if key not in KNOWN_DATASETS or key == "shapes":
        return None
    return _found(key, resolve_root(data_root)[0])


def _locate(name: str, root: Path, origin: str, download: bool | None) -> Path:
    """Where dataset `name` lies under `root`, downloaded first when it is missing and may be; else a
    LabError naming the folders looked in and the offline choices."""
    found, url, cause = _found(name, root), DOWNLOAD_URLS[name], None
    if found is not None:
        return found
    if download is False:
        why = "download=False, so nothing was downloaded."
    elif not network_available(url):
        why = f"No network: {urlparse(url).hostname} did not answer within 3 s, so nothing was downloaded."
    else:
        try:
            _download(name, root)
        except Exception as err:  # any failure of the download is reported with the same choices
            why, cause = f"The download failed: {type(err).__name__}: {err}", err
        else:
            found, why = _found(name, root), "The download finished but the folders are missing."
    if found is not None:
        return found
    folders = "\n".join(f"  - {root / f}" for f in CANDIDATES[name])
    raise LabError(
        f"dataset {name!r} was not found. Data root: {root} (from {origin}). Folders looked in:\n{folders}\n"
        f"{why}\nOffline choices: (1) use dataset='shapes' (built in, nothing to download); "
        f"(2) put the data in one of the folders above, laid out as {LAYOUTS[name]}; "
        f"(3) pass data_root=... or set the LABKIT_DATA environment variable to a folder that holds it; "
        f"(4) use dataset='folder:PATH' for any ImageFolder tree (PATH/<class>/*.jpg or PATH/train/...)."
    ) from cause


# ----------------------------------------------------------------------------- entry point
def _check_args(image_size, split, val_fraction, normalize, augment) -> None:
    if image_size is not None and (type(image_size) is not int or image_size < 8):
        raise LabError(
            f"image_size={image_size!r} must be an int of at least 8 (None: the dataset's default)."
        )
    if len(tuple(split)) != 3:
        raise LabError(f"split={split!r} must be three fractions (train, val, test), e.g. (0.7, 0.15, 0.15).")
    if not 0 < float(val_fraction) < 1:
        raise LabError(f"val_fraction={val_fraction!r} must lie between 0 and 1, e.g. 0.15.")
    ok_norm = normalize in ("dataset", "imagenet", "none", None) or (
        isinstance(normalize, (tuple, list)) and len(normalize) == 2 and all(len(v) == 3 for v in normalize)
    )
    if not ok_norm:
        raise LabError(f"normalize={normalize!r}: use 'dataset', 'imagenet', 'none' or (mean, std).")
    augment_names(augment)


def load_dataset(
    name: str,
    data_root: str | Path | None = None,
    *,
    image_size: int | None = None,
    seed: int = 0,
    split: Sequence[float] = (0.7, 0.15, 0.15),
    val_fraction: float = 0.15,
    n_per_class=None,
    augment="none",
    normalize="dataset",
    download: bool | None = None,
    skip_corrupt: bool = False,
    preload: bool | None = None,
    cache: bool = True,
) -> Splits:
    """Load a dataset as stratified train/val/test splits with transforms.

    Introduced in notebooks/01_data_prep.ipynb.

    Args:
        name: one of KNOWN_DATASETS, or "folder:PATH" for an ImageFolder tree (PATH/<class>/..., or
            PATH/train/<class>/... with an optional PATH/test/, PATH/validation/ or PATH/val/).
        image_size: side S of the square images (None: shapes 64, cifar10 32, others 128).
        split: (train, val, test) fractions, used when the dataset has no held-out folder.
        val_fraction: share of the training data kept for validation when there is a test split.
        n_per_class: shapes only: images per class (int, list or dict; default 600).
        normalize: "dataset" (the training split's mean/std), "imagenet", "none", or (mean, std).
        download: False: never; None or True: when missing and the network answers.
        skip_corrupt: leave out unreadable image files (counted in `info["skipped_corrupt"]`)
            instead of refusing the load.
        preload: decode a folder's images once into memory (None: when they fit in PRELOAD_BYTES).
        cache: keep decoded images and generated shapes in the tensor cache (`labkit.data.cache`).
    """
    if not isinstance(name, str):
        raise LabError(f"dataset name {name!r} must be a string such as 'shapes' or 'folder:/path/to/images'")
    _check_args(image_size, split, val_fraction, normalize, augment)
    key = DATASET_ALIASES.get(name.lower(), name.lower()) if not name.startswith("folder:") else "folder"
    if key not in (*KNOWN_DATASETS, "folder"):
        raise LabError(
            f"unknown dataset {name!r}; known datasets: {', '.join(KNOWN_DATASETS)}, or 'folder:PATH' "
            f"for an ImageFolder tree of your own."
        )
    size = image_size or DEFAULT_IMAGE_SIZE.get(key, 128)
    if key == "shapes":
        return _load_shapes(size, seed, split, n_per_class, augment, normalize, cache)
    if n_per_class is not None:
        raise LabError(f"n_per_class is for dataset='shapes' only; {name!r} has the images it has.")

    common: dict[str, Any] = dict(seed=seed, split=split, val_fraction=val_fraction)
    common.update(skip_corrupt=skip_corrupt, image_size=size, preload=preload, cache=cache)
    if key == "folder":
        path = Path(name[len("folder:") :]).expanduser()
        if not path.is_absolute() and data_root is not None and (Path(data_root) / path).is_dir():
            path = Path(data_root) / path
        if not path.is_dir():
            raise LabError(
                f"dataset {name!r}: folder {path.resolve()} does not exist. Give the path of an ImageFolder "
                f"tree: PATH/<class>/*.jpg, or PATH/train/<class>/... with an optional PATH/test/."
            )
        classes, sources, info = _folder_sources(path, **common)
        display = path.name
    else:
        folder = _locate(key, *resolve_root(data_root), download)
        display = key
        if key == "cifar10" and folder.name == "cifar-10-batches-py":
            classes, sources = _cifar_sources(folder, seed, val_fraction)
            info = {"root": str(folder), "layout": "torchvision cifar-10-batches-py"}
        else:
            exclude = ("BACKGROUND_Google",) if key == "caltech101" else ()
            classes, sources, info = _folder_sources(folder, exclude=exclude, **common)
        if key == "imagenette":
            classes = [Imagenette._WNID_TO_CLASS.get(c, (c,))[0] for c in classes]
    known = (CIFAR10_MEAN, CIFAR10_STD) if key == "cifar10" else None
    mean, std = _chosen_stats(normalize) or known or _folder_stats(sources["train"], size, seed)
    return Splits(display, classes, size, mean, std, sources, augment=augment, masks=None, info=info)


def _folder_stats(source: TensorSource | FileSource, image_size: int, seed: int) -> tuple[tuple, tuple]:
    """Mean and std of the training images: all of them when in memory, else a seeded sample of up
    to STATS_SAMPLE files, resized as for evaluation."""
    if isinstance(source, TensorSource):
        return channel_stats(source.images)
    n = len(source)
    pick = np.sort(np.random.default_rng(seed).choice(n, size=min(n, STATS_SAMPLE), replace=False))
    t = raw_transform(image_size)
    return channel_stats(torch.stack([t(source.load(int(i))) for i in pick]))


def _chosen_stats(normalize) -> tuple[tuple, tuple] | None:
    """(mean, std) that `normalize` fixes; None: measure them."""
    if normalize == "imagenet":
        return IMAGENET_MEAN, IMAGENET_STD
    if normalize in ("none", None):
        return (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    if isinstance(normalize, (tuple, list)):
        return tuple(normalize[0]), tuple(normalize[1])
    return None


def _shapes_cached(n_per_class, size: int, seed: int, use_cache: bool) -> ShapesData:
    """`make_shapes`, kept in the tensor cache under its arguments and the generator's source."""
    if not use_cache:
        return make_shapes(n_per_class, image_size=size, seed=seed)
    # _counts checks the counts (and make_shapes the size) before anything is cached under them.
    key = {"kind": "shapes", "counts": shapes._counts(n_per_class), "image_size": size, "seed": seed}
    key["generator"] = cache.source_fingerprint(shapes)  # a changed generator makes other images

    def build():
        d = make_shapes(n_per_class, image_size=size, seed=seed)
        return {"images": d.images, "masks": d.masks, "targets": d.targets}, {"classes": list(d.classes)}

    tensors, meta = cache.cached(f"shapes-{size}px", key, build)
    return ShapesData(tensors["images"], tensors["masks"], tensors["targets"], meta["classes"])


def _load_shapes(size: int, seed: int, split, n_per_class, augment, normalize, use_cache: bool) -> Splits:
    data = _shapes_cached(600 if n_per_class is None else n_per_class, size, seed, use_cache)
    targets = data.targets.numpy()
    idx = dict(zip(("train", "val", "test"), stratified_split(targets, split, seed)))
    whole = TensorSource(data.images, targets)
    sources = {k: whole.subset(i) for k, i in idx.items()}
    masks = {k: data.masks[torch.as_tensor(i)] for k, i in idx.items()}
    mean, std = _chosen_stats(normalize) or channel_stats(sources["train"].images)
    info = {"generator": "labkit.data.make_shapes", "n_per_class": n_per_class or 600, "seed": seed}
    return Splits("shapes", data.classes, size, mean, std, sources, augment=augment, masks=masks, info=info)
