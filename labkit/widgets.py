"""Interactive explorers for the notebooks: dropdowns that redraw a figure, and the headless decision.

Introduced in notebooks/05_filters_feature_maps.ipynb (`explorer`); lab 07 adds `class_chooser`.
Headless, every explorer returns a static Figure of its first choice instead, which the lab saves.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import nn

from labkit.core import LabError
from labkit.interpret import gradcam, topk_targets
from labkit.interpret.attribution import inspecting, model_device
from labkit.plots.images import to_display
from labkit.plots.maps import map_panel
from labkit.progress import jupyter_kernel

Options = Sequence[Any]  # dropdown options: values, or (label, value) pairs
Controls = Mapping[str, Options | Mapping[Any, Options]]  # {label: options, or {earlier value: options}}


def headless() -> bool:
    """True when no one can click a widget: as LABKIT_HEADLESS says ("1", which the labkit runner and the
    tests set, or "0"), else outside a Jupyter kernel; never guessed from process names."""
    flag = os.environ.get("LABKIT_HEADLESS", "").strip()
    return flag != "0" if flag else not jupyter_kernel()


def _value(option: Any) -> Any:
    return option[1] if isinstance(option, tuple) else option


def chooser(render: Callable[..., Figure], controls: Controls, *, interactive: bool | None = None) -> Any:
    """Dropdowns, one per control in order, that redraw `render(value of each control)` (a Figure) when
    one changes; options given as {value of the control before: options} follow that control.

    Returns an ipywidgets VBox to display, or, when not `interactive` (default: `not headless()`), the
    Figure of the first option of each control.
    """
    labels = list(controls)
    if not labels or isinstance(controls[labels[0]], Mapping):
        raise LabError(
            "chooser needs at least one control, and the first one's options cannot depend on another."
        )
    first: list[Any] = []
    for options in controls.values():
        options = options[first[-1]] if isinstance(options, Mapping) else options
        if not options:
            raise LabError("every control needs at least one option.")
        first.append(_value(options[0]))
    if not (interactive if interactive is not None else not headless()):
        figure = render(*first)
        plt.close(figure)  # shown once, as the cell's value, not a second time by the inline backend
        return figure
    # Only with someone to click: ipywidgets takes a while to import and a headless run never needs it.
    import ipywidgets as widgets
    from IPython.display import display

    boxes = [
        widgets.Dropdown(options=list(o[before] if isinstance(o, Mapping) else o), description=label)
        for (label, o), before in zip(controls.items(), [None, *first[:-1]])
    ]
    out = widgets.Output()

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            fig = render(*(box.value for box in boxes))
            display(fig)
            plt.close(fig)

    def follow(k: int, *_: Any) -> None:  # new options for control k, then one redraw
        boxes[k].unobserve(draw, names="value")
        boxes[k].options = list(controls[labels[k]][boxes[k - 1].value])
        boxes[k].value = _value(boxes[k].options[0])
        boxes[k].observe(draw, names="value")
        draw()

    for k, box in enumerate(boxes):
        leads = k + 1 < len(boxes) and isinstance(controls[labels[k + 1]], Mapping)
        box.observe(functools.partial(follow, k + 1) if leads else draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox(boxes), out])


def explorer(
    render: Callable[[str, str, int], Figure],
    choices: Mapping[str, Sequence[int] | int],
    images: Sequence[str],
    *,
    interactive: bool | None = None,
) -> Any:
    """An image / layer / channel chooser that redraws `render(image, layer, channel)`; `choices` is
    {layer name: its channel count, or the channels to offer}, `images` the image names."""
    if not choices or not images:
        raise LabError("explorer needs at least one layer and one image.")
    channels = {k: list(range(v)) if isinstance(v, int) else list(v) for k, v in choices.items()}
    return chooser(
        render, {"image": list(images), "layer": list(channels), "channel": channels}, interactive=interactive
    )


def class_chooser(
    model: nn.Module,
    images: Mapping[str, torch.Tensor],
    classes: Sequence[str],
    *,
    denormalize: Callable | None = None,
    method: Callable | None = None,
    k: int = 10,
    interactive: bool | None = None,
) -> Any:
    """Pick an image of `images` ({name: normalised image (3, H, W)}) and one of its `k` most probable
    `classes`, see that class's map (`method`, default Grad-CAM; `denormalize` for display)."""
    method = method or gradcam
    names = list(images)
    batch = torch.stack([images[n] for n in names])
    with inspecting(model), torch.no_grad():
        probs = model(batch.to(model_device(model))).softmax(1).cpu()
    top = topk_targets(model, batch, k)
    options = {
        n: [(f"{classes[c]} ({probs[i, c]:.2f})", c) for c in top[i].tolist()] for i, n in enumerate(names)
    }

    def render(name: str, target: int) -> Figure:
        i = names.index(name)
        pic = to_display(batch[i], denormalize)[0]
        fig, ax = plt.subplots(1, 2, figsize=(7, 3.5))
        ax[0].imshow(pic)
        map_panel(ax[1], pic, method(model, batch[i : i + 1], target=target)[0])
        ax[1].set_title(f"{getattr(method, '__name__', 'map')}: {classes[target]}", fontsize=9)
        for a in ax:
            a.axis("off")
        return fig

    return chooser(render, {"image": names, "class": options}, interactive=interactive)


__all__ = ["chooser", "class_chooser", "explorer", "headless"]
