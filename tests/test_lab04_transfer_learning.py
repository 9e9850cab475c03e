"""Lab 04 under the smoke profile: the offline backbone recognises the photographs, the
frozen/fine-tuned/scratch comparison is recorded, and the network kept is chosen on the validation split
(fine-tuning only when McNemar's test says it is better than the frozen network)."""

import math

import pytest

pytestmark = pytest.mark.notebook


def test_backbone_recognises_photographs(smoke_metrics):
    m = smoke_metrics("04_transfer_learning")
    assert m["backbone"] == "efficientnet_lite0"
    assert m["photo_top1"]["coffee"] == "espresso"
    assert m["photo_top1"]["chelsea"] in {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}


def test_records_the_comparison(smoke_metrics):
    m = smoke_metrics("04_transfer_learning")
    assert m["dataset"] == "shapes"
    keys = (
        "frozen_test_accuracy",
        "finetune_test_accuracy",
        "finetune_aug_test_accuracy",
        "scratch_test_accuracy",
    )
    assert all(0.0 <= m[k] <= 1.0 for k in keys)
    # ImageNet features beat chance (0.1 on 10 classes) by far, even on a handful of images
    assert m["frozen_test_accuracy"] >= 0.4
    assert m["frozen_test_accuracy"] > m["scratch_test_accuracy"]
    assert m["head_train_seconds"] >= m["feature_seconds"] > 0


def test_fine_tuning_is_kept_only_when_it_beats_frozen_beyond_chance_on_the_validation_split(smoke_metrics):
    m = smoke_metrics("04_transfer_learning")
    val, gains = m["val_accuracies"], m["fine_tune_gains"]
    tuned = ["fine-tuned", "fine-tuned + augmentation"]
    assert set(val) == {"frozen", *tuned} and set(gains) == set(tuned)  # the metrics file sorts keys
    for name in tuned:
        wins, losses = gains[name]["wins"], gains[name]["losses"]
        # McNemar's exact test, one-sided: the binomial tail of the disagreements, summed here by hand
        tail = sum(math.comb(wins + losses, k) for k in range(wins, wins + losses + 1)) / 2 ** (wins + losses)
        assert gains[name]["p_value"] == pytest.approx(tail)
        # wins - losses is the difference in validation images right, so it has the accuracies' sign
        assert (wins > losses) == (val[name] > val["frozen"]) and (wins == losses) == (
            val[name] == val["frozen"]
        )
    passed = [name for name in tuned if gains[name]["p_value"] < 0.05]
    expected = max(passed, key=lambda name: val[name]) if passed else "frozen"
    assert m["chosen"] == expected
    test_key = {
        "frozen": "frozen_test_accuracy",
        "fine-tuned": "finetune_test_accuracy",
        "fine-tuned + augmentation": "finetune_aug_test_accuracy",
    }[m["chosen"]]
    assert m["chosen_test_accuracy"] == m[test_key]


def test_only_a_plain_train_moves_the_frozen_features(smoke_metrics):
    """Two forward passes in training mode move a frozen network's batch-norm statistics, and so its features,
    under model.train(); the train mode that keeps frozen batch-norm in eval mode leaves them exactly."""
    drift = smoke_metrics("04_transfer_learning")["bn_feature_drift"]
    assert drift["model.train()"] > 1e-3
    assert drift["train mode"] == 0.0


def test_saves_its_figures(smoke_run):
    outcomes, out = smoke_run
    if "04_transfer_learning" not in outcomes:
        pytest.skip("lab 04 not selected")
    for name in ("imagenet_predictions", "finetune_curves", "test_predictions"):
        assert (out / "figures" / "04_transfer_learning" / f"{name}.png").stat().st_size > 10_000
