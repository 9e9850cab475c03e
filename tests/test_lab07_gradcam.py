"""Lab 07 under smoke: the localisation table per method and the pretrained network's answers on photos.

The smoke profile's `shapes` network is barely trained, so its scores are only checked for shape and
range here; the >= 0.90 Grad-CAM pointing game is a `full` target (see the README). The ImageNet
network is the real pretrained one under both profiles, so its answers are checked for content.
"""

import pytest

METHODS = {"saliency", "guided backprop", "Grad-CAM", "guided Grad-CAM"}
CATS = {"tabby", "tiger cat", "Egyptian cat"}


@pytest.mark.notebook
def test_lab07_records_pointing_game_and_energy_per_method(smoke_metrics):
    m = smoke_metrics("07_gradcam")
    assert set(m["pointing_game"]) == METHODS and set(m["energy_in_mask"]) == METHODS
    assert all(0.0 <= v <= 1.0 for v in [*m["pointing_game"].values(), *m["energy_in_mask"].values()])
    # the uniform map never points and puts exactly the objects' share of the image on them
    assert m["pointing_game_baselines"]["uniform (baseline)"] == 0.0
    assert 0.03 < m["energy_in_mask_baselines"]["uniform (baseline)"] < 0.3
    assert m["gradcam_layer"] == "features.relu3_2"  # the last conv layer, as Selvaraju et al.
    assert set(m["gradcam_pointing_game_by_layer"]) == {"relu1_2", "relu2_2", "relu3_2", "pool3"}


@pytest.mark.notebook
def test_lab07_pretrained_network_names_the_photos_and_separates_two_objects(smoke_metrics):
    m = smoke_metrics("07_gradcam")
    top1 = m["pretrained_top1"]
    assert top1["chelsea"] in CATS
    assert top1["coffee"] in {"espresso", "cup", "coffee mug"}
    share = m["two_objects_share"]
    cat_class = next(k for k in share if k in CATS)
    assert share[cat_class]["on the cat half"] > 0.6  # Grad-CAM for the cat class sits on the cat
