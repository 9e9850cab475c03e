"""Real photographs that ship inside scikit-image (`skimage.data`): usable with no network.

Introduced in notebooks/04_transfer_learning.ipynb and used by the interpretability labs to look
at what an ImageNet network sees in a real photo.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from skimage import data

from labkit.core import LabError
from labkit.data.transforms import raw_transform

# name -> a short description (what an ImageNet network should see).
PHOTOS = {
    "chelsea": "a tabby cat",
    "coffee": "a cup of coffee",
    "astronaut": "astronaut Eileen Collins",
    "rocket": "a rocket on its launch pad",
    "motorcycle_left": "a motorcycle (left view of a stereo pair)",
    "hubble_deep_field": "galaxies seen by the Hubble telescope",
    "immunohistochemistry": "stained tissue under a microscope",
    "retina": "a human retina",
}
DEFAULT_PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle_left")


def photos(names: Sequence[str] | None = None, image_size: int = 224) -> dict[str, torch.Tensor]:
    """Photos from scikit-image (keys of `PHOTOS`; None: DEFAULT_PHOTOS) as name -> uint8 (3, S, S),
    resized (short side) and centre-cropped to S = `image_size`."""
    names = list(DEFAULT_PHOTOS if names is None else ([names] if isinstance(names, str) else names))
    unknown = [n for n in names if n not in PHOTOS]
    if unknown:
        raise LabError(f"unknown photo(s) {unknown}; choose from {list(PHOTOS)}.")
    t = raw_transform(image_size)
    out: dict[str, torch.Tensor] = {}
    for name in names:
        arr = data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(data, name)()
        if arr.ndim == 2:  # grayscale -> RGB
            arr = np.repeat(arr[..., None], 3, axis=-1)
        arr = np.ascontiguousarray(arr[..., :3])
        out[name] = t(torch.from_numpy(arr).permute(2, 0, 1).contiguous())
    return out
