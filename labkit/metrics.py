"""Classification metrics through scikit-learn: accuracy, macro precision/recall/F1, per-class
report, confusion matrices, and the predictions CSV.

Introduced in notebooks/02_naive_cnn.ipynb.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    precision_recall_fscore_support,
)

from labkit.core import LabError, atomic_write


def _labels(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if len(y_true) != len(y_pred):
        raise LabError(
            f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}; one prediction per sample."
        )
    if len(y_true) == 0:
        raise LabError("no labels given (empty y_true); evaluate on a non-empty split.")
    return y_true, y_pred


def summary(y_true, y_pred) -> dict[str, float]:
    """Accuracy and macro-averaged precision, recall and F1.

    Macro averages weigh every class alike (a rare class counts as much as a frequent one), over the
    classes present in `y_true` or `y_pred`; a class never predicted has precision 0 (zero_division=0).

    Returns:
        {"accuracy", "precision_macro", "recall_macro", "f1_macro"} as floats.
    """
    y_true, y_pred = _labels(y_true, y_pred)
    scores = precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)[:3]
    macro = {f"{name}_macro": float(v) for name, v in zip(("precision", "recall", "f1"), scores)}
    return {"accuracy": float(accuracy_score(y_true, y_pred)), **macro}


def report(y_true, y_pred, classes: Sequence[str]) -> pd.DataFrame:
    """Per-class precision, recall, F1 and support, as scikit-learn's classification_report.

    Returns:
        DataFrame indexed by class name, then "accuracy", "macro avg", "weighted avg"; columns
        precision, recall, f1-score, support (int). The accuracy row holds the accuracy in f1-score
        (as sklearn prints it) and NaN in precision and recall.
    """
    y_true, y_pred = _labels(y_true, y_pred)
    classes = [str(c) for c in classes]
    _check_range(y_true, y_pred, len(classes), "len(classes)")
    labels = list(range(len(classes)))
    d = classification_report(
        y_true, y_pred, labels=labels, target_names=classes, output_dict=True, zero_division=0
    )
    accuracy = float(accuracy_score(y_true, y_pred))
    d.pop("accuracy", None)
    d.pop("micro avg", None)  # sklearn gives "micro avg" instead of "accuracy" in some label subsets
    rows = {name: d[name] for name in classes}
    rows["accuracy"] = {"precision": np.nan, "recall": np.nan, "f1-score": accuracy, "support": len(y_true)}
    rows["macro avg"], rows["weighted avg"] = d["macro avg"], d["weighted avg"]
    df = pd.DataFrame.from_dict(rows, orient="index")[["precision", "recall", "f1-score", "support"]]
    df["support"] = df["support"].astype(int)
    return df


def _check_range(y_true, y_pred, num_classes: int, what: str) -> None:
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        bad = y[(y < 0) | (y >= num_classes)]
        if len(bad):
            raise LabError(
                f"{name} holds label {int(bad[0])}, outside 0..{num_classes - 1} ({what}={num_classes}); "
                f"pass the class count of the dataset."
            )


def confusion(y_true, y_pred, num_classes: int, normalize: str | None = None) -> np.ndarray:
    """Confusion matrix: rows are true classes, columns predicted classes, over every class 0..K-1.

    Args:
        normalize: None for counts (int64), "true" for rows divided by their sums (each row is then the
            distribution of predictions for that true class; a class without samples gives a row of 0).

    Returns:
        (K, K) array.
    """
    y_true, y_pred = _labels(y_true, y_pred)
    if normalize not in (None, "true"):
        raise LabError(f"normalize={normalize!r}: use None (counts) or 'true' (row-normalised).")
    _check_range(y_true, y_pred, num_classes, "num_classes")
    return confusion_matrix(y_true, y_pred, labels=list(range(num_classes)), normalize=normalize)


def write_predictions_csv(
    path: str | Path, predictions: Any, classes: Sequence[str], ids: Sequence | None = None
) -> Path:
    """Write one row per sample: id, true, predicted, confidence, correct (class names, not indices).

    Args:
        path: the CSV file (written to a temporary file beside it, then renamed).
        predictions: `labkit.train.Predictions` (anything with y_true, y_pred and confidence).
        classes: class names by index.
        ids: one id per sample (file names, dataset indices ...); default 0..N-1.

    Returns:
        the path written.
    """
    y_true, y_pred = _labels(predictions.y_true, predictions.y_pred)
    confidence = np.asarray(predictions.confidence, dtype=float).ravel()
    classes = [str(c) for c in classes]
    _check_range(y_true, y_pred, len(classes), "len(classes)")
    ids = list(range(len(y_true))) if ids is None else list(ids)
    if len(ids) != len(y_true) or len(confidence) != len(y_true):
        n = len(y_true)
        raise LabError(
            f"{n} predictions but {len(ids)} ids and {len(confidence)} confidences; one of each per sample."
        )
    names = np.asarray(classes, dtype=object)
    df = pd.DataFrame({"id": ids, "true": names[y_true], "predicted": names[y_pred]})
    df["confidence"], df["correct"] = confidence.round(6), y_true == y_pred
    with atomic_write(path, newline="") as fh:
        df.to_csv(fh, index=False)
    return Path(path)
