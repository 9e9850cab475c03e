import pytest
import torch
from torch import nn

from labkit import check


def test_checks_pass_and_fail_with_hints(capsys):
    check.shape(torch.zeros(2, 3), (2, 3), "x")
    assert "✓ x has shape (2, 3)" in capsys.readouterr().out
    with pytest.raises(check.CheckFailed, match=r"x has shape \(2, 3\), expected \(3, 2\)"):
        check.shape(torch.zeros(2, 3), (3, 2), "x")
    layer = nn.Conv2d(3, 8, 3)
    check.params(layer, 3 * 8 * 9 + 8)
    with pytest.raises(check.CheckFailed, match=r"has 224 parameters, expected 216 \(difference \+8\)\.\nHint"):
        check.params(layer, 216)
    check.close(torch.tensor([1.0, 2.0]), [1.0, 2.0 + 1e-9])
    with pytest.raises(check.CheckFailed, match="largest difference 0.5"):
        check.close([1.0, 2.5], [1.0, 2.0], "w")
    with pytest.raises(check.CheckFailed, match="below the 0.9"):
        check.at_least(0.5, 0.9, "accuracy")
    with pytest.raises(check.CheckFailed, match="is 3, expected 4"):
        check.equal(3, 4)
