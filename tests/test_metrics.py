"""labkit.metrics against numbers worked out by hand on a 6-sample example, the class ranks of a judge
against scikit-learn's top-k accuracy, and McNemar's exact test against the binomial tail summed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import sklearn.metrics as sk

from labkit.core import LabError
from labkit.metrics import (
    class_ranks,
    confusion,
    paired_gain,
    report,
    summary,
    top_k_share,
    write_predictions_csv,
)
from labkit.train import Predictions

# true:  0 0 0 1 1 2
# pred:  0 0 1 1 2 2
Y_TRUE = np.array([0, 0, 0, 1, 1, 2])
Y_PRED = np.array([0, 0, 1, 1, 2, 2])
CLASSES = ["cat", "dog", "owl", "yak"]  # "yak" has no sample and is never predicted
# per class precision, recall, F1:
#   cat: 2/2, 2/3, 0.8     dog: 1/2, 1/2, 0.5     owl: 1/2, 1/1, 2/3
P = [1.0, 0.5, 0.5]
R = [2 / 3, 0.5, 1.0]
F1 = [0.8, 0.5, 2 / 3]


def test_summary_matches_hand_computation():
    s = summary(Y_TRUE, Y_PRED)
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["precision_macro"] == pytest.approx(np.mean(P))
    assert s["recall_macro"] == pytest.approx(np.mean(R))
    assert s["f1_macro"] == pytest.approx(np.mean(F1))
    assert all(isinstance(v, float) for v in s.values())


def test_summary_never_predicted_class_counts_zero_precision():
    s = summary([0, 1, 1], [0, 0, 0])
    # class 0: precision 1/3, recall 1; class 1: never predicted -> precision 0, recall 0
    assert s["precision_macro"] == pytest.approx((1 / 3 + 0) / 2)
    assert s["recall_macro"] == pytest.approx(0.5)


def test_report_table():
    df = report(Y_TRUE, Y_PRED, CLASSES)
    assert list(df.index) == ["cat", "dog", "owl", "yak", "accuracy", "macro avg", "weighted avg"]
    assert list(df.columns) == ["precision", "recall", "f1-score", "support"]
    np.testing.assert_allclose(df.loc[["cat", "dog", "owl"], "precision"], P)
    np.testing.assert_allclose(df.loc[["cat", "dog", "owl"], "recall"], R)
    np.testing.assert_allclose(df.loc[["cat", "dog", "owl"], "f1-score"], F1)
    assert df["support"].tolist() == [3, 2, 1, 0, 6, 6, 6]
    assert df.loc["yak", ["precision", "recall", "f1-score"]].tolist() == [0.0, 0.0, 0.0]
    assert df.loc["accuracy", "f1-score"] == pytest.approx(4 / 6)
    assert np.isnan(df.loc["accuracy", "precision"])
    # macro over all 4 named classes (yak counts as 0), weighted by support
    assert df.loc["macro avg", "precision"] == pytest.approx(sum(P) / 4)
    assert df.loc["weighted avg", "recall"] == pytest.approx((3 * 2 / 3 + 2 * 0.5 + 1 * 1.0) / 6)


def test_confusion_counts_and_row_normalised():
    cm = confusion(Y_TRUE, Y_PRED, num_classes=4)
    expected = np.array([[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(cm, expected)
    assert np.issubdtype(cm.dtype, np.integer)
    norm = confusion(Y_TRUE, Y_PRED, num_classes=4, normalize="true")
    np.testing.assert_allclose(norm[:3], [[2 / 3, 1 / 3, 0, 0], [0, 0.5, 0.5, 0], [0, 0, 1, 0]])
    np.testing.assert_array_equal(norm[3], 0.0)  # no sample of class 3: a row of zeros, not NaN


def test_bad_labels_are_reported():
    with pytest.raises(LabError, match=r"y_pred holds label 5, outside 0\.\.3"):
        confusion([0, 1], [0, 5], num_classes=4)
    with pytest.raises(LabError, match="y_true has 2 labels but y_pred has 3"):
        summary([0, 1], [0, 1, 1])
    with pytest.raises(LabError, match="normalize='all'"):
        confusion([0], [0], 2, normalize="all")


def test_write_predictions_csv(tmp_path):
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.25, 0.25, 0.5]], dtype=np.float32)
    preds = Predictions(y_true=np.array([0, 2, 2]), y_pred=probs.argmax(1), probs=probs)
    path = write_predictions_csv(tmp_path / "out" / "preds.csv", preds, ["cat", "dog", "owl"],
                                 ids=["a.jpg", "b.jpg", "c.jpg"])  # fmt: skip
    assert sorted(p.name for p in path.parent.iterdir()) == ["preds.csv"]  # no temporary file left
    lines = path.read_text().splitlines()
    assert lines[0] == "id,true,predicted,confidence,correct"
    assert lines[1:] == ["a.jpg,cat,cat,0.9,True", "b.jpg,owl,dog,0.7,False", "c.jpg,owl,owl,0.5,True"]
    df = pd.read_csv(path)
    assert df["correct"].dtype == bool


def test_write_predictions_csv_default_ids_and_length_check(tmp_path):
    preds = Predictions(
        y_true=np.array([1, 0]), y_pred=np.array([1, 1]), probs=np.array([[0.4, 0.6], [0.3, 0.7]])
    )
    path = write_predictions_csv(tmp_path / "p.csv", preds, ["a", "b"])
    assert pd.read_csv(path)["id"].tolist() == [0, 1]
    with pytest.raises(LabError, match="2 predictions but 3 ids"):
        write_predictions_csv(tmp_path / "q.csv", preds, ["a", "b"], ids=[1, 2, 3])
    assert not (tmp_path / "q.csv").exists()


def test_class_ranks_count_the_classes_scored_higher_and_agree_with_sklearns_top_k_accuracy():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    assert class_ranks(scores, [1, 2, 0]).tolist() == [1, 3, 3]
    assert class_ranks(np.array([[0.4, 0.4, 0.2]]), [1]).tolist() == [1]  # a tie counts for the target
    rng = np.random.default_rng(0)
    logits, targets = rng.normal(size=(200, 50)), rng.integers(0, 50, 200)
    ranks = class_ranks(logits, targets)
    for k in (1, 5, 10):
        oracle = sk.top_k_accuracy_score(targets, logits, k=k, labels=np.arange(50))
        assert top_k_share(ranks, k) == pytest.approx(oracle)


def test_class_ranks_refuse_targets_outside_the_classes_and_mismatched_shapes():
    with pytest.raises(LabError, match=r"class indices in \[0, 3\)"):
        class_ranks([[0.1, 0.2, 0.7]], [3])
    with pytest.raises(LabError, match="expected \\(N, K\\) scores and N targets"):
        class_ranks([[0.1, 0.2, 0.7]], [0, 1])
    with pytest.raises(LabError, match="k >= 1"):
        top_k_share([1, 2], 0)


def binomial_tail(wins: int, n: int) -> float:
    """P(at least `wins` heads in `n` fair tosses), summed term by term."""
    return sum(math.comb(n, k) for k in range(wins, n + 1)) / 2**n


@pytest.mark.parametrize("wins, losses", [(5, 0), (4, 0), (6, 2), (2, 6), (9, 3), (0, 0)])
def test_paired_gain_counts_only_the_images_the_two_disagree_on(wins, losses):
    rng = np.random.default_rng(wins * 10 + losses)
    both, neither = 30, 4  # images both get right, and both get wrong (with different wrong classes)
    n = both + neither + wins + losses
    y = rng.integers(0, 3, n)
    base, new = y.copy(), y.copy()
    wrong = (y + 1) % 3
    base[both : both + neither], new[both : both + neither] = (
        wrong[both : both + neither],
        (y[both : both + neither] + 2) % 3,
    )
    base[both + neither : both + neither + wins] = wrong[both + neither : both + neither + wins]
    new[n - losses : n] = wrong[n - losses : n]
    order = rng.permutation(n)
    gain = paired_gain(y[order], base[order], new[order])
    assert (gain["wins"], gain["losses"]) == (wins, losses)
    assert gain["p_value"] == pytest.approx(binomial_tail(wins, wins + losses) if wins + losses else 1.0)
    # swapping the two networks turns wins into losses
    swapped = paired_gain(y[order], new[order], base[order])
    assert (swapped["wins"], swapped["losses"]) == (losses, wins)


def test_paired_gain_five_clean_wins_are_the_least_that_pass_at_five_percent():
    assert binomial_tail(4, 4) > 0.05 > paired_gain([1] * 5, [0] * 5, [1] * 5)["p_value"]
    with pytest.raises(LabError, match="y_true has 3 labels but y_pred has 2"):
        paired_gain([0, 1, 1], [0, 1, 1], [0, 1])
