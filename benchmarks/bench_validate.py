"""Benchmark: the validation sweep of every explicit catalogue method × 6 step sizes on one problem.

    python benchmarks/bench_validate.py [--problem vanderpol] [--dts 6] [--backend scipy]
                                        [--precision float64|mp] [--top 8] [--out sweep.nc]

Each method is validated on the same six halving step sizes (``T/2^k``, k = 4..9, i.e.
dt = 1/8 … 1/256 on Van der Pol's [0, 2]): the fixed-step trajectory, the reference on the
grid (computed once, shared), one step from every reference state (local errors, one batched
call), the observed order and the verdict.  The mpmath ground truth of the final value is
computed once in a warm-up run before the clock starts and reported separately.  Prints the total, the
per-method times (slowest first) and how many methods the float64 run verifies.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", default="vanderpol")
    ap.add_argument("--dts", type=int, default=6, help="number of halving step sizes")
    ap.add_argument("--coarsest", type=int, default=16, help="steps of the coarsest grid")
    ap.add_argument("--backend", default="scipy", choices=("scipy", "auto", "julia"))
    ap.add_argument("--precision", default="float64", choices=("float64", "mp"))
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--out", default=None, help="write the sweep Dataset to NetCDF")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import odernn_bridge as ob
    from odernn_bridge import io
    from odernn_bridge.reference import get_backend, get_problem
    from odernn_bridge.validate import validate_sweep

    prob = get_problem(args.problem)
    span = prob.tspan[1] - prob.tspan[0]
    dts = [span / (args.coarsest * 2**k) for k in range(args.dts)]
    names = ob.list_methods("explicit")
    backend = get_backend(args.backend)

    t = time.perf_counter()
    ob.validate("Euler", prob, dts, backend, precision=args.precision)  # ground truth + reference grid
    t_truth = time.perf_counter() - t

    per: dict[str, float] = {}
    t0 = time.perf_counter()
    rows = []
    for name in names:
        t = time.perf_counter()
        rows.append(ob.validate(name, prob, dts, backend, precision=args.precision))
        per[name] = time.perf_counter() - t
    total = time.perf_counter() - t0

    t = time.perf_counter()
    sweep = validate_sweep(names, prob, dts, backend, precision=args.precision, progress=False)
    total_sweep = time.perf_counter() - t

    passed = int((sweep.verdict.values == "pass").sum())
    print(f"problem {prob.name}, {len(names)} explicit methods x {len(dts)} dts "
          f"({dts[0]:.4g} ... {dts[-1]:.4g}), backend {backend.name}, precision {args.precision}")
    print(f"warm-up (mpmath ground truth at t1 + reference on the finest grid, once): {t_truth:.2f} s")
    print(f"sweep (per-method loop): {total:.2f} s   validate_sweep(): {total_sweep:.2f} s   "
          f"mean {total / len(names) * 1e3:.0f} ms/method")
    print(f"verdict pass: {passed}/{len(names)} (fixed dts: orders >= 5 are mostly pre-asymptotic or at "
          f"round-off here; see tests/validate/test_order.py for the mpmath order check)")
    print(f"slowest {args.top}:")
    for name, sec in sorted(per.items(), key=lambda kv: -kv[1])[: args.top]:
        m = ob.get_method(name)
        print(f"  {name:<26} {sec * 1e3:7.0f} ms  ({m.stages} stages, order {m.order})")
    stages = np.array([ob.get_method(n).stages for n in names])
    print(f"stage evaluations per method: {int(stages.mean() * sum(int(round(span / d)) for d in dts) * 2)} "
          "(trajectory + local steps, on average)")
    if args.out:
        io.to_netcdf(sweep, args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
