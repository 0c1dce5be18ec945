"""``odernn stability``: stability figures, regions (NetCDF) and plots for methods.

    odernn stability RK4 DP5 Tsit5 --plot regions.png --out regions.nc

prints a table (method, real interval, imaginary interval, A-stable, L-stable), writes
the regions of all methods as one NetCDF file (dims method, imag, real) and the overlay
plot.  Both files are written atomically.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

__all__ = ["register", "handle"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "stability", help="stability intervals, regions and plots of methods",
        description="Stability figures of merit of methods, with optional region file and plot.")
    p.add_argument("methods", nargs="+", metavar="METHOD", help="catalogue names (see `odernn methods`)")
    p.add_argument("--real", nargs=2, type=float, default=(-5.0, 1.0), metavar=("MIN", "MAX"),
                   help="real range of the region grid (default: -5 1)")
    p.add_argument("--imag", nargs=2, type=float, default=(-4.0, 4.0), metavar=("MIN", "MAX"),
                   help="imaginary range of the region grid (default: -4 4)")
    p.add_argument("--resolution", type=int, default=401, help="grid points per axis (default: 401)")
    p.add_argument("--plot", metavar="FILE", help="write the overlaid regions to FILE (png, pdf, svg)")
    p.add_argument("--out", metavar="FILE.nc", help="write regions and figures of merit as NetCDF")
    p.set_defaults(func=handle)


def _fmt(x: float) -> str:
    if math.isinf(x):
        return "inf"
    return f"{x:.10g}"


def handle(args: argparse.Namespace) -> int:
    import numpy as np
    import xarray as xr

    from ..io import provenance, save_figure, to_netcdf
    from ..methods import get_method
    from ..stability import (
        A_alpha_angle,
        imag_stability_interval,
        is_A_stable,
        is_L_stable,
        real_stability_interval,
        stability_region,
    )
    from ..stability.region import check_window

    check_window(args.real, args.imag, args.resolution)  # errors before any work
    methods = [get_method(n) for n in args.methods]
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise ValueError(f"methods: a method is listed twice ({', '.join(args.methods)})")

    rows = []
    for m in methods:
        rows.append({
            "method": m.name,
            "real_interval": real_stability_interval(m),
            "imag_interval": imag_stability_interval(m),
            "A_stable": is_A_stable(m),
            "L_stable": is_L_stable(m),
            "A_alpha_deg": A_alpha_angle(m),
        })
    header = f"{'method':<14} {'real interval':>16} {'imag interval':>16} {'A-stable':>9} {'L-stable':>9} {'A(alpha)':>9}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['method']:<14} {_fmt(r['real_interval']):>16} {_fmt(r['imag_interval']):>16} "
              f"{'yes' if r['A_stable'] else 'no':>9} {'yes' if r['L_stable'] else 'no':>9} "
              f"{r['A_alpha_deg']:>8.2f}°")

    if args.out:
        regions = [stability_region(m, tuple(args.real), tuple(args.imag), args.resolution) for m in methods]
        amp = xr.concat([r.drop_attrs() if hasattr(r, "drop_attrs") else r for r in regions],
                        dim=xr.DataArray(names, dims="method", name="method"))
        amp.attrs = {"long_name": "amplification factor",
                     "definition": "|R(z)| (Runge-Kutta) or max |zeta| of rho(zeta) - z sigma(zeta) "
                                   "(multistep); stability region = {amplification <= 1}"}
        ds = xr.Dataset(
            {"amplification": amp,
             "real_interval": ("method", np.array([r["real_interval"] for r in rows])),
             "imag_interval": ("method", np.array([r["imag_interval"] for r in rows])),
             "A_stable": ("method", np.array([r["A_stable"] for r in rows], dtype=np.int8)),
             "L_stable": ("method", np.array([r["L_stable"] for r in rows], dtype=np.int8)),
             "A_alpha_deg": ("method", np.array([r["A_alpha_deg"] for r in rows]))},
            attrs=provenance(command="odernn stability " + " ".join(args.methods),
                             window_real=list(args.real), window_imag=list(args.imag),
                             resolution=args.resolution))
        ds["real_interval"].attrs["long_name"] = "largest r with [-r, 0] in the region"
        ds["imag_interval"].attrs["long_name"] = "largest r with [-ir, ir] in the region"
        to_netcdf(ds, args.out)
        print(f"wrote {args.out}")
    if args.plot:
        from ..stability import plot_stability_regions

        fig = plot_stability_regions(methods, tuple(args.real), tuple(args.imag), args.resolution)
        save_figure(fig, args.plot, dpi=150)
        print(f"wrote {args.plot}")
    return 0
