"""One prepared GPU check of the ODERNN cells: correctness on the device, then the benchmark table.

    python benchmarks/gpu_check.py --out DIR [--device cuda] [--repeats 10] [--no-compile] [--quick]

1. correctness in float64 on the device:
   * every explicit catalogue method: one RKCell step vs an independent NumPy implementation
     (tolerance 1e-12 · κ, κ = max(1, dt·max row sum |A|, dt·Σ|b|));
   * every implicit / diagonally implicit catalogue method on a linear field vs the exact
     linear solve of the stage equations (tolerance 1e-11 · κ);
   * the structured Newton paths (shared Butcher-transformed matrix, Newton–Krylov) vs full
     Newton on a nonlinear field: steps to 1e-11, gradients to 1e-9;
   * the fused whole-sequence kernel vs the generic autograd path: outputs and gradients
     (tolerance 1e-10 relative);
   * an adaptive cell (per-sample time gaps) on the device vs the same cell on the CPU;
2. the benchmark table of benchmarks/bench_cells.py on the device (float32) — nn.LSTM there is
   cuDNN's LSTM — with interleaved repeats and medians.

Writes DIR/gpu_check.json (everything, updated after each section so a partial run leaves
its results) and DIR/gpu_check.txt (the printed report).  Exit status: 0 if every
correctness check passed, 1 if one failed, 2 if the device is unavailable.
Runs on the CPU too (``--device cpu``), which is how it is tested.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from typing import Any

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import odernn_bridge as ob  # noqa: E402
from odernn_bridge.cells import ElmanField, RKCell  # noqa: E402
from odernn_bridge.reference import rk_step  # noqa: E402


class Report:
    def __init__(self, out: str) -> None:
        os.makedirs(out, exist_ok=True)
        self.json_path = os.path.join(out, "gpu_check.json")
        self.txt_path = os.path.join(out, "gpu_check.txt")
        self.data: dict[str, Any] = {}
        self.lines: list[str] = []

    def log(self, msg: str = "") -> None:
        print(msg, flush=True)
        self.lines.append(msg)
        self._write_text()

    def _write_text(self) -> None:
        with open(self.txt_path, "w") as fh:
            fh.write("\n".join(self.lines) + "\n")

    def save(self) -> None:
        tmp = self.json_path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(self.data, fh, indent=2, default=str)
        os.replace(tmp, self.json_path)


def numpy_rk_step(tab: Any, W: np.ndarray, U: np.ndarray, b: np.ndarray, x: np.ndarray, h: np.ndarray,
                  dt: float) -> np.ndarray:
    """One step of dh/dt = tanh(h Wᵀ + x Uᵀ + b) by the library's independent float64 NumPy integrator."""
    u = x @ U.T + b
    return rk_step(tab, lambda t, y: np.tanh(y @ W.T + u), 0.0, h, dt)


def _kappa(tab: Any, dt: float) -> float:
    return max(1.0, dt * float(np.abs(tab.A).sum(1).max()), dt * float(np.abs(tab.b).sum()))


def check_explicit(device: torch.device, quick: bool) -> list[dict[str, Any]]:
    rows = []
    names = ob.list_methods("explicit")
    if quick:
        names = names[:5]
    dt = 0.37
    for name in names:
        tab = ob.get_method(name)
        torch.manual_seed(0)
        field = ElmanField(3, 8, dtype=torch.float64)
        x = torch.randn(4, 3, dtype=torch.float64)
        h = torch.randn(4, 8, dtype=torch.float64)
        ref = numpy_rk_step(tab, field.W.weight.detach().numpy(), field.U.weight.detach().numpy(),
                            field.U.bias.detach().numpy(), x.numpy(), h.numpy(), dt)
        cell = RKCell(field.to(device), tab, dt=dt)
        with torch.no_grad():
            got = cell(x.to(device), h.to(device)).cpu().numpy()
        err = float(np.abs(got - ref).max())
        tol = 1e-12 * _kappa(tab, dt)
        rows.append({"method": name, "max_abs_err": err, "tol": tol, "ok": err <= tol})
    return rows


def check_implicit(device: torch.device, quick: bool) -> list[dict[str, Any]]:
    rows = []
    names = ob.list_methods("diagonally_implicit") + ob.list_methods("implicit")
    if quick:
        names = names[:4]
    dt = 0.3
    for name in names:
        tab = ob.get_method(name)
        torch.manual_seed(0)
        field = ElmanField(2, 4, activation="identity", dtype=torch.float64)
        x = torch.randn(3, 2, dtype=torch.float64)
        h = torch.randn(3, 4, dtype=torch.float64)
        M, U, b = (t.detach().numpy() for t in (field.W.weight, field.U.weight, field.U.bias))
        s = tab.stages
        L = np.eye(s * 4) - dt * np.kron(tab.A, M)
        ref = []
        for i in range(3):
            rhs = np.tile(M @ h[i].numpy() + U @ x[i].numpy() + b, s)
            K = np.linalg.solve(L, rhs).reshape(s, 4)
            ref.append(h[i].numpy() + dt * tab.b @ K)
        cell = RKCell(field.to(device), tab, dt=dt, newton_tol=1e-13)
        with torch.no_grad():
            got = cell(x.to(device), h.to(device)).cpu().numpy()
        err = float(np.abs(got - np.array(ref)).max())
        tol = 1e-11 * _kappa(tab, dt)
        rows.append({"method": name, "kind": tab.kind, "max_abs_err": err, "tol": tol, "ok": err <= tol,
                     "newton_iterations": cell.last_stats.get("newton_iterations")})
    return rows


def check_newton_variants(device: torch.device) -> list[dict[str, Any]]:
    """The structured Newton paths (batch-shared Butcher-transformed matrix, Newton–Krylov) vs
    full Newton on a nonlinear field, forward and gradient, on the device in float64."""
    rows = []
    for name in ("GL4", "RadauIIA5", "SDIRK2"):
        torch.manual_seed(0)
        field = ElmanField(3, 16, dtype=torch.float64).to(device)
        with torch.no_grad():
            field.W.weight.mul_(3.0)
        x = torch.randn(8, 3, dtype=torch.float64, device=device)
        h = torch.randn(8, 16, dtype=torch.float64, device=device, requires_grad=True)
        res = {}
        for mode in ("full", "shared", "krylov"):
            cell = RKCell(field, name, dt=0.5, newton_jacobian=mode)
            out = cell(x, h)
            res[mode] = (out.detach(), torch.autograd.grad(out.sin().sum(), h)[0])
        for mode in ("shared", "krylov"):
            err = float((res[mode][0] - res["full"][0]).abs().max())
            gerr = float((res[mode][1] - res["full"][1]).abs().max())
            rows.append({"method": name, "mode": mode, "max_abs_err": err, "grad_err": gerr, "tol": 1e-11,
                         "ok": err <= 1e-11 and gerr <= 1e-9})
    return rows


def check_fused(device: torch.device) -> list[dict[str, Any]]:
    rows = []
    for field in ("elman", "leaky", "antisymmetric"):
        for method, substeps in (("RK4", 1), ("Midpoint", 2)):
            torch.manual_seed(0)
            rnn = ob.ODERNN(3, 16, method=method, dt=0.4, field=field, num_layers=2, substeps=substeps,
                            dtype=torch.float64, device=device)
            x = torch.randn(12, 5, 3, dtype=torch.float64, device=device, requires_grad=True)
            h0 = torch.randn(2, 5, 16, dtype=torch.float64, device=device, requires_grad=True)
            res = []
            for fused in (True, False):
                for c in rnn.cells:
                    c.fused = fused
                out, h_n = rnn(x, h0)
                loss = out.sin().sum() + (h_n ** 2).sum()
                res.append((out, torch.autograd.grad(loss, [x, h0, *rnn.parameters()])))
            out_err = float((res[0][0] - res[1][0]).detach().abs().max())
            # relative to the gradient's scale (max |g| + 1)
            grad_err = max(float((a - b).abs().max() / (1.0 + b.abs().max())) for a, b in zip(res[0][1], res[1][1]))
            rows.append({"field": field, "method": method, "substeps": substeps, "out_err": out_err,
                         "grad_rel_err": grad_err, "ok": out_err <= 1e-12 and grad_err <= 1e-10})
    return rows


def check_adaptive(device: torch.device) -> dict[str, Any]:
    adaptive = [n for n in ob.list_methods("explicit", adaptive=True)]
    name = "DP5" if "DP5" in adaptive else (adaptive[0] if adaptive else None)
    if name is None:
        return {"skipped": "no adaptive method in the catalogue", "ok": True}
    torch.manual_seed(0)
    field = ElmanField(2, 8, dtype=torch.float64)
    x = torch.randn(4, 2, dtype=torch.float64)
    h = torch.randn(4, 8, dtype=torch.float64)
    spans = torch.tensor([0.0, 0.3, 1.0, 2.5], dtype=torch.float64)
    cpu = ob.AdaptiveRKCell(field, name, rtol=1e-8, atol=1e-10)
    ref = cpu(x, h, timespans=spans).detach()
    acc_cpu = cpu.last_stats["accepted"].tolist()
    dev = ob.AdaptiveRKCell(field.to(device), name, rtol=1e-8, atol=1e-10)
    got = dev(x.to(device), h.to(device), timespans=spans.to(device)).detach().cpu()
    err = float((got - ref).abs().max())
    acc_dev = dev.last_stats["accepted"].cpu().tolist()
    return {"method": name, "max_abs_err": err, "accepted_cpu": acc_cpu, "accepted_device": acc_dev,
            "ok": err <= 1e-9 and all(abs(a - b) <= 1 for a, b in zip(acc_cpu, acc_dev))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--device", default="cuda")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--seq", type=int, default=200)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--input", type=int, default=64)
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--compile-mode", default=None, help="torch.compile mode, e.g. reduce-overhead (CUDA graphs)")
    p.add_argument("--quick", action="store_true", help="few methods, small benchmark (smoke test)")
    p.add_argument("--skip-bench", action="store_true")
    a = p.parse_args(argv)
    rep = Report(a.out)
    t_start = time.perf_counter()
    device = torch.device(a.device)
    env: dict[str, Any] = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device),
                           "odernn_bridge": ob.__version__, "argv": sys.argv[1:]}
    if device.type == "cuda":
        if not torch.cuda.is_available():
            rep.data["error"] = "CUDA requested but torch.cuda.is_available() is False"
            rep.log(rep.data["error"])
            rep.save()
            return 2
        env.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version(), cudnn_enabled=torch.backends.cudnn.enabled)
    rep.data["environment"] = env
    rep.log(f"gpu_check: {env}")
    rep.save()

    all_ok = True
    sections = [("explicit_vs_numpy", lambda: check_explicit(device, a.quick)),
                ("implicit_vs_linear_solve", lambda: check_implicit(device, a.quick)),
                ("newton_variants_vs_full", lambda: check_newton_variants(device)),
                ("fused_vs_generic", lambda: check_fused(device)),
                ("adaptive_device_vs_cpu", lambda: check_adaptive(device))]
    for name, fn in sections:
        t0 = time.perf_counter()
        try:
            res = fn()
            ok = all(r["ok"] for r in res) if isinstance(res, list) else bool(res["ok"])
            rep.data[name] = {"ok": ok, "results": res, "seconds": time.perf_counter() - t0}
            all_ok &= ok
            worst = ""
            if isinstance(res, list) and res:
                key = "max_abs_err" if "max_abs_err" in res[0] else "grad_rel_err"
                w = max(res, key=lambda r: r[key] / r.get("tol", 1e-10))
                worst = f"worst {key}={w[key]:.2e} ({w.get('method', '')} {w.get('field', '')})"
                failed = [r.get("method", r.get("field")) for r in res if not r["ok"]]
                if failed:
                    worst += f"; FAILED: {failed}"
            rep.log(f"[{'PASS' if ok else 'FAIL'}] {name}: {len(res) if isinstance(res, list) else 1} checks, "
                    f"{worst or res} ({time.perf_counter() - t0:.1f}s)")
        except Exception as exc:  # noqa: BLE001 - record and continue
            all_ok = False
            rep.data[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            rep.log(f"[ERROR] {name}: {type(exc).__name__}: {exc}")
        rep.save()

    if not a.skip_bench:
        try:
            import bench_cells

            seq, repeats = (40, 3) if a.quick else (a.seq, a.repeats)
            cases, info = bench_cells.build_cases(seq, a.batch, a.input, a.hidden, device, torch.float32, a.compile,
                                                  compile_mode=a.compile_mode)
            times = bench_cells.measure(cases, repeats, device)
            summary = bench_cells.summarise(times)
            summary["info"] = info
            summary["config"] = {"seq": seq, "batch": a.batch, "input": a.input, "hidden": a.hidden,
                                 "repeats": repeats, "dtype": "float32", "device": str(device)}
            rep.data["benchmark"] = summary
            import io
            from contextlib import redirect_stdout

            buf = io.StringIO()
            with redirect_stdout(buf):
                bench_cells.print_table(summary, f"benchmark on {env.get('gpu', device)}: seq={seq} batch={a.batch} "
                                                 f"input={a.input} hidden={a.hidden} float32, forward+backward, "
                                                 f"medians of {repeats} interleaved repeats (lstm = cuDNN on CUDA)")
            for line in buf.getvalue().splitlines():
                rep.log(line)
            for k, v in info.items():
                rep.log(f"  {k}: {v}")
        except Exception as exc:  # noqa: BLE001
            rep.data["benchmark"] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            rep.log(f"[ERROR] benchmark: {type(exc).__name__}: {exc}")
        rep.save()
    rep.data["all_correctness_ok"] = all_ok
    rep.data["seconds"] = time.perf_counter() - t_start
    rep.log(f"correctness: {'ALL PASS' if all_ok else 'FAILURES'}; total {rep.data['seconds']:.1f}s; "
            f"results in {rep.json_path}")
    rep.save()
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
