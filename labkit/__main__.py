"""`python -m labkit run ...`: see labkit/run.py."""

import sys

from labkit.run import main

if __name__ == "__main__":
    sys.exit(main())
