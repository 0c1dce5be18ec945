"""``python -m odernn_bridge``: the ``odernn`` command."""

import sys

from .cli import main

if __name__ == "__main__":  # importing the module (doctest sweeps, tools) must not run the CLI
    sys.exit(main())
