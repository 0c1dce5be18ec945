"""Benchmark of the ODERNN cells, every ratio of issue 11 measured side by side in one run.

    python benchmarks/bench_cells.py [--threads 1 2] [--repeats 7] [--seq 200] [--batch 64]
                                     [--hidden 256] [--input 64] [--no-compile] [--json out.json]

Every training case runs the same workload: a sequence (seq, batch, input) through one
recurrent layer, ``output.sum().backward()``; inference cases run the forward pass under
``torch.no_grad()``.  Repeats are interleaved (the order of the (case, threads) pairs is
shuffled each round, ``torch.set_num_threads`` set before each) and the table reports
medians and minima, so that load from other processes hits all cases alike; the ratios, not
the absolute times, are the result.

Cases (``@N`` = N torch threads; cases without ``@`` run at the first ``--threads`` value)
  lstm@N, lstm_inf@N        torch.nn.LSTM, training / inference (CPU: oneDNN fused kernel)
  rk4_fused@N, rk4_inf@N    ODERNN(method="RK4", field="elman"): fused whole-sequence kernel
                            (its native loop unless ODERNN_NATIVE=0; the table says which ran)
  rnn_tanh                  torch.nn.RNN, one plain Elman step per input
  rk4_generic               the same cell through the generic autograd stage loop (fused=False)
  euler_fused               ODERNN(method="Euler"): a 1-stage cell, fused
  rk4_compiled              generic path with the per-step function under torch.compile
  implicit_midpoint, gl4, radau_iia5
                            implicit cells (default structured Newton); the shared Newton
                            matrix is dropped before every run, as an optimiser step would
  torchdiffeq_rk4           the Elman field integrated with torchdiffeq.odeint(method="rk4")
                            interval by interval (torchdiffeq's rk4 is the 3/8 rule: 4 stages)
  torchode_rk4              the same with torchode (classic RK4 tableau, fixed steps)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from typing import Any, Callable, Sequence

import torch

import odernn_bridge as ob

Case = Callable[[], None]

#: cases measured at every ``--threads`` value (the others at the first one)
THREAD_SWEPT = ("lstm", "lstm_inf", "rk4_fused", "rk4_inf")
#: implicit cells: (case name, catalogue method)
IMPLICIT = (("implicit_midpoint", "ImplicitMidpoint"), ("gl4", "GL4"), ("radau_iia5", "RadauIIA5"))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _torchode_rk4() -> Any:
    """torchode's explicit RK engine with the classic RK4 tableau (torchode ships no RK4)."""
    from torchode.interpolation import ThirdOrderPolynomialInterpolation
    from torchode.single_step_methods.runge_kutta import ButcherTableau, ExplicitRungeKutta

    class RK4(ExplicitRungeKutta):
        TABLEAU = ButcherTableau.from_lists(c=[0.0, 0.5, 0.5, 1.0], a=[[], [0.5], [0.0, 0.5], [0.0, 0.0, 1.0]],
                                            b=[1 / 6, 1 / 3, 1 / 3, 1 / 6], b_low_order=[1.0, 0.0, 0.0, 0.0])

        def __init__(self, term: Any = None) -> None:
            super().__init__(term, RK4.TABLEAU)

        def convergence_order(self) -> int:
            return 4

        def build_interpolation(self, data: Any) -> Any:
            return ThirdOrderPolynomialInterpolation.from_k(data.t0, data.dt, data.y0, data.y1, data.k)

    return RK4


def build_cases(seq: int, batch: int, inp: int, hidden: int, device: torch.device, dtype: torch.dtype,
                compile_: bool, dt: float = 0.5, compile_mode: str | None = None
                ) -> tuple[dict[str, Case], dict[str, Any]]:
    """Callables for every case (training: forward+backward; ``*_inf``: no-grad forward);
    info (compile time, cross-checks, Newton statistics)."""
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

    def inf(module: torch.nn.Module) -> Case:
        def run() -> None:
            with torch.no_grad():
                module(x)
        return run

    cases: dict[str, Case] = {
        "lstm": fb(lstm), "lstm_inf": inf(lstm), "rk4_fused": fb(rk4), "rk4_inf": inf(rk4),
        "rnn_tanh": fb(rnn), "rk4_generic": fb(rk4_g), "euler_fused": fb(euler),
    }
    for name, method in IMPLICIT:
        imp = ob.ODERNN(inp, hidden, method=method, dt=dt, device=device, dtype=dtype)
        imp.load_state_dict(rk4.state_dict())

        def run_implicit(imp: ob.ODERNN = imp, name: str = name) -> None:
            for c in imp.cells:
                c._jacobian_cache.clear()  # as after an optimiser step: the matrix is rebuilt
            out, _ = imp(x)
            out.sum().backward()
            st = imp.cells[0].last_stats
            info[f"{name}_newton"] = {"iterations_per_step": st["newton_iterations"] / max(st["steps"], 1),
                                      "jacobian_updates": st.get("jacobian_updates"),
                                      "fallbacks": st.get("fallbacks"), "residual": st["residual"]}
        cases[name] = run_implicit
    field = rk4.cells[0].field
    try:
        from torchdiffeq import odeint

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
    try:
        import torchode as to

        step = _torchode_rk4()(to.ODETerm(lambda t, y, args: field.rhs(y, args), with_args=True))
        solver = to.AutoDiffAdjoint(step, to.FixedStepController())
        t_eval = torch.tensor([0.0, dt], device=device, dtype=dtype).expand(batch, 2)
        dt0 = torch.full((batch,), dt, device=device, dtype=dtype)

        def tode_states(u: torch.Tensor) -> torch.Tensor:
            h = x.new_zeros(batch, hidden)
            outs = []
            for k in range(u.shape[0]):
                h = solver.solve(to.InitialValueProblem(y0=h, t_eval=t_eval), dt0=dt0, args=u[k]).ys[:, -1]
                outs.append(h)
            return torch.stack(outs)

        def tode() -> None:
            tode_states(field.project_input(x)).sum().backward()

        cases["torchode_rk4"] = tode
        with torch.no_grad():  # sanity: torchode's RK4 steps are the RK4 cell's
            n_check = min(5, seq)
            u = field.project_input(x[:n_check])
            ref = rk4.cells[0].run_sequence(u, x.new_zeros(batch, hidden))
            info["max_abs_diff_vs_torchode_rk4"] = float((tode_states(u) - ref).abs().max())
    except ImportError:
        info["torchode"] = "not installed"
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


def measure(cases: dict[str, Case], repeats: int, device: torch.device, warmup: int = 1,
            threads: Sequence[int] = ()) -> dict[str, list[float]]:
    """Interleaved timings.  With ``threads``, the cases of :data:`THREAD_SWEPT` run at every
    thread count (keys ``name@N``), the others at ``threads[0]`` (key ``name``)."""
    runs: list[tuple[str, Case, int | None]] = []
    for name, run in cases.items():
        if threads and name in THREAD_SWEPT:
            runs += [(f"{name}@{t}", run, t) for t in threads]
        else:
            runs.append((name, run, threads[0] if threads else None))
    for _, run, t in runs:
        if t is not None:
            torch.set_num_threads(t)
        for _ in range(warmup):
            run()
    _sync(device)
    times: dict[str, list[float]] = {k: [] for k, _, _ in runs}
    rng = random.Random(0)
    for _ in range(repeats):
        rng.shuffle(runs)
        for key, run, t in runs:
            if t is not None:
                torch.set_num_threads(t)
            _sync(device)
            t0 = time.perf_counter()
            run()
            _sync(device)
            times[key].append(time.perf_counter() - t0)
    if threads:
        torch.set_num_threads(threads[0])
    return times


def ratio_specs(threads: Sequence[int] = ()) -> list[tuple[str, str, str, float, str]]:
    """(label, numerator, denominator, factor, target) for the cases :func:`measure` keys."""
    ts = list(threads) or [None]
    t0 = ts[0]

    def key(name: str, t: int | None) -> str:
        return name if t is None else f"{name}@{t}"

    rk4 = key("rk4_fused", t0)
    specs = []
    for t in ts:
        tag = "" if t is None else f", {t} thread{'s' if t != 1 else ''}"
        specs.append((f"RK4 fused / nn.LSTM  (training{tag})", key("rk4_fused", t), key("lstm", t), 1.0, "<= 1.0"))
        specs.append((f"RK4 fused / nn.LSTM  (inference{tag})", key("rk4_inf", t), key("lstm_inf", t), 1.0,
                      "<= 1.2"))
    specs += [
        ("ImplicitMidpoint / RK4 fused", "implicit_midpoint", rk4, 1.0, "<= 3"),
        ("GL4 / RK4 fused", "gl4", rk4, 1.0, "<= 6"),
        ("RadauIIA5 / RK4 fused", "radau_iia5", rk4, 1.0, "<= 8"),
        ("torchdiffeq rk4 / RK4 fused", "torchdiffeq_rk4", rk4, 1.0, ">= 2.5"),
        ("torchode rk4 / RK4 fused", "torchode_rk4", rk4, 1.0, ">= 3"),
        ("RK4 generic / nn.LSTM", "rk4_generic", key("lstm", t0), 1.0, ""),
        ("RK4 fused / (4 x Euler fused)  [per-stage overhead]", rk4, "euler_fused", 0.25, "~1"),
        ("RK4 fused / (4 x nn.RNN step)", rk4, "rnn_tanh", 0.25, ""),
        ("RK4 generic / RK4 fused", "rk4_generic", rk4, 1.0, ""),
        ("RK4 generic eager / compiled  [torch.compile gain]", "rk4_generic", "rk4_compiled", 1.0, ""),
    ]
    return specs


def summarise(times: dict[str, list[float]], threads: Sequence[int] = ()) -> dict[str, Any]:
    med = {k: statistics.median(v) for k, v in times.items()}
    mins = {k: min(v) for k, v in times.items()}
    ratios = {}
    for label, num, den, fac, target in ratio_specs(threads):
        if num in med and den in med:
            # "value": ratio of medians; "of_min": ratio of the fastest runs, which is what
            # survives when other processes steal the (shared) cores for part of a run
            ratios[label] = {"value": fac * med[num] / med[den], "of_min": fac * mins[num] / mins[den],
                             "target": target}
    return {"median_s": med, "min_s": mins, "ratios": ratios}


def print_table(summary: dict[str, Any], header: str) -> None:
    print(header)
    print(f"{'case':<22}{'median ms':>12}{'min ms':>10}")
    for k, v in sorted(summary["median_s"].items(), key=lambda kv: kv[1]):
        print(f"{k:<22}{1e3 * v:>12.1f}{1e3 * summary['min_s'][k]:>10.1f}")
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
    p.add_argument("--threads", type=int, nargs="*", default=[1, 2],
                   help="torch thread counts (LSTM and RK4 cases run at each; the rest at the first)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--float64", action="store_true")
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--compile-mode", default=None, help="torch.compile mode (e.g. reduce-overhead on CUDA)")
    p.add_argument("--only", nargs="*", default=None, help="subset of cases")
    p.add_argument("--json", default=None, help="write the summary as JSON here")
    a = p.parse_args(argv)
    threads = [t for t in a.threads if t > 0]
    if threads:
        torch.set_num_threads(threads[0])
    device = torch.device(a.device)
    dtype = torch.float64 if a.float64 else torch.float32
    cases, info = build_cases(a.seq, a.batch, a.input, a.hidden, device, dtype, a.compile,
                              compile_mode=a.compile_mode)
    if a.only:
        cases = {k: v for k, v in cases.items() if k in a.only}
    st = ob.native_status()  # which loop the fused RK4 cases ran (the native one, or the Python fallback)
    info["fused_loop"] = (f"native ({st['path']})" if st["available"] else f"Python ({st['reason']})")
    times = measure(cases, a.repeats, device, threads=threads)
    summary = summarise(times, threads)
    summary.update(info=info, config=dict(vars(a), torch=torch.__version__, threads=threads,
                                          python=platform.python_version(), machine=platform.machine()))
    print_table(summary, f"seq={a.seq} batch={a.batch} input={a.input} hidden={a.hidden} {dtype} "
                         f"device={device} threads={threads or torch.get_num_threads()} repeats={a.repeats} "
                         "(training: forward+backward; *_inf: no-grad forward; medians of interleaved repeats)")
    for k, v in info.items():
        print(f"  {k}: {v}")
    if a.json:
        tmp = a.json + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(summary, fh, indent=2, default=str)
        os.replace(tmp, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
