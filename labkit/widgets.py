"""Interactive explorers for the notebooks: dropdowns that redraw a figure, and the headless decision.

Introduced in notebooks/05_filters_feature_maps.ipynb (`explorer`); lab 07 adds `class_chooser`.

Whether anyone can click a widget is decided explicitly, never guessed from process names:
- a notebook's `interactive` parameter (True or False) decides for that notebook;
- otherwise the environment variable LABKIT_HEADLESS: "1" headless (the labkit runner and the
  tests set it), "0" a live front end;
- otherwise widgets are shown inside a Jupyter kernel and not elsewhere.
Headless, every explorer returns a static Figure of its first choice instead, which the lab saves.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from labkit.core import LabError
from labkit.interpret import gradcam, topk_targets
from labkit.interpret.attribution import inspecting, model_device
from labkit.plots.images import to_display
from labkit.plots.maps import map_panel
from labkit.progress import jupyter_kernel

Options = Sequence[Any]  # dropdown options: values, or (label, value) pairs


def headless() -> bool:
    """True when no one can click a widget (see the module docstring for how it is decided)."""
    flag = os.environ.get("LABKIT_HEADLESS", "").strip()
    if flag:
        return flag != "0"
    return not jupyter_kernel()


def _value(option: Any) -> Any:
    return option[1] if isinstance(option, tuple) else option


def chooser(
    render: Callable[..., Figure],
    controls: Mapping[str, Options | Mapping[Any, Options]],
    *,
    interactive: bool | None = None,
):
    """Dropdowns that redraw `render(value of each control, in order)` whenever one changes.

    Args:
        render: draws one view and returns its Figure.
        controls: {label: options}, in order; options may instead be {value of the control before:
            options}, so that they follow that control (e.g. a layer's channels).
        interactive: True (ipywidgets), False (a static figure), None: `not headless()`.

    Returns:
        an ipywidgets VBox to display, or, headless, the Figure of the first option of each control.
    """
    labels = list(controls)
    if not labels or any(isinstance(o, Mapping) and i == 0 for i, o in enumerate(controls.values())):
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
        return render(*first)
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

    def follow(k: int) -> Callable:
        def update(*_):  # new options for control k, then one redraw
            boxes[k].unobserve(draw, names="value")
            boxes[k].options = list(controls[labels[k]][boxes[k - 1].value])
            boxes[k].value = _value(boxes[k].options[0])
            boxes[k].observe(draw, names="value")
            draw()

        return update

    for k, box in enumerate(boxes):
        leads = k + 1 < len(boxes) and isinstance(controls[labels[k + 1]], Mapping)
        box.observe(follow(k + 1) if leads else draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox(boxes), out])


def explorer(
    render: Callable[[str, str, int], Figure],
    choices: Mapping[str, Sequence[int] | int],
    images: Sequence[str],
    *,
    interactive: bool | None = None,
):
    """An image / layer / channel chooser that redraws `render(image, layer, channel)`.

    Args:
        choices: {layer name: its channel count, or the channels to offer}.
        images: names of the images to choose from.
        interactive: see `chooser`.
    """
    if not choices or not images:
        raise LabError("explorer needs at least one layer and one image.")
    channels = {k: list(range(v)) if isinstance(v, int) else list(v) for k, v in choices.items()}
    return chooser(
        render, {"image": list(images), "layer": list(channels), "channel": channels}, interactive=interactive
    )


def class_chooser(
    model,
    images: Mapping[str, torch.Tensor],
    classes: Sequence[str],
    *,
    denormalize=None,
    method: Callable | None = None,
    k: int = 10,
    interactive: bool | None = None,
):
    """Pick an image and one of its top-k classes, see that class's map (Grad-CAM by default).

    Args:
        model: the classifier.
        images: {name: normalised image (3, H, W)}.
        classes: class names of the model's outputs.
        denormalize: turns a normalised image back into [0, 1] for display.
        method: the map to show (default `labkit.interpret.gradcam`).
        k: how many of each image's most probable classes to offer.
        interactive: see `chooser`.
    """
    method = method or gradcam
    names = list(images)
    batch = torch.stack([images[n] for n in names])
    with inspecting(model), torch.no_grad():
        probs = model(batch.to(model_device(model))).softmax(1).cpu()
    top = topk_targets(model, batch, k)
    options = {
        n: [(f"{classes[c]} ({probs[i, c]:.2f})", int(c)) for c in top[i].tolist()]
        for i, n in enumerate(names)
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
