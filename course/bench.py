"""`make bench`: the speed and accuracy figures of the series, printed as one table.

    python -m course bench                 # everything the data at hand allows
    python -m course bench smoke fit       # some of: smoke, fit, loader, features, ddp, cifar, cats,
                                           # folder, gpu, grading, judge
    BENCH_CLASS=20 python -m course bench grading   # grading a synthetic class of 20 (default 200)

Nothing here is asserted; the figures are for people to read and compare. Speeds are medians of
repeated runs, and a ratio is always measured within one run, alternating its two sides. Time it on
a quiet machine: a second busy process on two cores changes every figure.

Real-data benchmarks need the training archives of `../shared/data/` (or a folder named by
`$LABKIT_BENCH_DATA` holding them): they are unpacked once into `~/.cache/labkit-bench/`, and a
fixed part of each training split is held out as the test set, so the figures are test accuracies
on images no recipe was tuned on:
- cifar: labs 02 and 03 under `full` on CIFAR-10, 5,000 held-out images (500 per class);
- cats: lab 04 on cats vs dogs, `cats_and_dogs_filtered` layout, 500 held-out images as `validation/`;
- folder: lab 04 on a small `folder:` dataset, 125 training and 75 test photos per class.
"""

from __future__ import annotations

import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from labkit.core import project_root

BENCH_CACHE = Path(os.path.expanduser("~")) / ".cache" / "labkit-bench"
ROWS: list[tuple[str, str, str]] = []  # (benchmark, figure, value) in the order measured


def report(bench: str, figure: str, value) -> None:
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    ROWS.append((bench, figure, text))
    print(f"  {bench:<8} {figure:<52} {text}", flush=True)


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ----------------------------------------------------------------------------- data for real benchmarks
def _archives() -> Path | None:
    for folder in (os.environ.get("LABKIT_BENCH_DATA"), project_root().parent / "shared" / "data"):
        if folder and Path(folder).is_dir():
            return Path(folder)
    return None


def _unpacked(archive: str, inner: str) -> Path | None:
    """`BENCH_CACHE/<inner>` unpacked from `<archives>/<archive>` once; None without the archive."""
    target = BENCH_CACHE / inner
    if target.is_dir():
        return target
    source = _archives()
    if source is None or not (source / archive).is_file():
        return None
    BENCH_CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BENCH_CACHE) as tmp, tarfile.open(source / archive) as tar:
        tar.extractall(tmp, filter="data")
        os.replace(Path(tmp) / inner, target)
    return target


def held_out(
    train_dir: Path, name: str, n_test: int, n_train: int | None = None, test_name: str = "test"
) -> Path:
    """A folder `BENCH_CACHE/holdout/<name>/{train,<test_name>}/<class>/` of links into `train_dir`:
    `n_test` images per class held out as the test split (a fixed shuffle), `n_train` (default: the
    rest) for training."""
    root = BENCH_CACHE / "holdout" / name
    if root.is_dir():
        return root
    tmp = Path(tempfile.mkdtemp(dir=BENCH_CACHE))
    rng = random.Random(12345)
    for cls in sorted(p.name for p in train_dir.iterdir() if p.is_dir()):
        files = sorted(p.name for p in (train_dir / cls).iterdir())
        rng.shuffle(files)
        train = files[n_test:] if n_train is None else files[n_test : n_test + n_train]
        for split, chosen in ((test_name, files[:n_test]), ("train", train)):
            (tmp / split / cls).mkdir(parents=True)
            for f in chosen:
                (tmp / split / cls / f).symlink_to(train_dir / cls / f)
    root.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, root)
    return root


# ----------------------------------------------------------------------------- benchmarks
def _run_labs(labs: list[str], profile: str, **params) -> dict:
    from course import run as runner

    out = Path(tempfile.mkdtemp(prefix=f"bench-{profile}-"))
    outcomes = runner.run(labs, profile=profile, params=params, out=out, keep_going=True, html_index=False)
    failed = [f"{o.notebook}: {o.error}" for o in outcomes if o.status != "ok"]
    if failed:
        raise RuntimeError("; ".join(failed))
    return {o.notebook: o for o in outcomes}


def bench_smoke() -> None:
    """Every lab under the smoke profile, as CI runs them: seconds per lab and in all."""
    outcomes = _run_labs([], "smoke")
    for name, o in outcomes.items():
        report("smoke", f"{name} seconds", o.seconds)
    report("smoke", "all eight labs, seconds", round(sum(o.seconds for o in outcomes.values()), 1))


def bench_fit() -> None:
    """`fit` against a bare PyTorch loop: same model and TensorLoader batches, one epoch each, alternated."""
    from torch import nn

    from labkit import zoo
    from labkit.core import native_bfloat16
    from labkit.data import load_dataset, make_loaders
    from labkit.train import fit

    # The network every bare-loop figure in the README was measured on (lab 02's CIFAR-10 net until
    # issue 24), fixed here so the figure compares machines, not recipes.
    recipe = {"channels": [24, 48, 96], "hidden": 0, "dropout": 0.0, "batch_size": 256}
    splits = load_dataset("shapes", n_per_class=300, image_size=32, augment="none")
    loader = make_loaders(splits, recipe["batch_size"], seed=0).train

    def model():
        torch.manual_seed(0)
        return zoo.naive_network(splits.num_classes, recipe)

    def bare(bfloat16: bool = False) -> float:
        net = model().to(memory_format=torch.channels_last).train()
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
        loss_fn = nn.CrossEntropyLoss(label_smoothing=0.2)
        start = time.perf_counter()
        for x, y in loader:
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
                logits = net(x.contiguous(memory_format=torch.channels_last)).float()
            loss_fn(logits, y).backward()
            opt.step()
        return time.perf_counter() - start

    def via_fit() -> float:
        options = {"optimizer": "nesterov", "lr": 0.01, "weight_decay": 5e-4, "label_smoothing": 0.2}
        history = fit(model(), loader, None, epochs=1, channels_last=True, progress=False, **options)
        return float(history.df["seconds"].iloc[0])

    bare(), via_fit()  # warm-up
    pairs = [(bare(), via_fit()) for _ in range(7)]
    n = len(splits.train)
    bare_speed, fit_speed = (round(n / statistics.median(p[i] for p in pairs)) for i in (0, 1))
    report("fit", "bare loop, images/s (a 24-48-96 naive CNN, 32 px, float32)", bare_speed)
    report("fit", "fit, images/s", fit_speed)
    ratio = round(statistics.median(b / f for b, f in pairs), 3)
    report("fit", "fit / bare-loop throughput (median of 7 pairs)", ratio)
    # bfloat16 autocast, as the CIFAR-10 recipes use where the CPU has it natively (AMX, AVX512-BF16).
    bare(True)
    fast = round(n / statistics.median(bare(True) for _ in range(5)))
    native = "native" if native_bfloat16("cpu") else "emulated: the recipes stay in float32 here"
    report("fit", f"bare loop in bfloat16 ({native}), images/s", fast)


def bench_loader() -> None:
    """Images per second out of the training loader: per-sample DataLoader against TensorLoader."""
    from labkit.data import load_dataset, make_loaders

    for size, augment in ((32, "shift"), (64, "light")):
        splits = load_dataset("shapes", n_per_class=200, image_size=size, augment=augment)
        for kind, in_memory in (("DataLoader (per image)", False), ("TensorLoader (per batch)", True)):
            loader = make_loaders(splits, 256, seed=0, in_memory=in_memory, num_workers=0).train
            seconds = median_seconds(lambda loader=loader: sum(len(y) for _, y in loader), repeats=3)
            report(
                "loader",
                f"{kind}, {size} px, augment={augment}, images/s",
                round(len(splits.train) / seconds),
            )


def _seconds(net, x) -> float:
    start = time.perf_counter()
    net(x)
    return time.perf_counter() - start


@torch.no_grad()
def bench_features() -> None:
    """Images per second of frozen feature extraction (lab 04): the network as it is against the copy
    with batch-norm folded into the convolutions that `extract_features` runs (alternated pairs)."""
    from torch import nn

    from labkit.models import efficientnet_lite
    from labkit.models.features import fold_batchnorm

    for variant, size in ((0, 224), (2, 260)):
        net = efficientnet_lite(variant)
        body = nn.Sequential(net.features, net.pool).to(memory_format=torch.channels_last)
        folded = fold_batchnorm(body)
        x = torch.randn(32, 3, size, size).contiguous(memory_format=torch.channels_last)
        body(x), folded(x)  # warm-up
        pairs = [(_seconds(body, x), _seconds(folded, x)) for _ in range(5)]
        name = f"EfficientNet-Lite{variant}, {size} px, batch 32"
        report(
            "features",
            f"{name}: plain / folded, images/s",
            f"{round(32 / statistics.median(p for p, _ in pairs))} / "
            f"{round(32 / statistics.median(f for _, f in pairs))}",
        )
        report(
            "features",
            f"{name}: folded / plain throughput (median of 5 pairs)",
            round(statistics.median(p / f for p, f in pairs), 2),
        )


def bench_cifar() -> None:
    """Labs 02 and 03 under full on CIFAR-10 with 5,000 training images held out as the test set."""
    train_dir = _unpacked("cifar10-train.tar.gz", "cifar10")
    if train_dir is None:
        report("cifar", "skipped", "no cifar10-train.tar.gz (see the module docstring)")
        return
    root = held_out(train_dir / "train", "cifar10", n_test=500).parent
    outcomes = _run_labs(["02", "03"], "full", dataset="cifar10", data_root=str(root))
    lab02, lab03 = outcomes["02_naive_cnn"].metrics, outcomes["03_residual_inception"].metrics
    report("cifar", "naive CNN (lab 02): train seconds", lab02["train_seconds"])
    report("cifar", "naive CNN (lab 02): test accuracy", lab02["test_accuracy"])
    report("cifar", "naive CNN (lab 02): trained in bfloat16", lab02.get("bfloat16"))
    for name, v in lab03["variants"].items():
        report(
            "cifar",
            f"lab 03 variant {name}: seconds / test accuracy",
            f"{v['train_seconds']} / {v['test_accuracy']}",
        )
    report("cifar", "residual network (lab 03, full recipe): train seconds", lab03["resnet_train_seconds"])
    report("cifar", "residual network (lab 03, full recipe): test accuracy", lab03["resnet_test_accuracy"])
    report("cifar", "residual network: test accuracy, one view", lab03["resnet_test_accuracy_no_tta"])
    report("cifar", "residual network: trained in bfloat16", lab03.get("resnet_bfloat16"))
    report("cifar", "lab 03 whole notebook, seconds", outcomes["03_residual_inception"].seconds)


def _bench_lab04(name: str, dataset: str, root: Path) -> None:
    m = _run_labs(["04"], "full", dataset=dataset, data_root=str(root))["04_transfer_learning"].metrics
    report(name, "head seconds (features + head training)", m["head_train_seconds"])
    for key in ("frozen_test_accuracy", "finetune_test_accuracy", "finetune_aug_test_accuracy"):
        report(name, key, m[key])
    gains = {
        run: f"{g['wins']} won, {g['losses']} lost, p={g['p_value']:.2f}"
        for run, g in m["fine_tune_gains"].items()
    }
    report(name, "fine-tuned against frozen on the validation split (McNemar)", gains)
    report(name, "chosen on the validation split", m["chosen"])
    report(name, "chosen_test_accuracy", m["chosen_test_accuracy"])


def bench_cats() -> None:
    """Lab 04 on cats vs dogs: 1,500 training images, 500 held out as `validation/` (the test split)."""
    train_dir = _unpacked("cats_and_dogs-train.tar.gz", "cats_and_dogs")
    if train_dir is None:
        report("cats", "skipped", "no cats_and_dogs-train.tar.gz (see the module docstring)")
        return
    root = held_out(train_dir / "train", "cats_and_dogs_filtered", n_test=250, test_name="validation")
    _bench_lab04("cats", "cats_vs_dogs", root.parent)


def bench_folder() -> None:
    """Lab 04 on a small folder dataset the size of PyTorch's transfer-learning tutorial's."""
    train_dir = _unpacked("cats_and_dogs-train.tar.gz", "cats_and_dogs")
    if train_dir is None:
        report("folder", "skipped", "no cats_and_dogs-train.tar.gz (see the module docstring)")
        return
    root = held_out(train_dir / "train", "small_folder", n_test=75, n_train=125)
    _bench_lab04("folder", f"folder:{root}", root.parent)
    # ImageNet features separate full-size cats and dogs almost perfectly (0.993), so this check cannot
    # see whether fine-tuning hurts; two harder folders of the same size: the same photographs at 32 px,
    # and CIFAR-10's cats and dogs (32 px, a pair its networks confuse most).
    low = _small_copy(root, "small_folder_32px", side=32)
    _bench_lab04("folder-32px", f"folder:{low}", low.parent)
    cifar = _unpacked("cifar10-train.tar.gz", "cifar10")
    if cifar is None:
        report("folder-cifar", "skipped", "no cifar10-train.tar.gz")
        return
    pairs = _two_classes(cifar / "train", "cifar10_cat_dog", ("cat", "dog"))
    root = held_out(pairs, "small_folder_cifar", n_test=75, n_train=125)
    _bench_lab04("folder-cifar", f"folder:{root}", root.parent)


def _small_copy(root: Path, name: str, side: int) -> Path:
    """`BENCH_CACHE/holdout/<name>`: every image under `root` shrunk to `side` x `side` pixels (PNG)."""
    from PIL import Image

    target = BENCH_CACHE / "holdout" / name
    if target.is_dir():
        return target
    tmp = Path(tempfile.mkdtemp(dir=BENCH_CACHE))
    for image in sorted(p for p in root.rglob("*") if p.is_file()):
        out = (tmp / image.relative_to(root)).with_suffix(".png")
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.open(image).convert("RGB").resize((side, side), Image.Resampling.BICUBIC).save(out)
    os.replace(tmp, target)
    return target


def _two_classes(train_dir: Path, name: str, classes: tuple[str, str]) -> Path:
    """`BENCH_CACHE/<name>/`: links to the folders of two classes of an ImageFolder tree."""
    target = BENCH_CACHE / name
    target.mkdir(parents=True, exist_ok=True)
    for cls in classes:
        if not (target / cls).exists():
            (target / cls).symlink_to(train_dir / cls)
    return target


def bench_gpu() -> None:
    """On a CUDA GPU only: lab 03's residual-network recipe (airbench's network on CIFAR-10) with AMP
    and channels-last; seconds to 94 %."""
    if not torch.cuda.is_available():
        report("gpu", "skipped", "no CUDA GPU")
        return
    train_dir = _unpacked("cifar10-train.tar.gz", "cifar10")
    if train_dir is None:
        report("gpu", "skipped", "no cifar10-train.tar.gz")
        return
    from course.train import train_recipe

    root = held_out(train_dir / "train", "cifar10", n_test=500).parent
    result = train_recipe(
        "resnet",
        "cifar10",
        str(root),
        device="cuda",
        amp=True,
        target=0.94,
        out=tempfile.mkdtemp(prefix="bench-gpu-"),
        progress=False,
    )
    for key, value in result.items():
        report("gpu", key, value)


def bench_judge() -> None:
    """Lab 08 under full on shapes: how often a network that took no part in the synthesis names the
    class models (EfficientNet-Lite2 on Lite0's ImageNet class models; the seed-1 network on `shapes`),
    for the bare pixel ascent and for feature visualisation, and the lab's seconds. Run alone, the lab
    explains the quick lab-02 network `labkit.zoo` trains (`make lab` explains lab 02's own)."""
    outcome = _run_labs(["08"], "full")["08_class_model_synthesis"]
    m = outcome.metrics
    classes = len(m["imagenet_classes"])
    for key in (
        "imagenet_judge_top1_pixels",
        "imagenet_judge_top5_pixels",
        "imagenet_judge_top1",
        "imagenet_judge_top5",
    ):
        report("judge", f"{key} (Lite2, {classes} classes; _pixels: regularised pixels)", round(m[key], 3))
    report(
        "judge",
        "cross_model_recognition on shapes (best setting, maybe the ensemble's)",
        round(m["cross_model_recognition"], 3),
    )
    report(
        "judge", "cross_model_recognition_fourier on shapes", round(m["cross_model_recognition_fourier"], 3)
    )
    report("judge", "lab 08 under full, seconds", outcome.seconds)


def _train_run(processes: int, threads: int, out: Path) -> dict:
    """`python -m course train naive` on shapes under smoke, 3 epochs, in 1 process or under torchrun
    in `processes` processes, each with `threads` threads; the figures it recorded."""
    launcher = (
        [sys.executable]
        if processes == 1
        else [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    )
    args = "-m course train naive --dataset shapes --profile smoke --epochs 3 --out".split() + [str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(launcher + args, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(launcher + args)} failed: {done.stderr[-2000:]}")
    return json.loads((out / "metrics" / "train_naive_shapes.json").read_text())


def bench_ddp() -> None:
    """Two CPU processes (torchrun, gloo, one thread each) against one process with two threads:
    the same training (lab 02's smoke recipe on shapes, 3 epochs; the two processes take 16 of each
    batch of 32), alternated three times, with one process of one thread for reference.

    On two cores expect little: both sides use the same two cores for the same arithmetic. The
    processes gain what one thread per process saves in splitting every operation between threads
    (small convolutions split badly), and lose the all-reduce of the gradients after every step
    (through shared memory, but a synchronisation of both processes) and the launch. The speed-up
    DistributedDataParallel is for needs more devices: several GPUs, or machines. On a busy machine
    the two threads of one process wait for each other at every operation, and its figure collapses
    (the one-thread reference shows it): time this on a quiet machine.
    """
    root = Path(tempfile.mkdtemp(prefix="bench-ddp-"))
    sides = {
        "1 process x 2 threads": (1, 2),
        "2 processes x 1 thread (torchrun, gloo)": (2, 1),
        "1 process x 1 thread (reference)": (1, 1),
    }
    runs: dict[str, list[dict]] = {label: [] for label in sides}
    for i in range(3):
        for label, (processes, threads) in sides.items():
            runs[label].append(_train_run(processes, threads, root / f"{processes}p{threads}t_{i}"))
    for label, rs in runs.items():
        report(
            "ddp", f"{label}: train seconds (median of 3)", statistics.median(r["train_seconds"] for r in rs)
        )
        report("ddp", f"{label}: images/s", statistics.median(r["images_per_second"] for r in rs))
        report("ddp", f"{label}: test accuracy", rs[0]["test_accuracy"])
    one, two = runs["1 process x 2 threads"], runs["2 processes x 1 thread (torchrun, gloo)"]
    pairs = [a["train_seconds"] / b["train_seconds"] for a, b in zip(one, two)]
    report("ddp", "speed-up of 2 processes over 1 (median of 3 pairs)", round(statistics.median(pairs), 3))


def _as_expected(student, result: dict) -> bool:
    """Whether grading gave a synthetic student (`course.grading.synthetic.Student`) what its kind should
    get: full marks for full answers, 0 for the untouched student version, the answered exercises' points
    for a partial one, the wrong exercises' points lost for a wrong one (what else it loses is not
    judged), unreadable / unknown lab for a malformed file."""
    if result["status"] != student.expected_status:
        return False
    if student.expected_points is None:
        return True
    points = {e["id"]: e["points"] for e in result["exercises"]}
    if student.wrong:
        return all(points[e] == 0 for e in student.wrong)
    return sum(points.values()) == student.expected_points


def bench_grading() -> None:
    """Grading a synthetic class (`course.grading.synthetic`: full, partial, wrong, empty, near-duplicate
    and malformed submissions) of lab 02 under smoke: $BENCH_CLASS students (default 200), one per core
    at a time. Throughput, the grader's overhead per submission beyond the lab's own kernel time
    (result.json's `seconds` - `notebook_seconds`), peak memory, and whether each kind got what it should."""
    import shutil
    from collections import defaultdict

    from course.grading.grade import grade
    from course.grading.synthetic import make_class
    from labkit.core import LabError

    text = os.environ.get("BENCH_CLASS", "200")
    if not text.isdigit():
        raise LabError(f"BENCH_CLASS={text!r}: give the number of students, e.g. BENCH_CLASS=200.")
    n = int(text)
    work = Path(tempfile.mkdtemp(prefix="bench-grading-"))
    try:
        manifest = make_class("02", work / "class", n)
        start = time.perf_counter()
        results = grade(
            work / "class" / "submissions", work / "out", params={"profile": "smoke"}, log=lambda *a: None
        )
        minutes = (time.perf_counter() - start) / 60
        ran = [r for r in results if "notebook_seconds" in r]  # the worker graded it (not refused at once)
        jobs = os.cpu_count() or 1
        report("grading", f"lab 02 smoke, class of {n}, {jobs} at once: wall minutes", round(minutes, 2))
        report("grading", "submissions per minute (the whole class)", round(n / minutes, 2))
        report("grading", "graded submissions per minute (a notebook run)", round(len(ran) / minutes, 2))
        if ran:
            seconds = [r["seconds"] for r in ran]
            kernel = [r["notebook_seconds"] for r in ran]
            report("grading", "seconds per graded submission, median (worker)", statistics.median(seconds))
            report("grading", "lab's own kernel seconds per submission, median", statistics.median(kernel))
            overhead = [r["seconds"] - r["notebook_seconds"] for r in ran]
            report(
                "grading",
                "grader overhead per submission, median seconds",
                round(statistics.median(overhead), 1),
            )
            report("grading", "grader overhead per submission, max seconds", round(max(overhead), 1))
            report(
                "grading",
                "peak RSS of one submission's processes, MiB (max)",
                max(r["peak_rss_mib"] for r in ran),
            )
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
        report("grading", "grader's own peak RSS (this process), MiB", own)
        report("grading", "largest worker or kernel process, peak RSS, MiB", children)
        tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        unexpected = []
        for r in results:
            student = manifest.students[r["student"]]
            good = _as_expected(student, r)
            tally[student.kind][0] += good
            tally[student.kind][1] += 1
            if not good:
                got = sum(e["points"] for e in r["exercises"])
                unexpected.append(f"{r['student']} ({student.kind}: {r['status']}, {got:g} points)")
        for kind, (good, count) in sorted(tally.items()):
            report("grading", f"{kind}: graded as expected", f"{good}/{count}")
        if unexpected:
            report(
                "grading",
                "not as expected",
                ", ".join(unexpected[:12]) + (" ..." if len(unexpected) > 12 else ""),
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


BENCHMARKS = {
    "smoke": bench_smoke,
    "fit": bench_fit,
    "loader": bench_loader,
    "features": bench_features,
    "ddp": bench_ddp,
    "cifar": bench_cifar,
    "cats": bench_cats,
    "folder": bench_folder,
    "gpu": bench_gpu,
    "grading": bench_grading,
    "judge": bench_judge,
}


def main(argv: list[str]) -> int:
    chosen = argv or list(BENCHMARKS)
    unknown = [n for n in chosen if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}", file=sys.stderr)
        return 2
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"{'cuda: ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}",
        flush=True,
    )
    for name in chosen:
        start = time.perf_counter()
        try:
            BENCHMARKS[name]()
        except Exception as err:  # noqa: BLE001 - one failing benchmark is reported, the others still run
            report(name, "FAILED", f"{type(err).__name__}: {err}")
        report(name, "benchmark wall seconds", round(time.perf_counter() - start, 1))
    peak = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    report("memory", "peak RSS of one process (bench or a lab kernel), MiB", round(peak / 1024))
    print("\n" + "\n".join(f"{b:<8} {f:<52} {v}" for b, f, v in ROWS))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
