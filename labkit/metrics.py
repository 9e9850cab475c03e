"""Classification metrics through scikit-learn (summary, per-class report, confusion matrix) and the
predictions CSV. Introduced in notebooks/02_naive_cnn.ipynb."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn.metrics as sk
from scipy.stats import binomtest

from labkit.core import LabError, atomic_write


def _labels(
    y_true: Any, y_pred: Any, num_classes: int | None = None, what: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """Both label arrays, flattened: as long as each other, not empty, and within 0..num_classes-1."""
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if len(y_true) != len(y_pred):
        raise LabError(
            f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}; one prediction per sample."
        )
    if len(y_true) == 0:
        raise LabError("no labels given (empty y_true); evaluate on a non-empty split.")
    if num_classes is None:
        return y_true, y_pred
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        bad = y[(y < 0) | (y >= num_classes)]
        if len(bad):
            raise LabError(
                f"{name} holds label {int(bad[0])}, outside 0..{num_classes - 1} ({what}={num_classes}); "
                f"pass the class count of the dataset."
            )
    return y_true, y_pred


def summary(y_true: Any, y_pred: Any) -> dict[str, float]:
    """{"accuracy", "precision_macro", "recall_macro", "f1_macro"} as floats; macro averages weigh every
    class alike, and a class never predicted has precision 0."""
    y_true, y_pred = _labels(y_true, y_pred)
    scores = sk.precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)[:3]
    macro = {f"{name}_macro": float(v) for name, v in zip(("precision", "recall", "f1"), scores)}
    return {"accuracy": float(sk.accuracy_score(y_true, y_pred)), **macro}


def report(y_true: Any, y_pred: Any, classes: Sequence[str]) -> pd.DataFrame:
    """scikit-learn's classification_report as a DataFrame: a row per class name, then "accuracy" (in
    f1-score, as sklearn prints it; NaN in precision and recall), "macro avg" and "weighted avg";
    columns precision, recall, f1-score, support (int)."""
    classes = [str(c) for c in classes]
    y_true, y_pred = _labels(y_true, y_pred, len(classes), "len(classes)")
    labels = list(range(len(classes)))
    d = sk.classification_report(
        y_true, y_pred, labels=labels, target_names=classes, output_dict=True, zero_division=0
    )
    rows = {name: d[name] for name in classes}
    accuracy = float(sk.accuracy_score(y_true, y_pred))
    rows["accuracy"] = {"precision": np.nan, "recall": np.nan, "f1-score": accuracy, "support": len(y_true)}
    rows["macro avg"], rows["weighted avg"] = d["macro avg"], d["weighted avg"]
    df = pd.DataFrame.from_dict(rows, orient="index")[["precision", "recall", "f1-score", "support"]]
    df["support"] = df["support"].astype(int)
    return df


def confusion(y_true: Any, y_pred: Any, num_classes: int, normalize: str | None = None) -> np.ndarray:
    """Confusion matrix (K, K) over classes 0..K-1, rows true, columns predicted: counts (int64), or
    with normalize="true" rows divided by their sums (a class without samples: a row of 0)."""
    if normalize not in (None, "true"):
        raise LabError(f"normalize={normalize!r}: use None (counts) or 'true' (row-normalised).")
    y_true, y_pred = _labels(y_true, y_pred, num_classes, "num_classes")
    return sk.confusion_matrix(y_true, y_pred, labels=list(range(num_classes)), normalize=normalize)


def write_predictions_csv(
    path: str | Path, predictions: Any, classes: Sequence[str], ids: Sequence | None = None
) -> Path:
    """Write one row per sample of `predictions` (a `labkit.train.Predictions`): id, true, predicted,
    confidence, correct, with class names for indices; `ids` (file names, say) default to 0..N-1."""
    names = np.asarray([str(c) for c in classes], dtype=object)
    y_true, y_pred = _labels(predictions.y_true, predictions.y_pred, len(names), "len(classes)")
    confidence = np.asarray(predictions.confidence, dtype=float).ravel()
    ids = list(range(len(y_true))) if ids is None else list(ids)
    if len(ids) != len(y_true) or len(confidence) != len(y_true):
        raise LabError(
            f"{len(y_true)} predictions but {len(ids)} ids and {len(confidence)} confidences; one of each "
            "per sample."
        )
    df = pd.DataFrame({"id": ids, "true": names[y_true], "predicted": names[y_pred]})
    df["confidence"], df["correct"] = confidence.round(6), y_true == y_pred
    with atomic_write(path, newline="") as fh:
        df.to_csv(fh, index=False)
    return Path(path)


def class_ranks(scores: Any, targets: Any) -> np.ndarray:
    """The rank of each row's target class among that row's `scores` (N, K), logits or probabilities:
    1 + the number of classes scored strictly higher, so 1 = the class named first (a tie counts for the
    target). Introduced in notebooks/08_class_model_synthesis.ipynb, where a judge network ranks the
    class of each class model."""
    s = np.asarray(scores.detach().cpu() if hasattr(scores, "detach") else scores, dtype=np.float64)
    t = np.asarray(targets.detach().cpu() if hasattr(targets, "detach") else targets).astype(np.int64)
    if s.ndim != 2 or t.shape != (len(s),):
        raise LabError(f"scores {s.shape} and targets {t.shape}: expected (N, K) scores and N targets.")
    if len(t) and (t.min() < 0 or t.max() >= s.shape[1]):
        raise LabError(f"targets must be class indices in [0, {s.shape[1]}); got {t.min()} to {t.max()}.")
    own = s[np.arange(len(t)), t]
    return 1 + (s > own[:, None]).sum(axis=1)


def top_k_share(ranks: Any, k: int) -> float:
    """The share of ranks (from `class_ranks`) at most `k`: top-1 / top-5 accuracy when each row is an
    image of its target class."""
    r = np.asarray(ranks)
    if k < 1 or r.size == 0:
        raise LabError(f"top_k_share needs k >= 1 and at least one rank (k={k}, {r.size} ranks).")
    return float((r <= k).mean())


def paired_gain(y_true: Any, base_pred: Any, new_pred: Any) -> dict[str, Any]:
    """Is `new_pred` better than `base_pred` on the same images, beyond chance? McNemar's exact test
    (McNemar 1947): only the images where exactly one of the two is right count; if the two were equally
    good, each such image would be a fair coin. Returns the images only the new one gets right (`wins`),
    only the base gets right (`losses`), and `p_value`, the chance of at least `wins` heads in
    `wins + losses` fair tosses (one-sided: 1.0 when nothing differs). Introduced in
    notebooks/04_transfer_learning.ipynb, where a few dozen validation images decide whether
    fine-tuning is kept over the frozen network."""
    y, base = _labels(y_true, base_pred)
    _, new = _labels(y_true, new_pred)
    base_right, new_right = base == y, new == y
    wins, losses = int((new_right & ~base_right).sum()), int((base_right & ~new_right).sum())
    p = binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue if wins + losses else 1.0
    return {"wins": wins, "losses": losses, "p_value": float(p)}
