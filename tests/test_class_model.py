"""labkit.interpret.class_model: raises the target's confidence, regularisers act, bad input, state kept."""

import pytest
import torch
from torch import nn

from labkit.env import LabError
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


def test_a_single_target_by_name_gives_one_image_and_a_rising_score(colour_net):
    image, history = class_model(colour_net, "blue", classes=COLOURS, steps=30, image_size=12, return_history=True)
    assert image.shape == (3, 12, 12)
    assert confidence(colour_net, image[None], torch.tensor([2])) > 0.99
    scores = [h["score"] for h in history]
    assert [h["step"] for h in history] == [1, 10, 20, 30] and scores[-1] > scores[0]
    assert {h["target"] for h in history} == {2}


def test_each_regulariser_does_what_it_says(colour_net):
    kw = dict(steps=40, image_size=12, init="noise", seed=3, clip=False)
    plain = class_model(colour_net, [0, 1], **kw)
    assert total_variation(class_model(colour_net, [0, 1], tv=5.0, **kw)).max() < total_variation(plain).min()
    assert total_variation(class_model(colour_net, [0, 1], blur_every=2, blur_sigma=1.0, **kw)).max() < total_variation(
        plain
    ).min()
    assert class_model(colour_net, [0, 1], l2=50.0, **kw).norm() < plain.norm()
    clipped = class_model(colour_net, [0, 1], clip_percentile=50, **kw)
    assert (clipped.norm(dim=1) == 0).float().mean() >= 0.5
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
    net = nn.Sequential(nn.Conv2d(3, 1, 1, bias=False), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1, 2))
    with torch.no_grad():
        net[0].weight.fill_(2.0)
        net[3].weight.copy_(torch.tensor([[1.0], [2.0]]))
        net[3].bias.zero_()
    net.eval()

    def p0(objective):
        img = class_model(net, 0, steps=50, lr=0.05, image_size=8, mean=[0.5] * 3, std=[0.5] * 3, objective=objective)
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
