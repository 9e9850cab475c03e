"""Fooling images: the smallest push that makes a network see another class (Szegedy et al. 2014;
Goodfellow, Shlens & Szegedy 2015).

Introduced in notebooks/08_class_model_synthesis.ipynb. Class-model synthesis (lab 08) climbs a
class score from noise; here the climb starts from a real, correctly classified image and stops at
the first step at which the network predicts the chosen class. Each step lowers the cross-entropy
of the target class, -log p_target:

- `norm="linf"`: every pixel moves by `step_size` in the direction of the gradient's sign (the
  fast gradient sign method of Goodfellow et al., repeated: Kurakin et al. 2017);
- `norm="l2"`: the image moves by `step_size` along the gradient scaled to unit L2 norm (the
  fooling images of Stanford's CS231n).

Steps and sizes are measured in pixel units (a pixel from 0 to 1, before the normalisation given by
`mean` and `std`); after each step pixels are kept in [0, 1]. An image stops moving as soon as it
fools the network, so `steps` is the fewest steps of this size that do it.
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
    """The result of `fool`, for N images (tensors on x's device).

    Attributes:
        images: (N, C, H, W) the perturbed images, normalised as x.
        perturbation: (N, C, H, W) what was added, in pixel units (0..1 scale).
        targets: LongTensor (N,) the classes the network was pushed towards.
        fooled: BoolTensor (N,) the network predicts the target class for the perturbed image.
        steps: LongTensor (N,) steps taken (max_steps for images not fooled).
        linf: (N,) largest |change| of one pixel value, in pixel units.
        l2: (N,) L2 norm of the whole change, in pixel units.
    """

    images: torch.Tensor
    perturbation: torch.Tensor
    targets: torch.Tensor
    fooled: torch.Tensor
    steps: torch.Tensor
    linf: torch.Tensor
    l2: torch.Tensor


def fool(
    model: nn.Module, x: torch.Tensor, target: attribution.Target = None, *, step_size: float = 1 / 255, max_steps: int = 100,
    norm: str = "linf", mean=None, std=None, classes=None,
) -> Fooling:  # fmt: skip
    """Push each image towards the target class in small gradient steps until the network predicts it.

    Args:
        model: a classifier returning logits; computed in eval mode, given back as found.
        x: images (N, C, H, W), normalised as the model takes them (not changed).
        target: class per image (None: each image's second most likely class); none may be the
            class already predicted.
        step_size: the size of one step in pixel units (linf: per pixel; l2: of the whole image).
        max_steps: steps after which an image that still does not fool the network is given up.
        norm: "linf" (sign steps) or "l2" (normalised-gradient steps).
        mean, std: the normalisation of x (per channel); None: x is in pixel units already.
        classes: class names, when `target` holds names.

    Returns:
        a `Fooling`.

    Example:
        >>> result = fool(model, x, target=3, mean=splits.mean, std=splits.std)
        >>> result.fooled.float().mean(), result.steps, result.linf * 255   # in grey levels
    """
    attribution.check_images(x)
    attribution.check_number("step_size", step_size)
    attribution.check_number("max_steps", max_steps, minimum=1, integer=True)
    if norm not in NORMS:
        raise LabError(f"norm={norm!r}: use one of {NORMS}.")
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
            raise LabError(f"images {same[:5]} are already predicted as their target class; choose another "
                           "class (target=None picks each image's second most likely class).")  # fmt: skip
        images = start.clone()
        steps = torch.zeros(len(images), dtype=torch.long, device=device)
        active = torch.ones(len(images), dtype=torch.bool, device=device)
        for step in range(max_steps + 1):
            # One forward pass both checks the images of the last step and gives the next gradient.
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
            grad = grad[going] * scale  # d loss / d pixel = d loss / d x * std: the gradient in pixel units
            if norm == "linf":
                move = grad.sign()
            else:
                move = grad / grad.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, 1, 1, 1)
            with torch.no_grad():
                stepped = images[idx] - step_size * move / scale  # down the loss, in input space
                images[idx] = torch.maximum(torch.minimum(stepped, high), low)
                steps[idx] += 1
    with torch.no_grad():
        fooled = ~active
        perturbation = (images - start) * scale
    flat = perturbation.flatten(1)
    return Fooling(images=images.to(x.device), perturbation=perturbation.to(x.device), targets=targets.to(x.device),
                   fooled=fooled.to(x.device), steps=steps.to(x.device), linf=flat.abs().amax(1).to(x.device),
                   l2=flat.norm(dim=1).to(x.device))  # fmt: skip
