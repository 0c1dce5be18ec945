"""``odernn train`` and ``odernn report``.

    odernn train --task digits --method RK4 --dt 0.5 --hidden 128 --epochs 5 --out runs/x
    odernn train --task digits --model lstm --hidden 128 --epochs 5 --out runs/lstm
    odernn train --out runs/x --resume            # continue exactly where runs/x stopped
    odernn train --task digits --method learnable --learnable-stages 4 --learnable-order 3 --out runs/l
    odernn report runs/x runs/lstm --out runs/compare
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["register"]


def _task_option(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--task-option: expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        parsed: Any = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip(), parsed


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train", help="train an ODERNN (or an LSTM baseline) on a bundled sequence task",
        description="Train a model on a bundled task; writes config.json, checkpoint.pt, history.nc, "
                    "model.pt and summary.json into --out. Defaults left unset take the TrainConfig defaults.")
    p.add_argument("--task", default=None, help="digits | pdigits | adding | copy | dynamics (default digits)")
    p.add_argument("--task-option", action="append", type=_task_option, default=[], metavar="KEY=VALUE",
                   help="task option, repeatable (e.g. seq_len=100, system=lorenz, irregular=true)")
    p.add_argument("--model", default=None, choices=["odernn", "lstm", "gru", "rnn"])
    p.add_argument("--method", default=None,
                   help="integrator name for the ODERNN (default RK4), or 'learnable' (LearnableRKCell)")
    p.add_argument("--learnable-stages", type=int, default=None, help="--method learnable: stages (default 4)")
    p.add_argument("--learnable-order", type=int, default=None,
                   help="--method learnable: order kept during training (default 4)")
    p.add_argument("--learnable-init", default=None,
                   help="--method learnable: starting method name or 'random' (default RK4)")
    p.add_argument("--learnable-stability", type=float, default=None,
                   help="--method learnable: target real stability interval (penalty; needs stages > order)")
    p.add_argument("--learnable-option", action="append", type=_task_option, default=[], metavar="KEY=VALUE",
                   help="--method learnable: cell option, repeatable (penalty, project_every, stability_weight, "
                        "tol, maxiter)")
    p.add_argument("--dt", type=float, default=None, help="step size between inputs (default 1.0)")
    p.add_argument("--field", default=None, help="vector field: elman | leaky | gated | antisymmetric (default antisymmetric)")
    p.add_argument("--field-option", action="append", type=_task_option, default=[], metavar="KEY=VALUE",
                   help="vector-field option, repeatable (e.g. gamma=0.1)")
    p.add_argument("--substeps", type=int, default=None)
    p.add_argument("--hidden", type=int, default=None, help="hidden size (default 64)")
    p.add_argument("--num-layers", type=int, default=None)
    p.add_argument("--dropout", type=float, default=None)
    p.add_argument("--epochs", type=int, default=None, help="default 5")
    p.add_argument("--batch-size", type=int, default=None, help="default 64")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 3e-3)")
    p.add_argument("--optimizer", default=None, choices=["adam", "adamw", "sgd", "rmsprop"])
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--scheduler", default=None, choices=["none", "cosine", "onecycle", "step", "plateau"],
                   help="learning-rate schedule (default onecycle)")
    p.add_argument("--clip", type=float, default=None, help="gradient-norm clipping (default 1.0; 0 disables)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--no-deterministic", action="store_true", help="allow non-deterministic kernels")
    p.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints (0: epoch ends)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (resumable)")
    p.add_argument("--patience", type=int, default=None, help="early stopping patience in epochs")
    p.add_argument("--monitor-every", type=int, default=None, help="steps between stability-monitor calls (0 off)")
    p.add_argument("--monitor-samples", type=int, default=None, help="sequences per monitor call (default 2)")
    p.add_argument("--monitor-time-steps", type=int, default=None,
                   help="time steps linearised per monitor call (default 16)")
    p.add_argument("--device", default=None, help="torch device (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--out", required=True, help="run folder")
    p.set_defaults(func=_train)

    r = subparsers.add_parser("report", help="plot and compare training runs",
                              description="Loss/accuracy curves, stability metrics and a comparison table.")
    r.add_argument("runs", nargs="+", help="run folders written by `odernn train`")
    r.add_argument("--out", default=None, help="folder for the PNGs and table (default: each run folder, "
                                               "comparison plots into the first)")
    r.set_defaults(func=_report)


_CONFIG_FLAGS = ("task", "model", "method", "learnable_stages", "learnable_order", "learnable_init",
                 "learnable_stability", "dt", "field", "substeps", "hidden", "num_layers", "dropout", "epochs",
                 "batch_size", "lr", "optimizer", "weight_decay", "scheduler", "seed", "checkpoint_every",
                 "max_steps", "patience", "monitor_every", "monitor_samples", "monitor_time_steps", "device")


def _train(args: argparse.Namespace) -> int:
    import torch

    from ..train import TrainConfig, Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    given = {k: getattr(args, k) for k in _CONFIG_FLAGS if getattr(args, k) is not None}
    if args.clip is not None:
        given["clip"] = args.clip if args.clip > 0 else None
    if args.task_option:
        given["task_options"] = dict(args.task_option)
    if args.field_option:
        given["field_options"] = dict(args.field_option)
    if args.learnable_option:
        given["learnable_options"] = dict(args.learnable_option)
    given["progress"] = not args.no_progress
    if args.no_deterministic:
        given["deterministic"] = False
    if args.resume:
        from pathlib import Path

        from ..io import read_json_object

        cfg_path = Path(args.out) / "config.json"
        if not cfg_path.is_file():
            raise FileNotFoundError(f"--resume: no run to resume in {args.out} (config.json missing)")
        saved = read_json_object(cfg_path, "--resume: config.json")
        # only these may change on resume; the rest comes from the checkpoint
        saved.update({k: v for k, v in given.items()
                      if k in ("epochs", "device", "progress", "patience", "checkpoint_every")})
        saved["max_steps"] = given.get("max_steps")  # a stop is not inherited: resume runs to the end
        config = TrainConfig.from_dict(saved)
    else:
        config = TrainConfig(**given)
    trainer = Trainer(config, args.out)
    result = trainer.fit(resume=args.resume)
    config = trainer.config  # on resume: the checkpoint's configuration, which is what ran
    s = result.summary
    print(f"{s['stopped']}: {s['steps']} steps, {s['epochs_done']} epochs, {s['wall_time_s']:.1f} s "
          f"(of which stability monitor {s['monitor_time_s']:.1f} s) "
          f"({config.model}{' ' + config.method + ' dt=' + str(config.dt) + ' ' + config.field if config.model == 'odernn' else ''})")
    for key in ("final_test_accuracy", "best_test_accuracy", "final_test_loss", "best_test_loss"):
        if key in s:
            print(f"  {key}: {s[key]:.4f}")
    if "tableau_verified_order" in s:
        print(f"  learned tableau: verified order {s['tableau_verified_order']}, max order-condition residual "
              f"{s['tableau_order_residual']:.1e}, real stability interval {s['tableau_real_stability_interval']:.4f}")
    print(f"  results in {args.out}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from ..train.report import compare_runs, format_table, report

    paths = report(args.runs, out=args.out)
    print(format_table(compare_runs(args.runs)))
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":  # pragma: no cover
    from . import main

    sys.exit(main(["train", *sys.argv[1:]]))
