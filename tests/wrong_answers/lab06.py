"""Plausible wrong answers to lab 06's exercises: each must lose its exercise's points
(tests/test_exercises.py)."""

WRONG = [
    {
        "exercise": "06-unpool",
        "why": "writes with scatter_: windows that share a maximum overwrite each other instead of adding up",
        "replace": {
            "out.scatter_add_(2, switches.flatten(2), r.flatten(2))": (
                "out.scatter_(2, switches.flatten(2), r.flatten(2))"
            )
        },
        "says": "your unpooling of a 3x3 max-pool with stride 2",
    },
    {
        "exercise": "06-unpool",
        "why": "calls F.max_unpool2d, the operation the exercise asks for",
        "replace": {
            "    return out.view(n, c, size[0], size[1])": (
                "    return F.max_unpool2d(r, switches, 2, output_size=size)"
            )
        },
        "says": "reaches torch's aten.max_unpool2d",
    },
    {
        "exercise": "06-step",
        "why": "forgets the rectification of the signal going down",
        "replace": {"r = r.clamp(min=0) * bn_scale(bn)": "r = r * bn_scale(bn)"},
        "says": "your projection differs from the expected value",
    },
    {
        "exercise": "06-step",
        "why": "divides by the batch-norm scale (batch-norm inverted) instead of multiplying (transposed)",
        "replace": {"r = r.clamp(min=0) * bn_scale(bn)": "r = r.clamp(min=0) / bn_scale(bn)"},
        "says": "your projection differs from the expected value",
    },
    {
        "exercise": "06-step",
        "why": "flips the filters itself, on top of the flip conv_transpose2d makes",
        "replace": {"F.conv_transpose2d(r, conv.weight,": "F.conv_transpose2d(r, conv.weight.flip(2, 3),"},
        "says": "your projection differs from the expected value",
    },
    {
        "exercise": "06-relu",
        "why": "writes the ReLU's true gradient, masked by the forward input",
        "replace": {
            "        return x.clamp(min=0)": (
                "        ctx.save_for_backward(x)\n        return x.clamp(min=0)"
            ),
            "        return grad_out.clamp(min=0)": (
                "        (x,) = ctx.saved_tensors\n        return grad_out * (x > 0)"
            ),
        },
        "says": "your backward differs from the expected value",
    },
    {
        "exercise": "06-relu",
        "why": "writes guided backpropagation's rule (both conditions)",
        "replace": {
            "        return x.clamp(min=0)": (
                "        ctx.save_for_backward(x)\n        return x.clamp(min=0)"
            ),
            "        return grad_out.clamp(min=0)": (
                "        (x,) = ctx.saved_tensors\n        return grad_out.clamp(min=0) * (x > 0)"
            ),
        },
        "says": "your backward differs from the expected value",
    },
    {
        "exercise": "06-relu",
        "why": "passes the gradient through unrectified",
        "replace": {"        return grad_out.clamp(min=0)": "        return grad_out"},
        "says": "your backward differs from the expected value",
    },
    {
        "exercise": "06-rule",
        "why": "never replaces the ReLUs' backward: the plain gradient",
        "replace": {
            "                handles.append(module.register_forward_hook(rectify_going_down))": (
                "                pass"
            )
        },
        "says": "your projection from features.pool1 (float64) differs",
    },
    {
        "exercise": "06-rule",
        "why": "runs the forward pass in the mode it found the network in (training mode: batch statistics)",
        "replace": {"        model.eval()\n": ""},
        "says": "your projection from layer 6 of a small network differs",
    },
    {
        "exercise": "06-rule",
        "why": "never removes its hooks",
        "replace": {"            handle.remove()": "            pass"},
        "says": "hooks are still registered",
    },
    {
        "exercise": "06-rule",
        "why": "keeps a detached copy of the layer's output, through which no gradient flows",
        "replace": {'kept["out"] = output': 'kept["out"] = output.detach()'},
        "says": "does not require grad",
    },
    {
        "exercise": "06-occlusion",
        "why": "stops the squares before the border when the stride does not divide the image",
        "replace": {
            "range(0, h - window + stride, stride)": "range(0, h - window + 1, stride)",
            "range(0, w - window + stride, stride)": "range(0, w - window + 1, stride)",
        },
        "says": "contains NaN or infinite values",
    },
    {
        "exercise": "06-occlusion",
        "why": "measures the rise of the score instead of its drop",
        "replace": {"drop = before - scores(covered)": "drop = scores(covered) - before"},
        "says": "your occlusion map (probability",
    },
    {
        "exercise": "06-occlusion",
        "why": "sums the drops of the squares over a pixel instead of averaging them",
        "replace": {"    return total / count": "    return total"},
        "says": "your occlusion map (probability",
    },
    {
        "exercise": "06-occlusion",
        "why": "always scores the probability, whatever `score` asks",
        "replace": {'(logits.softmax(1) if score == "probability" else logits)': "logits.softmax(1)"},
        "says": "your occlusion map (logit",
    },
]
