"""labkit.data: the shapes generator, splits, registry layouts and resolution, bad input, transforms,
class weights, samplers and loaders. All data is tiny and made here in tmp_path."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from labkit.core import LabError
from labkit.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    SHAPE_CLASSES,
    class_weights,
    eval_transform,
    load_dataset,
    make_loaders,
    make_shapes,
    registry,
    stratified_split,
    train_transform,
    verify_images,
)

K = len(SHAPE_CLASSES)
REAL_NETWORK_PROBE = registry.network_available  # kept before the autouse fixture replaces it


# ----------------------------------------------------------------------------- helpers
def _write_image(path: Path, colour=(200, 30, 30), size=(12, 10), mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, colour)
    if mode == "L":
        img = img.convert("L")
    elif mode == "RGBA":
        img = img.convert("RGBA")
        img.putpixel((0, 0), (0, 0, 0, 0))
    elif mode == "P":
        img = img.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    elif mode == "P_transparent":
        img = img.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
        img.info["transparency"] = 0
    img.save(path, **({"transparency": 0} if mode == "P_transparent" else {}))
    return path


def _image_folder(root: Path, counts: dict[str, int], ext: str = ".png", offset: int = 0) -> Path:
    """root/<class>/<i>.png with a per-class colour, so a class can be recognised from the pixels."""
    colours = {c: (40 * i + 20, 255 - 40 * i, 100) for i, c in enumerate(sorted(counts))}
    for c, n in counts.items():
        for i in range(n):
            _write_image(root / c / f"{c}_{i + offset}{ext}", colours[c])
    return root


def _write_fake_cifar(root: Path, per_batch: int = 4) -> dict:
    """torchvision's cifar-10-batches-py layout (pickled dicts) with a few random images each."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch * 10, 3072), dtype=np.uint8)
        labels = [i % 10 for i in range(per_batch * 10)]
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": data, "labels": labels, "batch_label": name}, fh)
        written[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": names, "num_cases_per_batch": per_batch * 10, "num_vis": 3072}, fh)
    return {"names": names, "batches": written}


@pytest.fixture(autouse=True)
def _no_network_and_no_user_data(monkeypatch, tmp_path):
    """Tests never touch the network or the user's cache: downloads are impossible here."""
    monkeypatch.setattr(registry, "network_available", lambda url, timeout=3.0: False)
    monkeypatch.delenv("LABKIT_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


# ----------------------------------------------------------------------------- shapes
def test_shapes_same_seed_gives_identical_bytes_and_other_seed_differs():
    a, b, c = (
        make_shapes(3, image_size=40, seed=7),
        make_shapes(3, image_size=40, seed=7),
        make_shapes(3, image_size=40, seed=8),
    )
    assert (
        torch.equal(a.images, b.images)
        and torch.equal(a.masks, b.masks)
        and torch.equal(a.targets, b.targets)
    )
    assert not torch.equal(a.images, c.images)


def test_shapes_shapes_and_dtypes():
    d = make_shapes(2, image_size=32, seed=0)
    n = 2 * K
    assert K >= 8 and d.classes == list(SHAPE_CLASSES)
    assert d.images.shape == (n, 3, 32, 32) and d.images.dtype == torch.uint8
    assert d.masks.shape == (n, 32, 32) and d.masks.dtype == torch.bool
    assert d.targets.shape == (n,) and d.targets.dtype == torch.int64


@pytest.mark.parametrize("size", [32, 224])
def test_shapes_sizes_at_both_ends(size):
    d = make_shapes({"circle": 1, "star": 1}, image_size=size, seed=1)
    assert d.images.shape == (2, 3, size, size)


def test_shapes_counts_int_list_and_dict_for_imbalance():
    counts = list(range(1, K + 1))
    d = make_shapes(counts, image_size=32, seed=0)
    assert np.bincount(d.targets.numpy(), minlength=K).tolist() == counts
    d = make_shapes({"circle": 5, "ring": 1}, image_size=32, seed=0)
    bc = np.bincount(d.targets.numpy(), minlength=K)
    assert bc[SHAPE_CLASSES.index("circle")] == 5 and bc[SHAPE_CLASSES.index("ring")] == 1 and bc.sum() == 6


@pytest.mark.parametrize(
    ("arg", "match"),
    [
        ([1, 2], "one count per class"),
        ({"blob": 3}, "unknown shape classes"),
        (-1, "non-negative"),
        ("many", "not a count"),
    ],
)
def test_shapes_bad_counts_are_refused(arg, match):
    with pytest.raises(LabError, match=match):
        make_shapes(arg, image_size=32)


def test_shapes_image_size_out_of_range_is_refused():
    with pytest.raises(LabError, match="32 to 224"):
        make_shapes(1, image_size=16)


def test_shapes_masks_cover_the_object_inside_the_image():
    d = make_shapes(4, image_size=64, seed=3)
    area = d.masks.float().mean(dim=(1, 2))
    assert (area > 0.03).all() and (area < 0.45).all()
    # The whole object lies inside the frame: the outermost rows and columns are background.
    border = (
        d.masks[:, 0, :].any(1)
        | d.masks[:, -1, :].any(1)
        | d.masks[:, :, 0].any(1)
        | d.masks[:, :, -1].any(1)
    )
    assert not border.any()
    # The mask marks the drawn object: pixels inside differ clearly in colour from those outside.
    x = d.images.float()
    m = d.masks[:, None].float()
    inside = (x * m).sum((2, 3)) / m.sum((2, 3))
    outside = (x * (1 - m)).sum((2, 3)) / (1 - m).sum((2, 3))
    assert ((inside - outside).norm(dim=1) > 40).float().mean() > 0.9


# ----------------------------------------------------------------------------- splits
def _check_stratified(targets, parts, fractions, tolerance):
    """Every index in exactly one part; each class's count in each part within `tolerance` of its share."""
    counts = np.bincount(targets)
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(targets)))
    for part, frac in zip(parts, fractions):
        assert np.all(np.abs(np.bincount(targets[part], minlength=len(counts)) - frac * counts) <= tolerance)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_stratified_split_is_complete_disjoint_proportional_and_seeded(seed):
    targets = np.repeat(np.arange(4), [100, 40, 20, 7])
    parts = stratified_split(targets, (0.7, 0.15, 0.15), seed=seed)
    _check_stratified(targets, parts, (0.7, 0.15, 0.15), tolerance=1)
    assert all((np.bincount(targets[p], minlength=4) > 0).all() for p in parts)  # every class in every split
    again = stratified_split(targets, (0.7, 0.15, 0.15), seed=seed)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    other = stratified_split(targets, (0.7, 0.15, 0.15), seed=seed + 100)
    assert not np.array_equal(parts[1], other[1])


def test_stratified_split_keeps_class_proportions_on_other_inputs():
    rng = np.random.default_rng(0)
    for trial in range(30):
        targets = rng.permutation(np.repeat(np.arange(5), rng.integers(10, 400, size=5)))
        two = stratified_split(targets, (0.8, 0.2), seed=trial)
        _check_stratified(targets, two, (0.8, 0.2), tolerance=1)
        # Three parts are cut one after the other, each rounding on its own.
        three = stratified_split(targets, (0.6, 0.2, 0.2), seed=trial)
        _check_stratified(targets, three, (0.6, 0.2, 0.2), tolerance=2)


def test_stratified_split_gives_a_small_set_one_image_per_class_and_part():
    targets = np.repeat(np.arange(10), 4)  # val and test would get 6 images for 10 classes
    parts = stratified_split(targets, (0.7, 0.15, 0.15), seed=0)
    assert [np.bincount(targets[p], minlength=10).tolist() for p in parts] == [[2] * 10, [1] * 10, [1] * 10]


def test_stratified_split_refuses_bad_fractions_and_too_few_images():
    with pytest.raises(LabError, match="sum to 1"):
        stratified_split([0, 1, 0, 1], (0.5, 0.2, 0.2))
    with pytest.raises(LabError, match="20 images of 10 classes are too few"):
        stratified_split(np.repeat(np.arange(10), 2), (0.7, 0.15, 0.15))
    with pytest.raises(LabError, match="only 1 member"):  # scikit-learn's reason, passed on
        stratified_split([0] * 30 + [1], (0.8, 0.2))
    with pytest.raises(LabError, match="too few"):
        load_dataset("shapes", n_per_class=2, image_size=32)


def test_shapes_splits_sizes_normalisation_and_masks_aligned():
    splits = load_dataset("shapes", n_per_class=20, image_size=32, seed=0)
    assert splits.sizes() == {"train": 14 * K, "val": 3 * K, "test": 3 * K}
    assert set(splits.class_counts("val").values()) == {3}
    x = torch.stack([splits.train_eval[i][0] for i in range(len(splits.train_eval))])
    assert x.shape == (14 * K, 3, 32, 32)
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-3)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-2)
    # Masks and raw images follow each split's order: compare with the generator's own output.
    data = make_shapes(20, image_size=32, seed=0)
    test_idx = stratified_split(data.targets.numpy(), (0.7, 0.15, 0.15), seed=0)[2]
    assert torch.equal(splits.masks("test"), data.masks[test_idx])
    assert torch.equal(splits.raw("test", 5), data.images[test_idx[5]])
    assert splits.targets("test").tolist() == data.targets[test_idx].tolist()
    assert torch.allclose(
        splits.denormalize(splits.test[5][0]), data.images[test_idx[5]].float() / 255, atol=1e-5
    )
    assert torch.allclose(splits.normalize(splits.denormalize(x[:4])), x[:4], atol=1e-4)


def test_with_augment_changes_only_the_train_transform():
    splits = load_dataset("shapes", n_per_class=3, image_size=32, augment="none")
    strong = splits.with_augment("strong")
    assert strong.augment == "strong" and strong.mean == splits.mean
    assert torch.equal(strong.val[0][0], splits.val[0][0])
    torch.manual_seed(0)
    assert not torch.allclose(strong.train[0][0], splits.train[0][0])


def test_normalize_imagenet_uses_imagenet_statistics():
    splits = load_dataset("shapes", n_per_class=3, image_size=32, normalize="imagenet")
    assert splits.mean == IMAGENET_MEAN and splits.std == IMAGENET_STD


# ----------------------------------------------------------------------------- folder layouts
@pytest.mark.parametrize("preload", [True, False])
def test_folder_with_train_and_test_uses_test_as_test_split(tmp_path, preload):
    root = tmp_path / "pets"
    _image_folder(root / "train", {"cat": 20, "dog": 20})
    _image_folder(root / "test", {"cat": 3, "dog": 5}, offset=100)
    splits = load_dataset(f"folder:{root}", image_size=16, val_fraction=0.25, seed=0, preload=preload)
    assert splits.classes == ["cat", "dog"]
    assert splits.class_counts("test") == {"cat": 3, "dog": 5}
    assert splits.class_counts("val") == {"cat": 5, "dog": 5}
    assert splits.class_counts("train") == {"cat": 15, "dog": 15}
    x, y = splits.test[0]
    assert x.shape == (3, 16, 16) and y == 0
    assert splits.raw("test", 3)[:, 0, 0].tolist() == [60, 215, 100]  # the first dog of test/


def test_folder_scan_lists_what_torchvision_image_folder_lists(tmp_path):
    from torchvision.datasets import ImageFolder

    root = _image_folder(tmp_path / "tree", {"b": 3, "a": 2})
    _write_image(root / "a" / "nested" / "deep.png")  # images in sub-folders of a class count too
    (root / "b" / "notes.txt").write_text("not an image")
    classes, paths, targets = registry.scan_image_folder(root)
    reference = ImageFolder(str(root))
    assert classes == reference.classes == ["a", "b"]
    assert list(zip(paths, targets.tolist())) == reference.samples
    (root / ".ipynb_checkpoints").mkdir()  # hidden folders are no classes for labkit
    assert registry.scan_image_folder(root)[0] == ["a", "b"]
    with pytest.raises(LabError, match="has no class folders"):
        registry.scan_image_folder(root / "a" / "nested")


def test_folder_of_class_folders_only_is_split_70_15_15(tmp_path):
    root = _image_folder(tmp_path / "flowers", {"a": 20, "b": 40, "c": 20})
    splits = load_dataset(f"folder:{root}", image_size=8)
    assert splits.class_counts("train") == {"a": 14, "b": 28, "c": 14}
    assert splits.class_counts("val") == splits.class_counts("test") == {"a": 3, "b": 6, "c": 3}
    assert splits.masks("train") is None
    # Each class has its own colour: raw pixels prove the labels travel with the files.
    a, b = splits.raw("test", 0), splits.raw("test", len(splits.test) - 1)
    assert splits.targets("test")[0] == 0 and a[0, 0, 0] == 20
    assert splits.targets("test")[-1] == 2 and b[0, 0, 0] == 100


def test_folder_statistics_come_from_training_images(tmp_path):
    root = _image_folder(tmp_path / "flat", {"a": 10, "b": 10})
    splits = load_dataset(f"folder:{root}", image_size=8)
    # Colours (20, 255, 100) and (60, 215, 100) in equal shares over the training split.
    assert splits.mean == pytest.approx((40 / 255, 235 / 255, 100 / 255), abs=1e-3)


def test_fake_cifar_pickles_load_through_torchvision_reader(tmp_path):
    fake = _write_fake_cifar(tmp_path / "data", per_batch=4)
    splits = load_dataset("cifar10", data_root=tmp_path / "data", val_fraction=0.2, download=False)
    assert splits.classes == fake["names"] and splits.image_size == 32
    assert splits.sizes() == {"train": 160, "val": 40, "test": 40}
    assert set(splits.class_counts("val").values()) == {4}
    data, labels = fake["batches"]["test_batch"]
    assert torch.equal(splits.raw("test", 3), torch.from_numpy(data[3].reshape(3, 32, 32)))
    assert splits.targets("test").tolist() == labels
    assert splits.mean == registry.CIFAR10_MEAN


def test_damaged_cifar_pickle_is_reported(tmp_path):
    _write_fake_cifar(tmp_path, per_batch=1)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(LabError, match="incomplete or damaged"):
        load_dataset("cifar10", data_root=tmp_path, download=False)


def test_cats_and_dogs_filtered_layout_uses_validation_as_test(tmp_path):
    base = tmp_path / "cats_and_dogs_filtered"
    _image_folder(base / "train", {"cats": 10, "dogs": 10}, ext=".jpg")
    _image_folder(base / "validation", {"cats": 4, "dogs": 4}, ext=".jpg", offset=50)
    splits = load_dataset("cats_vs_dogs", data_root=tmp_path, image_size=16)
    assert splits.classes == ["cats", "dogs"]
    assert splits.sizes()["test"] == 8 and splits.sizes()["train"] + splits.sizes()["val"] == 20
    assert "validation" in splits.info["layout"]


def test_imagenette_folder_gets_readable_class_names_and_val_as_test(tmp_path):
    base = tmp_path / "imagenette2-160"
    _image_folder(base / "train", {"n01440764": 5, "n03888257": 5}, ext=".JPEG")
    _image_folder(base / "val", {"n01440764": 2, "n03888257": 2}, ext=".JPEG", offset=9)
    splits = load_dataset("imagenette", data_root=tmp_path, image_size=8, download=False)
    assert splits.classes == ["tench", "parachute"] and splits.sizes()["test"] == 4


def test_caltech101_layout_leaves_out_the_background_class(tmp_path):
    base = tmp_path / "caltech101" / "101_ObjectCategories"
    _image_folder(base, {"accordion": 10, "airplanes": 10, "BACKGROUND_Google": 10}, ext=".jpg")
    splits = load_dataset("caltech101", data_root=tmp_path, image_size=8, download=False)
    assert splits.classes == ["accordion", "airplanes"] and sum(splits.sizes().values()) == 20


def test_labkit_data_env_var_is_the_root_when_no_data_root(tmp_path, monkeypatch):
    _image_folder(tmp_path / "store" / "cifar10" / "train", {"cat": 10, "ship": 10})
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path / "store"))
    splits = load_dataset("cifar10", download=False)
    assert splits.classes == ["cat", "ship"]
    assert splits.info["root"] == str(tmp_path / "store" / "cifar10")


# ----------------------------------------------------------------------------- bad input
def test_missing_data_names_dataset_folders_and_offline_choices(tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(LabError, match="'cifar10' was not found") as info:
        load_dataset("cifar10", data_root=root)
    msg = str(info.value)
    assert str(root / "cifar-10-batches-py") in msg and str(root / "cifar10") in msg
    assert "No network" in msg and "dataset='shapes'" in msg and "LABKIT_DATA" in msg


def test_missing_data_with_download_false_says_so(tmp_path):
    with pytest.raises(LabError, match="download=False"):
        load_dataset("imagenette", data_root=tmp_path, download=False)


def test_default_root_is_the_user_cache(tmp_path):
    with pytest.raises(LabError, match=str(tmp_path / "xdg-cache" / "labkit")):
        load_dataset("caltech101", download=False)


def test_missing_folder_path_is_named(tmp_path):
    with pytest.raises(LabError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'gone'}")


def test_empty_class_folder_is_named(tmp_path):
    root = _image_folder(tmp_path / "set", {"a": 3})
    (root / "b").mkdir()
    with pytest.raises(LabError, match=r"class folder .*set/b holds no images"):
        load_dataset(f"folder:{root}")


@pytest.mark.parametrize("preload", [True, False])
def test_corrupt_jpeg_is_refused_by_path_and_skipped_on_request(tmp_path, capsys, preload):
    root = _image_folder(tmp_path / "set", {"a": 10, "b": 10}, ext=".jpg")
    _image_folder(tmp_path / "set_test", {"a": 1}, ext=".jpg")
    bad = root / "a" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (root / "b" / "empty.jpg").write_bytes(b"")
    with pytest.raises(LabError, match="2 image file") as info:
        load_dataset(f"folder:{root}", preload=preload)
    assert str(bad) in str(info.value) and "skip_corrupt=True" in str(info.value)
    splits = load_dataset(f"folder:{root}", skip_corrupt=True, preload=preload)
    assert "left out 2 unreadable" in capsys.readouterr().out
    assert sum(splits.sizes().values()) == 20 and splits.info["skipped_corrupt"] == 2
    assert splits.info["in_memory"] is preload


def test_truncated_jpeg_is_caught_when_images_are_decoded(tmp_path):
    root = _image_folder(tmp_path / "set", {"a": 4, "b": 4}, ext=".jpg")
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    noisy.save(root / "a" / "cut.jpg", quality=95)
    data = (root / "a" / "cut.jpg").read_bytes()
    (root / "a" / "cut.jpg").write_bytes(data[: len(data) // 2])  # a download cut short
    with pytest.raises(LabError, match=r"(?s)1 image file.*cut\.jpg"):
        load_dataset(f"folder:{root}", preload=True)


def test_held_out_folder_bad_files_are_listed_with_the_training_ones(tmp_path):
    _image_folder(tmp_path / "p" / "train", {"a": 6, "b": 6})
    _image_folder(tmp_path / "p" / "test", {"a": 2, "b": 2}, offset=10)
    (tmp_path / "p" / "train" / "a" / "x.png").write_bytes(b"junk")
    (tmp_path / "p" / "test" / "b" / "y.png").write_bytes(b"junk")
    with pytest.raises(LabError, match="2 image file") as info:
        load_dataset(f"folder:{tmp_path / 'p'}", preload=False)
    assert "x.png" in str(info.value) and "y.png" in str(info.value)
    splits = load_dataset(f"folder:{tmp_path / 'p'}", skip_corrupt=True)
    assert splits.class_counts("test") == {"a": 2, "b": 2} and splits.info["skipped_corrupt"] == 2


def test_verify_images_reports_bad_files_by_path(tmp_path):
    root = _image_folder(tmp_path / "v", {"a": 3})
    (root / "a" / "x.png").write_bytes(b"garbage")
    report = verify_images(root)
    assert report.n_ok == 3 and [p for p, _ in report.bad] == [str(root / "a" / "x.png")]


def test_grayscale_rgba_and_palette_images_load_into_one_batch(tmp_path):
    root = tmp_path / "mixed"
    for cls in ("a", "b"):
        for i, mode in enumerate(("RGB", "L", "RGBA", "P", "P_transparent")):
            _write_image(root / cls / f"{mode}_{i}.png", size=(10 + i, 12), mode=mode)
    splits = load_dataset(f"folder:{root}", image_size=8, split=(0.6, 0.2, 0.2))
    loaders = make_loaders(splits, batch_size=32)
    x, y = next(iter(loaders.train_eval))
    assert x.shape == (len(splits.train), 3, 8, 8) and x.dtype == torch.float32


def test_unknown_dataset_name_lists_known_names():
    with pytest.raises(
        LabError, match=r"unknown dataset 'mnist'.*shapes, cifar10, cats_vs_dogs.*folder:PATH"
    ):
        load_dataset("mnist")


def test_bad_arguments_are_refused_before_work():
    with pytest.raises(LabError, match="augment"):
        load_dataset("shapes", augment="wild")
    with pytest.raises(LabError, match="normalize"):
        load_dataset("shapes", normalize="per-image")
    with pytest.raises(LabError, match="n_per_class is for dataset='shapes'"):
        load_dataset("cifar10", n_per_class=5)


# ----------------------------------------------------------------------------- transforms
@pytest.mark.parametrize("augment", ["none", "light", "strong", ["rotation", "color"]])
def test_train_transform_output_shape_from_pil_and_tensor(augment):
    t = train_transform(24, (0.5,) * 3, (0.25,) * 3, augment)
    pil = Image.new("RGB", (40, 30), (128, 0, 255))
    out = t(pil)
    assert out.shape == (3, 24, 24) and out.dtype == torch.float32
    assert t(torch.zeros(3, 30, 50, dtype=torch.uint8)).shape == (3, 24, 24)


def test_eval_transform_resizes_crops_and_normalises():
    t = eval_transform(16, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    img = torch.full((3, 20, 40), 255, dtype=torch.uint8)
    out = t(img)
    assert out.shape == (3, 16, 16)
    assert torch.allclose(out, torch.full_like(out, 2.0))  # (1 - 0.5) / 0.25


def test_dataset_shortcut_equals_the_v2_eval_transform():
    splits = load_dataset("shapes", n_per_class=4, image_size=32)
    for i in range(3):
        x, _ = splits.val[i]
        assert torch.equal(x, splits.val.transform(splits.raw("val", i)))
        assert torch.equal(splits.train[i][0], splits.train.transform(splits.raw("train", i)))


def test_unknown_augmentation_is_refused():
    with pytest.raises(LabError, match="unknown augmentations"):
        train_transform(16, (0,) * 3, (1,) * 3, ["flip", "zoom"])


# ----------------------------------------------------------------------------- weights, samplers, loaders
def test_class_weights_are_inverse_frequency_with_absent_classes_at_zero():
    from sklearn.utils.class_weight import compute_class_weight

    targets = np.array([0] * 50 + [1] * 30 + [2] * 20)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=targets)
    assert torch.allclose(class_weights(targets, 3), torch.tensor(expected, dtype=torch.float32))
    # N / (C * n_c) over all C classes, as lab 01 writes it: 3 / (4 * 1) and 3 / (4 * 2).
    assert class_weights(torch.tensor([2, 2, 0]), 4).tolist() == [0.75, 0.0, 0.375, 0.0]
    with pytest.raises(LabError, match="must lie in 0..2"):
        class_weights([0, 3], 3)


def test_weighted_sampler_of_a_per_image_loader_draws_classes_equally():
    splits = load_dataset("shapes", n_per_class={"circle": 40, "star": 8}, image_size=32, augment="strong")
    loaders = make_loaders(splits, 16, seed=0, weighted_sampler=True)
    assert isinstance(loaders.train, torch.utils.data.DataLoader)  # "strong" has no batch version
    ys = torch.cat([y for _ in range(6) for _, y in loaders.train])
    share = (ys == SHAPE_CLASSES.index("star")).float().mean().item()
    assert len(ys) == 6 * len(splits.train) and 0.4 < share < 0.6  # 8 of 48 stars (17 %) without it


def test_loaders_are_deterministic_for_a_seed_and_weighted_flag_balances():
    splits = load_dataset("shapes", n_per_class={"circle": 40, "star": 8}, image_size=32, augment="light")

    def first_batch(seed):
        torch.manual_seed(123)  # augmentations draw from torch's global RNG (labkit.setup seeds it)
        return next(iter(make_loaders(splits, 16, seed=seed).train))

    first = [first_batch(s) for s in (0, 0, 1)]
    assert torch.equal(first[0][0], first[1][0]) and torch.equal(first[0][1], first[1][1])
    assert not torch.equal(first[0][1], first[2][1])
    loaders = make_loaders(splits, 8, seed=0, weighted_sampler=True)
    ys = torch.cat([y for _ in range(10) for _, y in loaders.train])
    share = (ys == SHAPE_CLASSES.index("star")).float().mean().item()
    assert 0.4 < share < 0.6  # 8 of 48 stars (17 %) without the sampler
    assert len(make_loaders(splits, 8).test.dataset) == len(splits.test)


# ----------------------------------------------------------------------------- plots
def test_image_grid_class_balance_and_augmentation_preview_draw():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from labkit.plots.images import augmentation_preview, class_balance, image_grid

    splits = load_dataset("shapes", n_per_class=3, image_size=32, augment="strong")
    x = torch.stack([splits.train[i][0] for i in range(5)])
    fig = image_grid(
        x, labels=splits.targets("train")[:5], classes=splits.classes, ncols=3, denormalize=splits
    )
    mosaic = fig.axes[0].images[0].get_array()
    pad = (mosaic.shape[1] - 3 * 32) // 4  # 2 rows of 3 tiles with equal padding
    assert mosaic.shape == (2 * 32 + 3 * pad, 3 * 32 + 4 * pad, 3)
    assert [t.get_text() for t in fig.axes[0].texts] == [
        splits.classes[i] for i in splits.targets("train")[:5]
    ]
    # Each tile shows its image, denormalised back to [0, 1]; the sixth place stays white.
    for i, (r, c) in enumerate([(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]):
        top, left = pad + r * (32 + pad), pad + c * (32 + pad)
        shown = mosaic[top : top + 32, left : left + 32]
        assert np.allclose(shown, splits.denormalize(x[i]).permute(1, 2, 0).numpy(), atol=1e-6)
    assert (mosaic[pad + 32 + pad :, pad + 2 * (32 + pad) :] == 1).all()
    fig2 = class_balance(splits)
    assert len(fig2.axes[0].patches) == 3 * K
    assert sorted(p.get_height() for p in fig2.axes[0].patches)[-1] == max(
        splits.class_counts("train").values()
    )
    fig3 = augmentation_preview(splits, n=2, k=3)
    assert fig3.axes[0].images[0].get_array().shape[1] > 4 * 32
    plt.close("all")


# ----------------------------------------------------------------------------- photos, network probe
def test_photos_come_from_scikit_image_as_uint8_squares():
    from labkit.data import photos

    out = photos(["chelsea", "coffee"], image_size=48)
    assert list(out) == ["chelsea", "coffee"]
    assert all(v.shape == (3, 48, 48) and v.dtype == torch.uint8 for v in out.values())
    with pytest.raises(LabError, match="unknown photo"):
        photos(["mona_lisa"])


def test_network_probe_answers_true_for_a_listening_port_and_false_for_a_closed_one():
    import socket

    network_available = REAL_NETWORK_PROBE
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        assert network_available(f"http://127.0.0.1:{port}/x", timeout=1.0)
    finally:
        server.close()
    assert not network_available(f"http://127.0.0.1:{port}/x", timeout=1.0)
