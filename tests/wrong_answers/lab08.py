"""Plausible wrong answers to lab 08's exercises: each must lose its exercise's points
(tests/test_exercises.py)."""

WRONG = [
    {
        "exercise": "08-tv",
        "why": "no absolute value: with beta 1 differences of opposite signs cancel",
        "replace": {"z[:, :, :-1, :]).abs().pow(beta)": "z[:, :, :-1, :]).pow(beta)"},
        "says": "your total variation with beta 1",
    },
    {
        "exercise": "08-tv",
        "why": "sums the differences instead of averaging them",
        "replace": {
            ".pow(beta).mean(dim=(1, 2, 3))  # vertical": ".pow(beta).sum(dim=(1, 2, 3))  # vertical"
        },
        "says": "your total variation (beta 2) differs",
    },
    {
        "exercise": "08-tv",
        "why": "one number for the whole batch instead of one per image",
        "replace": {"return dx + dy": "return (dx + dy).mean()"},
        "says": "has shape",
    },
    {
        "exercise": "08-blur",
        "why": "the kernel is not normalised to sum to 1",
        "replace": {"kernel = kernel / kernel.sum()": "kernel = kernel"},
        "says": "differs",
    },
    {
        "exercise": "08-blur",
        "why": "zero padding along the rows: a flat image darkens at its edges",
        "replace": {'F.pad(x, (half, half, 0, 0), mode="reflect")': "F.pad(x, (half, half, 0, 0))"},
        "says": "differs",
    },
    {
        "exercise": "08-blur",
        "why": "exp(-t^2 / sigma^2): the Gaussian of standard deviation sigma / sqrt(2)",
        "replace": {"torch.exp(-(t**2) / (2 * sigma**2))": "torch.exp(-(t**2) / sigma**2)"},
        "says": "your blur with sigma 1.0 differs",
    },
    {
        "exercise": "08-ascent",
        "why": "backpropagates the objective itself: Adam then descends it",
        "replace": {"(-(gained - penalty).sum()).backward()": "(gained - penalty).sum().backward()"},
        "says": "the objective fell",
    },
    {
        "exercise": "08-ascent",
        "why": "never clips the pixels",
        "replace": {"x.copy_(torch.maximum(torch.minimum(x, high), low))": "pass"},
        "says": "images pushed past the brightest pixel value",
    },
    {
        "exercise": "08-ascent",
        "why": "jitters x itself in place and never shifts it back",
        "replace": {
            "view = torch.roll(x, shifts=(dy, dx), dims=(2, 3))": (
                "x.data = torch.roll(x.data, shifts=(dy, dx), dims=(2, 3))"
            )
        },
        "says": "jitter",
    },
    {
        "exercise": "08-ascent",
        "why": "adds the L2 penalty instead of subtracting it",
        "replace": {"penalty = l2 * x.pow(2)": "penalty = -l2 * x.pow(2)"},
        "says": "L2 decay must shrink",
    },
    {
        "exercise": "08-ascent",
        "why": "blurs after every step instead of every blur_every steps",
        "replace": {"if blur_every > 0 and t % blur_every == 0:": "if blur_every > 0:"},
        "says": "blurred once",
    },
    {
        "exercise": "08-ascent",
        "why": "modifies the start images: Adam steps on start itself",
        "replace": {"x = start.detach().clone().requires_grad_(True)": "x = start.requires_grad_(True)"},
        "says": "changed its start images",
    },
    {
        "exercise": "08-targeted-step",
        "why": "Goodfellow et al.'s untargeted sign: steps up the target's loss, away from the target",
        "replace": {
            "stepped = x.detach() - eps * g.sign() / std": "stepped = x.detach() + eps * g.sign() / std"
        },
        "says": "your images after one step differs",
    },
    {
        "exercise": "08-targeted-step",
        "why": "eps taken in input space: forgets to divide by std",
        "replace": {"stepped = x.detach() - eps * g.sign() / std": "stepped = x.detach() - eps * g.sign()"},
        "says": "your images after one step differs",
    },
    {
        "exercise": "08-targeted-step",
        "why": "never clips to the range of real images",
        "replace": {"return torch.maximum(torch.minimum(stepped, high), low)": "return stepped"},
        "says": "outside the range of real images",
    },
    {
        "exercise": "08-attack",
        "why": "steps every image until all are fooled: fooled images keep moving",
        "replace": {
            "images[going] = step_fn(images[going], targets[going])": "images = step_fn(images, targets)",
        },
        "says": "already assigns to its target",
    },
    {
        "exercise": "08-attack",
        "why": "counts a step for every image at every iteration",
        "replace": {"steps[going] += 1": "steps += 1"},
        "says": "the number of steps each image took",
    },
    {
        "exercise": "08-attack",
        "why": "one step short: stops after max_steps - 1",
        "replace": {"for _ in range(max_steps):": "for _ in range(max_steps - 1):"},
        "says": "at most 3 of them",
    },
    {
        "exercise": "08-blur",
        "why": "calls torchvision's Gaussian blur",
        "replace": {
            "    half = math.ceil(3 * sigma)\n": (
                "    k = 2 * math.ceil(3 * sigma) + 1\n"
                "    return TF.gaussian_blur(x, [k, k], [sigma, sigma])\n"
                "    half = math.ceil(3 * sigma)\n"
            )
        },
        "says": "the answer calls torchvision.transforms.v2.functional._misc.gaussian_blur",
    },
]
