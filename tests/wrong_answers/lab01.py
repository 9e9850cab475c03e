"""Plausible wrong answers to lab 01's exercises: each must lose its points (tests/test_exercises.py)."""

WRONG = [
    {
        "exercise": "01-verify",
        "why": "only opens each file: Image.open reads the header, so a download cut short passes",
        "replace": {"im.verify()  # reads the whole file, decodes no pixel": "im.size  # the header only"},
        "says": "dog_cut.png cannot be decoded",
    },
    {
        "exercise": "01-verify",
        "why": "catches only UnidentifiedImageError: the OSError of a file cut short escapes",
        "replace": {"except (OSError, SyntaxError, ValueError):": "except Image.UnidentifiedImageError:"},
        "says": "Truncated File Read",
    },
    {
        "exercise": "01-split",
        "why": "never advances the start of the next part: the parts overlap",
        "replace": {"            start = stop\n": ""},
        "says": "exactly one split",
    },
    {
        "exercise": "01-split",
        "why": "no shuffling: every seed gives the same split (the first images of each class in training)",
        "replace": {
            "idx = rng.permutation(np.flatnonzero(targets == c))": "idx = np.flatnonzero(targets == c)"
        },
        "says": "gave the same split",
    },
    {
        "exercise": "01-stats",
        "why": "normalisation statistics from all three splits: the validation and test images leak in",
        "replace": {
            'return my_channel_stats(raw_batches("train"))': (
                'return my_channel_stats(b for s in ("train", "val", "test") for b in raw_batches(s))'
            )
        },
        "says": "statistics of all three splits",
    },
    {
        "exercise": "01-stats",
        "why": "normalisation statistics from the test split",
        "replace": {'raw_batches("train")': 'raw_batches("test")'},
        "says": "statistics of the test split",
    },
    {
        "exercise": "01-stats",
        "why": "averages each image's standard deviation (how a widely copied CIFAR-10 std came about)",
        "replace": {
            "        squares += (x * x).sum(dim=(0, 2, 3))": (
                "        squares += x.std(dim=(2, 3)).sum(dim=0)"
            ),
            "    return mean, (squares / count - mean * mean).clamp_min(0).sqrt()": (
                "    return mean, squares * x.shape[2] * x.shape[3] / count"
            ),
        },
        "says": "standard deviation per channel",
    },
    {
        "exercise": "01-stats",
        "why": "wrong axis: reshapes (n, 3, H, W) to (3, -1) without moving the channel axis first",
        "replace": {
            "total += x.sum(dim=(0, 2, 3))": "total += x.reshape(3, -1).sum(dim=1)",
            "squares += (x * x).sum(dim=(0, 2, 3))": "squares += (x * x).reshape(3, -1).sum(dim=1)",
        },
        "says": "the mean per channel",
    },
    {
        "exercise": "01-stats",
        "why": "forgets to scale the uint8 values to [0, 1]",
        "replace": {"x = images.to(torch.float64) / 255": "x = images.to(torch.float64)"},
        "says": "[0, 1] scale",
    },
    {
        "exercise": "01-shift",
        "why": "one offset for the whole batch instead of one per image",
        "replace": {"(n, 2), generator=generator).tolist()": "(1, 2), generator=generator).tolist() * n"},
        "says": "different offsets",
    },
    {
        "exercise": "01-shift",
        "why": "shifts the image but leaves its mask where it was",
        "replace": {"return shifted[:, :c], shifted[:, c] > 0.5": "return shifted[:, :c], masks.clone()"},
        "says": "did not move with its image",
    },
    {
        "exercise": "01-shift",
        "why": "pads with zeros instead of mirroring the border",
        "replace": {'mode="reflect")': 'mode="constant")'},
        "says": "border mirrored",
    },
    {
        "exercise": "01-shift",
        "why": "writes the shifted images back into the caller's batch",
        "replace": {
            "    return shifted[:, :c], shifted[:, c] > 0.5": (
                "    images.copy_(shifted[:, :c])\n    return shifted[:, :c], shifted[:, c] > 0.5"
            )
        },
        "says": "changed the images or masks it was given",
    },
    {
        "exercise": "01-shift",
        "why": "draws the offsets from torch's global generator, not from `generator`",
        "replace": {"(n, 2), generator=generator)": "(n, 2))"},
        "says": "same generator seed",
    },
    {
        "exercise": "01-weights",
        "why": "forgets the number of classes: w_c = N / n_c",
        "replace": {"len(targets) / (num_classes * np.maximum(n_c, 1))": "len(targets) / np.maximum(n_c, 1)"},
        "says": "your class weights differs",
    },
    {
        "exercise": "01-sampler",
        "why": "draws without replacement: an epoch is a permutation and keeps the imbalance",
        "replace": {"replacement=True": "replacement=False"},
        "says": "not about 1/10 each",
    },
    {
        "exercise": "01-sampler",
        "why": "weights proportional to the class count instead of its inverse",
        "replace": {"weights = 1.0 / per_class[targets].double()": "weights = per_class[targets].double()"},
        "says": "not about 1/10 each",
    },
    {
        "exercise": "01-sampler",
        "why": "ignores the generator: the same seed gives another epoch",
        "replace": {"replacement=True, generator=generator)": "replacement=True)"},
        "says": "same generator seed",
    },
]
