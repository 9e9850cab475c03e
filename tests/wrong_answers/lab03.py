"""Plausible wrong answers to lab 03's exercises: each must lose its exercise's points (test_exercises.py)."""

WRONG = [
    {
        "exercise": "03-block",
        "why": "the projection only when the channels change, not when only the stride does",
        "replace": {"if stride != 1 or in_channels != out_channels:": "if in_channels != out_channels:"},
        "says": "MyBasicBlock(12, 12, 2)",
    },
    {
        "exercise": "03-block",
        "why": "the second ReLU before the addition instead of after it",
        "replace": {
            "out = self.bn2(self.conv2(out))\n        return torch.relu(out + identity)": (
                "out = torch.relu(self.bn2(self.conv2(out)))\n        return out + identity"
            )
        },
        "says": "differs from the expected value",
    },
    {
        "exercise": "03-block-params",
        "why": "forgets the projection shortcut when only the resolution changes",
        "replace": {
            "if stride != 1 or in_channels != out_channels:  # the projection": (
                "if in_channels != out_channels:  # the projection"
            )
        },
        "says": "the projection shortcut (1×1 conv and batch-norm) is missing",
    },
    {
        "exercise": "03-block-params",
        "why": "counts one parameter per batch-norm channel (forgets β)",
        "replace": {"norms = 2 * out_channels + 2 * out_channels": "norms = out_channels + out_channels"},
        "says": "counted with one parameter per channel",
    },
    {
        "exercise": "03-block-params",
        "why": "forgets the projection's batch-norm",
        "replace": {
            "total += in_channels * out_channels + 2 * out_channels": "total += in_channels * out_channels"
        },
        "says": "basic_block_params(16, 32, stride=2)",
    },
    {
        "exercise": "03-block-params",
        "why": "counts the block by building it (calls labkit's BasicBlock and count_params)",
        "replace": {
            "convs = 3 * 3 * in_channels * out_channels": (
                "from labkit.models import count_params as _count\n"
                "    return _count(BasicBlock(in_channels, out_channels, stride))\n"
                "    convs = 3 * 3 * in_channels * out_channels"
            )
        },
        "says": "labkit's version of what this exercise asks you to write",
    },
    {
        "exercise": "03-inception",
        "why": "ReLU before batch-norm in each branch",
        "replace": {"nn.BatchNorm2d(c_out), nn.ReLU())": "nn.ReLU(), nn.BatchNorm2d(c_out))"},
        "says": "differs from the expected value",
    },
    {
        "exercise": "03-inception-params",
        "why": "gives every convolution a bias",
        "replace": {
            "return k * k * c_in * c_out + 2 * c_out": "return k * k * c_in * c_out + c_out + 2 * c_out"
        },
        "says": "conv_bn_params(64, 32, 5) is 51296",
    },
    {
        "exercise": "03-inception-params",
        "why": "forgets the projection after the max-pool in the reduced block",
        "replace": {'"pool": conv_bn_params(in_channels, pool_proj, 1),': '"pool": 0,'},
        "says": "inception_params(64, 32, 32, 64, 8, 32, 32)['pool'] is 0",
    },
    {
        "exercise": "03-inception-params",
        "why": "forgets the 1×1 reduction in front of the 5×5 convolution",
        "replace": {
            '"5x5": conv_bn_params(in_channels, c5_reduce, 1) + conv_bn_params(c5_reduce, c5, 5),': (
                '"5x5": conv_bn_params(c5_reduce, c5, 5),'
            )
        },
        "says": "['5x5']",
    },
    {
        "exercise": "03-grad-norms",
        "why": "the norm of the weights instead of the norm of their gradients",
        "replace": {"return {name: m.weight.grad.norm().item()": "return {name: m.weight.norm().item()"},
        "says": "norms of the weights, not of their gradients",
    },
    {
        "exercise": "03-grad-norms",
        "why": "forgets to zero the gradients, so an earlier backward pass's gradient accumulates",
        "replace": {"model.zero_grad()  # forget": "# model.zero_grad()  # forget"},
        "says": "include the gradient an earlier backward pass left",
    },
    {
        "exercise": "03-grad-norms",
        "why": "switches the model to eval mode to measure",
        "replace": {
            "loss = F.cross_entropy(model(x), target)": "loss = F.cross_entropy(model.eval()(x), target)"
        },
        "says": "left the model in eval mode",
    },
    {
        "exercise": "03-preact",
        "why": "a ReLU after the addition (the post-activation block's habit)",
        "replace": {
            "return out + identity  # nothing after": "return torch.relu(out + identity)  # nothing after"
        },
        "says": "the output with a zero branch",
    },
    {
        "exercise": "03-preact",
        "why": "the identity shortcut takes the pre-activated input relu(bn1(x)) instead of x",
        "replace": {
            "identity = x if self.shortcut is None else self.shortcut(a)": (
                "identity = a if self.shortcut is None else self.shortcut(a)"
            )
        },
        "says": "the output with a zero branch",
    },
    {
        "exercise": "03-preact",
        "why": "the projection applied to the raw input x instead of the pre-activated one",
        "replace": {"else self.shortcut(a)": "else self.shortcut(x)"},
        "says": "differs from the expected value",
    },
]
