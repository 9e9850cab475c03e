"""labkit.interpret.class_model: raises the target's confidence, regularisers act, bad input, state kept."""

import warnings

import pytest
import torch
from torch import nn

from labkit.core import LabError
from labkit.interpret import class_model, total_variation

COLOURS = ["red", "green", "blue"]


def colour_batch(n, gen):
    """Images whose class is their dominant colour channel."""
    y = torch.randint(0, 3, (n,), generator=gen)
    x = 0.5 * torch.rand(n, 3, 12, 12, generator=gen)
    x[torch.arange(n), y] += 0.5
    return x, y


@pytest.fixture(scope="module")
def colour_net():
    """A tiny CNN trained (100 Adam steps, about a second) to name the dominant colour: 100 % accurate."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3),
    )  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(100):
        x, y = colour_batch(32, gen)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    model.eval()
    x, y = colour_batch(200, gen)
    with torch.no_grad():
        assert (model(x).argmax(1) == y).all()
    return model


def confidence(model, images, targets):
    with torch.no_grad():
        return model(images).softmax(1)[torch.arange(len(targets)), targets]


def test_class_models_raise_the_confidence_of_their_class(colour_net):
    start = torch.full((3, 3, 12, 12), 0.5)
    before = confidence(colour_net, start, torch.arange(3))
    images = class_model(colour_net, [0, 1, 2], steps=50, image_size=12, init=start)
    after = confidence(colour_net, images, torch.arange(3))
    assert images.shape == (3, 3, 12, 12)
    assert before.min() < 0.9 and (after > 0.99).all()
    # and each image is dominated by its colour: the network's class is in the picture
    assert torch.equal(images.mean(dim=(2, 3)).argmax(dim=1), torch.arange(3))


def test_a_single_target_by_name_gives_one_image_of_that_class(colour_net):
    image = class_model(colour_net, "blue", classes=COLOURS, steps=30, image_size=12)
    assert image.shape == (3, 12, 12)
    assert confidence(colour_net, image[None], torch.tensor([2])) > 0.99


def test_each_regulariser_does_what_it_says(colour_net):
    kw = dict(steps=40, image_size=12, init="noise", seed=3, clip=False)
    plain = class_model(colour_net, [0, 1], **kw)
    assert total_variation(class_model(colour_net, [0, 1], tv=5.0, **kw)).max() < total_variation(plain).min()
    assert (
        total_variation(class_model(colour_net, [0, 1], blur_every=2, blur_sigma=1.0, **kw)).max()
        < total_variation(plain).min()
    )
    assert class_model(colour_net, [0, 1], l2=50.0, **kw).norm() < plain.norm()
    # clip keeps a picture: pixels in [0, 1] once mean and std are undone
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    image = class_model(colour_net, 0, steps=40, image_size=12, init="noise", mean=mean, std=std)
    pixels = image * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6
    assert pixels.min() < 0.01 or pixels.max() > 0.99  # the bounds were reached, so clipping acted


def test_same_seed_same_image_and_jitter_uses_it(colour_net):
    kw = dict(steps=10, image_size=12, init="noise", jitter=2)
    assert torch.equal(class_model(colour_net, 1, seed=5, **kw), class_model(colour_net, 1, seed=5, **kw))
    assert not torch.equal(class_model(colour_net, 1, seed=5, **kw), class_model(colour_net, 1, seed=6, **kw))


def test_bad_input_is_explained(colour_net):
    with pytest.raises(LabError, match=r"target 3 is out of range.*3 classes.*0\.\.2"):
        class_model(colour_net, 3, steps=1, image_size=12)
    with pytest.raises(LabError, match="pass classes="):
        class_model(colour_net, "red", steps=1, image_size=12)
    with pytest.raises(LabError, match="not one of the 3 classes"):
        class_model(colour_net, "purple", classes=COLOURS, steps=1, image_size=12)
    with pytest.raises(LabError, match="init="):
        class_model(colour_net, 0, init="ones", image_size=12)
    with pytest.raises(LabError, match="steps=0"):
        class_model(colour_net, 0, steps=0, image_size=12)
    with pytest.raises(LabError, match=r"objective='softmax'.*log_softmax"):
        class_model(colour_net, 0, objective="softmax", image_size=12)


def test_log_softmax_objective_wins_where_the_score_raises_another_class_faster():
    # Class 1 reads the same brightness as class 0, twice as strongly: raising S_0 raises S_1 more.
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 1, 1, bias=False), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1, 2)
    )
    with torch.no_grad():
        net[0].weight.fill_(2.0)
        net[3].weight.copy_(torch.tensor([[1.0], [2.0]]))
        net[3].bias.zero_()
    net.eval()

    def p0(objective):
        img = class_model(
            net, 0, steps=50, lr=0.05, image_size=8, mean=[0.5] * 3, std=[0.5] * 3, objective=objective
        )
        with torch.no_grad():
            return net(img[None]).softmax(1)[0, 0].item()

    assert p0("score") < 0.05  # the ascent brightens the image, and class 1 wins
    assert p0("log_softmax") > 0.95  # darkening it is what makes class 0 likely


def test_model_given_back_as_found(colour_net):
    colour_net.train()
    colour_net[0].weight.requires_grad_(False)
    try:
        with pytest.warns(UserWarning, match="class_model: the model is in training mode"):
            class_model(colour_net, 0, steps=2, image_size=12)
        assert all(m.training for m in colour_net.modules())
        assert [p.requires_grad for p in colour_net.parameters()][:2] == [False, True]
        assert all(p.grad is None for p in colour_net.parameters())
        assert not any(m._forward_hooks for m in colour_net.modules())
    finally:
        colour_net.eval()
        colour_net[0].weight.requires_grad_(True)


def test_total_variation_beta_one_is_the_mean_absolute_difference():
    x = torch.randn(2, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    by_hand = [
        sum(
            abs(float(img[c, i + di, j + dj] - img[c, i, j]))
            for c in range(3)
            for i in range(5 - di)
            for j in range(7 - dj)
        )
        / (3 * (5 - di) * (7 - dj))
        for img in x
        for di, dj in ((1, 0), (0, 1))
    ]
    expected = torch.tensor([by_hand[0] + by_hand[1], by_hand[2] + by_hand[3]])
    torch.testing.assert_close(total_variation(x, beta=1), expected, rtol=1e-5, atol=1e-6)
    # A sharp edge and a ramp of the same height cost the same under beta = 1; beta = 2 charges the
    # edge far more. That is why beta = 1 allows flat regions with sharp borders, and beta = 2 blurs.
    edge = torch.zeros(1, 1, 2, 9)
    edge[..., 5:] = 1.0
    ramp = torch.linspace(0, 1, 9).expand(1, 1, 2, 9)
    torch.testing.assert_close(total_variation(edge, 1), total_variation(ramp, 1))
    assert total_variation(edge, 2) > 5 * total_variation(ramp, 2)


def test_tv_beta_one_penalises_total_variation(colour_net):
    kw = dict(steps=40, image_size=12, init="noise", seed=3, clip=False)
    plain = class_model(colour_net, [0, 1], **kw)
    smooth = class_model(colour_net, [0, 1], tv=2.0, tv_beta=1, **kw)
    assert total_variation(smooth, 1).max() < total_variation(plain, 1).min()
    with pytest.raises(LabError, match=r"tv_beta=0\.5: expected a number >= 1"):
        class_model(colour_net, 0, tv=1.0, tv_beta=0.5, image_size=12)


def channel_reader(channel):
    """A two-class network: class 0 when colour `channel` is bright (mean above 0.5), class 1 otherwise."""
    conv = nn.Conv2d(3, 1, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, channel] = 8.0
        conv.bias.fill_(-4.0)
    head = nn.Linear(1, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0], [0.0]]))
        head.bias.zero_()
    return nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), head).eval()


def test_an_ensemble_of_one_is_the_network_and_an_ensemble_must_convince_every_member(colour_net):
    kw = dict(steps=40, image_size=12, init="noise", seed=2)
    assert torch.equal(class_model([colour_net], [0, 1], **kw), class_model(colour_net, [0, 1], **kw))
    # One network reads red, the other green: alone, the red reader's class model leaves green grey;
    # the ensemble's must brighten both.
    reds, greens = channel_reader(0), channel_reader(1)
    kw = dict(steps=60, lr=0.05, image_size=8, init=torch.full((3, 8, 8), 0.5))
    alone = class_model(reds, 0, **kw).mean(dim=(1, 2))
    both = class_model([reds, greens], 0, **kw).mean(dim=(1, 2))
    assert alone[0] > 0.9 and alone[1] == pytest.approx(0.5) and both[0] > 0.9 and both[1] > 0.9
    assert both[2] == pytest.approx(0.5)  # neither network reads blue


def test_an_ensemble_needs_networks_of_the_same_classes(colour_net):
    four = nn.Sequential(colour_net, nn.Linear(3, 4)).eval()
    with pytest.raises(LabError, match=r"different numbers of classes \(\[3, 4\]\)"):
        class_model([colour_net, four], 0, steps=1, image_size=12)
    with pytest.raises(LabError, match="non-empty list of networks"):
        class_model([], 0, steps=1, image_size=12)


def test_networks_in_eval_mode_raise_no_warning(colour_net):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        class_model(colour_net, 0, steps=2, image_size=12)
        class_model([channel_reader(1), channel_reader(2)], 0, steps=2, image_size=12)


def test_every_member_of_an_ensemble_is_given_back_as_found():
    ready, training = channel_reader(1), channel_reader(2).train()
    training[0].weight.requires_grad_(False)
    with pytest.warns(UserWarning, match="training mode"):
        class_model([ready, training], 0, steps=2, image_size=12)
    assert all(m.training for m in training.modules()) and not any(m.training for m in ready.modules())
    assert [p.requires_grad for p in training.parameters()] == [False, True, True, True]
    assert all(p.grad is None for p in (*ready.parameters(), *training.parameters()))
    assert all(p.requires_grad for p in ready.parameters())
