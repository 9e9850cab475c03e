"""Image parameterisations for feature visualisation: what the optimiser changes is not always the pixels.

Olah, Mordvintsev & Schubert 2017, "Feature Visualization" (Distill), and Mordvintsev, Pezzotti,
Schubert & Olah 2018, "Differentiable Image Parameterizations" (Distill), as in Lucid and Lucent
(`lucent.optvis.param.spatial.fft_image`, `lucent.optvis.param.color.to_valid_rgb`):
- `FourierImage`: the parameters are the image's 2-D real FFT coefficients, each multiplied by
  1 / max(f, 1 / size) ** decay_power, f its frequency in cycles per pixel. Natural images have about
  that spectrum (power ~ 1/f^2), so one Adam step changes every frequency about as much as it changes in
  photographs: high frequencies, which plain pixel ascent fills with noise, start small and grow only
  when the objective pays for them.
- `PixelImage`: the pixels themselves, the same interface (the baseline).
- `to_rgb`: both give an image in a *decorrelated colour* space; `to_rgb` maps it to RGB by the square
  root of ImageNet's colour covariance (so the three parameter channels are uncorrelated in natural
  images: one is roughly brightness, two are colour opponents), then a sigmoid, which keeps every
  pixel in [0, 1] without clipping.

Used by `labkit.interpret.feature_visualisation.visualise` (notebooks/08_class_model_synthesis.ipynb).
"""

from __future__ import annotations

import torch
from torch import nn

from labkit.core import LabError

# Lucid's square root of ImageNet's RGB colour covariance, U sqrt(S) of its SVD (rounded to 2 digits):
# columns are the decorrelated channels seen in RGB, the first (0.26, 0.27, 0.27) brightness, the second
# red against blue, the third green against red and blue.
COLOUR_CORRELATION_SQRT = ((0.26, 0.09, 0.02), (0.27, 0.00, -0.05), (0.27, -0.09, 0.03))
# Lucid's "magic" divisor of the Fourier image: keeps the sigmoid of `to_rgb` far from saturation
# at the start (kept so the images match Lucid's and Lucent's).
FOURIER_DIVISOR = 4.0


def colour_matrix(dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """COLOUR_CORRELATION_SQRT divided by its largest column norm (3, 3): rgb = matrix @ decorrelated."""
    m = torch.tensor(COLOUR_CORRELATION_SQRT, dtype=dtype, device=device)
    return m / m.norm(dim=0).max()


def to_rgb(t: torch.Tensor, decorrelate: bool = True) -> torch.Tensor:
    """Pixels in [0, 1] (N, 3, H, W) from an image `t` (N, 3, H, W) of a parameterisation: the sigmoid
    of `colour_matrix() @ t` at every pixel, or of `t` itself without `decorrelate`."""
    if decorrelate:
        if t.shape[1] != 3:
            raise LabError(f"decorrelated colour needs 3 channels, not {t.shape[1]}; use decorrelate=False.")
        t = torch.einsum("ij,njhw->nihw", colour_matrix(t.dtype, t.device), t)
    return torch.sigmoid(t)


def from_rgb(rgb: torch.Tensor, decorrelate: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """The inverse of `to_rgb`: the image t (N, 3, H, W) with to_rgb(t) = `rgb` (pixels clamped to
    [eps, 1 - eps] first, where the sigmoid is finite), e.g. to start an ascent from a photograph."""
    t = torch.logit(rgb.clamp(eps, 1 - eps))
    if decorrelate:
        t = torch.einsum("ij,njhw->nihw", torch.linalg.inv(colour_matrix(t.dtype, t.device)), t)
    return t


def image_size(size: int | tuple[int, int]) -> tuple[int, int]:
    """(H, W) from an int or a pair of ints >= 1, else a LabError."""
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (h, w)):
        raise LabError(f"size={size!r}: expected an int or a pair (height, width) of ints >= 1.")
    return h, w


def frequencies(h: int, w: int) -> torch.Tensor:
    """|f| in cycles per pixel (H, W // 2 + 1) of each coefficient of `torch.fft.rfft2` of an H x W image."""
    fy = torch.fft.fftfreq(h, dtype=torch.float64)[:, None]  # 0, 1/h, ..., then the negative ones
    fx = torch.fft.rfftfreq(w, dtype=torch.float64)[None, :]  # 0 .. 1/2: the others mirror these
    return torch.sqrt(fx**2 + fy**2)


def spectrum_scale(h: int, w: int, decay_power: float = 1.0) -> torch.Tensor:
    """1 / max(f, 1 / max(h, w)) ** decay_power (H, W // 2 + 1): the factor of each coefficient; the
    lowest frequency stands in for f = 0, so the mean colour gets the largest factor, not infinity."""
    return (1.0 / frequencies(h, w).clamp(min=1.0 / max(h, w)) ** decay_power).float()


class FourierImage(nn.Module):
    """N images (N, C, H, W) whose parameters are their scaled 2-D real FFT coefficients: `spectrum`
    (N, C, H, W // 2 + 1, 2), real and imaginary parts, initialised to noise of std `std` from `seed`.
    forward() = irfft2(spectrum_scale * spectrum, norm "ortho") / FOURIER_DIVISOR, in the decorrelated
    colour space (`to_rgb` gives pixels). Odd and even sizes alike: irfft2 is told the size."""

    scale: torch.Tensor  # a buffer: moves with .to(device), is no parameter

    def __init__(
        self,
        size: int | tuple[int, int],
        n: int = 1,
        channels: int = 3,
        *,
        decay_power: float = 1.0,
        std: float = 0.01,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.size = image_size(size)
        h, w = self.size
        gen = torch.Generator().manual_seed(seed)
        self.spectrum = nn.Parameter(std * torch.randn(n, channels, h, w // 2 + 1, 2, generator=gen))
        self.register_buffer("scale", spectrum_scale(h, w, decay_power)[..., None])  # (H, W//2+1, 1)

    def forward(self) -> torch.Tensor:
        coefficients = torch.view_as_complex(self.spectrum * self.scale)  # (N, C, H, W//2+1) complex
        return torch.fft.irfft2(coefficients, s=self.size, norm="ortho") / FOURIER_DIVISOR

    @classmethod
    def from_image(cls, image: torch.Tensor, *, decay_power: float = 1.0) -> FourierImage:
        """The FourierImage whose forward() is `image` (N, C, H, W): its spectrum divided by the scale."""
        n, c, h, w = image.shape
        param = cls((h, w), n, c, decay_power=decay_power).to(image.device)
        spectrum = torch.fft.rfft2(image.detach().float() * FOURIER_DIVISOR, norm="ortho")
        with torch.no_grad():
            param.spectrum.copy_(torch.view_as_real(spectrum) / param.scale)
        return param


class PixelImage(nn.Module):
    """N images (N, C, H, W) whose parameters are their pixels, `pixels`, initialised to noise of std
    `std` from `seed`; forward() returns them, in the space `to_rgb` maps to pixels (FourierImage's twin)."""

    def __init__(
        self, size: int | tuple[int, int], n: int = 1, channels: int = 3, *, std: float = 0.01, seed: int = 0
    ) -> None:
        super().__init__()
        self.size = image_size(size)
        gen = torch.Generator().manual_seed(seed)
        self.pixels = nn.Parameter(std * torch.randn(n, channels, *self.size, generator=gen))

    def forward(self) -> torch.Tensor:
        return self.pixels

    @classmethod
    def from_image(cls, image: torch.Tensor) -> PixelImage:
        """The PixelImage whose forward() is `image` (N, C, H, W)."""
        n, c, h, w = image.shape
        param = cls((h, w), n, c).to(image.device)
        with torch.no_grad():
            param.pixels.copy_(image.detach())
        return param


PARAMETERISATIONS = {"fft": FourierImage, "pixel": PixelImage}
