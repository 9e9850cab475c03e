"""Class-model visualisation (Simonyan, Vedaldi & Zisserman 2014): the image a network (or the mean of
an ensemble) scores highest for a class, by the regularised ascent of `labkit.interpret.ascent`.

Introduced in notebooks/08_class_model_synthesis.ipynb.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from labkit.core import LabError
from labkit.interpret import attribution
from labkit.interpret.ascent import ascend, check_settings, pixel_range

INITS = ("zeros", "noise")
OBJECTIVES = ("score", "log_softmax")


def class_model(
    model: nn.Module | Sequence[nn.Module],
    target: int | str | Sequence[int | str],
    *,
    steps: int = 200,
    lr: float = 0.05,
    image_size: int | tuple[int, int] = 64,
    init: str | torch.Tensor = "zeros",
    l2: float = 0.0,
    jitter: int = 0,
    blur_every: int = 0,
    blur_sigma: float = 0.5,
    tv: float = 0.0,
    tv_beta: float = 2.0,
    clip: bool = True,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    classes: Sequence[str] | None = None,
    seed: int = 0,
    objective: str = "score",
) -> torch.Tensor:
    """The image the network (or a list of networks of the same classes, an ensemble) scores highest for
    `target` (a class index or name, or a list; names need `classes`, except for ImageNet's 1000), by the
    ascent of `labkit.interpret.ascent`: Tensor (C, H, W) in input space, (N, C, H, W) for a list. The
    ascent starts from `init`: "zeros" (the mean image), "noise" (std 0.1, from `seed`) or a tensor
    (C, H, W) or (N, C, H, W); `clip` keeps pixels in [0, 1] once `mean`, `std` are undone; `objective`:
    "score" (S_c) or "log_softmax" (S_c - log sum_k exp S_k)."""
    settings = dict(l2=l2, jitter=jitter, blur_every=blur_every, blur_sigma=blur_sigma)
    settings.update(tv=tv, tv_beta=tv_beta)
    check_settings(steps, lr, **settings)
    attribution.check_choice("objective", objective, OBJECTIVES)
    if isinstance(init, str):
        attribution.check_choice("init", init, INITS, " or a tensor")
    members = [model] if isinstance(model, nn.Module) else list(model)
    if not members or not all(isinstance(m, nn.Module) for m in members):
        raise LabError("model must be an nn.Module or a non-empty list of networks of the same classes.")
    nets = nn.ModuleList(members)  # references, nothing copied: `inspecting` covers them all
    nets.training = False  # its own flag only: a new module's True would make `inspecting` warn
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    c = attribution.in_channels(nets[0], default=3)
    device, dtype = attribution.model_device(nets), attribution.model_dtype(nets)
    gen = torch.Generator().manual_seed(seed)

    with attribution.inspecting(nets, what="class_model"):
        with torch.no_grad():
            probe = torch.zeros(1, c, h, w, device=device, dtype=dtype)
            counts = [attribution.check_logits(net(probe)).shape[1] for net in nets]
        if len(set(counts)) > 1:
            raise LabError(f"the networks have different numbers of classes ({counts}); they must agree.")
        items = [target] if isinstance(target, (int, str)) else list(target)
        if not items:
            raise LabError("target is empty; give a class index, a class name, or a list of them.")
        if classes is None and counts[0] == 1000 and any(isinstance(t, str) for t in items):
            from labkit.models.pretrained import imagenet_classes  # here: see ascent.ascend

            classes = imagenet_classes()  # the names of a 1000-class model: ImageNet's
        targets = attribution.resolve_targets(items, torch.zeros(len(items), counts[0]), classes).to(device)
        n = len(targets)
        if isinstance(init, torch.Tensor):
            start = init.detach().to(device, dtype)
            start = start[None] if start.dim() == 3 else start
            if start.shape[1:] != (c, h, w) or start.shape[0] not in (1, n):
                raise LabError(
                    f"init has shape {tuple(init.shape)}; expected ({c}, {h}, {w}) or ({n}, {c}, {h}, {w})."
                )
            start = start.expand(n, -1, -1, -1)
        elif init == "noise":
            start = 0.1 * torch.randn(n, c, h, w, generator=gen, dtype=dtype).to(device)
        else:
            start = torch.zeros(n, c, h, w, dtype=dtype, device=device)
        low, high = pixel_range(mean, std, start) if clip else (None, None)

        def gain(images: torch.Tensor) -> torch.Tensor:  # (N,): the objective, mean over the networks
            every = [net(images) for net in nets]
            scores = [logits.gather(1, targets[:, None])[:, 0] for logits in every]
            if objective == "log_softmax":
                scores = [sc - logits.logsumexp(1) for sc, logits in zip(scores, every)]
            return torch.stack(scores).mean(0)

        images = ascend(gain, start, steps=steps, lr=lr, low=low, high=high, generator=gen, **settings)
    return images[0] if isinstance(target, (int, str)) else images
