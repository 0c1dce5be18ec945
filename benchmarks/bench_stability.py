"""Benchmark: stability regions of the whole catalogue on a 512×512 grid, and all intervals.

    python benchmarks/bench_stability.py [--resolution 512] [--top 8]

Prints the total and per-method times (slowest first) for (1) the region grid
(|R(z)| by Horner's rule, or batched companion eigenvalues for multistep methods) and
(2) the real and imaginary stability intervals (exact/high-precision root finding).
Stability functions are computed (and cached) before the region timing starts and timed
separately as "R(z) setup".
"""

from __future__ import annotations

import argparse
import time

import odernn_bridge as ob
from odernn_bridge.methods import LinearMultistep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, default=512)
    ap.add_argument("--top", type=int, default=8, help="how many of the slowest methods to list")
    args = ap.parse_args()

    names = ob.list_methods()
    methods = [ob.get_method(n) for n in names]
    setup, region, intervals, values = {}, {}, {}, {}
    for m in methods:
        t = time.perf_counter()
        ob.stability_function(m)
        setup[m.name] = time.perf_counter() - t
    ob.stability_region(methods[0], resolution=8)  # warm-up: imports (xarray) and caches
    for m in methods:
        t = time.perf_counter()
        ob.stability_region(m, real=(-5, 1), imag=(-4, 4), resolution=args.resolution)
        region[m.name] = time.perf_counter() - t
    for m in methods:
        t = time.perf_counter()
        values[m.name] = (ob.real_stability_interval(m), ob.imag_stability_interval(m))
        intervals[m.name] = time.perf_counter() - t

    n_rk = sum(not isinstance(m, LinearMultistep) for m in methods)
    print(f"catalogue: {len(methods)} methods ({n_rk} Runge–Kutta, {len(methods) - n_rk} multistep)")
    for label, d in (("R(z) setup (exact/high-precision coefficients)", setup),
                     (f"regions {args.resolution}x{args.resolution}", region),
                     ("real + imaginary intervals", intervals)):
        total = sum(d.values())
        rk = sum(v for k, v in d.items() if not isinstance(ob.get_method(k), LinearMultistep))
        print(f"\n{label}: total {total:.2f} s (Runge–Kutta {rk:.2f} s, multistep {total - rk:.2f} s), "
              f"mean {1e3 * total / len(d):.1f} ms/method")
        for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:args.top]:
            print(f"    {k:<22} {1e3 * v:9.1f} ms")
    print("\nintervals (real, imaginary):")
    for k in names:
        r, i = values[k]
        print(f"    {k:<22} {r:>14.10g} {i:>14.10g}")


if __name__ == "__main__":
    main()
