"""Benchmark of the ODERNN cells (forward + backward), measured side by side in one run.

    python benchmarks/bench_cells.py [--threads 1] [--repeats 7] [--seq 200] [--batch 64]
                                     [--hidden 256] [--input 64] [--no-compile] [--json out.json]

Every case runs the same workload: a sequence (seq, batch, input) through one recurrent
layer, ``output.sum().backward()``.  Repeats are interleaved (case order shuffled each
round) and the table reports medians, so that load from other processes hits all cases
alike; the ratios, not the absolute times, are the result.

Cases
  lstm              torch.nn.LSTM (CPU: oneDNN fused kernel; CUDA: cuDNN)
  rnn_tanh          torch.nn.RNN, one plain Elman step per input
  rk4_fused         ODERNN(method="RK4", field="elman"): fused whole-sequence kernel
  rk4_generic       the same cell through the generic autograd stage loop (fused=False)
  euler_fused       ODERNN(method="Euler"): a 1-stage cell, fused
  rk4_compiled      generic path with the per-step function under torch.compile
  torchdiffeq_rk4   the same Elman field integrated with torchdiffeq.odeint(method="rk4")
                    interval by interval (torchdiffeq's rk4 is the 3/8 rule: also 4 stages)
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from typing import Any, Callable

import torch

import odernn_bridge as ob

Case = Callable[[], None]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_cases(seq: int, batch: int, inp: int, hidden: int, device: torch.device, dtype: torch.dtype,
                compile_: bool, dt: float = 0.5, compile_mode: str | None = None
                ) -> tuple[dict[str, Case], dict[str, Any]]:
    """Callables running forward+backward for every case; info (compile time, checks)."""
    torch.manual_seed(0)
    x = torch.randn(seq, batch, inp, device=device, dtype=dtype)
    info: dict[str, Any] = {}
    lstm = torch.nn.LSTM(inp, hidden, device=device, dtype=dtype)
    rnn = torch.nn.RNN(inp, hidden, device=device, dtype=dtype)
    rk4 = ob.ODERNN(inp, hidden, method="RK4", dt=dt, device=device, dtype=dtype)
    rk4_g = ob.ODERNN(inp, hidden, method="RK4", dt=dt, device=device, dtype=dtype, fused=False)
    euler = ob.ODERNN(inp, hidden, method="Euler", dt=dt, device=device, dtype=dtype)

    def fb(module: torch.nn.Module) -> Case:
        def run() -> None:
            out, _ = module(x)
            out.sum().backward()
        return run

    cases: dict[str, Case] = {
        "lstm": fb(lstm), "rnn_tanh": fb(rnn), "rk4_fused": fb(rk4), "rk4_generic": fb(rk4_g),
        "euler_fused": fb(euler),
    }
    try:
        from torchdiffeq import odeint

        field = rk4.cells[0].field

        def tde() -> None:
            u = field.project_input(x)
            h = x.new_zeros(batch, hidden)
            ts = torch.tensor([0.0, dt], device=device, dtype=dtype)
            outs = []
            for k in range(seq):
                uk = u[k]
                h = odeint(lambda t, y, uk=uk: field.rhs(y, uk), h, ts, method="rk4",
                           options={"step_size": dt})[-1]
                outs.append(h)
            torch.stack(outs).sum().backward()

        cases["torchdiffeq_rk4"] = tde
        # sanity: the 3/8-rule ODERNN reproduces torchdiffeq's numbers
        cell38 = ob.RKCell(field, "RK438Rule", dt=dt)
        with torch.no_grad():
            n_check = min(5, seq)
            u = field.project_input(x[:n_check])
            h1 = h2 = x.new_zeros(batch, hidden)
            for k in range(n_check):
                h1 = cell38.step_projected(u[k], h1)
                h2 = odeint(lambda t, y, uk=u[k]: field.rhs(y, uk), h2,
                            torch.tensor([0.0, dt], device=device, dtype=dtype), method="rk4",
                            options={"step_size": dt})[-1]
        info["max_abs_diff_vs_torchdiffeq_rk38"] = float((h1 - h2).abs().max())
    except ImportError:
        info["torchdiffeq"] = "not installed"
    if compile_:
        rk4_c = ob.ODERNN(inp, hidden, method="RK4", dt=dt, device=device, dtype=dtype, fused=False)
        rk4_c.load_state_dict(rk4.state_dict())
        try:
            rk4_c.cells[0].compile(dynamic=False, mode=compile_mode)
            t0 = time.perf_counter()
            fb(rk4_c)()
            fb(rk4_c)()
            _sync(device)
            info["compile_warmup_s"] = time.perf_counter() - t0
            cases["rk4_compiled"] = fb(rk4_c)
        except Exception as exc:  # noqa: BLE001 - a missing compiler must not kill the table
            info["compile_error"] = f"{type(exc).__name__}: {exc}"[:300]
    return cases, info


def measure(cases: dict[str, Case], repeats: int, device: torch.device, warmup: int = 1) -> dict[str, list[float]]:
    for run in cases.values():
        for _ in range(warmup):
            run()
    _sync(device)
    times: dict[str, list[float]] = {k: [] for k in cases}
    names = list(cases)
    rng = random.Random(0)
    for _ in range(repeats):
        rng.shuffle(names)
        for name in names:
            _sync(device)
            t0 = time.perf_counter()
            cases[name]()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    return times


RATIOS = [
    # (label, numerator, denominator, factor, target)
    ("ODERNN RK4 (fused) / nn.LSTM", "rk4_fused", "lstm", 1.0, "<= 1.5"),
    ("ODERNN RK4 (generic) / nn.LSTM", "rk4_generic", "lstm", 1.0, ""),
    ("torchdiffeq rk4 / ODERNN RK4 (fused)", "torchdiffeq_rk4", "rk4_fused", 1.0, ">= 2.5"),
    ("torchdiffeq rk4 / ODERNN RK4 (generic)", "torchdiffeq_rk4", "rk4_generic", 1.0, ""),
    ("RK4 fused / (4 x Euler fused)  [per-stage overhead]", "rk4_fused", "euler_fused", 0.25, "~1"),
    ("RK4 fused / (4 x nn.RNN step)", "rk4_fused", "rnn_tanh", 0.25, ""),
    ("RK4 generic / RK4 fused", "rk4_generic", "rk4_fused", 1.0, ""),
    ("RK4 generic eager / compiled  [torch.compile gain]", "rk4_generic", "rk4_compiled", 1.0, ""),
]


def summarise(times: dict[str, list[float]]) -> dict[str, Any]:
    med = {k: statistics.median(v) for k, v in times.items()}
    mins = {k: min(v) for k, v in times.items()}
    ratios = {}
    for label, num, den, fac, target in RATIOS:
        if num in med and den in med:
            # "value": ratio of medians; "of_min": ratio of the fastest runs, which is what
            # survives when other processes steal the (shared) cores for part of a run
            ratios[label] = {"value": fac * med[num] / med[den], "of_min": fac * mins[num] / mins[den],
                             "target": target}
    return {"median_s": med, "min_s": mins, "ratios": ratios}


def print_table(summary: dict[str, Any], header: str) -> None:
    print(header)
    print(f"{'case':<18}{'median ms':>12}{'min ms':>10}")
    for k, v in sorted(summary["median_s"].items(), key=lambda kv: kv[1]):
        print(f"{k:<18}{1e3 * v:>12.1f}{1e3 * summary['min_s'][k]:>10.1f}")
    print()
    print(f"{'ratio':<54}{'median':>8}{'min':>8}  target")
    for label, r in summary["ratios"].items():
        print(f"{label:<54}{r['value']:>8.2f}{r['of_min']:>8.2f}  {r['target']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seq", type=int, default=200)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--input", type=int, default=64)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--float64", action="store_true")
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--compile-mode", default=None, help="torch.compile mode (e.g. reduce-overhead on CUDA)")
    p.add_argument("--only", nargs="*", default=None, help="subset of cases")
    p.add_argument("--json", default=None, help="write the summary as JSON here")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    dtype = torch.float64 if a.float64 else torch.float32
    cases, info = build_cases(a.seq, a.batch, a.input, a.hidden, device, dtype, a.compile,
                              compile_mode=a.compile_mode)
    if a.only:
        cases = {k: v for k, v in cases.items() if k in a.only}
    times = measure(cases, a.repeats, device)
    summary = summarise(times)
    summary.update(info=info, config=dict(vars(a), torch=torch.__version__, threads=torch.get_num_threads(),
                                          python=platform.python_version(), machine=platform.machine()))
    print_table(summary, f"seq={a.seq} batch={a.batch} input={a.input} hidden={a.hidden} {dtype} "
                         f"device={device} threads={torch.get_num_threads()} repeats={a.repeats} "
                         "(forward+backward, medians of interleaved repeats)")
    for k, v in info.items():
        print(f"  {k}: {v}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(summary, fh, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
