"""Class-model visualisation: what image does the network score highest for class c?

Introduced in notebooks/08_class_model_synthesis.ipynb. Simonyan, Vedaldi & Zisserman (2014)
find an image I that maximises S_c(I) - l2 * ||I||^2, where S_c is the *unnormalised* class score
(the logit: maximising the softmax could succeed by lowering the other classes instead), by
gradient ascent from a zero (or noise) image. Without help the result is high-frequency noise that
fools the network; Yosinski et al. (2015) add regularisers that favour natural-looking images, and
total variation (Mahendran & Vedaldi 2015) punishes pixel-to-pixel jumps. Each is a parameter here:

- `l2`: penalty l2 * mean(I^2) per image (Simonyan's L2; in input space 0 is the dataset mean colour);
- `jitter`: before every step the image is shifted by up to `jitter` pixels (circularly), so no pattern
  can rely on exact pixel positions (Mordvintsev et al. 2015, used by Yosinski et al.);
- `blur_every`, `blur_sigma`: every `blur_every` steps the image is Gaussian-blurred (Yosinski et al.);
- `tv`, `tv_beta`: penalty tv * (mean |I[y+1,x] - I[y,x]|^beta + mean |I[y,x+1] - I[y,x]|^beta) per
  image. beta = 2 (the default) smooths like a blur; beta = 1 is total variation proper, which allows
  sharp edges between flat regions (Mahendran & Vedaldi's V^beta, here in its anisotropic form);
- `clip`: after every step, pixels are kept inside the range of real images ([0, 1] once `mean`/`std`
  are undone), so the result stays a picture the network could be shown;
- `clip_percentile`: Yosinski et al.'s "clipping pixels with small norm": after every step, pixels whose
  norm over channels is below this percentile (0-100) of the image are set to 0 (the mean colour).

The ascent uses Adam on the pixels (a per-pixel step size keeps one `lr` usable across networks whose
gradients differ in scale by orders of magnitude); the penalties enter the objective, so "gradient
ascent on S_c minus penalties" is what is optimised. `objective="log_softmax"` replaces S_c by
log p_c = S_c - log sum_k exp S_k, for networks where the features that raise S_c raise other
classes' scores even more (measured in lab 08). Several classes are synthesised together as
one batch (the model is in eval mode, so the images do not interact).

`model` may also be a list of networks with the same classes: the objective is then their mean, so
the image must convince all of them at once. What one network alone likes (its own blind spots)
averages away, and what is left is more of the class (lab 08 measures it with a held-out network;
ensembles make adversarial images transfer in the same way, Liu et al. 2017).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from labkit.env import LabError
from labkit.interpret.hooks import preserved
from labkit.interpret.targets import check_logits, class_index, eval_for_attribution, model_device

INITS = ("zeros", "noise")
OBJECTIVES = ("score", "log_softmax")


def _in_channels(model: nn.Module) -> int:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    return 3


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


def total_variation(x: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    """Mean |difference|^beta of vertically plus of horizontally neighbouring pixels, per image:
    (N, C, H, W) -> (N,). beta = 2: mean squared differences; beta = 1: total variation proper."""
    dy = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().pow(beta).mean(dim=(1, 2, 3))
    dx = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().pow(beta).mean(dim=(1, 2, 3))
    return dx + dy


def _networks(model: nn.Module | Sequence[nn.Module]) -> nn.ModuleList:
    nets = [model] if isinstance(model, nn.Module) else list(model)
    if not nets or not all(isinstance(m, nn.Module) for m in nets):
        raise LabError("model must be a network (nn.Module) or a non-empty list of networks with the same classes.")
    holder = nn.ModuleList(nets)  # holds references: nothing is copied, and `preserved` covers them all
    holder.training = False  # the container's own flag only: a new module starts in training mode,
    return holder  # which would make every call warn that "the model is in training mode"


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur each channel with a Gaussian of `sigma` pixels (reflect padding)."""
    radius = max(1, math.ceil(2 * sigma))
    coords = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)  # along width
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)  # along height


def _objective(nets: nn.ModuleList, images: torch.Tensor, targets: torch.Tensor, objective: str):
    """Per image, the objective averaged over the networks; and the first network's logits (for the history)."""
    every_logits = [net(images) for net in nets]
    gains = []
    for logits in every_logits:
        scores = logits.gather(1, targets[:, None])[:, 0]  # (N,) unnormalised class scores
        gains.append(scores if objective == "score" else scores - logits.logsumexp(1))  # log p_c
    return torch.stack(gains).mean(0), every_logits[0].detach()


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
        l2, jitter, blur_every, blur_sigma, tv, tv_beta, clip, clip_percentile: the regularisers (see module doc);
            0 / False switches one off.
        mean, std: the normalisation the model expects (per channel); used by `clip` to keep pixels in
            the [0, 1] image range. Default mean 0, std 1: the model takes [0, 1] images.
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
    if not isinstance(steps, int) or steps < 1:
        raise LabError(f"steps={steps!r}: expected a positive int.")
    for name, value in (("lr", lr), ("l2", l2), ("tv", tv), ("blur_sigma", blur_sigma)):
        if not isinstance(value, (int, float)) or value < 0:
            raise LabError(f"{name}={value!r}: expected a number >= 0.")
    if not isinstance(jitter, int) or jitter < 0 or not isinstance(blur_every, int) or blur_every < 0:
        raise LabError(f"jitter={jitter!r}, blur_every={blur_every!r}: expected ints >= 0 (0 switches it off).")
    if not isinstance(tv_beta, (int, float)) or tv_beta < 1:
        raise LabError(f"tv_beta={tv_beta!r}: expected a number >= 1 (2: squared differences, 1: total variation).")
    if not 0 <= clip_percentile < 100:
        raise LabError(f"clip_percentile={clip_percentile!r}: expected a percentile in [0, 100).")
    if objective not in OBJECTIVES:
        raise LabError(f"objective={objective!r}: use one of {OBJECTIVES}.")
    if isinstance(init, str) and init not in INITS:
        raise LabError(f"init={init!r}: use one of {INITS} or a tensor.")
    nets = _networks(model)
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    c = in_channels or _in_channels(nets[0])
    device = model_device(nets)
    dtype = next(nets.parameters()).dtype if any(True for _ in nets.parameters()) else torch.float32
    gen = torch.Generator().manual_seed(seed)
    single = isinstance(target, (int, str))

    with preserved(nets):
        eval_for_attribution(nets, "class_model")
        for p in nets.parameters():
            p.requires_grad_(False)
        with torch.no_grad():
            probe = torch.zeros(1, c, h, w, device=device, dtype=dtype)
            counts = [check_logits(net(probe)).shape[1] for net in nets]
        if len(set(counts)) > 1:
            raise LabError(f"the networks have different numbers of classes ({counts}); an ensemble needs the same classes.")
        num_classes = counts[0]
        targets = torch.tensor(_class_list(target, classes, num_classes), device=device)
        n = len(targets)

        # Valid range of input-space pixels: (0 - mean) / std .. (1 - mean) / std, per channel.
        m = torch.as_tensor(mean if mean is not None else [0.0] * c, dtype=dtype, device=device).view(1, -1, 1, 1)
        s = torch.as_tensor(std if std is not None else [1.0] * c, dtype=dtype, device=device).view(1, -1, 1, 1)
        low, high = (0 - m) / s, (1 - m) / s

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
        x = start.clone().requires_grad_(True)
        opt = torch.optim.Adam([x], lr=lr)
        history = []

        for step in range(1, steps + 1):
            opt.zero_grad()
            view = x
            if jitter:
                dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=gen).tolist()
                view = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
            gain, logits = _objective(nets, view, targets, objective)
            if l2:
                gain = gain - l2 * x.pow(2).mean(dim=(1, 2, 3))
            if tv:
                gain = gain - tv * total_variation(x, tv_beta)
            (-gain.sum()).backward()  # images are independent: one backward for all N
            opt.step()
            with torch.no_grad():
                if blur_every and blur_sigma > 0 and step % blur_every == 0:
                    x.copy_(gaussian_blur(x, blur_sigma))
                if clip_percentile:
                    norms = x.norm(dim=1, keepdim=True)  # (N, 1, H, W)
                    cut = torch.quantile(norms.flatten(1), clip_percentile / 100, dim=1).view(-1, 1, 1, 1)
                    x.mul_((norms >= cut).to(x.dtype))
                if clip:
                    x.copy_(torch.maximum(torch.minimum(x, high), low))
            if return_history and (step % 10 == 0 or step in (1, steps)):
                scores = logits.gather(1, targets[:, None])[:, 0]
                probs = logits.softmax(dim=1).gather(1, targets[:, None])[:, 0]
                history += [
                    {"step": step, "target": int(t), "score": float(sc), "probability": float(pr)}
                    for t, sc, pr in zip(targets.tolist(), scores.tolist(), probs.tolist())
                ]
    images = x.detach()
    images = images[0] if single else images
    return (images, history) if return_history else images
