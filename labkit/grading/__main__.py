"""`python -m labkit.grading student|grade ...`: see labkit/grading/cli.py."""

import sys

from labkit.grading.cli import main

if __name__ == "__main__":
    sys.exit(main())
