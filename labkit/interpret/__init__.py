"""Looking inside networks: one file per technique, all sharing `labkit.interpret.hooks`.

Every function takes `model, x, target=None, layer=None` where those apply, and gives the model
back as it found it (mode, `requires_grad`, no hook left), also when it raises.
"""

from labkit.interpret.hooks import capture, find_layer, preserved, relu_backward

__all__ = ["capture", "find_layer", "preserved", "relu_backward"]
