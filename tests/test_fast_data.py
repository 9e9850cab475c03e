"""The batch-level data path: the tensor cache on disk, batch augmentation, TensorLoader, and fit on it."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from labkit import train
from labkit.core import LabError
from labkit.data import batch_aug, cache, load_dataset, make_loaders
from labkit.data.tensor_loader import TensorLoader
from labkit.models import NaiveCNN


@pytest.fixture(autouse=True)
def tensor_cache(tmp_path, monkeypatch):
    folder = tmp_path / "tensor_cache"
    monkeypatch.setenv("LABKIT_CACHE", str(folder))
    return folder


def _folder(root, per_class=6, size=20):
    rng = np.random.default_rng(0)
    for c in ("ants", "bees"):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (size, size + 4, 3), dtype=np.uint8)).save(
                root / c / f"{i}.png"
            )
    return root


# ----------------------------------------------------------------------------- the tensor cache
def test_folder_is_decoded_once_then_read_from_the_cache(tmp_path, tensor_cache, monkeypatch):
    root = _folder(tmp_path / "photos")
    first = load_dataset(f"folder:{root}", image_size=16, preload=True)
    assert len(list(tensor_cache.glob("*.pt"))) == 1
    from labkit.data import registry

    def no_decoding(*args):
        raise AssertionError("decoded a file although the cache holds it")

    monkeypatch.setattr(registry, "_decode", no_decoding)
    second = load_dataset(f"folder:{root}", image_size=16, preload=True)
    assert torch.equal(first.images("train"), second.images("train"))
    assert torch.equal(first.images("test"), second.images("test"))


def test_changed_content_rebuilds_the_cache(tmp_path, tensor_cache):
    root = _folder(tmp_path / "photos")
    first = load_dataset(f"folder:{root}", image_size=16, preload=True, split=(0.5, 0.25, 0.25))
    Image.new("RGB", (20, 24), (255, 0, 0)).save(root / "ants" / "0.png")  # the same name, new pixels
    second = load_dataset(f"folder:{root}", image_size=16, preload=True, split=(0.5, 0.25, 0.25))
    assert len(list(tensor_cache.glob("*.pt"))) == 2  # a new key, so a new file
    red = torch.tensor([255, 0, 0], dtype=torch.uint8).view(3, 1, 1).expand(3, 16, 16)
    everything = torch.cat([second.images(s) for s in ("train", "val", "test")])
    assert any(torch.equal(img, red) for img in everything)
    assert not any(
        torch.equal(img, red) for img in torch.cat([first.images(s) for s in ("train", "val", "test")])
    )


def test_truncated_cache_file_is_refused_with_its_path_then_rebuilt(tmp_path, tensor_cache, capsys):
    root = _folder(tmp_path / "photos")
    first = load_dataset(f"folder:{root}", image_size=16, preload=True)
    (path,) = tensor_cache.glob("*.pt")
    key = json.loads(torch.load(path, weights_only=True)["key"])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(LabError, match=rf"tensor cache {path} is damaged or truncated.*delete {path}"):
        cache.read_cache(path, key)
    capsys.readouterr()
    second = load_dataset(f"folder:{root}", image_size=16, preload=True)
    out = capsys.readouterr().out
    assert "damaged or truncated" in out and "Rebuilding it now" in out
    assert torch.equal(first.images("train"), second.images("train"))
    tensors, meta = cache.read_cache(path, key)  # the rebuilt file reads back
    assert meta == {"bad": []} and tensors["images"].shape[1:] == (3, 16, 16)


def test_altered_or_foreign_cache_file_is_refused(tmp_path):
    path, key = tmp_path / "c.pt", {"a": 1}
    cache.write_cache(path, key, {"images": torch.zeros(4, 3, 2, 2, dtype=torch.uint8)})
    with pytest.raises(LabError, match="made from other data"):
        cache.read_cache(path, {"a": 2})
    payload = torch.load(path, weights_only=True)
    payload["tensors"]["images"][0, 0, 0, 0] = 7
    torch.save(payload, path)
    with pytest.raises(LabError, match="does not match its checksum"):
        cache.read_cache(path, key)
    assert cache.read_cache(tmp_path / "absent.pt", key) is None


def test_shapes_come_from_the_cache_the_second_time(tensor_cache, monkeypatch):
    first = load_dataset("shapes", n_per_class=5, image_size=32, seed=3)
    from labkit.data import registry

    monkeypatch.setattr(registry, "make_shapes", lambda *a, **k: pytest.fail("generated again"))
    second = load_dataset("shapes", n_per_class=5, image_size=32, seed=3)
    assert torch.equal(first.images("test"), second.images("test"))
    assert torch.equal(first.masks("test"), second.masks("test"))
    assert first.classes == second.classes


# ----------------------------------------------------------------------------- batch augmentation
@pytest.mark.parametrize(
    "names",
    [
        (),
        ("translate",),
        ("crop",),
        ("flip", "vflip"),
        ("rotation", "color"),
        ("translate", "flip"),
        ("crop", "rotation", "flip", "color"),
    ],
)
def test_batch_augment_keeps_shape_dtype_and_is_repeatable(names):
    images = torch.randint(0, 256, (16, 3, 24, 24), dtype=torch.uint8)
    aug = batch_aug.BatchAugment(names, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    a = aug(images, torch.Generator().manual_seed(1))
    b = aug(images, torch.Generator().manual_seed(1))
    c = aug(images, torch.Generator().manual_seed(2))
    assert a.shape == (16, 3, 24, 24) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert torch.equal(a, c) == (names == ())
    lo = (0 - 0.5) / 0.2
    hi = (1 - 0.3) / 0.3
    assert a.min() >= min(lo, (0 - 0.4) / 0.25, -1) - 1e-4 and a.max() <= max(hi, (1 - 0.5) / 0.2) + 1e-4


def test_no_augmentation_is_exact_normalisation():
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    x = batch_aug.BatchAugment((), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))(images)
    expected = v2.Normalize([0.5] * 3, [0.25] * 3)(v2.ToDtype(torch.float32, scale=True)(images))
    assert torch.allclose(x, expected, atol=1e-6)


def test_translate_is_a_reflect_padded_shift_of_each_image():
    x = torch.arange(2 * 1 * 16 * 16, dtype=torch.float32).view(2, 1, 16, 16)
    out = batch_aug.translate(x, torch.Generator().manual_seed(0), padding=2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    for i in range(2):  # each output is exactly one 16 x 16 window of its padded image
        windows = [padded[i, :, r : r + 16, c : c + 16] for r in range(5) for c in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)


def test_flip_mirrors_about_half_of_the_images():
    x = torch.randn(400, 1, 2, 3)
    out = batch_aug.flip(x, torch.Generator().manual_seed(0))
    mirrored = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, x)])
    unchanged = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert bool((mirrored | unchanged).all()) and 150 < int(mirrored.sum()) < 250


def test_crop_zooms_in_and_rotation_fills_corners_with_the_mean():
    x = torch.zeros(8, 1, 32, 32)
    x[:, :, 8:24, 8:24] = 1.0  # a centred square covering a quarter of the image
    zoomed = batch_aug.affine(x, torch.Generator().manual_seed(0), crop=True)
    assert (zoomed.mean(dim=(1, 2, 3)) >= 0.25 - 0.02).all()  # a crop of >= 70 % area: the square grows
    ones = torch.ones(8, 1, 32, 32)
    turned = batch_aug.affine(ones, torch.Generator().manual_seed(1), crop=False, rotation=True)
    assert (turned[:, :, 0, 0] < 1).any() and torch.allclose(
        turned[:, :, 16, 16], torch.ones(8, 1), atol=1e-5
    )


def test_color_jitter_stays_in_range_and_changes_each_image_differently():
    x = torch.rand(6, 3, 8, 8)
    out = batch_aug.color(x, torch.Generator().manual_seed(0))
    assert out.min() >= 0 and out.max() <= 1
    ratios = out.mean(dim=(1, 2, 3)) / x.mean(dim=(1, 2, 3))
    assert len(set(ratios.round(decimals=3).tolist())) > 1


def test_names_without_a_batch_version_are_refused():
    with pytest.raises(ValueError, match="no batch version of \\['perspective'\\]"):
        batch_aug.BatchAugment(["perspective"], (0, 0, 0), (1, 1, 1))


# ----------------------------------------------------------------------------- TensorLoader
def test_in_memory_splits_get_tensor_loaders_and_others_dataloaders(tmp_path):
    splits = load_dataset("shapes", n_per_class=6, image_size=32, augment="shift")
    loaders = make_loaders(splits, 8, seed=0)
    assert all(
        isinstance(ld, TensorLoader) for ld in (loaders.train, loaders.val, loaders.test, loaders.train_eval)
    )
    assert len(loaders.train) == -(-len(splits.train) // 8) and len(loaders.test.dataset) == len(splits.test)
    per_sample = make_loaders(splits.with_augment("strong"), 8, seed=0)  # perspective has no batch version
    assert isinstance(per_sample.train, DataLoader)
    files = load_dataset(f"folder:{_folder(tmp_path / 'p')}", image_size=16, preload=False)
    assert isinstance(make_loaders(files, 4, num_workers=0).train, DataLoader)
    with pytest.raises(LabError, match="in_memory=True needs the splits in memory"):
        make_loaders(files, 4, in_memory=True)


def test_drop_last_leaves_out_the_short_training_batch_only(tmp_path):
    splits = load_dataset("shapes", n_per_class=6, image_size=32, augment="shift")
    n = len(splits.train)
    assert n % 16  # 40 images: a short last batch of 8
    for loaders in (
        make_loaders(splits, 16, seed=0, drop_last=True),
        make_loaders(splits, 16, seed=0, drop_last=True, in_memory=False, num_workers=0),
    ):
        sizes = [len(y) for _, y in loaders.train]
        assert len(loaders.train) == len(sizes) == n // 16 and set(sizes) == {16}, type(
            loaders.train
        ).__name__
        assert sum(len(y) for _, y in loaders.test) == len(splits.test)  # evaluation keeps every image


def test_eval_batches_equal_the_per_sample_eval_transform():
    splits = load_dataset("shapes", n_per_class=4, image_size=32)
    fast = torch.cat([x for x, _ in make_loaders(splits, 7).test])
    slow = torch.cat([x for x, _ in DataLoader(splits.test, batch_size=7)])
    assert torch.allclose(fast, slow, atol=1e-6)
    assert torch.equal(
        torch.cat([y for _, y in make_loaders(splits, 7).test]), torch.as_tensor(splits.targets("test"))
    )


def test_tensor_loader_order_repeats_with_the_seed_and_changes_per_epoch():
    images = torch.randint(0, 256, (20, 3, 8, 8), dtype=torch.uint8)
    targets = torch.arange(20)

    def make(seed):
        return TensorLoader(
            images, targets, 6, mean=(0, 0, 0), std=(1, 1, 1), augment=("flip",), shuffle=True, seed=seed
        )

    a, b, c = make(0), make(0), make(1)
    ea, eb, ec = ([y for _, y in ld] for ld in (a, b, c))
    assert all(torch.equal(u, v) for u, v in zip(ea, eb)) and not all(
        torch.equal(u, v) for u, v in zip(ea, ec)
    )
    assert sorted(torch.cat(ea).tolist()) == list(range(20))  # every image once per epoch
    assert not all(torch.equal(u, v) for u, v in zip(ea, [y for _, y in a]))  # the next epoch reshuffles


def test_weighted_tensor_loader_balances_classes():
    splits = load_dataset("shapes", n_per_class={"circle": 40, "star": 8}, image_size=32)
    loaders = make_loaders(splits, 8, seed=0, weighted_sampler=True)
    ys = torch.cat([y for _ in range(10) for _, y in loaders.train])
    share = (ys == splits.classes.index("star")).float().mean().item()
    assert 0.4 < share < 0.6


def test_fit_on_a_tensor_loader_resumes_exactly(tmp_path):
    splits = load_dataset("shapes", n_per_class=10, image_size=32, augment="light")

    def run(epochs, checkpoint, resume=False):
        torch.manual_seed(0)
        model = NaiveCNN(splits.num_classes, channels=(4, 8), hidden=0)
        loaders = make_loaders(splits, 16, seed=0)
        train.fit(
            model,
            loaders.train,
            loaders.val,
            epochs=epochs,
            lr=1e-2,
            checkpoint=checkpoint,
            resume=resume,
            progress=False,
            restore_best=False,
        )
        return model

    straight = run(3, tmp_path / "a.pt")
    run(2, tmp_path / "b.pt")  # "interrupted" after two epochs
    resumed = run(3, tmp_path / "b.pt", resume=True)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_channels_last_training_matches_the_default_layout():
    splits = load_dataset("shapes", n_per_class=6, image_size=32, augment="shift")
    results = []
    for channels_last in (False, True):
        torch.manual_seed(0)
        model = NaiveCNN(splits.num_classes, channels=(4, 8), hidden=0)
        loaders = make_loaders(splits, 16, seed=0)
        h = train.fit(
            model, loaders.train, loaders.val, epochs=2, lr=1e-2, channels_last=channels_last, progress=False
        )
        results.append(
            (h.df["train_loss"].to_numpy(), train.evaluate(model, loaders.test, tta=True)["accuracy"])
        )
    assert np.allclose(results[0][0], results[1][0], rtol=1e-4) and results[0][1] == pytest.approx(
        results[1][1]
    )


def test_tta_averages_the_logits_of_each_image_and_its_mirror():
    class Left(torch.nn.Module):  # class 0 when the left half is brighter, else class 1
        def forward(self, x):
            d = x[..., : x.shape[-1] // 2].mean(dim=(1, 2, 3)) - x[..., x.shape[-1] // 2 :].mean(
                dim=(1, 2, 3)
            )
            return torch.stack([d, -d], 1)

    x = torch.zeros(4, 3, 8, 8)
    x[..., :4] = 1.0
    loader = [(x, torch.zeros(4, dtype=torch.long))]
    assert train.evaluate(Left(), loader)["accuracy"] == 1.0
    p = train.predict(Left(), loader, tta=True)
    assert np.allclose(p.probs, 0.5)  # the mirror image says the opposite: the average is undecided


def test_mirror_translate_views_are_airbench_s():
    # The oracle: airbench94's infer_mirror_translate (legacy/airbench94.py), written out on 32 px images.
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(5))
    x = torch.randn(6, 3, 32, 32)
    model(x)  # materialise the lazy layer

    def mirror(v):
        return 0.5 * model(v) + 0.5 * model(v.flip(-1))

    padded = torch.nn.functional.pad(x, (1,) * 4, "reflect")
    shifted = [mirror(padded[:, :, 0:32, 0:32]), mirror(padded[:, :, 2:34, 2:34])]
    expected = 0.5 * mirror(x) + 0.5 * torch.stack(shifted).mean(0)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    p = train.predict(model, [(x, y)], tta="mirror_translate")
    np.testing.assert_allclose(p.probs, torch.softmax(expected, 1).detach().numpy(), rtol=1e-5, atol=1e-6)
    mirror_only = train.predict(model, [(x, y)], tta="mirror").probs
    assert not np.allclose(p.probs, mirror_only, atol=1e-4)  # the shifted views do count
    with pytest.raises(LabError, match="tta='mirror_shift'.*mirror_translate"):
        train.evaluate(model, [(x, y)], tta="mirror_shift")


def _flipped(loader, images):
    """For each epoch's batches, which images (by index) came out mirrored."""
    seen = {}
    for x, y in loader:
        for xi, yi in zip(x, y):
            mirrored = torch.allclose(xi, images[yi].float().flip(-1), atol=1e-3)
            assert mirrored or torch.allclose(xi, images[yi].float(), atol=1e-3)
            seen[int(yi)] = mirrored
    return seen


def test_alternating_flip_mirrors_each_image_every_other_epoch():
    # Asymmetric images (each its own index as target): which way each one comes out can be read off.
    images = torch.randint(0, 256, (40, 3, 6, 6), dtype=torch.uint8)
    loader = TensorLoader(
        images, torch.arange(40), 7, mean=(0, 0, 0), std=(1 / 255,) * 3, augment=("alternating_flip",),
        shuffle=True, seed=3,
    )  # fmt: skip
    epochs = [_flipped(loader, images) for _ in range(4)]
    assert all(len(e) == 40 for e in epochs)
    first = torch.tensor([epochs[0][i] for i in range(40)])
    assert 10 <= int(first.sum()) <= 30  # about half, drawn once
    for a, b in zip(epochs, epochs[1:]):  # every image both ways in any two epochs in a row
        assert all(a[i] != b[i] for i in range(40))
    assert epochs[0] == epochs[2] and epochs[1] == epochs[3]
    loader.set_epoch(2)  # as fit does on resume: epoch 2's flips, whatever came before
    assert _flipped(loader, images) == epochs[1]
    again = TensorLoader(
        images, torch.arange(40), 7, mean=(0, 0, 0), std=(1 / 255,) * 3, augment=("alternating_flip",),
        shuffle=True, seed=3,
    )  # fmt: skip
    assert _flipped(again, images) == epochs[0]  # the same seed: the same half


def test_alternating_flip_falls_back_to_random_flips_per_image():
    # A per-image loader cannot know the epoch: the name is accepted and flips at random.
    from labkit.data.transforms import train_transform

    t = train_transform(8, (0, 0, 0), (1, 1, 1), augment="small_shift_alternating")
    assert any(type(s).__name__ == "RandomHorizontalFlip" for s in t.transforms)
