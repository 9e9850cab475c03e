"""Plausible wrong answers to lab 02's exercises: each must lose its points (tests/test_exercises.py)."""

WRONG = [
    {
        "exercise": "02-cnn",
        "why": "convolutions with a bias although batch-norm follows (and cancels it)",
        "replace": {
            "nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)": "nn.Conv2d(c_in, c_out, 3, padding=1)"
        },
        "says": "parameters, expected",
    },
    {
        "exercise": "02-cnn",
        "why": "average pooling instead of max pooling",
        "replace": {"nn.MaxPool2d(2)": "nn.AvgPool2d(2)"},
        "says": "differs from the expected value",
    },
    {
        "exercise": "02-cnn",
        "why": "no padding: each convolution shrinks the maps by two pixels",
        "replace": {"3, padding=1, bias=False)": "3, padding=0, bias=False)"},
        "says": "differs from the expected value",
    },
    {
        "exercise": "02-size",
        "why": "off by one: counts the steps, not the positions",
        "replace": {"// stride + 1": "// stride"},
        "says": "the layer gives",
    },
    {
        "exercise": "02-size",
        "why": "rounds up: counts a last window that sticks out past the padding",
        "replace": {
            "(size + 2 * padding - kernel) // stride + 1": "-(-(size + 2 * padding - kernel) // stride) + 1"
        },
        "says": "size 5, kernel 2, stride 2, padding 0: you say 3",
    },
    {
        "exercise": "02-size",
        "why": "pads only one end",
        "replace": {"size + 2 * padding - kernel": "size + padding - kernel"},
        "says": "the layers of this network: size",
    },
    {
        "exercise": "02-params",
        "why": "forgets the convolution's bias",
        "replace": {"return weights + (c_out if bias else 0)": "return weights"},
        "says": "the same network without batch-norm",
    },
    {
        "exercise": "02-params",
        "why": "counts batch-norm's running mean and variance as parameters (4 per channel)",
        "replace": {"return 2 * channels": "return 4 * channels"},
        "says": "features.bn1_1",
    },
    {
        "exercise": "02-params",
        "why": "forgets the linear layer's bias",
        "replace": {"return n_out * n_in + (n_out if bias else 0)": "return n_out * n_in"},
        "says": "classifier.fc1",
    },
    {
        "exercise": "02-params",
        "why": "kernel not squared: a 3 x 3 filter counted as 3 weights",
        "replace": {"c_out * c_in * kernel * kernel": "c_out * c_in * kernel"},
        "says": "features.conv1_1",
    },
    {
        "exercise": "02-table",
        "why": "forgets that each max-pool halves the maps",
        "replace": {"side = output_size(side, 2, 2, 0)": "side = output_size(side, 1, 1, 0)"},
        "says": "features.pool1: your output shape",
    },
    {
        "exercise": "02-table",
        "why": "counts fc1 as if the last maps were flattened, not averaged",
        "replace": {"linear_params(c_in, hidden)": "linear_params(c_in * side * side, hidden)"},
        "says": "classifier.fc1: your parameter count",
    },
    {
        "exercise": "02-table",
        "why": "measures the real network with hooks instead of counting",
        "replace": {
            "    table, c_in, side = {}, 3, image_size\n": (
                "    net = NaiveCNN(num_classes, channels=channels, hidden=hidden)\n"
                "    return {n: (s, c) for n, (_, _, s, c) in measured_layers(net, image_size).items()}\n"
            )
        },
        "says": "aten.convolution",
    },
    {
        "exercise": "02-epoch",
        "why": "never switches to training mode (the classic bug)",
        "replace": {"    model.train()\n": ""},
        "says": "not in training mode",
    },
    {
        "exercise": "02-epoch",
        "why": "never clears the gradients: they add up from batch to batch",
        "replace": {"        optimizer.zero_grad()\n": ""},
        "says": "your epoch (SGD)",
    },
    {
        "exercise": "02-epoch",
        "why": "averages the batches' mean losses: a short last batch weighs as much as a full one",
        "replace": {
            "loss_sum += loss.item() * len(y)": "loss_sum += loss.item()",
            "return loss_sum / seen, correct / seen": "return loss_sum / len(batches), correct / seen",
        },
        "says": "(mean loss, accuracy) differs",
    },
    {
        "exercise": "02-confused",
        "why": "keeps the diagonal: the largest count is a correctly classified class",
        "replace": {"    np.fill_diagonal(off_diagonal, -1)\n": ""},
        "says": "diagonal cell",
    },
    {
        "exercise": "02-confused",
        "why": "writes into the caller's matrix",
        "replace": {"off_diagonal = np.array(cm, copy=True)": "off_diagonal = cm"},
        "says": "changed the matrix it was given",
    },
]
