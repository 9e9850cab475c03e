"""labkit.interpret.parameterisation: Fourier and pixel images round-trip, each coefficient is the documented
sinusoid, the colour matrix is a square root of ImageNet's colour covariance, and both agree with Lucent."""

import math

import pytest
import torch

from labkit.core import LabError
from labkit.interpret.parameterisation import (
    FOURIER_DIVISOR,
    FourierImage,
    PixelImage,
    colour_matrix,
    from_rgb,
    spectrum_scale,
    to_rgb,
)

SIZES = [(8, 8), (7, 9), (9, 6), (5, 5), (1, 4)]


@pytest.mark.parametrize("h, w", SIZES)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_fourier_image_gives_back_the_image_it_was_made_from(h, w, channels):
    image = torch.randn(2, channels, h, w, generator=torch.Generator().manual_seed(h * w + channels))
    param = FourierImage.from_image(image)
    assert param.spectrum.shape == (2, channels, h, w // 2 + 1, 2)
    torch.testing.assert_close(param(), image, atol=1e-5, rtol=0)
    torch.testing.assert_close(PixelImage.from_image(image)(), image, atol=0, rtol=0)


def one_coefficient(h, w, ky, kx, value, decay_power=1.0):
    """The image of a FourierImage whose only non-zero parameter is spectrum[0, 0, ky, kx] = value."""
    param = FourierImage((h, w), decay_power=decay_power)
    with torch.no_grad():
        param.spectrum.zero_()
        param.spectrum[0, 0, ky, kx] = torch.tensor([value.real, value.imag])
    return param()[0, 0].double()


@pytest.mark.parametrize("ky, kx", [(0, 3), (2, 1), (13, 5)])
@pytest.mark.parametrize("decay_power", [1.0, 2.0])
def test_one_coefficient_is_a_sinusoid_scaled_by_one_over_its_frequency(ky, kx, decay_power):
    h, w = 16, 12
    f = math.hypot(min(ky, h - ky) / h, kx / w)  # cycles per pixel; row 13 is frequency -3/16
    yy, xx = torch.meshgrid(*(torch.arange(n, dtype=torch.float64) for n in (h, w)), indexing="ij")
    phase = 2 * math.pi * (ky * yy / h + kx * xx / w)
    # 2: the coefficient and its mirror image (-ky, -kx), which irfft2 fills in; sqrt(hw): "ortho"
    amplitude = 2 / math.sqrt(h * w) / FOURIER_DIVISOR / f**decay_power
    expected = amplitude * (0.3 * torch.cos(phase) - 0.7 * torch.sin(phase))
    image = one_coefficient(h, w, ky, kx, 0.3 + 0.7j, decay_power)
    torch.testing.assert_close(image, expected, atol=1e-6 * amplitude, rtol=0)  # float32 precision
    assert spectrum_scale(h, w, decay_power)[ky, kx].item() == pytest.approx(f**-decay_power)


def test_the_mean_colour_is_scaled_as_the_lowest_frequency():
    h, w = 10, 16  # f = 0 would have an infinite scale: it gets 1 / (1 / max(h, w)) = 16
    image = one_coefficient(h, w, 0, 0, 1.0 + 0j)
    expected = torch.full((h, w), 16 / math.sqrt(h * w) / FOURIER_DIVISOR, dtype=torch.float64)
    torch.testing.assert_close(image, expected, atol=1e-6, rtol=0)
    assert spectrum_scale(h, w)[0, 0].item() == 16


def test_colour_matrix_is_a_square_root_of_imagenets_colour_covariance():
    m = colour_matrix(torch.float64)
    assert m.norm(dim=0).max().item() == pytest.approx(1.0)
    # U sqrt(S) of an SVD: orthogonal columns (Lucid rounds to 2 digits), so m m^T = U S U^T, with the
    # column norms squared as its eigenvalues and brightness (1, 1, 1) / sqrt(3) as its main direction
    gram = m.T @ m
    assert (gram - torch.diag(gram.diag())).abs().max() < 5e-3
    covariance = m @ m.T
    documented = torch.tensor(
        [[0.3566, 0.3243, 0.2938], [0.3243, 0.3533, 0.3346], [0.2938, 0.3346, 0.3838]], dtype=torch.float64
    )
    torch.testing.assert_close(covariance, documented, atol=1e-4, rtol=0)
    values, vectors = torch.linalg.eigh(covariance)
    torch.testing.assert_close(values, gram.diag().sort().values, atol=2e-3, rtol=0)
    assert vectors[:, -1].abs() @ torch.ones(3, dtype=torch.float64) / math.sqrt(3) > 0.999
    sd = covariance.diag().sqrt()
    correlation = covariance / sd[:, None] / sd[None, :]
    documented_correlation = torch.tensor([0.914, 0.794], dtype=torch.float64)  # red with green, with blue
    torch.testing.assert_close(correlation[0, 1:], documented_correlation, atol=1e-3, rtol=0)


@pytest.mark.parametrize("decorrelate", [True, False])
def test_to_rgb_gives_pixels_in_range_and_from_rgb_inverts_it(decorrelate):
    t = 2 * torch.randn(2, 3, 5, 6, generator=torch.Generator().manual_seed(0))
    rgb = to_rgb(t, decorrelate)
    assert rgb.shape == t.shape and rgb.min() > 0 and rgb.max() < 1
    torch.testing.assert_close(from_rgb(rgb, decorrelate), t, atol=1e-3, rtol=1e-3)
    if decorrelate:
        torch.testing.assert_close(rgb, torch.sigmoid(torch.einsum("ij,njhw->nihw", colour_matrix(), t)))
    else:
        assert torch.equal(rgb, torch.sigmoid(t))


def test_decorrelated_colour_needs_three_channels():
    with pytest.raises(LabError, match="3 channels, not 4; use decorrelate=False"):
        to_rgb(torch.zeros(1, 4, 2, 2))


def test_size_must_be_positive_ints():
    with pytest.raises(LabError, match=r"size=\(0, 4\)"):
        FourierImage((0, 4))


def test_parameterisations_are_seeded_noise_of_the_documented_std():
    a, b, c = FourierImage(64, 2, seed=1), FourierImage(64, 2, seed=1), FourierImage(64, 2, seed=2)
    assert torch.equal(a.spectrum, b.spectrum) and not torch.equal(a.spectrum, c.spectrum)
    assert a.spectrum.std().item() == pytest.approx(0.01, rel=0.05)
    assert PixelImage(64, 2, std=0.1).pixels.std().item() == pytest.approx(0.1, rel=0.05)


# Lucent (torch-lucent, a dev dependency) is the reference implementation of Lucid in PyTorch.
@pytest.mark.parametrize("h, w", SIZES)
def test_fourier_image_equals_lucents_fft_image_on_the_same_spectrum(h, w):
    spatial = pytest.importorskip("lucent.optvis.param.spatial")
    ours = FourierImage((h, w), 2, 3, seed=3)
    params, image_f = spatial.fft_image((2, 3, h, w))
    # Lucent stores (N, C, H, W // 2 + 1 (+1 more when W is odd, unused by irfftn), 2), real and imaginary
    with torch.no_grad():
        params[0][..., : w // 2 + 1, :] = ours.spectrum.to(params[0].device)
    torch.testing.assert_close(image_f().cpu(), ours().detach(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("decorrelate", [True, False])
def test_to_rgb_equals_lucents_to_valid_rgb(decorrelate):
    color = pytest.importorskip("lucent.optvis.param.color")
    device = pytest.importorskip("lucent.optvis.param.spatial").device
    t = torch.randn(2, 3, 7, 9, generator=torch.Generator().manual_seed(4))
    theirs = color.to_valid_rgb(lambda: t.to(device), decorrelate=decorrelate)()
    torch.testing.assert_close(theirs.cpu(), to_rgb(t, decorrelate), atol=1e-6, rtol=0)
