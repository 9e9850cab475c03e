"""Lab 02 under the smoke profile: the figures it records, and the artefacts it leaves."""

import pandas as pd
import pytest

pytestmark = pytest.mark.notebook


def test_records_headline_figures(smoke_metrics):
    m = smoke_metrics("02_naive_cnn")
    assert m["dataset"] == "shapes"
    assert m["test_accuracy"] >= 0.90
    assert 0.85 <= m["test_precision_macro"] <= 1.0 and 0.85 <= m["test_recall_macro"] <= 1.0
    assert m["overfit_final_loss"] < 0.1, "the one-batch overfit test did not drive the loss down"
    assert 1 <= m["best_epoch"] <= m["epochs_run"]
    assert m["params"] > 10_000 and m["train_seconds"] > 0
    assert m["layer_table_params"] == m["params"], "the layer table by hand (exercise 4) misses parameters"


def test_leaves_checkpoint_csv_and_figures(smoke_run):
    outcomes, out = smoke_run
    if "02_naive_cnn" not in outcomes:
        pytest.skip("lab 02 not selected")
    assert (out / "checkpoints" / "02_naive_cnn.pt").is_file()
    predictions = pd.read_csv(out / "metrics" / "02_naive_cnn_test_predictions.csv")
    assert list(predictions.columns[:4]) == ["id", "true", "predicted", "confidence"]
    accuracy = (predictions["true"] == predictions["predicted"]).mean()
    assert accuracy == pytest.approx(smoke_metrics_value(out, "test_accuracy"))
    history = pd.read_csv(out / "metrics" / "02_naive_cnn_history.csv")
    assert len(history) == smoke_metrics_value(out, "epochs_run")
    for name in ("overfit_one_batch", "learning_curves", "confusion_matrices"):
        assert (out / "figures" / "02_naive_cnn" / f"{name}.png").stat().st_size > 10_000


def smoke_metrics_value(out, key):
    import json

    return json.loads((out / "metrics" / "02_naive_cnn.json").read_text())[key]
