"""``python -m snn_blockbackend.sparseprop ...`` -- same arguments as the CLI sub-command."""

import argparse
import sys

from .cli import configure_parser, main


def _entry(argv=None) -> int:
    parser = configure_parser(argparse.ArgumentParser(
        prog="python -m snn_blockbackend.sparseprop",
        description="Simulate a balanced inhibitory network with SparseProp (O(K log N) per spike)."))
    args = parser.parse_args(argv)
    try:
        return main(args)
    except (ValueError, TypeError) as exc:
        parser.exit(2, f"error: {exc}\n")


if __name__ == "__main__":
    sys.exit(_entry())
