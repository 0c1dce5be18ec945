"""``odernn validate``: cross-validate a method against a reference backend.

    odernn validate --method Tsit5 --problem vanderpol --backend auto --out run.nc --plot errors.png
    odernn validate --all --problem kepler --out sweep.nc        # every explicit method
    odernn validate -m Vern7 --precision mp --tspan 0 0.25       # orders >= 5: mpmath
    odernn validate --all -p linear kepler lorenz --workers 2 --out sweep.nc   # on 2 processes
    odernn validate --all --scheduler tcp://host:8786 --out sweep.nc           # existing cluster

Several methods, problems or precisions make a sweep (one Dataset, dims method[, problem]
[, precision], level); a sweep writing ``--out`` resumes where an interrupted run stopped.

Exit status: 0 verified, 1 an order check failed (or a cell raised), 3 inconclusive (no
asymptotic range found).
"""

from __future__ import annotations

import argparse
from typing import Any

from ..reference.backend import BACKENDS
from ._execution import add_execution_options


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("validate", help="cross-validate a method against a reference backend",
                              description="Step-by-step cross-validation and observed convergence order.")
    p.add_argument("--method", "-m", action="append", default=None,
                   help="catalogue method name (repeatable); default Tsit5 (RK4 if Tsit5 is not in the catalogue)")
    p.add_argument("--all", action="store_true", help="sweep every explicit catalogue method")
    p.add_argument("--problem", "-p", nargs="+", default=["vanderpol"],
                   help="problem name(s) (linear, vanderpol, lorenz, lotka_volterra, kepler, vanderpol_mild)")
    p.add_argument("--backend", "-b", default="auto", choices=("auto", *BACKENDS))
    p.add_argument("--dts", type=float, nargs="+", default=None, help="step sizes (default: automatic)")
    p.add_argument("--n-dts", type=int, default=6, help="number of automatic step sizes (default 6)")
    p.add_argument("--tolerance", type=float, default=0.3, help="allowed |observed - nominal| order")
    p.add_argument("--precision", nargs="+", default=["auto"], choices=("auto", "float64", "mp"),
                   help="one or more of: ""float64, mpmath (40 digits, against a 50-digit reference), or auto: float64, then mpmath on a shorter span when float64 is inconclusive (default)")
    p.add_argument("--tspan", type=float, nargs=2, default=None, metavar=("T0", "T1"),
                   help="override the problem's time span")
    p.add_argument("--out", "-o", default=None, help="write the Dataset to this NetCDF file")
    p.add_argument("--plot", default=None, help="write a log-log error plot (PNG/PDF/SVG)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_execution_options(p)
    p.set_defaults(func=handler)


def _default_method() -> str:
    from ..methods.catalogue import list_methods

    names = list_methods()
    return "Tsit5" if "Tsit5" in names else "RK4"


def handler(args: argparse.Namespace) -> int:
    """Exit status: 0 all verified, 1 some order check failed, 3 inconclusive (no asymptotic range)."""
    import numpy as np

    from .. import io
    from ..validate import validate, validate_sweep
    from ..validate.plots import plot_errors

    if args.n_dts < 2:
        raise ValueError(f"--n-dts: expected an integer >= 2, got {args.n_dts}")
    from ..reference import get_problem

    methods = None if args.all else (args.method or [_default_method()])
    problems = []
    for name in args.problem:
        problem = get_problem(name)
        if args.tspan is not None:
            problem = problem.with_tspan(tuple(args.tspan))
        problems.append(problem)
    opts = dict(n_dts=args.n_dts, tolerance=args.tolerance)
    single = methods is not None and len(methods) == 1 and len(problems) == 1 and len(args.precision) == 1
    if single and args.workers is None and args.scheduler is None:
        ds = validate(methods[0], problems[0], args.dts, args.backend, precision=args.precision[0], **opts)
        print(_report(ds))
        ok = ds.attrs["verdict"] == "pass"
        inconclusive = ds.attrs["verdict"] == "inconclusive"
        if args.out:
            io.to_netcdf(ds, args.out)
    else:
        if args.plot and (len(problems) > 1 or len(args.precision) > 1):
            raise ValueError("--plot: plots a sweep over one problem and one precision")
        ds = validate_sweep(methods, problems[0] if len(problems) == 1 else problems, args.dts, args.backend,
                            precision=args.precision[0] if len(args.precision) == 1 else args.precision,
                            progress=not args.quiet, workers=args.workers, scheduler=args.scheduler,
                            out=args.out, **opts)
        print(_sweep_report(ds))
        ok = bool((ds.verdict.values == "pass").all())
        inconclusive = not ok and bool(np.isin(ds.verdict.values, ["pass", "inconclusive"]).all())
    if args.out:
        print(f"wrote {args.out}")
    if args.plot:
        plot_errors(ds, args.plot)
        print(f"wrote {args.plot}")
    return 0 if ok else (3 if inconclusive else 1)


def _report(ds: Any) -> str:
    a = ds.attrs
    lines = [f"{a['method']} on {a['problem']} — backend {a['backend']} ({a['backend_versions']}), "
             f"stepper: {a['stepper']}",
             f"{'dt':>12} {'final error':>12} {'order':>6}"]
    for dt, e, o in zip(ds.dt.values, ds.final_error.values, ds.pairwise_order.values):
        lines.append(f"{dt:12.4e} {e:12.3e} {'' if o != o else f'{o:6.2f}':>6}")
    lines.append(f"observed order {float(ds.observed_order):.2f} (local {float(ds.observed_local_order):.2f}), "
                 f"nominal {int(ds.nominal_order)}: {a['verdict']}")
    if a.get("precision_fallback"):
        lines.append(f"note: {a['precision_fallback']}")
    if a.get("hint"):
        lines.append(f"hint: {a['hint']}")
    return "\n".join(lines)


def _sweep_report(ds: Any) -> str:
    import numpy as np

    grid = [d for d in ("method", "problem", "precision") if d in ds.verdict.dims]
    extra = [d for d in grid if d != "method"]
    lines = [f"{'method':<18} " + "".join(f"{d:<16}" for d in extra) + f"{'nominal':>7} {'observed':>8}  verdict"]
    sub = ds[["verdict", "observed_order", "nominal_order", "status", "error"]].transpose(*grid)
    for idx in np.ndindex(*sub.verdict.shape):
        labels = [str(sub[d].values[i]) for d, i in zip(grid, idx)]
        head = f"{labels[0]:<18} " + "".join(f"{x:<16}" for x in labels[1:])
        if sub.status.values[idx] != "ok":
            lines.append(f"{head}{'':>7} {'':>8}  error: {sub.error.values[idx]}")
            continue
        lines.append(f"{head}{int(sub.nominal_order.values[idx]):>7} {float(sub.observed_order.values[idx]):8.2f}  "
                     f"{sub.verdict.values[idx]}")
    failed = f", {ds.attrs['cells_failed']} raised" if ds.attrs.get("cells_failed") else ""
    lines.append(f"{ds.attrs['passed']}/{ds.verdict.size} passed on {ds.attrs['problem']} "
                 f"(backend {ds.attrs['backend']}{failed}; {ds.attrs['execution']})")
    return "\n".join(lines)
