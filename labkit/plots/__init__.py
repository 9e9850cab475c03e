"""Figures of the series, one module per kind: `training`, `images`, `filters`, `maps`. Every function
receives what it draws, returns a matplotlib Figure and never calls show(). The package hands on what
notebooks call as `plots.<name>`; labs import the rest as `from labkit.plots import maps as mapplots`.
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
