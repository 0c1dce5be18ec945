"""``odernn stability``: stability figures, regions (NetCDF) and plots for methods.

    odernn stability RK4 DP5 Tsit5 --plot regions.png --out regions.nc
    odernn stability --all --workers 2 --out catalogue.nc      # whole catalogue on 2 processes

prints a table (method, real interval, imaginary interval, A-stable, L-stable), writes
the regions of all methods as one NetCDF file (dims method, imag, real) and the overlay
plot.  Both files are written atomically.  A method whose analysis raised is reported
(``status``/``error`` in the file) and the exit status is 1.
"""

from __future__ import annotations

import argparse
from typing import Any

from ._execution import add_execution_options

__all__ = ["register", "handle"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "stability", help="stability intervals, regions and plots of methods",
        description="Stability figures of merit of methods, with optional region file and plot.")
    p.add_argument("methods", nargs="*", metavar="METHOD", help="catalogue names (see `odernn methods`)")
    p.add_argument("--all", action="store_true", help="every catalogue method")
    p.add_argument("--real", nargs=2, type=float, default=(-5.0, 1.0), metavar=("MIN", "MAX"),
                   help="real range of the region grid (default: -5 1)")
    p.add_argument("--imag", nargs=2, type=float, default=(-4.0, 4.0), metavar=("MIN", "MAX"),
                   help="imaginary range of the region grid (default: -4 4)")
    p.add_argument("--resolution", type=int, default=401, help="grid points per axis (default: 401)")
    p.add_argument("--plot", metavar="FILE", help="write the overlaid regions to FILE (png, pdf, svg)")
    p.add_argument("--out", metavar="FILE.nc", help="write regions and figures of merit as NetCDF")
    add_execution_options(p)
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from ..io import save_figure, to_netcdf
    from ..methods import get_method, list_methods
    from ..stability.region import check_window
    from ..stability.table import format_table, stability_table

    check_window(args.real, args.imag, args.resolution)  # errors before any work
    if args.all and args.methods:
        raise ValueError("methods: give method names or --all, not both")
    if not args.all and not args.methods:
        raise ValueError("methods: expected at least one method name (or --all for the whole catalogue)")
    given = list_methods() if args.all else args.methods
    methods = [get_method(n) for n in given]
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise ValueError(f"methods: a method is listed twice ({', '.join(given)})")

    region = (tuple(args.real), tuple(args.imag), args.resolution) if args.out else None
    ds = stability_table(names, region=region, workers=args.workers, scheduler=args.scheduler,
                         progress=not args.quiet and bool(args.workers or args.scheduler or args.all))
    print(format_table(ds))
    if args.out:
        ds.attrs["command"] = "odernn stability " + ("--all" if args.all else " ".join(args.methods))
        to_netcdf(ds, args.out)
        print(f"wrote {args.out}")
    if args.plot:
        from ..stability import plot_stability_regions

        fig = plot_stability_regions(methods, tuple(args.real), tuple(args.imag), args.resolution)
        save_figure(fig, args.plot, dpi=150)
        print(f"wrote {args.plot}")
    return 0 if (ds.status.values == "ok").all() else 1
