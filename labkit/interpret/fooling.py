"""Targeted adversarial examples (Szegedy et al. 2014; Goodfellow et al. 2015; Kurakin et al. 2016, 2017):
from a real image, small steps down the cross-entropy of another class until the network predicts it;
pixels stay in [0, 1].

Introduced in notebooks/08_class_model_synthesis.ipynb.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from labkit.core import LabError
from labkit.interpret import attribution
from labkit.interpret.ascent import pixel_range

NORMS = ("linf", "l2")


@dataclass
class Fooling:
    """What `fool` did to N images, on x's device: the perturbed `images` normalised as x; the `perturbation`
    added, its largest |change| of a pixel (`linf`) and its L2 norm (`l2`), in pixel units; the `targets`;
    whether the network predicts them (`fooled`); the `steps` taken (max_steps for images not fooled)."""

    images: torch.Tensor
    perturbation: torch.Tensor
    targets: torch.Tensor
    fooled: torch.Tensor
    steps: torch.Tensor
    linf: torch.Tensor
    l2: torch.Tensor


def fool(
    model: nn.Module,
    x: torch.Tensor,
    target: attribution.Target = None,
    *,
    step_size: float = 1 / 255,
    max_steps: int = 100,
    norm: str = "linf",
    mean=None,
    std=None,
    classes=None,
) -> Fooling:
    """Push each image towards `target` (None: its second most likely class) in steps of `step_size` pixel
    units (0 to 1 before the normalisation `mean`, `std`), along the gradient's sign (norm="linf") or the
    gradient of unit L2 norm ("l2"), until the network predicts it."""
    attribution.check_images(x)
    attribution.check_numbers(step_size=step_size)
    attribution.check_numbers(max_steps=max_steps, minimum=1, integer=True)
    attribution.check_choice("norm", norm, NORMS)
    device = attribution.model_device(model)
    start = x.detach().to(device)
    low, high = pixel_range(mean, std, start)  # (1, C, 1, 1): pixel values 0 and 1 in input space
    scale = 1 / (high - low)  # std: one input unit in pixel units
    with attribution.inspecting(model, what="fool"):
        with torch.no_grad():
            logits = attribution.check_logits(model(start))
        if target is None:
            targets = logits.topk(2, dim=1).indices[:, 1]
        else:
            targets = attribution.resolve_targets(target, logits, classes)
        same = (logits.argmax(1) == targets).nonzero().flatten().tolist()
        if same:
            raise LabError(
                f"images {same[:5]} are already predicted as their target class; choose another "
                "class (target=None picks each image's second most likely class)."
            )
        images = start.clone()
        steps = torch.zeros(len(images), dtype=torch.long, device=device)
        active = torch.ones(len(images), dtype=torch.bool, device=device)
        for step in range(max_steps + 1):
            # one forward pass both checks the images of the last step and gives the next gradient
            idx = active.nonzero().flatten()
            xg = images[idx].requires_grad_(True)
            out = attribution.check_logits(model(xg))
            going = out.argmax(1) != targets[idx]
            active[idx] = going
            idx = idx[going]
            if step == max_steps or not len(idx):
                break
            loss = F.cross_entropy(out[going], targets[idx], reduction="sum")  # images are independent
            (grad,) = torch.autograd.grad(loss, xg)
            grad = grad[going] * scale  # d loss / d pixel = d loss / d x * std
            if norm == "linf":
                move = grad.sign()
            else:
                move = grad / grad.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, 1, 1, 1)
            with torch.no_grad():
                stepped = images[idx] - step_size * move / scale  # down the loss, in input space
                images[idx] = torch.maximum(torch.minimum(stepped, high), low)
                steps[idx] += 1
    perturbation = (images - start) * scale
    flat = perturbation.flatten(1)
    result = (images, perturbation, targets, ~active, steps, flat.abs().amax(1), flat.norm(dim=1))
    return Fooling(*(t.to(x.device) for t in result))
