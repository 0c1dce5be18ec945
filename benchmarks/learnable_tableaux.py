"""Learnable tableaux vs fixed RK4 at equal stages (4), on sequential digits and Van der Pol dynamics.

    python benchmarks/learnable_tableaux.py [--tasks digits dynamics] [--seeds 0 1 2] [--epochs 5]

For each task and seed trains RK4, a learnable 4-stage order-4 tableau, a learnable 4-stage
order-3 tableau and the latter with a stability penalty (target real interval 4), all from
RK4, with the same network, data and schedule (1 torch thread).  Prints one line per run: test
accuracy (digits) or test MSE (dynamics), wall time, and for learnable runs the order verified by
``verify_order(tol=1e-12)``, the largest order-condition residual after any projection, the
real/imaginary stability intervals of the learned tableau and how far A moved from RK4.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import odernn_bridge as ob
from odernn_bridge.cells.learnable import learnable_cells
from odernn_bridge.train import TrainConfig, Trainer

TASKS = {
    "digits": dict(task="digits", hidden=64, epochs=5, batch_size=64, lr=5e-3),
    "dynamics": dict(task="dynamics", task_options={"system": "vanderpol"}, hidden=32, epochs=20, batch_size=16,
                     lr=5e-3),
}
CONFIGS = {
    "RK4": dict(method="RK4"),
    "learnable s4 p4": dict(method="learnable", learnable_stages=4, learnable_order=4),
    "learnable s4 p3": dict(method="learnable", learnable_stages=4, learnable_order=3),
    "learnable s4 p3 stab4": dict(method="learnable", learnable_stages=4, learnable_order=3, learnable_stability=4.0,
                                  learnable_options={"stability_weight": 10.0}),
}


def one_run(task: str, config: str, seed: int, epochs: int | None) -> dict:
    kw = dict(TASKS[task])
    if epochs is not None:
        kw["epochs"] = epochs
    cfg = TrainConfig(**kw, **CONFIGS[config], dt=0.5, field="antisymmetric", seed=seed, progress=False,
                      monitor_every=0)
    t0 = time.perf_counter()
    res = Trainer(cfg).fit()
    s = res.summary
    row = {"task": task, "config": config, "seed": seed, "wall_s": round(time.perf_counter() - t0, 1),
           "test": s["final_test_accuracy"] if task == "digits" else s["final_test_loss"]}
    cells = learnable_cells(res.model)
    if cells:
        tab = cells[0].tableau()
        A0 = np.array(json.loads(res.history.attrs["tableau_initial"])["tableau_A"])
        row.update(order=ob.verify_order(tab, tol=1e-12),
                   max_residual=float(np.nanmax(res.history.tableau_residual)),
                   real_interval=round(float(ob.real_stability_interval(tab)), 4),
                   imag_interval=round(float(ob.imag_stability_interval(tab)), 4),
                   max_abs_dA=round(float(np.abs(tab.A - A0).max()), 4),
                   failures=int(cells[0].projection_failures))
    return row


def run(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="*", choices=list(TASKS), default=list(TASKS))
    p.add_argument("--configs", nargs="*", choices=list(CONFIGS), default=list(CONFIGS))
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=None, help="override the per-task epochs")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    print(f"RK4 real / imaginary stability intervals: {ob.real_stability_interval('RK4'):.4f} / "
          f"{ob.imag_stability_interval('RK4'):.4f}")
    for task in args.tasks:
        for seed in args.seeds:
            for config in args.configs:
                print(json.dumps(one_run(task, config, seed, args.epochs)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
