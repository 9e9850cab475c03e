"""labkit.interpret.robustness: switched off the transforms are the identity, jitter moves by whole pixels,
rotations and scalings land where they should, and every draw comes from the generator."""

import pytest
import torch

from labkit.core import LabError
from labkit.interpret.robustness import jitter, random_transforms, rotate_scale

OFF = dict(jitter_before=0, scales=(1,), angles=(0,), jitter_after=0)


def images(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def test_transforms_switched_off_are_the_identity_inside_the_padding():
    x = images(2, 3, 9, 7)
    assert torch.equal(random_transforms(x, torch.Generator(), pad=0, **OFF), x)
    padded = random_transforms(x, torch.Generator(), pad=5, fill=0.25, **OFF)
    assert padded.shape == (2, 3, 19, 17)
    assert torch.equal(padded[:, :, 5:-5, 5:-5], x)
    border = torch.ones_like(padded, dtype=torch.bool)
    border[:, :, 5:-5, 5:-5] = False
    assert (padded[border] == 0.25).all()


def test_jitter_moves_the_image_by_whole_pixels_up_to_d():
    d, x = 3, images(1, 2, 10, 12)
    seen = set()
    for seed in range(200):  # 16 offsets: all drawn, but for odds of 1e-4
        out = jitter(x, d, torch.Generator().manual_seed(seed))
        assert out.shape == (1, 2, 10 - d, 12 - d)
        crops = {(i, j): x[:, :, i : i + 10 - d, j : j + 12 - d] for i in range(d + 1) for j in range(d + 1)}
        matches = [offset for offset, crop in crops.items() if torch.equal(out, crop)]
        assert len(matches) == 1  # an exact crop: a shift with no interpolation
        seen.add(matches[0])
    assert seen == {(i, j) for i in range(d + 1) for j in range(d + 1)}  # 0 and d included


def test_rotations_by_right_angles_match_rot90_and_flip():
    square, wide = images(2, 3, 8, 8), images(2, 3, 6, 10)
    torch.testing.assert_close(rotate_scale(square, 90), torch.rot90(square, 1, (2, 3)), atol=1e-6, rtol=0)
    torch.testing.assert_close(rotate_scale(square, -90), torch.rot90(square, -1, (2, 3)), atol=1e-6, rtol=0)
    torch.testing.assert_close(rotate_scale(wide, 180), torch.flip(wide, (2, 3)), atol=1e-6, rtol=0)


def test_rotation_of_a_wide_image_does_not_shear():
    x = images(1, 1, 8, 16)
    # turned a quarter about its centre, the middle 8 x 8 square stays the middle square, turned
    centre = rotate_scale(x, 90)[..., 4:12]
    torch.testing.assert_close(centre, torch.rot90(x[..., 4:12], 1, (2, 3)), atol=1e-6, rtol=0)


def test_scaling_by_a_half_shrinks_the_image_into_the_middle_and_fills_around():
    out = rotate_scale(torch.ones(1, 1, 8, 8), 0, scale=0.5, fill=0.0)
    expected = torch.zeros(1, 1, 8, 8)
    expected[..., 2:6, 2:6] = 1
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    grey = torch.full((1, 1, 8, 8), 0.5)
    assert torch.equal(rotate_scale(grey, 7, scale=0.9), grey)  # the fill is exactly `fill`


def test_random_transforms_are_drawn_from_the_generator_and_pass_gradients():
    x = images(2, 3, 16, 16).requires_grad_(True)
    a = random_transforms(x, torch.Generator().manual_seed(1))
    b = random_transforms(x, torch.Generator().manual_seed(1))
    others = [random_transforms(x, torch.Generator().manual_seed(s)) for s in range(2, 6)]
    assert a.shape == (2, 3, 16 + 24 - 8 - 4, 16 + 24 - 8 - 4)
    assert torch.equal(a, b) and not all(torch.equal(a, o) for o in others)
    a.sum().backward()
    assert x.grad.abs().sum() > 0


def test_impossible_settings_are_refused_before_any_work():
    x = images(1, 3, 8, 8)
    with pytest.raises(LabError, match="scales > 0"):
        random_transforms(x, scales=())
    with pytest.raises(LabError, match="too small for jitters"):
        random_transforms(x, pad=0, jitter_before=6, jitter_after=2)
    with pytest.raises(LabError, match="pad=-1"):
        random_transforms(x, pad=-1)
