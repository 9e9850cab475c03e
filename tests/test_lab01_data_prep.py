"""Lab 01 under the smoke profile: the figures it records, and the figures it saves."""

import pytest

pytestmark = pytest.mark.notebook


def test_records_split_sizes_and_class_counts(smoke_metrics):
    m = smoke_metrics("01_data_prep")
    assert m["dataset"] == "shapes" and m["num_classes"] >= 8
    counts = m["class_counts"]
    assert set(counts) == {"train", "val", "test"}
    assert [sum(counts[s].values()) for s in ("train", "val", "test")] == [
        m["n_train"],
        m["n_val"],
        m["n_test"],
    ]
    total = m["n_train"] + m["n_val"] + m["n_test"]
    assert m["n_train"] / total == pytest.approx(0.70, abs=0.02)
    assert m["n_val"] / total == pytest.approx(0.15, abs=0.02) and m["n_test"] / total == pytest.approx(
        0.15, abs=0.02
    )
    # stratified: every class has the same count within a split (shapes is balanced)
    assert all(len(set(counts[s].values())) == 1 for s in counts)
    assert m["val_share_error_stratified"] <= m["val_share_error_random"]


def test_normalisation_and_sampler_figures(smoke_metrics):
    m = smoke_metrics("01_data_prep")
    assert all(abs(v) < 1e-3 for v in m["normalized_train_mean"])
    assert all(abs(v - 1) < 1e-3 for v in m["normalized_train_std"])
    assert m["n_bad_images"] == 0
    assert m["imbalance_ratio"] > 5 and m["sampled_imbalance_ratio"] < 2
    # statistics of the training split and of all images: close on shapes, but not the same numbers
    assert 0 < m["stats_train_vs_all"] < 0.05


def test_both_loaders_are_measured(smoke_metrics):
    speed = smoke_metrics("01_data_prep")["loader_images_per_second"]
    assert set(speed) == {"per image (DataLoader)", "per batch (TensorLoader)"} and min(speed.values()) > 0


def test_saves_its_figures(saved_figures):
    saved_figures(
        "01_data_prep",
        [
            "samples",
            "masks",
            "class_balance",
            "augment_light",
            "augment_strong",
            "augment_batch",
            "augment_shift",
            "sampler",
        ],
    )
