"""Figures of the series, one file per kind: `training` (curves, confusion matrices, comparison
tables, misclassified grids), `images` (the one image policy `to_display`, image grids, augmentation
previews, class balance), `filters` (filter and feature-map grids, patches, reconstructions), `maps`
(heat-map overlays, method grids, class models). Every function receives what it draws (images,
maps, hits), returns a matplotlib Figure and never calls show(); interactive explorers live in
`labkit.widgets`.
"""

from labkit.plots.filters import (
    channel_norm_map,
    colorize,
    deconv_grid,
    feature_map_grid,
    feature_map_rows,
    filter_grid,
    filter_map_pairs,
    image_row,
    montage,
    patch_grid,
    receptive_field_boxes,
)
from labkit.plots.images import (
    attribution_image,
    augmentation_preview,
    class_balance,
    image_grid,
    signed_image,
    to_display,
)
from labkit.plots.maps import (
    ablation_grid,
    class_model_grid,
    contrast_stretch,
    curve_panels,
    fooling_grid,
    map_panel,
    maps_grid,
    overlay,
)
from labkit.plots.training import (
    compare_curves,
    comparison_table,
    confusion_grid,
    confusion_heatmap,
    curves,
    misclassified_grid,
)

__all__ = [
    "ablation_grid", "attribution_image", "augmentation_preview", "channel_norm_map", "class_balance",
    "class_model_grid", "colorize", "compare_curves", "comparison_table", "confusion_grid", "confusion_heatmap",
    "contrast_stretch", "curve_panels", "curves", "deconv_grid", "feature_map_grid", "feature_map_rows", "filter_grid",
    "filter_map_pairs", "fooling_grid", "image_grid", "image_row", "map_panel", "maps_grid", "misclassified_grid", "montage",
    "overlay", "patch_grid", "receptive_field_boxes", "signed_image", "to_display",
]  # fmt: skip
