"""``python -m histgpu inspect LOGDIR ...``: the same as the ``histgpu`` console script."""

import sys

from histgpu.cli import main

if __name__ == "__main__":
    sys.exit(main())
