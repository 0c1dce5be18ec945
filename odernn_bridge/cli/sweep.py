"""``odernn sweep``: grids of runs gathered into one Dataset (serially or on dask).

    odernn sweep train --methods Euler RK4 Tsit5 --dts 0.25 0.5 1 --seeds 0 1 2 --hidden 32 64 \\
        --task digits --epochs 3 --workers 2 --out sweep.nc [--runs-dir runs/]
    odernn sweep train ... --scheduler tcp://host:8786 --out sweep.nc     # an existing cluster

Rerunning an interrupted sweep with the same ``--out`` skips the runs it finished.  Exit
status 0 when every run completed, 1 when some run failed (``status``/``error`` in the file).
"""

from __future__ import annotations

import argparse
from typing import Any

from ._execution import add_execution_options
from .train import _task_option

__all__ = ["register"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("sweep", help="grids of training runs as one Dataset (serial or dask)",
                              description="Sweeps whose cells run serially or on a dask.distributed cluster.")
    sub = p.add_subparsers(dest="sweep_command", metavar="SWEEP")
    t = sub.add_parser("train", help="train one model per method x dt x hidden x seed",
                       description="Train an ODERNN per cell of methods x dts x hidden x seeds; final metrics "
                                   "and per-epoch curves of every run in one NetCDF file.")
    t.add_argument("--methods", "-m", nargs="+", default=["RK4"], help="integrator names (default RK4)")
    t.add_argument("--dts", nargs="+", type=float, default=[1.0], help="step sizes (default 1.0)")
    t.add_argument("--seeds", nargs="+", type=int, default=[0], help="training seeds (default 0)")
    t.add_argument("--hidden", nargs="+", type=int, default=None, help="hidden sizes (default 64)")
    t.add_argument("--task", default=None, help="digits | pdigits | adding | copy | dynamics (default digits)")
    t.add_argument("--task-option", action="append", type=_task_option, default=[], metavar="KEY=VALUE",
                   help="task option, repeatable (e.g. seq_len=100)")
    t.add_argument("--field", default=None, help="vector field (default antisymmetric)")
    t.add_argument("--epochs", type=int, default=None, help="default 5")
    t.add_argument("--batch-size", type=int, default=None, help="default 64")
    t.add_argument("--lr", type=float, default=None, help="learning rate (default 3e-3)")
    t.add_argument("--lr-schedule", default=None, choices=["none", "cosine", "onecycle", "step", "plateau"],
                   help="learning-rate schedule (default onecycle)")
    t.add_argument("--monitor-every", type=int, default=None, help="steps between stability-monitor calls (0 off)")
    t.add_argument("--runs-dir", default=None, help="keep every run's folder (history.nc, checkpoints) here")
    t.add_argument("--out", "-o", required=True, help="NetCDF file for the sweep's Dataset")
    add_execution_options(t)
    t.set_defaults(func=_train_sweep)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _train_sweep(args: argparse.Namespace) -> int:
    import numpy as np

    from ..train import train_sweep

    given: dict[str, Any] = {k: getattr(args, k) for k in ("task", "field", "epochs", "batch_size", "lr",
                                                           "monitor_every") if getattr(args, k) is not None}
    if args.lr_schedule is not None:
        given["scheduler"] = args.lr_schedule
    if args.task_option:
        given["task_options"] = dict(args.task_option)
    ds = train_sweep(args.methods, args.dts, args.seeds, args.hidden, config=given, runs_dir=args.runs_dir,
                     workers=args.workers, scheduler=args.scheduler, out=args.out, progress=not args.quiet)
    metric = "final_test_accuracy" if "final_test_accuracy" in ds else "final_test_loss"
    print(f"{'method':<14} {'dt':>8} {'hidden':>6} {'seed':>5}  {metric}")
    for idx in np.ndindex(*ds.status.shape):
        m, dt, h, s = (ds[d].values[i] for d, i in zip(ds.status.dims, idx))
        value = (f"{float(ds[metric].values[idx]):.4f}" if ds.status.values[idx] == "ok" and metric in ds
                 else f"failed: {ds.error.values[idx]}")
        print(f"{m:<14} {dt:>8g} {h:>6} {s:>5}  {value}")
    failed = int((ds.status.values != "ok").sum())
    print(f"{ds.status.size - failed}/{ds.status.size} runs completed ({ds.attrs['execution']}); wrote {args.out}")
    return 0 if failed == 0 else 1
