"""Options shared by the commands that run sweeps: where the cells execute."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_execution_options"]


def _workers(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"--workers: expected an integer >= 0 (0: serial), got {text!r}")
    return n


def add_execution_options(p: Any) -> None:
    """``--workers N``, ``--scheduler ADDRESS`` and ``--quiet`` (see :mod:`odernn_bridge.distributed`)."""
    g = p.add_argument_group("execution")
    g.add_argument("--workers", "-j", type=_workers, default=None, metavar="N",
                   help="run the cells on a local dask cluster of N worker processes (default: serially, "
                        "or on $ODERNN_SCHEDULER when set; 0 forces serial)")
    g.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the cells on an existing dask cluster (e.g. tcp://host:8786)")
    if not any(a.dest == "quiet" for a in p._actions):
        g.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
