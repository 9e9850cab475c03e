"""Reading image files safely: RGB conversion and a check that every file decodes.

Introduced in notebooks/01_data_prep.ipynb. Public image collections hold broken files (a few in
cats vs dogs); `verify_images` names them up front instead of a run failing halfway.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from PIL import Image, UnidentifiedImageError
from torchvision.datasets.folder import IMG_EXTENSIONS

from labkit.core import LabError
from labkit.progress import tqdm

IMAGE_EXTENSIONS = (*IMG_EXTENSIONS, ".gif")  # torchvision's, and GIF (PIL reads its first frame)
PROGRESS_ABOVE = 2000  # show a progress bar when checking or decoding more files than this
T = TypeVar("T")


@dataclass
class VerifyReport:
    """Result of `verify_images`."""

    n_ok: int = 0  # files that opened and passed PIL's check
    bad: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) for every other file

    @property
    def n_bad(self) -> int:
        return len(self.bad)


def with_progress(items: Iterable[T], total: int, desc: str, show: bool | None = None) -> Iterable[T]:
    """`items`, with a progress bar when `show`, or (None) when there are more than PROGRESS_ABOVE."""
    show = total > PROGRESS_ABOVE if show is None else show
    return tqdm(items, total=total, desc=desc, unit="img", leave=False) if show else items


def is_image_file(path: str | Path) -> bool:
    """True for a file name with a known image extension (case-insensitive), hidden files excluded."""
    name = os.path.basename(str(path))
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def check_image(path: str | Path) -> str | None:
    """None when `path` opens as an image and passes PIL's `verify()`, else the reason it does not."""
    try:
        if os.path.getsize(path) == 0:
            return "empty file (0 bytes)"
        with Image.open(path) as im:
            im.verify()  # cheap: checks the header and structure without decoding every pixel
        return None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        return f"{type(err).__name__}: {err}".strip()


def verify_images(
    root_or_paths: str | Path | Iterable[str | Path], progress: bool | None = None
) -> VerifyReport:
    """Check that image files open, those of a folder (every image file below it) or an iterable of
    paths; the report names the ones that do not. `progress`: None shows a bar above PROGRESS_ABOVE.
    """
    if isinstance(root_or_paths, (str, Path)):
        root = Path(root_or_paths)
        if not root.exists():
            raise LabError(
                f"verify_images: {root} does not exist; pass a folder of images or a list of paths."
            )
        found = sorted(root.rglob("*")) if root.is_dir() else [root]
        root_or_paths = [p for p in found if p.is_file() and (p == root or is_image_file(p))]
    paths = list(root_or_paths)
    checked = with_progress(paths, len(paths), "checking images", progress)
    bad = [(str(p), r) for p in checked if (r := check_image(p)) is not None]
    return VerifyReport(len(paths) - len(bad), bad)


def load_rgb(path: str | Path) -> Image.Image:
    """Decode an image file as a PIL RGB image (transparent ones laid on white), so every image gives
    three channels; a LabError naming the path and the fix when it cannot be decoded."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return Image.alpha_composite(white, rgba).convert("RGB")
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise LabError(
            f"cannot decode image {path}: {type(err).__name__}: {err}. Delete the file, or load the "
            f"dataset with skip_corrupt=True (labkit.data.verify_images(folder) lists every bad file)."
        ) from err
