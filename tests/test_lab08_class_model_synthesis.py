"""Lab 08: class models convince the network that made them, the ensemble's convince a held-out judge
more than one network's, the ImageNet class model works, targeted adversarial examples fool the network
they were made for far more often than the judge, and the full-profile targets.

Under smoke the `shapes` networks are barely trained, so the class models are compared with chance
(1 / 10) and with each other in the same run; the fixed figures of a full run are the README's
"Full-profile targets", checked by `test_lab08_full_run_meets_the_readme_targets` when
LABKIT_FULL_METRICS names a full run's metrics folder.
"""

import pytest

from labkit import recipes

NOTEBOOK = "08_class_model_synthesis"
SETTINGS = ["none", "L2", "+ jitter", "+ blur", "+ TV"]
IMAGENET_SETTINGS = [
    "pixels",
    "pixels, regularised",
    "+ Fourier basis",
    "+ decorrelated colour",
    "+ transforms",
]


def ensemble_name(profile):
    """The ensemble's name in a run of `profile`: the lab-02 network and one more per seed of
    `ensemble_seeds` (smoke 2, full 2 and 3); the judge (seed 1) is never one of them."""
    return f"{1 + len(recipes.defaults(NOTEBOOK, profile)['ensemble_seeds'])} networks"


ENSEMBLE = ensemble_name("smoke")
FEATURE_VISUALISATION = [
    "Fourier, colour, transforms",
    f"Fourier, colour, transforms, {ENSEMBLE}",
]  # section 6
# The README's full-profile targets (section "Full-profile targets"); keep the two in step.
FULL_CONFIDENCE = 0.95  # the network's mean p(c) on its own class models, best single-network setting (0.968)
FULL_RECOGNITION = (
    0.8  # share of the 30 class models the held-out judge names, best setting (0.933; chance 0.1)
)
FULL_IMAGENET_TOP5 = (
    0.5  # share of the 20 classes whose class model (all three changes) Lite2 puts in its top 5 (0.70)
)
FULL_FOOLING_SUCCESS = 0.95  # adversarial images that flip the network to the target (of 40; measured 1.0)
FULL_FOOLING_TRANSFER = 0.25  # of those, the share the judge also assigns to the chosen class (measured 0.0)


@pytest.mark.notebook
def test_lab08_records_confidence_and_cross_model_recognition_per_setting(smoke_metrics):
    m = smoke_metrics(NOTEBOOK)
    assert set(m["ablation"]) == {*SETTINGS, ENSEMBLE, *FEATURE_VISUALISATION}  # the metrics file sorts keys
    assert f"{m['ensemble_size']} networks" == ENSEMBLE and m["best_single_network_setting"] in SETTINGS
    for figures in m["ablation"].values():
        assert figures["cross_model_recognition"] * 10 == pytest.approx(
            round(figures["cross_model_recognition"] * 10)
        )  # k of 10
    best = m["ablation"][m["best_setting"]]  # the headline figures are the best setting's
    assert m["class_model_confidence"] == best["confidence"]
    assert m["cross_model_recognition"] == best["cross_model_recognition"]
    assert best["cross_model_recognition"] == max(
        s["cross_model_recognition"] for s in m["ablation"].values()
    )
    assert m["chance"] == pytest.approx(0.1)


@pytest.mark.notebook
def test_lab08_every_setting_convinces_the_network_far_above_chance(smoke_metrics):
    m = smoke_metrics(NOTEBOOK)
    weak = {
        k: round(v["confidence"], 3) for k, v in m["ablation"].items() if v["confidence"] < 3 * m["chance"]
    }
    assert not weak, f"class models the network itself finds barely more likely than chance: {weak}"


@pytest.mark.notebook
def test_lab08_the_judge_finds_the_ensembles_images_more_likely_than_chance(smoke_metrics):
    m = smoke_metrics(NOTEBOOK)
    ensemble = m["ablation"][ENSEMBLE]["judge_probability"]
    # One network's images are not held to this: the lab says the judge may separate none of the
    # single-network settings, and under smoke the best of them sat at 0.120 (chance 0.1) with a float32
    # network and at 0.17-0.23 with a bfloat16 one. Which of the two the judge prefers is left to the full
    # run (test_lab08_full_run_meets_the_readme_targets): under smoke (ten images, 30 steps) it flipped
    # with the thread count.
    assert ensemble > m["chance"] * 1.2, f"judge's p(c) of the ensemble's class models: {ensemble:.3f}"


@pytest.mark.notebook
def test_lab08_log_probability_objective_beats_the_raw_score(smoke_metrics):
    m = smoke_metrics(NOTEBOOK)
    assert m["score_objective_classes_won"] * 10 == pytest.approx(
        round(m["score_objective_classes_won"] * 10)
    )
    # the lab switches to log p_c because it convinces the network more often than S_c does
    assert m["log_softmax_objective_confidence"] > m["score_objective_confidence"]


@pytest.mark.notebook
def test_lab08_imagenet_class_models_are_judged_by_a_network_that_took_no_part(smoke_metrics):
    m = smoke_metrics(NOTEBOOK)
    assert m["imagenet_classes"] == ["goldfish", "flamingo"]
    assert set(m["imagenet_ablation"]) == set(IMAGENET_SETTINGS)
    n = len(m["imagenet_classes"])
    for name, figures in m["imagenet_ablation"].items():
        assert len(figures["judge_ranks"]) == n and all(1 <= r <= 1000 for r in figures["judge_ranks"])
        assert figures["judge_top1"] == sum(r == 1 for r in figures["judge_ranks"]) / n, name
        assert figures["judge_top5"] == sum(r <= 5 for r in figures["judge_ranks"]) / n, name
    # the headline figures are the full method's and the bare pixel ascent's
    method, pixels = m["imagenet_ablation"]["+ transforms"], m["imagenet_ablation"]["pixels"]
    assert (m["imagenet_judge_top1"], m["imagenet_judge_top5"]) == (
        method["judge_top1"],
        method["judge_top5"],
    )
    assert (m["imagenet_judge_top1_pixels"], m["imagenet_judge_top5_pixels"]) == (
        pixels["judge_top1"],
        pixels["judge_top5"],
    )
    # the Fourier basis climbs faster than the pixels: after the same few steps Lite0 is surer of its
    # images (0.97 against 0.66 under smoke)
    fourier = m["imagenet_ablation"]["+ Fourier basis"]
    assert fourier["confidence"] > 0.9 and fourier["confidence"] > pixels["confidence"]


@pytest.mark.notebook
def test_lab08_records_feature_visualisation_on_shapes(smoke_metrics):
    m = smoke_metrics(NOTEBOOK)
    figures = m["shapes_feature_visualisation"]
    assert m["cross_model_recognition_fourier"] == figures["cross_model_recognition"]
    assert figures["cross_model_recognition"] * 10 == pytest.approx(
        round(figures["cross_model_recognition"] * 10)
    )
    assert figures["confidence"] > 3 * m["chance"], "the network barely finds its Fourier class models likely"
    ensemble = m["shapes_feature_visualisation_ensemble"]
    assert m["cross_model_recognition_fourier_ensemble"] == ensemble["cross_model_recognition"]
    assert m["ablation"][FEATURE_VISUALISATION[1]] == ensemble
    assert m["ablation"][FEATURE_VISUALISATION[0]] == figures
    # the headline is the best of every setting, the feature visualisations included
    assert m["cross_model_recognition"] == max(s["cross_model_recognition"] for s in m["ablation"].values())


@pytest.mark.notebook
def test_lab08_fooling_images_fool_the_network_and_far_less_often_the_judge(smoke_metrics):
    m = smoke_metrics(NOTEBOOK)
    assert m["n_fooling"] == 8
    assert m["fooling_success_rate"] >= 0.9  # the fewest steps of one grey level that flip the class, found
    assert 0.0 <= m["fooling_transfer_rate"] < m["fooling_success_rate"]
    assert m["fooling_judge_still_right"] >= 0.5, (
        "a minimal push should leave the held-out judge mostly right"
    )
    assert 1 <= m["fooling_steps_median"] <= 100
    assert 0 < m["fooling_linf"] <= 100 / 255 and m["fooling_l2"] > m["fooling_linf"]


@pytest.mark.notebook
def test_lab08_saves_its_figures(saved_figures):
    saved_figures(
        NOTEBOOK,
        [
            "regulariser_ablation",
            "ensemble_class_models",
            "class_models_shapes",
            "class_models_shapes_fourier",
            "class_models_imagenet",
            "fooling_images",
        ],
    )


def test_lab08_full_run_meets_the_readme_targets(full_metrics):
    m = full_metrics(NOTEBOOK)
    # images made for the network itself; the ensemble's must also convince two other networks, so the
    # lab-02 network alone is less sure of them (0.866 when the ensemble was the best setting)
    assert m["ablation"][m["best_single_network_setting"]]["confidence"] >= FULL_CONFIDENCE
    assert m["cross_model_recognition"] >= FULL_RECOGNITION
    assert m["cross_model_recognition_fourier_ensemble"] > m["cross_model_recognition_fourier"]
    together, single = m["ablation"][ensemble_name("full")], m["ablation"][m["best_single_network_setting"]]
    assert together["cross_model_recognition"] > single["cross_model_recognition"]
    assert m["log_softmax_objective_confidence"] > m["score_objective_confidence"]
    assert m["imagenet_judge_top5"] >= FULL_IMAGENET_TOP5
    assert m["imagenet_judge_top5"] > m["imagenet_judge_top5_pixels"]
    assert m["fooling_success_rate"] >= FULL_FOOLING_SUCCESS
    assert m["fooling_transfer_rate"] <= FULL_FOOLING_TRANSFER
