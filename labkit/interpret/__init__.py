"""Looking inside networks: one file per technique, on one base (`attribution`) and one hooks module.
Every function takes `model, x, target=None, layer=None` where those apply, and gives the model back
as it found it (mode, `requires_grad`, no hook left), also when it raises.
"""

from labkit.interpret.activation_max import filter_pattern
from labkit.interpret.ascent import total_variation
from labkit.interpret.attribution import GuidedReLU, class_index, conv_layers, maps_for_targets, topk_targets
from labkit.interpret.class_model import class_model
from labkit.interpret.deconvnet import GradientRuleWarning, deconvnet
from labkit.interpret.deletion import auc, blurred, deletion_curve, pixel_order
from labkit.interpret.feature_visualisation import visualise
from labkit.interpret.filters import channel_means, feature_maps, filters, input_channel_norms
from labkit.interpret.fooling import fool
from labkit.interpret.gradcam import default_gradcam_layer, gradcam, guided_gradcam, spatial_layers
from labkit.interpret.guided_backprop import guided_backprop
from labkit.interpret.hooks import capture
from labkit.interpret.inversion import invert_layers, relative_error, train_inversion
from labkit.interpret.localisation import energy_in_mask, pointing_game, pointing_hits
from labkit.interpret.occlusion import occlusion, occlusion_masks
from labkit.interpret.patches import crop_patches, max_activating_patches
from labkit.interpret.receptive_field import receptive_field, receptive_field_error, receptive_field_table
from labkit.interpret.saliency import abs_max_channels, saliency
from labkit.interpret.sanity import randomised, rank_correlation, sanity_check

__all__ = [
    "GradientRuleWarning", "GuidedReLU", "abs_max_channels", "auc", "blurred", "capture", "channel_means",
    "class_index", "class_model", "conv_layers", "crop_patches", "deconvnet", "default_gradcam_layer",
    "deletion_curve", "energy_in_mask", "feature_maps", "filter_pattern", "filters", "fool", "gradcam",
    "guided_backprop", "guided_gradcam", "input_channel_norms", "invert_layers", "maps_for_targets",
    "max_activating_patches", "occlusion", "occlusion_masks", "pixel_order", "pointing_game", "pointing_hits",
    "randomised", "rank_correlation", "receptive_field", "receptive_field_error", "receptive_field_table",
    "relative_error", "saliency", "sanity_check", "spatial_layers", "topk_targets", "total_variation",
    "train_inversion", "visualise",
]  # fmt: skip
