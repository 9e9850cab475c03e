"""Speed figures of the series (`make bench`): medians of repeated runs, and ratios measured in the
same run. Nothing here is asserted; the figures are printed for people to read and compare.

    python -m labkit.bench            # all benchmarks
    python -m labkit.bench shapes     # one of: shapes, train, loader, gradcam, features, cifar
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import torch


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_shapes() -> dict[str, float]:
    """Generate 10,000 `shapes` images of 64×64 (the issue asks for seconds)."""
    from labkit.data import SHAPE_CLASSES, make_shapes

    per_class = 10_000 // len(SHAPE_CLASSES)
    seconds = median_seconds(lambda: make_shapes(per_class, image_size=64, seed=0), repeats=3, warmup=0)
    return {"shapes_10k_64px_seconds": seconds, "shapes_images_per_second": per_class * len(SHAPE_CLASSES) / seconds}


def bench_train() -> dict[str, float]:
    """Training steps per second of lab 02's network (batch 64, 64×64), forward + backward + Adam."""
    from labkit.models import NaiveCNN
    from labkit.zoo import LAB02_MODEL

    torch.manual_seed(0)
    model = NaiveCNN(10, **LAB02_MODEL)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    x, y = torch.randn(64, 3, 64, 64), torch.randint(0, 10, (64,))

    def step():
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    seconds = median_seconds(step, repeats=7, warmup=2)
    return {"naive_cnn_train_images_per_second": 64 / seconds}


def bench_loader() -> dict[str, float]:
    """Images per second out of the `shapes` training loader, with and without light augmentation."""
    from labkit.data import load_dataset, make_loaders

    out = {}
    for augment in ("none", "light"):
        splits = load_dataset("shapes", image_size=64, n_per_class=100, seed=0, augment=augment)
        loader = make_loaders(splits, 64, seed=0).train
        seconds = median_seconds(lambda loader=loader: sum(len(x) for x, _ in loader), repeats=3)
        out[f"loader_{augment}_images_per_second"] = len(splits.train) / seconds
    return out


def bench_gradcam() -> dict[str, float]:
    """Grad-CAM of 32 images: one batched call against 32 single-image calls (same run)."""
    from labkit.interpret import gradcam
    from labkit.models import NaiveCNN
    from labkit.zoo import LAB02_MODEL

    torch.manual_seed(0)
    model = NaiveCNN(10, **LAB02_MODEL).eval()
    x = torch.randn(32, 3, 64, 64)
    batched = median_seconds(lambda: gradcam(model, x), repeats=5)
    single = median_seconds(lambda: [gradcam(model, x[i : i + 1]) for i in range(len(x))], repeats=3)
    return {"gradcam_32_batched_seconds": batched, "gradcam_32_one_by_one_seconds": single,
            "gradcam_batched_speedup": single / batched}


def bench_features() -> dict[str, float]:
    """A head epoch through the frozen EfficientNet-Lite0 base against one on cached features."""
    from torch.utils.data import DataLoader, TensorDataset

    from labkit.models import pretrained
    from labkit.models.features import extract_features, headless

    torch.manual_seed(0)
    model = pretrained("efficientnet_lite0", num_classes=2, freeze=True)
    body = headless(model)
    data = TensorDataset(torch.randn(64, 3, 128, 128), torch.randint(0, 2, (64,)))
    loader = DataLoader(data, batch_size=32)
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    optimizer = torch.optim.SGD(head.parameters(), 0.01)

    def through_base():
        model.train()
        for x, y in loader:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()

    cached = extract_features(body, loader)
    cached_loader = DataLoader(cached, batch_size=32)

    def on_features():
        for f, y in cached_loader:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(head(f), y).backward()
            optimizer.step()

    base = median_seconds(through_base, repeats=3)
    feats = median_seconds(on_features, repeats=5)
    return {"head_epoch_through_frozen_base_seconds": base, "head_epoch_on_cached_features_seconds": feats,
            "feature_cache_speedup": base / feats}


BENCHMARKS = {"shapes": bench_shapes, "train": bench_train, "loader": bench_loader, "gradcam": bench_gradcam,
              "features": bench_features}


def main(argv: list[str]) -> int:
    chosen = argv or list(BENCHMARKS)
    unknown = [n for n in chosen if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}", file=sys.stderr)
        return 2
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'cuda' if torch.cuda.is_available() else 'cpu'}; medians of repeated runs")
    for name in chosen:
        for key, value in BENCHMARKS[name]().items():
            print(f"{key:<45} {value:>12.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
