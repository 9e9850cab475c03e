"""labkit.plots.training: figures have the axes, titles, labels and numbers they should."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from labkit.core import LabError  # noqa: E402
from labkit.plots.training import (  # noqa: E402
    compare_curves,
    comparison_table,
    confusion_grid,
    confusion_heatmap,
    curves,
    misclassified_grid,
)
from labkit.train import History, Predictions, smooth  # noqa: E402

CLASSES = ["cat", "dog", "owl"]


def history(best_epoch: int = 3) -> History:
    rows = []
    for e in range(1, 6):
        rows.append(
            {
                "epoch": e,
                "train_loss": 1.0 / e,
                "train_acc": 0.5 + 0.08 * e,
                "val_loss": 1.2 / e + 0.05 * e,
                "val_acc": 0.4 + 0.07 * e,
                "val_loss_smooth": np.nan,
                "lr": 1e-3,
                "seconds": 1.0,
            }
        )
    h = History.from_rows(rows, best_epoch=best_epoch)
    h.df["val_loss_smooth"] = smooth(h.df["val_loss"], 0.6)
    return h


def legend_labels(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_curves_two_panels_raw_and_smoothed_and_best_epoch():
    h = history(best_epoch=3)
    fig = curves(h, smoothing=0.6)
    assert isinstance(fig, Figure)
    loss_ax, acc_ax = fig.axes
    assert (loss_ax.get_title(), acc_ax.get_title()) == ("Loss", "Accuracy")
    assert loss_ax.get_xlabel() == "epoch" and acc_ax.get_ylabel() == "accuracy"
    assert legend_labels(loss_ax) == ["train", "val", "best epoch 3"]
    bold = [ln for ln in loss_ax.get_lines() if ln.get_label() == "train"][0]
    np.testing.assert_allclose(bold.get_ydata(), smooth(h.df["train_loss"], 0.6))
    faint = [ln for ln in loss_ax.get_lines() if ln.get_alpha() == 0.3]
    assert len(faint) == 2  # raw train and val
    np.testing.assert_allclose(faint[0].get_ydata(), h.df["train_loss"])
    star = [ln for ln in acc_ax.get_lines() if ln.get_marker() == "*"][0]
    assert star.get_xdata()[0] == 3 and star.get_ydata()[0] == pytest.approx(h.df["val_acc"].iloc[2])


def test_curves_from_dataframe_finds_best_epoch_and_overfit_frame():
    h = history()
    fig = curves(h.df)  # no History: the best epoch is the lowest smoothed val loss
    best = int(np.argmin(h.df["val_loss_smooth"])) + 1
    assert f"best epoch {best}" in legend_labels(fig.axes[0])
    overfit = pd.DataFrame({"step": [1, 2, 3], "loss": [1.0, 0.5, 0.1], "accuracy": [0.2, 0.6, 1.0]})
    fig = curves(overfit, smoothing=0)
    assert fig.axes[0].get_xlabel() == "step" and legend_labels(fig.axes[0]) == ["batch"]
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), [1.0, 0.5, 0.1])
    with pytest.raises(LabError, match="no loss column"):
        curves(pd.DataFrame({"epoch": [1], "val_acc": [0.5]}))


def test_compare_curves_one_line_per_run():
    a, b = history(), history()
    b.df["val_acc"] = b.df["val_acc"] - 0.1
    fig = compare_curves({"naive": a, "resnet": b}, metric="val_acc")
    (ax,) = fig.axes
    assert legend_labels(ax) == ["naive", "resnet"] and ax.get_title() == "val_acc"
    bold = {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}
    np.testing.assert_allclose(bold["resnet"].get_ydata(), smooth(b.df["val_acc"], 0.6))
    with pytest.raises(LabError, match="has no column 'top5'"):
        compare_curves({"naive": a}, metric="top5")


def test_confusion_heatmap_annotates_counts_and_fractions():
    cm = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 4]])
    fig = confusion_heatmap(cm, CLASSES)
    ax = fig.axes[0]
    assert len(fig.axes) == 2  # heatmap and colour bar
    assert [t.get_text() for t in ax.texts] == [str(v) for v in cm.ravel()]
    assert [t.get_text() for t in ax.get_xticklabels()] == CLASSES
    assert [t.get_text() for t in ax.get_yticklabels()] == CLASSES
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "true")
    assert ax.get_title() == "confusion matrix (counts)"

    fig = confusion_heatmap(cm, CLASSES, normalize=True, title="val")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts][:3] == ["0.83", "0.17", "0.00"] and ax.get_title() == "val"
    with pytest.raises(LabError, match=r"shape \(2, 2\) but there are 3 classes"):
        confusion_heatmap(np.eye(2), CLASSES)


def test_confusion_grid_rows_counts_and_normalised_columns_splits():
    y_true = np.array([0, 0, 1, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 2, 2, 0])
    probs = np.eye(3)[y_pred]
    fig = confusion_grid({"train": (y_true, y_pred), "test": Predictions(y_true, y_pred, probs)}, CLASSES)
    assert len(fig.axes) == 4
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [
        "train: counts (accuracy 0.667)",
        "test: counts (accuracy 0.667)",
        "train: row-normalised",
        "test: row-normalised",
    ]
    assert [t.get_text() for t in fig.axes[0].texts] == ["1", "1", "0", "0", "1", "0", "1", "0", "2"]
    assert [t.get_text() for t in fig.axes[2].texts][:3] == ["0.50", "0.50", "0.00"]


def tile(fig, index: int, ncols: int, size: int) -> np.ndarray:
    """Tile `index` of a `tile_grid` figure: its mosaic is ncols tiles of size x size with equal padding."""
    mosaic = np.asarray(fig.axes[0].images[0].get_array())
    pad = (mosaic.shape[1] - ncols * size) // (ncols + 1)
    r, c = divmod(index, ncols)
    top, left = pad + r * (size + pad), pad + c * (size + pad)
    return mosaic[top : top + size, left : left + size]


def test_misclassified_grid_most_confident_mistakes_first():
    images = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    y_true = np.array([0, 1, 2, 0, 1])
    y_pred = np.array([0, 2, 0, 1, 1])
    conf = np.array([0.9, 0.6, 0.8, 0.7, 0.99])
    fig = misclassified_grid(images, y_true, y_pred, conf, CLASSES, k=2)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.texts] == ["owl → cat (0.80)", "cat → dog (0.70)"]
    assert ax.get_title() == "3 of 5 misclassified; the 2 most confident mistakes"
    np.testing.assert_allclose(tile(fig, 0, 2, 8), images[2].permute(1, 2, 0).numpy() / 255.0)
    np.testing.assert_allclose(tile(fig, 1, 2, 8), images[3].permute(1, 2, 0).numpy() / 255.0)

    floats = images.float() / 255.0
    fig = misclassified_grid(lambda i: floats[i], y_true, y_pred, conf, CLASSES)  # callable, all 3 mistakes
    assert len(fig.axes[0].texts) == 3
    np.testing.assert_allclose(tile(fig, 2, 3, 8), floats[1].permute(1, 2, 0).numpy())
    with pytest.raises(LabError, match="looks normalised"):
        misclassified_grid(floats * 4 - 2, y_true, y_pred, conf, CLASSES)
    fig = misclassified_grid(images, y_true, y_true, conf, CLASSES)
    assert len(fig.axes) == 1 and "no misclassified" in fig.axes[0].texts[0].get_text()


def test_comparison_table():
    rows = [
        {"name": "naive", "params": 1000, "val_acc": 0.8},
        {"name": "resnet", "val_acc": 0.9, "seconds": 12.0},
    ]
    df = comparison_table(rows, sort_by="val_acc")
    assert list(df.index) == ["resnet", "naive"]
    assert list(df.columns) == ["params", "val_acc", "seconds"]
    assert np.isnan(df.loc["resnet", "params"]) and df.loc["naive", "val_acc"] == 0.8
    with pytest.raises(LabError, match="sort_by='top1'"):
        comparison_table(rows, sort_by="top1")
