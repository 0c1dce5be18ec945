"""``odernn demo`` — the main job, end to end on the embedded (SciPy) default.

method → verified orders and stability figures → ODERNN cell → step-by-step
cross-validation against the reference backend → brief training with the stability
monitor → NetCDF files, figures and a short report in the output folder.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job end to end (method → stability → cell → "
                                    "validation → training) and write results",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", default="Tsit5", help="catalogue method (default: Tsit5)")
    p.add_argument("--problem", default="vanderpol", help="validation problem (default: vanderpol)")
    p.add_argument("--backend", default="auto", choices=["auto", "scipy", "julia"],
                   help="reference backend (auto: Julia when installed, else SciPy)")
    p.add_argument("--task", default="digits", help="training task (default: digits)")
    p.add_argument("--field", default="antisymmetric", help="vector field of the cell (default: antisymmetric)")
    p.add_argument("--dt", type=float, default=0.5, help="cell step size (default: 0.5)")
    p.add_argument("--hidden", type=int, default=64, help="hidden size (default: 64)")
    p.add_argument("--epochs", type=int, default=5, help="training epochs (default: 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="odernn-demo", help="output folder (default: odernn-demo)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run_demo)


def _say(msg: str) -> None:
    print(msg, flush=True)


def run_demo(args: argparse.Namespace) -> int:
    import odernn_bridge as ob
    from odernn_bridge.io import atomic_write_text, save_figure, to_netcdf

    if args.dt <= 0 or args.dt != args.dt:
        raise ValueError(f"--dt: expected a positive step size, got {args.dt!r}")
    if args.hidden < 1 or args.epochs < 1:
        raise ValueError("--hidden and --epochs: expected positive integers")
    m = ob.get_method(args.method)  # an unknown name fails before anything is written
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"odernn_bridge_version": ob.__version__}
    t_start = time.perf_counter()

    # 1. the method and its verified orders
    order = ob.verify_order(m)
    emb = ob.verify_embedded_order(m) if getattr(m, "b_embedded", None) is not None else None
    report["method"] = {"name": m.name, "kind": getattr(m, "kind", "multistep"), "stages": m.stages,
                        "claimed_order": m.order, "verified_order": order,
                        "verified_embedded_order": emb, "citation": m.citation}
    ob.save_method(m, out / f"{m.name}.json")
    _say(f"[1/5] {m.name}: {m.stages} stages, order {order} verified from the tree conditions"
         + (f", embedded order {emb}" if emb is not None else ""))

    # 2. stability
    real_iv = ob.real_stability_interval(m)
    imag_iv = ob.imag_stability_interval(m)
    region = ob.stability_region(m, real=(-6, 2), imag=(-5, 5), resolution=401)
    to_netcdf(region, out / "stability_region.nc")
    fig = ob.plot_stability_regions([m, "RK4", "Euler"] if m.name not in ("RK4", "Euler") else [m],
                                    real=(-6, 2), imag=(-5, 5), resolution=301)
    save_figure(fig, out / "stability.png", dpi=120)
    report["stability"] = {"real_interval": real_iv, "imag_interval": imag_iv,
                           "A_stable": bool(ob.is_A_stable(m))}
    _say(f"[2/5] stability: real interval {real_iv:.6g}, imaginary interval {imag_iv:.6g}  "
         f"→ stability_region.nc, stability.png")

    # 3. the cell
    import torch

    torch.manual_seed(args.seed)
    cell = ob.RKCell(ob.make_field(args.field, 1, args.hidden), m, dt=args.dt).double()
    n_t = ob.classify(cell)
    report["cell"] = {"field": args.field, "dt": args.dt, "hidden": args.hidden,
                      "classification": [n_t.n, n_t.t]}
    _say(f"[3/5] cell: {type(cell).__name__}({args.field}, {m.name}, dt={args.dt}) — "
         f"an n-t-ODERNN with n={n_t.n}, t={n_t.t}")

    # 4. cross-validation: the method on a reference problem; the torch cell step by step
    #    against the independent NumPy integrator of the same tableau on the cell's own field
    from odernn_bridge.validate import cell_agreement
    from odernn_bridge.validate.plots import plot_errors

    ds = ob.validate(m, problem=args.problem, backend=args.backend)
    to_netcdf(ds, out / "validation_method.nc")
    plot_errors(ds, out / "validation.png")
    agree = cell_agreement(cell, steps=16, seed=args.seed)
    to_netcdf(agree, out / "validation_cell.nc")
    report["validation"] = {
        "backend": ds.attrs.get("backend"),
        "problem": args.problem,
        "observed_order": float(ds.observed_order), "nominal_order": int(ds.nominal_order),
        "verdict": ds.attrs.get("verdict"),
        "precision_fallback": ds.attrs.get("precision_fallback"),
        "cell_vs_numpy_max_abs_diff": agree.attrs["max_abs_diff"],
    }
    _say(f"[4/5] validation ({ds.attrs.get('backend')} backend): {m.name} on {args.problem}: observed "
         f"order {float(ds.observed_order):.2f} vs nominal {int(ds.nominal_order)} → {ds.attrs.get('verdict')}; "
         f"torch cell vs NumPy integrator over 16 steps: max |Δ| = {agree.attrs['max_abs_diff']:.1e}  "
         f"→ validation_method.nc, validation_cell.nc, validation.png")

    # 5. brief training with the stability monitor
    from odernn_bridge.train import TrainConfig, Trainer
    from odernn_bridge.train.report import plot_run

    cfg = TrainConfig(task=args.task, model="odernn", method=m.name, dt=args.dt, field=args.field,
                      hidden=args.hidden, epochs=args.epochs, seed=args.seed,
                      monitor_every=10, progress=not args.no_progress)
    result = Trainer(cfg, out / "train").fit()
    plot_run(out / "train")
    report["training"] = {"stopped": result.stopped, **result.summary}
    sm = result.summary
    acc = sm.get("final_test_accuracy")
    score = (f"test accuracy {100 * acc:.1f}%" if acc is not None
             else f"test loss {sm.get('final_test_loss', float('nan')):.4g}")
    monitor = ""
    if "frac_inside" in sm:
        monitor = (f"; stability monitor: {100 * sm['frac_inside']:.0f}% of dt·λ inside the region, "
                   f"max|R(dt·λ)| = {sm['max_abs_R']:.4f}, largest stable dt {sm['max_stable_dt']:.3g} "
                   f"(training dt {args.dt})")
    _say(f"[5/5] training on {args.task}: {score} after {sm.get('epochs_done')} epochs "
         f"({sm.get('wall_time_s', 0):.0f} s){monitor} → train/")

    report["elapsed_s"] = round(time.perf_counter() - t_start, 2)
    atomic_write_text(out / "report.json", json.dumps(report, indent=2, default=str) + "\n")
    _say(f"done in {report['elapsed_s']} s; results in {out}/ (report.json, *.nc, *.png, train/)")
    return 0
