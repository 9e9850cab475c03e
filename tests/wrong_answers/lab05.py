"""Plausible wrong answers to lab 05's exercises: each must lose its exercise's points
(tests/test_exercises.py)."""

WRONG = [
    {
        "exercise": "05-conv",
        "why": "flips the kernel (a textbook convolution; F.conv2d is a cross-correlation)",
        "replace": {
            "out = weight.reshape(o, -1) @ columns": "out = weight.flip(2, 3).reshape(o, -1) @ columns"
        },
        "says": "your conv1_1 maps differs from the expected value",
    },
    {
        "exercise": "05-conv",
        "why": "forgets the bias (conv1_1 has none, so only the hidden tests see it)",
        "replace": {"out = out + bias.view(1, o, 1)": "out = out"},
        "says": "with a bias differs from the expected value",
    },
    {
        "exercise": "05-conv",
        "why": "ignores the stride",
        "replace": {
            "(h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1": (
                "h + 2 * ph - kh + 1, w + 2 * pw - kw + 1"
            ),
            "stride=(sh, sw))": "stride=1)",
        },
        "says": "has shape (2, 6, 11, 9), expected (2, 6, 6, 5)",
    },
    {
        "exercise": "05-conv",
        "why": "calls F.conv2d, the operator the exercise asks for",
        "replace": {
            "    return out.view(n, o, h_out, w_out)": (
                "    return F.conv2d(x, weight, bias, stride, padding)"
            )
        },
        "says": "reaches torch's aten.convolution",
    },
    {
        "exercise": "05-convfn",
        "why": "averages the bias gradient instead of summing it over images and positions",
        "replace": {"grad_out.sum(dim=(0, 2, 3))": "grad_out.mean(dim=(0, 2, 3))"},
        "says": "with respect to input 2",
    },
    {
        "exercise": "05-convfn",
        "why": "averages the weight gradient over the images instead of summing",
        "replace": {"(g @ columns.transpose(1, 2)).sum(0)": "(g @ columns.transpose(1, 2)).mean(0)"},
        "says": "your gradient with respect to conv1_1's weight differs",
    },
    {
        "exercise": "05-convfn",
        "why": "lets autograd compute the input gradient inside backward (through unfold)",
        "replace": {
            "grad_x = F.fold(grad_columns, size, kernel, padding=padding, stride=stride)"
            "  # overlaps add up": (
                "with torch.enable_grad():\n"
                "            probe = torch.zeros(len(g), weight.shape[1], *size, dtype=g.dtype,"
                " requires_grad=True)\n"
                "            unfolded = F.unfold(probe, kernel, padding=padding, stride=stride)\n"
                "            (grad_x,) = torch.autograd.grad(unfolded, probe, grad_columns)"
            )
        },
        "says": "the answer calls torch.autograd",
    },
    {
        "exercise": "05-hook",
        "why": "never removes its hooks",
        "replace": {"            handle.remove()": "            pass"},
        "says": "hooks are still registered",
    },
    {
        "exercise": "05-hook",
        "why": "keeps the output itself, which a later in-place ReLU overwrites",
        "replace": {"kept[name] = output.detach().clone()": "kept[name] = output.detach()"},
        "says": "the map of 1 differs from the expected value",
    },
    {
        "exercise": "05-hook",
        "why": "runs the forward pass in training mode (batch-norm updates its statistics)",
        "replace": {"        model.eval()\n": ""},
        "says": "batch-norm statistics changed",
    },
    {
        "exercise": "05-rf",
        "why": "forgets to update the jump after a strided layer",
        "replace": {
            "r, j = r + (kernel - 1) * dilation * j, j * stride": (
                "r, j = r + (kernel - 1) * dilation * j, j"
            )
        },
        "says": "your receptive field sizes is",
    },
    {
        "exercise": "05-rf",
        "why": "ignores the dilation",
        "replace": {"r + (kernel - 1) * dilation * j": "r + (kernel - 1) * j"},
        "says": "the receptive fields of [(3, 1, 2), (3, 1, 4)]",
    },
    {
        "exercise": "05-box",
        "why": "clips only at the image, not at every layer (padding rows of a map come from no pixel)",
        "replace": {
            "first, last = max(first * s - p, 0), min(last * s - p + k - 1, n_below - 1)": (
                "first, last = first * s - p, last * s - p + k - 1"
            ),
            "return first, last + 1": "return max(first, 0), min(last, n - 1) + 1",
        },
        "says": "your boxes for [(2, 2, 0), (3, 1, 1)] on (7, 9): unit",
    },
    {
        "exercise": "05-box",
        "why": "returns the bottom and right edges inclusive",
        "replace": {"return first, last + 1": "return first, last"},
        "says": "has your box",
    },
    {
        "exercise": "05-patches",
        "why": "keeps only the last batch's top k instead of a running top k",
        "replace": {
            "values = torch.cat([values, peak])": "values = peak",
            "index = torch.cat([index, torch.arange(start, start + len(fmap))])": (
                "index = torch.arange(start, start + len(fmap))"
            ),
            "where = torch.cat([where, torch.stack([flat // fmap.shape[2], flat % fmap.shape[2]], dim=1)])": (
                "where = torch.stack([flat // fmap.shape[2], flat % fmap.shape[2]], dim=1)"
            ),
        },
        "says": "the images, in order",
    },
    {
        "exercise": "05-patches",
        "why": "numbers the images within their batch, not in the whole set",
        "replace": {"torch.arange(start, start + len(fmap))": "torch.arange(len(fmap))"},
        "says": "the images, in order",
    },
    {
        "exercise": "05-patches",
        "why": "swaps the unit's row and column",
        "replace": {"unit_box(stack, size, int(y), int(x))": "unit_box(stack, size, int(x), int(y))"},
        "says": "their boxes",
    },
    {
        "exercise": "05-patches",
        "why": "asks topk for k values when fewer than k images have been seen",
        "replace": {"values.topk(min(k, len(values)))": "values.topk(k)"},
        "says": "selected index k out of range",
    },
]
