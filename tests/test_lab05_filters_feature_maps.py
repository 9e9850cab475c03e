"""Lab 05 under the smoke profile: a unit's gradient is its filter, receptive fields exact, filter patterns
beat real images, and every figure saved and not blank."""

import pytest

pytestmark = pytest.mark.notebook

NOTEBOOK = "05_filters_feature_maps"
FIGURES = (
    "conv1_1_filters", "feature_maps_early", "feature_maps_middle", "feature_maps_deep", "filter_map_pairs",
    "conv3_2_input_channel_norms", "receptive_field_boxes", "feature_maps_deep_no_pooling",
    "max_activating_patches", "filter_patterns", "pretrained_stem_filters", "pretrained_feature_maps_early",
    "pretrained_feature_maps_deep", "pretrained_filter_map_pairs", "pretrained_max_activating_patches",
    "pretrained_filter_patterns", "explorer_static",
)  # fmt: skip


def test_a_conv_units_gradient_is_its_filter(smoke_metrics):
    assert smoke_metrics(NOTEBOOK)["unit_gradient_vs_filter_max_abs_diff"] <= 1e-6


def test_receptive_fields_are_exact(smoke_metrics):
    assert smoke_metrics(NOTEBOOK)["receptive_field_max_error"] == 0


def test_every_filter_pattern_beats_the_real_images(smoke_metrics):
    m = smoke_metrics(NOTEBOOK)
    assert m["filter_pattern_units"] >= 4  # units of both networks
    assert m["filter_pattern_gain_min"] > 1.0
    assert m["filter_pattern_gain"] >= m["filter_pattern_gain_min"]


def test_figures_are_saved_and_not_blank(saved_figures):
    saved_figures(NOTEBOOK, FIGURES)
