"""`python -m course COMMAND ...`: the course's command lines.

python -m course run [NOTEBOOK ...] --profile smoke -p key=value   (course/run.py; `list` too)
python -m course train naive|resnet --dataset cifar10 ...           (course/train.py, also under torchrun)
python -m course student --out student                              (course/grading/cli.py)
python -m course grade SUBMISSIONS --out OUT -p profile=smoke       (course/grading/cli.py)
python -m course lms GRADES --roster roster.csv                     (course/grading/cli.py)
python -m course gradescope LAB --out DIR                           (course/grading/gradescope.py)
python -m course gradescope-run                                     (what Gradescope's run_autograder calls)
python -m course bench [smoke fit ...]                              (course/bench.py)
python -m course colab                                              (course/colab.py)
python -m course site [--run runs/full] [--audience instructor]      (course/site.py)
"""

import sys
from importlib import import_module

# The module of each command; its main() takes the arguments after the command unless it parses it too.
COMMANDS = {
    "run": ("course.run", True),
    "list": ("course.run", True),
    "train": ("course.train", False),
    "student": ("course.grading.cli", True),
    "grade": ("course.grading.cli", True),
    "lms": ("course.grading.cli", True),
    "gradescope": ("course.grading.gradescope", True),
    "gradescope-run": ("course.grading.gradescope", True),
    "bench": ("course.bench", False),
    "colab": ("course.colab", False),
    "site": ("course.site", False),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    module, whole = COMMANDS[argv[0]]
    return import_module(module).main(argv if whole else argv[1:])


if __name__ == "__main__":
    sys.exit(main())
