"""Run the theory experiments (the same as ``odernn theory experiments``).

Usage: ``python benchmarks/theory_experiments.py --out results/theory [--fast]``

Writes gradient_norms / dt_threshold / param_counts / qunn_memory as NetCDF (through
``odernn_bridge.io.to_netcdf``), PNG figures, ``param_counts.csv`` and ``summary.json``.
"""

from __future__ import annotations

import sys

from odernn_bridge.cli import main

if __name__ == "__main__":
    sys.exit(main(["theory", "experiments", *sys.argv[1:]]))
