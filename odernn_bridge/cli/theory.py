"""``odernn theory``: the paper's claims, executable.

* ``odernn theory experiments --out DIR [--fast]`` — gradient norms, training inside/outside the
  predicted stable dt, parameter counts, QUNN memory tasks (NetCDF + PNG + summary.json);
* ``odernn theory classify`` — the (n, t) table of the standard cells;
* ``odernn theory counts --qubits Q --hidden H --input-size M`` — parameter counts versus t.
"""

from __future__ import annotations

import argparse
import json

from ._table import format_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("theory", help="n-t classification, stability experiments, QUNN",
                       description="The paper (Niu, Horesh & Chuang 2019), executable.")
    tsub = p.add_subparsers(dest="theory_command", metavar="SUBCOMMAND")
    e = tsub.add_parser("experiments", help="run the experiments and write NetCDF + figures",
                        description="(a) ‖∂h_T/∂h_0‖ over 1000 steps for Euler/RK4/implicit midpoint on a "
                                    "skew field; (b) training with dt just inside/outside the predicted "
                                    "stable dt; (c) parameter counts vs t and input size; (d) QUNN on "
                                    "memory tasks.")
    e.add_argument("--out", required=True, help="output folder (created if missing)")
    e.add_argument("--fast", action="store_true", help="smaller runs (well under a minute)")
    e.add_argument("--seed", type=int, default=0)
    e.set_defaults(func=_experiments)

    c = tsub.add_parser("classify", help="print the (n, t) classification of the standard cells")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_classify)

    n = tsub.add_parser("counts", help="parameter counts vs memory t: QUNN, generic n-t-ODERNN, LSTM")
    n.add_argument("--qubits", type=int, default=3)
    n.add_argument("--hidden", type=int, default=8)
    n.add_argument("--input-size", type=int, default=4)
    n.add_argument("--degree", type=int, default=2, help="n of the generic n-t-ODERNN")
    n.add_argument("--t", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    n.set_defaults(func=_counts)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _experiments(args: argparse.Namespace) -> int:
    from ..theory.experiments import run_experiments

    summary = run_experiments(args.out, fast=args.fast, seed=args.seed)
    print(f"results written to {args.out} (agreement of prediction and experiment (b): "
          f"{bool(summary['dt_threshold']['agreement'])})")
    return 0


def _classify(args: argparse.Namespace) -> int:
    import torch

    from ..cells import ODERNN, CoRNNCell
    from ..theory import AntisymmetricRNNCell, QUNNCell, ResidualRNNCell, URNNCell, classify

    mods = {
        "Elman RNN (nn.RNN)": torch.nn.RNN(2, 3), "residual RNN": ResidualRNNCell(2, 3),
        "AntisymmetricRNN": AntisymmetricRNNCell(2, 3), "coRNN": CoRNNCell(2, 3),
        "GRU (nn.GRU)": torch.nn.GRU(2, 3), "LSTM (nn.LSTM)": torch.nn.LSTM(2, 3), "URNN": URNNCell(2, 3),
        "QUNN (t=4)": QUNNCell(2, 2, memory=4), "ODERNN RK4": ODERNN(2, 3, method="RK4"),
        "ODERNN AB3": ODERNN(2, 3, method="AB3"),
    }
    rows = [(k, *classify(m)) for k, m in mods.items()]
    if args.json:
        print(json.dumps([{"module": r[0], "n": r[1], "t": r[2], "explanation": r[3]} for r in rows], indent=2,
                         ensure_ascii=False))
    else:
        print(format_table(["module", "n", "t"], [list(r[:3]) for r in rows]))
    return 0


def _counts(args: argparse.Namespace) -> int:
    from ..theory import elman_odernn_param_count, lstm_param_count, odernn_param_count, qunn_param_count

    rows = [[t, qunn_param_count(args.qubits, t), odernn_param_count(args.degree, t, args.input_size, args.hidden),
             elman_odernn_param_count(t, args.input_size, args.hidden), lstm_param_count(args.input_size, args.hidden)]
            for t in args.t]
    print(format_table(["t", f"QUNN q={args.qubits}", f"generic {args.degree}-t-ODERNN", "Elman t-ODERNN",
                        "LSTM"], rows))
    return 0
