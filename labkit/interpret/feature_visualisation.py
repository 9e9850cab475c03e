"""Feature visualisation as in Olah, Mordvintsev & Schubert 2017 ("Feature Visualization", Distill) and
Lucid/Lucent: Adam ascent of an objective over an image parameterisation (`parameterisation`:
decorrelated Fourier basis and colour, or plain pixels) with transformation robustness (`robustness`).
Each of the three is a switch, so the plain pixel ascent is the same call with all three off.

Introduced in notebooks/08_class_model_synthesis.ipynb.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from labkit.core import LabError
from labkit.interpret.attribution import check_choice, check_numbers
from labkit.interpret.parameterisation import PARAMETERISATIONS, image_size, to_rgb
from labkit.interpret.robustness import random_transforms


def visualise(
    objective: Callable[[torch.Tensor], torch.Tensor],
    size: int | tuple[int, int],
    n: int = 1,
    *,
    steps: int = 256,
    lr: float = 0.05,
    param: str = "fft",
    decorrelate: bool = True,
    transforms: bool | dict = True,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """N images (N, 3, H, W) in [0, 1], detached, on `device`, that maximise `objective` by `steps` Adam
    steps of `lr` on the parameters of `param` ("fft": `FourierImage`, "pixel": `PixelImage`), mapped to
    pixels by `to_rgb(t, decorrelate)`. `objective` maps images (N, 3, h, w) in [0, 1] to scores (N,), one
    per image, and normalises them for its network itself; with `transforms` (True: Lucid's; a dict:
    settings of `random_transforms`) it sees each step's randomly moved copy, of another size. All
    randomness comes from `seed`; steps=0 gives the starting images."""
    check_choice("param", param, tuple(PARAMETERISATIONS))
    check_numbers(steps=steps, n=n, integer=True)
    check_numbers(lr=lr)
    if n < 1:
        raise LabError(f"n={n}: expected at least one image.")
    if not isinstance(transforms, (bool, dict)):
        hint = "expected True, False or a dict of settings of random_transforms"
        raise LabError(f"transforms={transforms!r}: {hint}.")
    settings = transforms if isinstance(transforms, dict) else {}
    image = PARAMETERISATIONS[param](image_size(size), n, seed=seed).to(device)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(image.parameters(), lr=lr)
    with torch.enable_grad():  # also when the caller is under no_grad
        for _ in range(steps):
            rgb = to_rgb(image(), decorrelate)
            view = random_transforms(rgb, gen, **settings) if transforms is not False else rgb
            scores = objective(view)
            if scores.shape != (n,):
                raise LabError(f"objective gave a tensor of shape {tuple(scores.shape)}; expected ({n},).")
            opt.zero_grad()
            (-scores.sum()).backward()  # images are independent: the sum's gradient is each one's own
            opt.step()
    with torch.no_grad():
        return to_rgb(image(), decorrelate)
