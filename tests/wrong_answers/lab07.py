"""Plausible wrong answers to lab 07's exercises: each must lose its exercise's points
(tests/test_exercises.py)."""

WRONG = [
    {
        "exercise": "07-saliency",
        "why": "explains the softmax probability instead of the logit",
        "replace": {"score = model(inp).gather(": "score = model(inp).softmax(dim=1).gather("},
        "says": "your saliency maps differs",
    },
    {
        "exercise": "07-saliency",
        "why": "sums |gradient| over the colour channels instead of taking the largest",
        "replace": {"return grad.abs().amax(dim=1)": "return grad.abs().sum(dim=1)"},
        "says": "your saliency maps differs",
    },
    {
        "exercise": "07-guided-relu",
        "why": "the ordinary ReLU gradient: negative gradients pass where the input was positive",
        "replace": {"return grad_out.clamp(min=0) * (x > 0)": "return grad_out * (x > 0)"},
        "says": "the gradient for inputs (-1, 2, 3, -4)",
    },
    {
        "exercise": "07-guided-relu",
        "why": "the deconvnet rule: forgets the mask of positive inputs",
        "replace": {"return grad_out.clamp(min=0) * (x > 0)": "return grad_out.clamp(min=0)"},
        "says": "gradcheck",
    },
    {
        "exercise": "07-guided",
        "why": "never removes its hooks",
        "replace": {"            handle.remove()": "            pass"},
        "says": "hooks are still registered",
    },
    {
        "exercise": "07-guided",
        "why": "the hook computes the guided ReLU but does not return it, so the output is not replaced",
        "replace": {"return guided_relu(args[0])": "guided_relu(args[0])"},
        "says": "your guided backprop differs",
    },
    {
        "exercise": "07-gradcam",
        "why": "averages the gradients over the channels instead of over each channel's map",
        "replace": {"alpha = G.mean(dim=(2, 3), keepdim=True)": "alpha = G.mean(dim=1, keepdim=True)"},
        "says": "your Grad-CAM maps differs",
    },
    {
        "exercise": "07-gradcam",
        "why": "forgets the ReLU: keeps the evidence against the class",
        "replace": {
            "cam = torch.relu((alpha * A).sum(dim=1, keepdim=True))": "cam = (alpha * A).sum(1, True)"
        },
        "says": "your Grad-CAM maps differs",
    },
    {
        "exercise": "07-gradcam",
        "why": "leaves the forward hook on the model",
        "replace": {"        handle.remove()": "        pass"},
        "says": "hooks are still registered",
    },
    {
        "exercise": "07-gradcam",
        "why": "divides by max - min without a guard: NaN for a flat map",
        "replace": {
            "torch.where(high > low, (flat - low) / (high - low).clamp(min=1e-12), torch.zeros_like(flat))": (
                "(flat - low) / (high - low)"
            )
        },
        "says": "NaN",
    },
    {
        "exercise": "07-pointing",
        "why": "a strict inequality: a peak exactly at the tolerance does not count",
        "replace": {"(dist2 <= tol**2)": "(dist2 < tol**2)"},
        "says": "hits with tolerance 0 (",
    },
    {
        "exercise": "07-pointing",
        "why": "a square window (largest of |row|, |column| distance) instead of the Euclidean distance",
        "replace": {
            "dist2 = (rows - py.view(n, 1, 1)) ** 2 + (cols - px.view(n, 1, 1)) ** 2": (
                "dist2 = torch.maximum((rows - py.view(n, 1, 1)).abs(), (cols - px.view(n, 1, 1)).abs()) ** 2"
            )
        },
        "says": "hits with tolerance 1 (",
    },
    {
        "exercise": "07-pointing",
        "why": "the default tolerance from the shorter side",
        "replace": {"tol = 0.03 * max(h, w)": "tol = 0.03 * min(h, w)"},
        "says": "the default tolerance of 10x50 maps",
    },
    {
        "exercise": "07-pointing",
        "why": "a constant map counts as pointing at the object",
        "replace": {
            "return near & (flat.max(dim=1).values > flat.min(dim=1).values)": "return near",
        },
        "says": "a constant map",
    },
    {
        "exercise": "07-spearman",
        "why": "correlates the values (Pearson), not their ranks",
        "replace": {
            "ra = a.flatten(1).argsort(dim=1).argsort(dim=1).double()": "ra = a.flatten(1).double()",
            "rb = b.flatten(1).argsort(dim=1).argsort(dim=1).double()": "rb = b.flatten(1).double()",
        },
        "says": "your rank correlations differs",
    },
    {
        "exercise": "07-spearman",
        "why": "one argsort: the order of the pixels, not their ranks",
        "replace": {
            "ra = a.flatten(1).argsort(dim=1).argsort(dim=1)": "ra = a.flatten(1).argsort(dim=1)",
            "rb = b.flatten(1).argsort(dim=1).argsort(dim=1)": "rb = b.flatten(1).argsort(dim=1)",
        },
        "says": "your rank correlations differs",
    },
    {
        "exercise": "07-cascade",
        "why": "layers[-k:] takes every layer when k = 0",
        "replace": {"for layer in layers[len(layers) - k :]:": "for layer in layers[-k:]:"},
        "says": "k = 0",
    },
    {
        "exercise": "07-cascade",
        "why": "randomises the bottom k layers instead of the top k",
        "replace": {"for layer in layers[len(layers) - k :]:": "for layer in layers[:k]:"},
        "says": "changed, but it is not in the top layers",
    },
    {
        "exercise": "07-cascade",
        "why": "randomises the model itself instead of a copy",
        "replace": {"clone = copy.deepcopy(model)": "clone = model"},
        "says": "the model itself was changed",
    },
    {
        "exercise": "07-cascade",
        "why": "1 / fan-in instead of 1 / sqrt(fan-in)",
        "replace": {"bound = 1 / math.sqrt(layer.weight[0].numel())": "bound = 1 / layer.weight[0].numel()"},
        "says": "do not fill",
    },
    {
        "exercise": "07-cascade",
        "why": "redraws the weights but keeps the trained biases",
        "replace": {"for param in (layer.weight, layer.bias):": "for param in (layer.weight,):"},
        "says": "bias was not redrawn",
    },
    {
        "exercise": "07-deletion",
        "why": "deletes the least salient pixels first",
        "replace": {"argsort(dim=1, descending=True)": "argsort(dim=1)"},
        "says": "your deletion curves differs",
    },
    {
        "exercise": "07-deletion",
        "why": "one point short: the fully deleted image is missing",
        "replace": {"for k in range(steps + 1):": "for k in range(steps):"},
        "says": "has shape",
    },
    {
        "exercise": "07-deletion",
        "why": "the mean of the curve's points instead of the trapezoid rule",
        "replace": {
            "return dx * (curves[:, 1:] + curves[:, :-1]).sum(dim=1) / 2": "return curves.mean(dim=1)",
        },
        "says": "your areas under the curves differs",
    },
    {
        "exercise": "07-deletion",
        "why": "follows the logit instead of the probability",
        "replace": {
            "model(x * keep.view(n, 1, h, w)).softmax(dim=1)": "model(x * keep.view(n, 1, h, w))",
        },
        "says": "your deletion curves differs",
    },
    {
        "exercise": "07-gradcam",
        "why": "scales the map with labkit's normalize_maps instead of writing the min-max scaling",
        "replace": {"    return scaled.view_as(cam).detach()": ("    return normalize_maps(cam).detach()")},
        "says": "the answer calls labkit.interpret.gradcam.normalize_maps",
    },
    {
        "exercise": "07-pointing",
        "why": "calls labkit's pointing_hits",
        "replace": {
            "    return near & (flat.max": (
                "    return interpret.pointing_hits(maps, masks, tolerance)\n    return near & (flat.max"
            )
        },
        "says": "the answer calls labkit.interpret.localisation.pointing_hits",
    },
]
