"""Looking inside networks: one file per technique, all sharing `labkit.interpret.hooks`.

Every function takes `model, x, target=None, layer=None` where those apply, and gives the model
back as it found it (mode, `requires_grad`, no hook left), also when it raises.
"""

from labkit.interpret.hooks import capture, find_layer, preserved, relu_backward

__all__ = ["capture", "find_layer", "preserved", "relu_backward"]

# part one (lab 05, 06)
from labkit.interpret._chain import conv_layers
from labkit.interpret.activation_max import filter_pattern
from labkit.interpret.deconvnet import DeconvInfo, GradientRuleWarning, deconvnet, gradient_rule
from labkit.interpret.filters import (
    channel_means,
    feature_maps,
    filters,
    input_channel_norms,
    strongest_slices,
)
from labkit.interpret.inversion import (
    Inversion,
    inversion_errors,
    invert_layers,
    relative_error,
    train_inversion,
)
from labkit.interpret.patches import crop_patches, max_activating_patches
from labkit.interpret.receptive_field import (
    ReceptiveField,
    receptive_field,
    receptive_field_error,
    receptive_field_table,
)

__all__ += [
    "DeconvInfo", "GradientRuleWarning", "Inversion", "ReceptiveField", "channel_means", "conv_layers", "crop_patches",
    "deconvnet", "feature_maps", "filter_pattern", "filters", "gradient_rule", "input_channel_norms",
    "inversion_errors", "invert_layers", "max_activating_patches", "receptive_field", "receptive_field_error",
    "receptive_field_table", "relative_error", "strongest_slices", "train_inversion",
]  # fmt: skip
# end part one

# part two (lab 07, 08)
from labkit.interpret.class_model import class_model, total_variation  # noqa: E402
from labkit.interpret.gradcam import default_gradcam_layer, gradcam, guided_gradcam, spatial_layers  # noqa: E402
from labkit.interpret.guided_backprop import guided_backprop  # noqa: E402
from labkit.interpret.localisation import energy_in_mask, pointing_game, pointing_hits  # noqa: E402
from labkit.interpret.saliency import abs_max_channels, saliency  # noqa: E402
from labkit.interpret.targets import maps_for_targets, resolve_targets, topk_targets  # noqa: E402

__all__ += [
    "abs_max_channels", "class_model", "default_gradcam_layer", "energy_in_mask", "gradcam", "guided_backprop",
    "guided_gradcam", "maps_for_targets", "pointing_game", "pointing_hits", "resolve_targets", "saliency",
    "spatial_layers", "topk_targets", "total_variation",
]  # fmt: skip
# end part two
