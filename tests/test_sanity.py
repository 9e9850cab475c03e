"""labkit.interpret.sanity: rank correlation against scipy, the randomisation steps, copies that leave the
model alone, and the sanity check's figures recomputed by hand."""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from tiny_nets import tiny_cnn

from labkit.core import LabError
from labkit.interpret import gradcam, guided_backprop, randomised, rank_correlation, saliency, sanity_check
from labkit.interpret.sanity import as_heat, randomisable_layers, randomisation_steps

pytestmark = pytest.mark.filterwarnings("ignore:(Input Tensor|Setting backward hooks):UserWarning")


@pytest.fixture
def x():
    torch.manual_seed(1)
    return torch.randn(4, 3, 12, 12, dtype=torch.float64)


def test_rank_correlation_equals_scipy_with_ties():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (6, 7, 7), generator=g).double()  # many ties
    b = torch.randint(0, 5, (6, 7, 7), generator=g).double() + 0.3 * a
    ours = rank_correlation(a, b)
    theirs = [spearmanr(a[i].flatten().numpy(), b[i].flatten().numpy()).statistic for i in range(6)]
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-12)


def test_rank_correlation_exact_values():
    up = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert rank_correlation(up, up * 10).item() == pytest.approx(1.0, abs=1e-15)
    assert rank_correlation(up, -up).item() == pytest.approx(-1.0, abs=1e-15)
    assert rank_correlation(up, up.exp()).item() == pytest.approx(1.0, abs=1e-15)  # ranks only
    # ranks 1, 2, 3, 4 against 2, 1, 4, 3: 1 - 6 * sum(d^2) / (n (n^2 - 1)) = 1 - 6 * 4 / 60
    assert rank_correlation(up, torch.tensor([[2.0, 1.0, 4.0, 3.0]])).item() == pytest.approx(0.6, abs=1e-15)
    assert rank_correlation(up, torch.zeros_like(up)).tolist() == [0.0]  # a constant map shares no ranking
    with pytest.raises(LabError, match="same shape"):
        rank_correlation(up, up[:, :3])


def test_steps_go_from_the_top_layer_down():
    model = tiny_cnn()
    assert randomisable_layers(model) == ["0", "4", "8"]
    assert randomisation_steps(model) == [("8", ["8"]), ("4", ["8", "4"]), ("0", ["8", "4", "0"])]
    assert randomisation_steps(model, "independent") == [("8", ["8"]), ("4", ["4"]), ("0", ["0"])]
    assert randomisation_steps(model, layers=["4", "8"]) == [("8", ["8"]), ("4", ["8", "4"])]
    with pytest.raises(LabError, match="order='random'"):
        randomisation_steps(model, "random")


def test_randomised_copies_redraw_only_the_named_layers_and_leave_the_model_alone():
    model = tiny_cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    copy = randomised(model, ["4"], seed=3)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the model is untouched
    after = copy.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed == {"4.weight", "4.bias"}
    bound = 1 / (6 * 3 * 3) ** 0.5  # PyTorch's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert after["4.weight"].abs().max() <= bound and after["4.weight"].abs().max() > 0.9 * bound
    assert torch.equal(randomised(model, ["4"], seed=3)[4].weight, copy[4].weight)  # seeded
    assert not torch.equal(randomised(model, ["4"], seed=4)[4].weight, copy[4].weight)
    with pytest.raises(LabError, match="only nn.Conv2d and nn.Linear"):
        randomised(model, ["1"])


def test_sanity_check_figures_are_the_correlations_of_the_recomputed_maps(x):
    model = tiny_cnn()
    modes = [m.training for m in model]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = sanity_check(saliency, model, x, seed=5)
    predicted = model(x).argmax(1)
    assert torch.equal(result.targets, predicted)
    assert list(result.correlations) == ["8", "4", "0"] and list(result.maps) == ["original", "8", "4", "0"]
    assert torch.allclose(result.maps["original"], saliency(model, x, target=predicted))
    for k, (label, names) in enumerate(randomisation_steps(model)):
        # the classes stay those of the trained model, whatever the random copy predicts
        heat = saliency(randomised(model, names, seed=5 + k), x, target=predicted)
        assert torch.allclose(result.maps[label], heat)
        assert torch.allclose(result.correlations[label], rank_correlation(heat, result.maps["original"]))
    assert result.mean() == {k: v.mean().item() for k, v in result.correlations.items()}
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert [m.training for m in model] == modes


def test_a_map_that_ignores_the_network_passes_no_sanity_check(x):
    def image_only(model, x, target=None):
        return x.abs().sum(dim=1)

    result = sanity_check(image_only, tiny_cnn(), x, order="independent")
    assert all(torch.allclose(c, torch.ones(4, dtype=torch.float64)) for c in result.correlations.values())


def test_guided_backprop_maps_are_reduced_over_colour_channels_and_kwargs_reach_the_method(x):
    model = tiny_cnn()
    result = sanity_check(guided_backprop, model, x, layers=["8"])
    assert result.maps["8"].shape == (4, 12, 12)
    assert torch.allclose(result.maps["original"], as_heat(guided_backprop(model, x, target=result.targets)))
    cams = sanity_check(gradcam, model, x, target=1, layers=["8"], layer="4")
    assert torch.allclose(cams.maps["original"], gradcam(model, x, target=1, layer="4"))
