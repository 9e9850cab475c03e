"""Plausible wrong answers to lab 04's exercises: each must lose its exercise's points (test_exercises.py)."""

WRONG = [
    {
        "exercise": "04-head",
        "why": "leaves the batch-norm layers in training mode",
        "replace": {"            m.eval()\n": "            pass\n"},
        "says": "batch-norm layers still in training mode",
    },
    {
        "exercise": "04-head",
        "why": "splits the dotted name at its first dot, so a head three levels deep is not found",
        "replace": {'head_name.rpartition(".")': 'head_name.partition(".")'},
        "says": "did not reach the head 'top.block.fc'",
    },
    {
        "exercise": "04-head",
        "why": "hard-codes EfficientNet's 1280 inputs instead of reading the old head's",
        "replace": {
            "nn.Linear(getattr(parent, child).in_features, num_classes)": "nn.Linear(1280, num_classes)"
        },
        "says": "the new head's (inputs, outputs)",
    },
    {
        "exercise": "04-train-mode",
        "why": "calls model.train() only",
        "replace": {"                module.eval()\n": "                pass\n"},
        "says": "moved the running statistics of frozen batch-norm layers",
    },
    {
        "exercise": "04-train-mode",
        "why": "sends every batch-norm layer to eval mode, the trainable ones too",
        "replace": {
            "if not any(p.requires_grad for p in module.parameters()):": "if True:",
        },
        "says": "trainable batch-norm layers kept their statistics",
    },
    {
        "exercise": "04-train-mode",
        "why": "puts the frozen layers in eval mode first and calls model.train() after, which wakes them",
        "replace": {
            "    model.train()\n    for module": "    for module",
            "    return model\n": "    return model.train()\n",
        },
        "says": "moved the running statistics of frozen batch-norm layers",
    },
    {
        "exercise": "04-extract",
        "why": "forgets eval mode: batch-norm on batch statistics and dropout on while extracting",
        "replace": {"    body.eval()\n": ""},
        "says": "ran with modules in training mode",
    },
    {
        "exercise": "04-extract",
        "why": "forgets torch.no_grad(): every batch keeps its graph",
        "replace": {"with torch.no_grad():": "if True:"},
        "says": "autograd on",
    },
    {
        "exercise": "04-extract",
        "why": "restores the mode with body.train(was_training), which wakes the frozen batch-norm layers",
        "replace": {
            "    for module, training in modes.items():  # each module its own mode back\n"
            "        module.train(training)\n": "    body.train(modes[body])\n",
        },
        "says": "in another mode than before",
    },
    {
        "exercise": "04-fit-head",
        "why": "forgets optimizer.zero_grad(), so gradients accumulate from step to step",
        "replace": {"            optimizer.zero_grad()\n": ""},
        "says": "the head after two full-batch epochs",
    },
    {
        "exercise": "04-fit-head",
        "why": "averages the batch means instead of weighting each batch by its size",
        "replace": {
            "total += loss.item() * len(batch)": "total += loss.item()",
            "losses.append(total / len(features))": (
                "losses.append(total / len(range(0, len(order), batch_size)))"
            ),
        },
        "says": "the epoch losses at learning rate 0",
    },
    {
        "exercise": "04-fit-head",
        "why": "clears the caller's features once trained, as if to free their memory",
        "replace": {"    return losses\n": "    features.zero_()\n    return losses\n"},
        "says": "changed the features",
    },
    {
        "exercise": "04-fit-head",
        "why": "drops the last, smaller batch of every epoch",
        "replace": {"range(0, len(order), batch_size)": "range(0, len(order) - batch_size + 1, batch_size)"},
        "says": "the epoch losses at learning rate 0",
    },
    {
        "exercise": "04-groups",
        "why": "puts the frozen parameters in the groups too",
        "replace": {"if p.requires_grad and any(": "if any("},
        "says": "frozen parameters in the groups",
    },
    {
        "exercise": "04-groups",
        "why": "counts only the stages that train, so a stage below frozen ones learns too fast",
        "replace": {
            "for k, (stage, prefixes) in enumerate(reversed(stage_prefixes.items())):": (
                "for stage, prefixes in reversed(stage_prefixes.items()):\n        k = len(groups)"
            )
        },
        "says": "layer1",
    },
    {
        "exercise": "04-groups",
        "why": "gives the highest learning rate to the stage next to the input instead of the head",
        "replace": {"enumerate(reversed(stage_prefixes.items()))": "enumerate(stage_prefixes.items())"},
        "says": "learns at",
    },
]
