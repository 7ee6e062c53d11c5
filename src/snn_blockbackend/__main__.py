"""``python -m snn_blockbackend ...``: the same as the ``snn-blockbackend`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
