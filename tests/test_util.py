"""labkit.util and labkit.core: atomic writes leave nothing half-written, preserved gives everything back,
ImageNet batches round-trip."""

import json

import pytest
import torch
from torch import nn

from labkit.core import atomic_write
from labkit.util import IMAGENET_MEAN, imagenet_batch, imagenet_denormalize, preserved


def test_atomic_write_replaces_whole_files_and_leaves_nothing_on_error(tmp_path):
    path = tmp_path / "deep" / "figures.json"
    with atomic_write(path) as fh:
        json.dump({"a": 1}, fh)
    assert json.loads(path.read_text()) == {"a": 1}
    with pytest.raises(RuntimeError, match="interrupted"), atomic_write(path) as fh:
        fh.write('{"a": 2, "b"')
        raise RuntimeError("interrupted")
    assert json.loads(path.read_text()) == {"a": 1}  # the old complete file
    assert [p.name for p in path.parent.iterdir()] == ["figures.json"]  # no temporary file left
    with atomic_write(tmp_path / "w.bin", "wb") as fh:
        torch.save({"x": torch.ones(2)}, fh)
    assert torch.equal(torch.load(tmp_path / "w.bin", weights_only=True)["x"], torch.ones(2))


def test_preserved_gives_back_modes_and_flags_also_when_the_block_raises():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    net[1].eval()  # a frozen batch-norm the caller put in eval mode on purpose
    net[0].weight.requires_grad_(False)
    x = torch.zeros(1, requires_grad=False)
    with pytest.raises(RuntimeError, match="boom"), preserved(net, [x]):
        net.eval()
        net.requires_grad_(True)
        x.requires_grad_(True)
        raise RuntimeError("boom")
    assert net.training and net[0].training and not net[1].training
    assert not net[0].weight.requires_grad and net[0].bias.requires_grad and not x.requires_grad


def test_imagenet_batch_normalises_and_its_denormaliser_undoes_it():
    raw = {"a": torch.zeros(3, 4, 4, dtype=torch.uint8), "b": torch.full((3, 4, 4), 255, dtype=torch.uint8)}
    x, denormalize = imagenet_batch(raw)
    assert x.shape == (2, 3, 4, 4) and x.dtype == torch.float32
    assert x[0, 0, 0, 0].item() == pytest.approx(-IMAGENET_MEAN[0] / 0.229)
    torch.testing.assert_close(denormalize(x), torch.stack(list(raw.values())).float() / 255)
    assert denormalize is imagenet_denormalize and imagenet_denormalize(x[0]).shape == (3, 4, 4)
