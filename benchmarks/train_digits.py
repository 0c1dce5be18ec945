"""Sequential-digits benchmark: ODERNN (Euler and RK4, antisymmetric field) vs an LSTM.

    python benchmarks/train_digits.py [--out runs/bench_digits] [--epochs 40]

Runs ``odernn train`` for each configuration (1 torch thread each, one after the other),
then ``odernn report`` over all of them; prints the comparison table.  Target: ≥ 90 % test
accuracy on pixel-by-pixel 8×8 digits within 10 minutes of CPU time per run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from odernn_bridge.cli import main

COMMON = ["--task", "digits", "--hidden", "128", "--lr", "5e-3", "--scheduler", "onecycle", "--batch-size", "64",
          "--seed", "0", "--no-progress", "--threads", "1"]
RUNS = {
    "odernn_euler": ["--model", "odernn", "--method", "Euler", "--dt", "0.2", "--field", "antisymmetric"],
    "odernn_rk4": ["--model", "odernn", "--method", "RK4", "--dt", "0.2", "--field", "antisymmetric"],
    "odernn_rk4_dt05": ["--model", "odernn", "--method", "RK4", "--dt", "0.5", "--field", "antisymmetric",
                        "--lr", "2e-3"],
    "lstm": ["--model", "lstm"],
}


def run(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/bench_digits")
    p.add_argument("--epochs", default="40")
    p.add_argument("--only", nargs="*", choices=list(RUNS), default=list(RUNS))
    args = p.parse_args(argv)
    out = Path(args.out)
    for name in args.only:
        t0 = time.perf_counter()
        rc = main(["train", *COMMON, "--epochs", args.epochs, *RUNS[name], "--out", str(out / name)])
        print(f"{name}: exit {rc}, {time.perf_counter() - t0:.1f} s wall (process, incl. evaluation)", flush=True)
        if rc:
            return rc
    return main(["report", *(str(out / n) for n in args.only), "--out", str(out)])


if __name__ == "__main__":
    sys.exit(run())
