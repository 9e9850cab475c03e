"""Class-model visualisation: what image does the network score highest for class c?

Introduced in notebooks/08_class_model_synthesis.ipynb. Simonyan, Vedaldi & Zisserman (2014)
find an image I that maximises S_c(I) - l2 * ||I||^2, where S_c is the *unnormalised* class score
(the logit: maximising the softmax could succeed by lowering the other classes instead), by
gradient ascent from a zero (or noise) image. Without help the result is high-frequency noise that
fools the network; Yosinski et al. (2015) add regularisers that favour natural-looking images, and
total variation (Mahendran & Vedaldi 2015) punishes pixel-to-pixel jumps. Each is a setting here,
the same as for `filter_pattern`, since both run the one loop of `labkit.interpret.ascent` (see there:
`l2`, `jitter`, `blur_every`/`blur_sigma`, `tv`/`tv_beta`, `clip_percentile`); `clip` keeps pixels
inside the range of real images ([0, 1] once `mean`/`std` are undone).

`objective="log_softmax"` replaces S_c by log p_c = S_c - log sum_k exp S_k, for networks where the
features that raise S_c raise other classes' scores even more (measured in lab 08). Several classes
are synthesised together as one batch (the model is in eval mode, so the images do not interact).

`model` may also be a list of networks with the same classes: the objective is then their mean, so
the image must convince all of them at once. What one network alone likes (its own blind spots)
averages away, and what is left is more of the class (lab 08 measures it with a held-out network;
ensembles make adversarial images transfer in the same way, Liu et al. 2017).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from labkit.core import LabError
from labkit.interpret.ascent import ascend, check_settings, pixel_range, total_variation
from labkit.interpret.attribution import check_logits, class_index, inspecting, model_device, model_dtype
from labkit.interpret.attribution import in_channels as model_in_channels

__all__ = ["class_model", "total_variation"]
INITS = ("zeros", "noise")
OBJECTIVES = ("score", "log_softmax")


def _class_list(target, classes, num_classes: int) -> list[int]:
    items = [target] if isinstance(target, (int, str)) else list(target)
    if not items:
        raise LabError("target is empty; give a class index, a class name, or a list of them.")
    if classes is None and num_classes == 1000 and any(isinstance(t, str) for t in items):
        from labkit.models import imagenet_classes  # names of a 1000-class model: ImageNet's

        classes = imagenet_classes()
    out = []
    for t in items:
        idx = class_index(t, classes) if isinstance(t, str) else t
        if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < num_classes:
            raise LabError(
                f"target {t!r} is out of range: the model has {num_classes} classes, so a class index must "
                f"be in 0..{num_classes - 1}."
            )
        out.append(int(idx))
    return out


def _networks(model: nn.Module | Sequence[nn.Module]) -> nn.ModuleList:
    nets = [model] if isinstance(model, nn.Module) else list(model)
    if not nets or not all(isinstance(m, nn.Module) for m in nets):
        raise LabError("model must be a network (nn.Module) or a non-empty list of networks with the same classes.")
    holder = nn.ModuleList(nets)  # holds references: nothing is copied, and `inspecting` covers them all
    holder.training = False  # the container's own flag only: a new module starts in training mode,
    return holder  # which would make every call warn that "the model is in training mode"


def class_model(
    model: nn.Module | Sequence[nn.Module],
    target: int | str | Sequence[int | str],
    *,
    steps: int = 200,
    lr: float = 0.05,
    image_size: int | tuple[int, int] = 64,
    in_channels: int | None = None,
    init: str | torch.Tensor = "zeros",
    l2: float = 0.0,
    jitter: int = 0,
    blur_every: int = 0,
    blur_sigma: float = 0.5,
    tv: float = 0.0,
    tv_beta: float = 2.0,
    clip: bool = True,
    clip_percentile: float = 0.0,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    classes: Sequence[str] | None = None,
    seed: int = 0,
    objective: str = "score",
    return_history: bool = False,
):
    """Synthesise the image(s) the network scores highest for `target`, by regularised gradient ascent.

    Args:
        model: a classifier returning logits (N, num_classes), or a list of classifiers of the same
            classes (the objective is averaged over them); computed in eval mode, given back as found.
        target: a class index or name, or a list of them (one image each, optimised as one batch).
            Names need `classes`; for a 1000-class model the ImageNet names are used by default.
        steps: number of ascent steps.
        lr: Adam step size, in input-space units per step.
        image_size: H (square) or (H, W) of the image to make.
        in_channels: colour channels; default: those of the model's first Conv2d, else 3.
        init: "zeros" (the mean image, as Simonyan et al.), "noise" (Gaussian, std 0.1, from `seed`),
            or a tensor (C, H, W) / (N, C, H, W) in input space to start from.
        l2, jitter, blur_every, blur_sigma, tv, tv_beta, clip_percentile: the regularisers (see
            `labkit.interpret.ascent`); 0 switches one off.
        clip: keep pixels inside the [0, 1] image range once `mean`/`std` are undone.
        mean, std: the normalisation the model expects (per channel); used by `clip`. Default mean 0,
            std 1: the model takes [0, 1] images.
        classes: class names, for `target` names.
        seed: seeds the noise and the jitter (same seed, same image).
        objective: "score" (Simonyan et al.: the unnormalised score S_c) or "log_softmax"
            (S_c - log sum_k exp S_k: the score minus what every class gains). Use "log_softmax" when
            classes share features: raising S_c can raise another class's score faster, and the
            image ends up convincing the network of the wrong class.
        return_history: also return a list of dicts (step, target, score, probability) every 10 steps
            (of the first network, for an ensemble).

    Returns:
        Tensor (C, H, W) for a single target, (N, C, H, W) for a list, in model input space (apply the
        dataset's `denormalize` to show it); with `return_history`, `(images, history)`.

    Raises:
        LabError: target out of range or unknown name, bad settings.

    Example:
        >>> img = class_model(model, 3, l2=1e-3, jitter=2, blur_every=4, tv=0.05,
        ...                   mean=splits.mean, std=splits.std, image_size=64)
        >>> plt.imshow(splits.denormalize(img).permute(1, 2, 0))
    """
    check_settings(steps=steps, lr=lr, l2=l2, jitter=jitter, blur_every=blur_every, blur_sigma=blur_sigma, tv=tv,
                   tv_beta=tv_beta, clip_percentile=clip_percentile)  # fmt: skip
    if objective not in OBJECTIVES:
        raise LabError(f"objective={objective!r}: use one of {OBJECTIVES}.")
    if isinstance(init, str) and init not in INITS:
        raise LabError(f"init={init!r}: use one of {INITS} or a tensor.")
    nets = _networks(model)
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    c = in_channels or model_in_channels(nets[0], default=3)
    device, dtype = model_device(nets), model_dtype(nets)
    gen = torch.Generator().manual_seed(seed)
    history: list[dict] = []
    last: list[torch.Tensor] = []  # the first network's logits of the latest step, for the history

    with inspecting(nets, what="class_model"):
        with torch.no_grad():
            probe = torch.zeros(1, c, h, w, device=device, dtype=dtype)
            counts = [check_logits(net(probe)).shape[1] for net in nets]
        if len(set(counts)) > 1:
            raise LabError(f"the networks have different numbers of classes ({counts}); an ensemble needs the same classes.")
        targets = torch.tensor(_class_list(target, classes, counts[0]), device=device)
        n = len(targets)
        if isinstance(init, torch.Tensor):
            start = init.detach().to(device, dtype)
            start = start[None] if start.dim() == 3 else start
            if start.shape[1:] != (c, h, w) or start.shape[0] not in (1, n):
                raise LabError(f"init has shape {tuple(init.shape)}; expected ({c}, {h}, {w}) or ({n}, {c}, {h}, {w}).")
            start = start.expand(n, -1, -1, -1)
        elif init == "noise":
            start = 0.1 * torch.randn(n, c, h, w, generator=gen, dtype=dtype).to(device)
        else:
            start = torch.zeros(n, c, h, w, dtype=dtype, device=device)
        low, high = pixel_range(mean, std, start) if clip else (None, None)

        def gain(images: torch.Tensor) -> torch.Tensor:
            """Per image, the objective averaged over the networks."""
            every = [net(images) for net in nets]
            last[:] = [every[0].detach()]
            scores = [logits.gather(1, targets[:, None])[:, 0] for logits in every]  # (N,) unnormalised class scores
            if objective == "log_softmax":
                scores = [sc - logits.logsumexp(1) for sc, logits in zip(scores, every)]  # log p_c
            return torch.stack(scores).mean(0)

        def record(step: int) -> None:
            logits = last[0]
            if return_history and (step % 10 == 0 or step in (1, steps)):
                probs = logits.softmax(dim=1).gather(1, targets[:, None])[:, 0]
                scores = logits.gather(1, targets[:, None])[:, 0]
                history.extend({"step": step, "target": int(t), "score": float(sc), "probability": float(pr)}
                               for t, sc, pr in zip(targets.tolist(), scores.tolist(), probs.tolist()))  # fmt: skip

        images = ascend(gain, start, steps=steps, lr=lr, l2=l2, jitter=jitter, blur_every=blur_every,
                        blur_sigma=blur_sigma, tv=tv, tv_beta=tv_beta, clip_percentile=clip_percentile,
                        low=low, high=high, generator=gen, after_step=record)  # fmt: skip
    images = images[0] if isinstance(target, (int, str)) else images
    return (images, history) if return_history else images
