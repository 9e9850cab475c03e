"""Figures of the series, one file per kind: `training` (curves, confusion matrices, comparison
tables, misclassified grids), `images` (the one image policy `to_display`, the one tiling routine
`tile_grid`, image grids, augmentation previews, class balance), `filters` (filter and feature-map
grids, patches, reconstructions), `maps` (heat-map overlays, method grids, class models). Every
function receives what it draws (images, maps, hits), returns a matplotlib Figure and never calls
show(); interactive explorers live in `labkit.widgets`.

The package hands on what notebooks call as `plots.<name>`; the labs import the other modules as
`from labkit.plots import filters as fplots` (and `images as iplots`, `maps as mapplots`).
"""

from labkit.plots.images import attribution_image, image_grid, tile_grid, to_display
from labkit.plots.training import (
    compare_curves,
    comparison_table,
    confusion_grid,
    confusion_heatmap,
    curves,
    misclassified_grid,
)

__all__ = ["attribution_image", "compare_curves", "comparison_table", "confusion_grid", "confusion_heatmap"]
__all__ += ["curves", "image_grid", "misclassified_grid", "tile_grid", "to_display"]
