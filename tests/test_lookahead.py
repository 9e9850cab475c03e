"""Lookahead with airbench's schedule: the averaging it does, the end, and an exact resume."""

import pytest
import torch
from torch import nn

from labkit.core import LabError
from labkit.train.lookahead import Lookahead


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def _batches(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 6, generator=g), torch.randint(0, 3, (16,), generator=g)) for _ in range(n)]


def _step(model, opt, x, y):
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


def test_every_k_steps_the_weights_become_the_average_of_slow_and_fast():
    total, every = 40, 5
    model, plain = _net(), _net()
    opt = Lookahead(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), model, total, every=every)
    inner = torch.optim.SGD(plain.parameters(), lr=0.1, momentum=0.9)
    slow = {k: v.clone() for k, v in plain.state_dict().items() if v.is_floating_point()}
    for t, (x, y) in enumerate(_batches(total), start=1):
        _step(model, opt, x, y)
        _step(plain, inner, x, y)
        if t % every == 0 or t == total:  # the same averaging, by hand
            decay = 1.0 if t == total else 0.95**5 * (t / total) ** 3
            with torch.no_grad():
                for k, v in plain.state_dict().items():
                    if v.is_floating_point():
                        slow[k] = decay * slow[k] + (1 - decay) * v
                        v.copy_(slow[k])
    for (k, a), b in zip(model.state_dict().items(), plain.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)
    running = model[1].running_mean
    # Trained statistics, so that the equal running statistics above mean something.
    assert not torch.equal(running, torch.zeros_like(running))


def test_decay_grows_with_the_cube_of_progress():
    model = _net()
    opt = Lookahead(torch.optim.SGD(model.parameters(), lr=0.1), model, total_steps=100)
    assert opt.decay(0) == 0 and opt.decay(50) == pytest.approx(0.95**5 / 8)
    assert opt.decay(100) == pytest.approx(0.95**5)
    with pytest.raises(LabError, match="total_steps=0"):
        Lookahead(torch.optim.SGD(model.parameters(), lr=0.1), model, total_steps=0)


def test_state_dict_resumes_exactly():
    batches = _batches(30)

    def make():
        model = _net()
        inner = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        return model, Lookahead(inner, model, 30, every=4)

    straight, opt = make()
    for x, y in batches:
        _step(straight, opt, x, y)
    first, opt = make()
    for x, y in batches[:13]:
        _step(first, opt, x, y)
    saved_model, saved_opt = first.state_dict(), opt.state_dict()
    resumed, opt = make()
    resumed.load_state_dict(saved_model)
    opt.load_state_dict(saved_opt)
    for x, y in batches[13:]:
        _step(resumed, opt, x, y)
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
