"""labkit.interpret.localisation: pointing game and energy in mask on hand-made maps and masks."""

import math

import pytest
import torch

from labkit.core import LabError
from labkit.interpret import energy_in_mask, pointing_game, pointing_hits


def square_mask(size=64, top=20, left=20, side=10):
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[top : top + side, left : left + side] = True
    return mask


def peak_at(y, x, size=64, value=1.0):
    m = torch.zeros(size, size)
    m[y, x] = value
    return m


def test_hits_inside_near_and_far():
    mask = square_mask()  # rows and columns 20..29
    maps = torch.stack([peak_at(25, 25), peak_at(25, 31), peak_at(25, 33), peak_at(31, 31), peak_at(0, 0)])
    masks = mask.expand(5, -1, -1)
    # distances to the square: 0, 2, 4, sqrt(8) = 2.83, far
    assert pointing_hits(maps, masks, tolerance=0).tolist() == [True, False, False, False, False]
    assert pointing_hits(maps, masks, tolerance=2).tolist() == [True, True, False, False, False]
    assert pointing_hits(maps, masks, tolerance=3).tolist() == [True, True, False, True, False]
    assert pointing_game(maps, masks, tolerance=3) == pytest.approx(3 / 5)


def test_default_tolerance_is_three_percent_of_the_side():
    # 0.03 * 64 = 1.92 px: one pixel off is a hit, two pixels off a miss
    masks = square_mask().expand(2, -1, -1)
    maps = torch.stack([peak_at(25, 30), peak_at(25, 31)])
    assert pointing_hits(maps, masks).tolist() == [True, False]
    # at 224 px the tolerance is 6.72 px
    big = torch.zeros(2, 224, 224, dtype=torch.bool)
    big[:, 100:110, 100:110] = True
    far = torch.stack([peak_at(105, 115, size=224), peak_at(105, 116, size=224)])  # 6 and 7 px away
    assert pointing_hits(far, big).tolist() == [True, False]


def test_a_constant_map_is_a_miss_and_the_first_maximum_counts():
    masks = square_mask().expand(2, -1, -1)
    tie = peak_at(25, 25) + peak_at(0, 0)  # equal maxima: the first in raster order, (0, 0), counts
    assert pointing_hits(torch.stack([torch.zeros(64, 64), tie]), masks).tolist() == [False, False]
    # a constant map inside an all-object mask still points nowhere
    assert pointing_game(torch.ones(1, 8, 8), torch.ones(1, 8, 8, dtype=torch.bool)) == 0.0


def test_energy_in_mask():
    mask = square_mask()
    inside = mask.float() * 3.0  # 100 px x 3 = 300 inside
    outside = torch.zeros(64, 64)
    outside[0, :50] = 2.0  # 100 outside
    maps = torch.stack([inside + outside, inside, torch.zeros(64, 64)])
    masks = mask.expand(3, -1, -1)
    per_image = energy_in_mask(maps, masks, reduction="none")
    assert torch.allclose(per_image, torch.tensor([0.75, 1.0, 0.0]))
    assert energy_in_mask(maps, masks) == pytest.approx(1.75 / 3)
    # a uniform map scores the mask's share of the image: the chance level
    assert energy_in_mask(torch.ones(1, 64, 64), mask[None]) == pytest.approx(100 / 4096)


def test_bad_maps_and_masks_are_explained():
    masks = square_mask().expand(2, -1, -1)
    with pytest.raises(LabError, match="negative values.*abs"):
        energy_in_mask(-torch.ones(2, 64, 64), masks)
    with pytest.raises(LabError, match="abs_max_channels"):
        pointing_game(torch.rand(2, 3, 64, 64), masks)
    with pytest.raises(LabError, match=r"maps \(2, 8, 8\) and masks \(2, 64, 64\).*upsample"):
        pointing_game(torch.rand(2, 8, 8), masks)
    empty = masks.clone()
    empty[1] = False
    with pytest.raises(LabError, match=r"masks \[1\] are empty"):
        energy_in_mask(torch.rand(2, 64, 64), empty)
    with pytest.raises(LabError, match="tolerance"):
        pointing_game(torch.rand(2, 64, 64), masks, tolerance=-1)


def test_brute_force_agreement_on_random_maps():
    torch.manual_seed(0)
    maps = torch.rand(20, 16, 16)
    masks = torch.rand(20, 16, 16) > 0.9
    masks[:, 8, 8] = True
    hits = pointing_hits(maps, masks, tolerance=1.5)
    for m, k, hit in zip(maps, masks, hits):
        py, px = divmod(int(m.argmax()), 16)
        near = any(math.hypot(py - y, px - x) <= 1.5 for y, x in k.nonzero().tolist())
        assert bool(hit) == near
