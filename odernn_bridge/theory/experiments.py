"""The paper's claims as experiments (results as xarray Datasets, figures with matplotlib).

* :func:`gradient_norm_experiment` — ‖∂h_T/∂h_0‖₂ over 1000 steps on a skew-symmetric
  (antisymmetric) linear field for Euler, RK4 and implicit midpoint, next to the prediction
  max|R(dt·λ)|^k (exact for a normal Jacobian);
* :func:`dt_threshold_experiment` — the same damped-antisymmetric field trained with dt just
  inside and just outside the predicted largest stable dt; the monitor's prediction at
  initialisation against what happens;
* :func:`param_count_experiment` — trained parameters versus memory t and input width for
  QUNN, a generic n-t-ODERNN, an Elman-type t-th order ODERNN and an LSTM (measured on
  instantiated modules, next to the formulas);
* :func:`qunn_memory_experiment` — a QUNN trained on a memory task (delayed recall or the
  adding problem) against chance.

:func:`run_experiments` runs all of them and writes NetCDF + PNG into a folder; it is the
``odernn theory experiments --out DIR [--fast]`` command.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..cells import CallableField, ODERNN, RKCell
from ..cells.fields import VectorField
from ..io import save_figure
from ..methods import get_method
from .monitor import DampedAntisymmetric, StabilityMonitor
from .qunn import (
    PolynomialField,
    QUNNCell,
    elman_odernn_param_count,
    lstm_param_count,
    odernn_param_count,
    qunn_param_count,
)
from .spectra import amplification

__all__ = [
    "gradient_norm_experiment",
    "dt_threshold_experiment",
    "param_count_experiment",
    "qunn_memory_experiment",
    "run_experiments",
    "LinearField",
]

D = torch.float64


def _skew(n: int, radius: float, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, n, generator=g, dtype=D)
    A = X - X.T
    rho = float(torch.linalg.eigvals(A).abs().max())
    return A * (radius / rho)


# -- (a) gradient norms -------------------------------------------------------------------

def gradient_norm_experiment(steps: int = 1000, hidden: int = 16, dt: float = 0.5, radius: float = 1.0,
                             methods: tuple[Any, ...] = ("Euler", "RK4", "ImplicitMidpoint", ("RK4", 3.0)),
                             seed: int = 0) -> "xr.Dataset":  # noqa: F821
    """‖∂h_k/∂h_0‖₂, k = 0 … steps, for dh/dt = A h with A skew-symmetric, spectral radius ``radius``.

    The field is linear, so h_k = M^k h_0 with M the one-step map of the cell: propagating the
    n basis vectors through the library's cell (a batch of n states) gives ∂h_k/∂h_0 exactly.
    Implicit methods go through the RKCell's Newton solver.  ``predicted`` = max_λ |R(dt·λ)|^k,
    exact for a normal A (‖M^k‖₂ = ρ(M)^k).  An entry ``(name, dt_i)`` of ``methods`` runs that
    method with its own dt (default: RK4 at dt·ρ = 3 > 2√2, just outside its imaginary interval).
    """
    import xarray as xr

    from ..io import provenance

    A = _skew(hidden, radius, seed)
    lam = torch.linalg.eigvals(A).numpy()
    field = CallableField(lambda h, x: h @ A.T, input_size=1, hidden_size=hidden)
    k = np.arange(steps + 1)
    norms = np.zeros((len(methods), steps + 1))
    pred = np.zeros_like(norms)
    rmax = np.zeros(len(methods))
    labels, dts = [], []
    for i, entry in enumerate(methods):
        name, dt_i = (entry, dt) if isinstance(entry, str) else (entry[0], float(entry[1]) / radius)
        labels.append(name if isinstance(entry, str) else f"{name} (dt·ρ={entry[1]:g})")
        dts.append(dt_i)
        m = get_method(name)
        cell = RKCell(field, m, dt=dt_i, newton_tol=1e-14 if m.kind != "explicit" else None)
        h = torch.eye(hidden, dtype=D)  # row j: the state that started as e_j
        x = torch.zeros(hidden, 1, dtype=D)
        norms[i, 0] = 1.0
        with torch.no_grad():
            for s in range(1, steps + 1):
                h = cell(x, h)
                norms[i, s] = float(torch.linalg.matrix_norm(h, ord=2))
                if not math.isfinite(norms[i, s]) or norms[i, s] > 1e250:
                    norms[i, s:] = np.inf
                    break
        rmax[i] = float(amplification(m, dt_i * lam).max())
        with np.errstate(over="ignore"):
            pred[i] = rmax[i] ** k
    return xr.Dataset(
        {"grad_norm": (("method", "step"), norms, {"long_name": "‖∂h_k/∂h_0‖₂ (measured)"}),
         "predicted": (("method", "step"), pred, {"long_name": "max|R(dt λ)|^k"}),
         "max_abs_R": (("method",), rmax), "dt": (("method",), np.asarray(dts))},
        coords={"method": labels, "step": k},
        attrs=provenance(experiment="gradient_norm", dt=dt, hidden=hidden, spectral_radius=radius, seed=seed,
                         field="dh/dt = A h, A skew-symmetric"),
    )


# -- (b) training inside / outside the predicted stable dt -----------------------------------

class LinearField(VectorField):
    """``f(h, x) = W h + U x`` with ``W`` parametrised as X − Xᵀ − γI (:class:`DampedAntisymmetric`)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, gamma: float = 0.5,
                 radius: float = 2.0, seed: int = 0) -> None:
        super().__init__(input_size, hidden_size)
        from torch.nn.utils import parametrize

        self.rec = nn.Linear(hidden_size, hidden_size, bias=False, dtype=D)
        with torch.no_grad():
            self.rec.weight.copy_(0.5 * _skew(hidden_size, radius, seed))  # X − Xᵀ = the skew part
        parametrize.register_parametrization(self.rec, "weight", DampedAntisymmetric(gamma))
        self.inp = nn.Linear(input_size, hidden_size, bias=bias, dtype=D)

    def project_input(self, x: Tensor) -> Tensor:
        return self.inp(x)

    def rhs(self, h: Tensor, u: Tensor, t: Any = None) -> Tensor:
        return self.rec(h) + u


class _Regressor(nn.Module):
    def __init__(self, rnn: ODERNN) -> None:
        super().__init__()
        self.rnn = rnn
        self.head = nn.Linear(rnn.hidden_size, 1, dtype=D)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(x)
        return self.head(out[-1]).squeeze(-1)


def _recall_lag_data(n: int, T: int, lag: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    x = torch.randn(T, n, 1, generator=g, dtype=D)
    return x, x[T - 1 - lag, :, 0]


def dt_threshold_experiment(factors: tuple[float, ...] = (0.9, 1.1), method: str = "Euler", hidden: int = 8,
                            gamma: float = 1.0, radius: float = 1.0, seq_len: int = 200, n_iter: int = 60,
                            lr: float = 1e-2, batch: int = 32, monitor_every: int = 10,
                            optimizer: str = "sgd", lag: int = 1, seed: int = 0) -> "xr.Dataset":  # noqa: F821
    """Train one damped-antisymmetric linear field (eigenvalues −γ ± iy) with dt = factor·dt*,
    dt* the largest stable dt predicted by the stability analysis at initialisation.

    Task: recall the input ``lag`` steps before the last one (regression; targets have variance 1, so
    the zero predictor has loss ≈ 1).  A run *diverges* if its loss becomes non-finite or its
    final loss exceeds 1000 (1000× the trivial predictor).  The monitor's prediction at
    initialisation is "diverges" iff max|R(dt·λ)| > 1.  ``optimizer``: ``"sgd"`` (plain gradient
    descent, where exploding gradients act directly) or ``"adam"`` (step sizes normalised by
    the gradient scale, which can pull the spectrum back into S — the monitor shows it).
    """
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer: expected 'sgd' or 'adam', got {optimizer!r}")
    import xarray as xr

    from ..io import provenance
    from ..stability.intervals import max_stable_dt

    probe = LinearField(1, hidden, gamma=gamma, radius=radius, seed=seed)
    lam = torch.linalg.eigvals(probe.rec.weight.detach()).numpy()
    dt_star = float(max_stable_dt(method, lam))
    checks = list(range(0, n_iter, monitor_every))
    R = len(factors)
    loss = np.full((R, n_iter), np.nan)
    gnorm = np.full((R, n_iter), np.nan)
    mon_R = np.full((R, len(checks)), np.nan)
    mon_frac = np.full((R, len(checks)), np.nan)
    mon_dt = np.full((R, len(checks)), np.nan)
    predicted = np.zeros(R, dtype=np.int8)
    diverged = np.zeros(R, dtype=np.int8)
    monitor = StabilityMonitor(every=monitor_every, max_samples=4, max_steps=16)
    for r, fac in enumerate(factors):
        torch.manual_seed(seed)
        field = LinearField(1, hidden, gamma=gamma, radius=radius, seed=seed)
        rnn = ODERNN(1, hidden, method=method, dt=fac * dt_star, field=field, dtype=D)
        model = _Regressor(rnn)
        opt = (torch.optim.Adam(model.parameters(), lr=lr) if optimizer == "adam"
               else torch.optim.SGD(model.parameters(), lr=lr))
        g = torch.Generator().manual_seed(seed + 1)
        for it in range(n_iter):
            x, y = _recall_lag_data(batch, seq_len, lag, g)
            if it in checks:
                mm = monitor(model, x)
                j = checks.index(it)
                mon_R[r, j], mon_frac[r, j], mon_dt[r, j] = mm["max_abs_R"], mm["frac_inside"], mm["max_stable_dt"]
                if it == 0:
                    predicted[r] = int(mm["max_abs_R"] > 1.0 + 1e-9)
            with np.errstate(all="ignore"):
                try:
                    out = model(x)
                    lv = torch.mean((out - y) ** 2)
                except Exception:  # noqa: BLE001 - non-finite states are caught by the cell checks
                    lv = torch.tensor(float("inf"), dtype=D)
            loss[r, it] = float(lv.detach())
            if not math.isfinite(loss[r, it]):
                diverged[r] = 1
                break
            opt.zero_grad()
            lv.backward()
            gnorm[r, it] = float(torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf")))
            opt.step()
        if not diverged[r] and loss[r, n_iter - 1] > 1e3:
            diverged[r] = 1
    return xr.Dataset(
        {"loss": (("factor", "iteration"), loss), "grad_norm": (("factor", "iteration"), gnorm),
         "monitor_max_abs_R": (("factor", "check"), mon_R), "monitor_frac_inside": (("factor", "check"), mon_frac),
         "monitor_max_stable_dt": (("factor", "check"), mon_dt),
         "predicted_divergence": (("factor",), predicted), "diverged": (("factor",), diverged),
         "dt": (("factor",), np.asarray(factors) * dt_star),
         "agreement": ((), int(np.all(predicted == diverged)))},
        coords={"factor": list(factors), "iteration": np.arange(n_iter), "check": checks},
        attrs=provenance(experiment="dt_threshold", method=method, optimizer=optimizer, dt_star=dt_star, gamma=gamma, radius=radius,
                         seq_len=seq_len, hidden=hidden, lr=lr, seed=seed,
                         lag=lag, task="regress x_(T-1-lag) from a white-noise sequence"),
    )


# -- (c) parameter counts ----------------------------------------------------------------------------

def _count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def param_count_experiment(ts: Any = range(1, 65), input_sizes: Any = (1, 2, 4, 8, 16, 32, 64, 128, 256),
                           n_qubits: int = 3, hidden: int = 8, n: int = 2, t_ref: int = 8, m_ref: int = 4,
                           measure_limit: int = 3_000_000) -> "xr.Dataset":  # noqa: F821
    """Measured (instantiated modules) and formula parameter counts over (t, input_size).

    Models: QUNN (q qubits), generic n-t-ODERNN (:class:`PolynomialField`, degree n), the
    Elman-type order-t ODERNN (:class:`~odernn_bridge.cells.HigherOrderCell` on an Elman
    field, measured), LSTM (hidden H; its count has no t).  Where a generic field would have
    more than ``measure_limit`` parameters, only the formula is given (measured = NaN).
    """
    import xarray as xr

    from ..cells import ElmanField, HigherOrderCell
    from ..io import provenance

    ts, ms = list(ts), list(input_sizes)
    models = ["QUNN", "generic_ODERNN", "elman_ODERNN", "LSTM"]
    meas = np.full((len(models), len(ts), len(ms)), np.nan)
    form = np.full_like(meas, np.nan)
    for a, t in enumerate(ts):
        for b, m in enumerate(ms):
            if t != t_ref and m != m_ref:
                continue  # the table covers the two slices t = t_ref and m = m_ref
            form[0, a, b] = qunn_param_count(n_qubits, t, m)
            form[1, a, b] = odernn_param_count(n, t, m, hidden)
            form[2, a, b] = elman_odernn_param_count(t, m, hidden)
            form[3, a, b] = lstm_param_count(m, hidden)
            meas[0, a, b] = _count(QUNNCell(m, n_qubits, memory=t))
            if form[1, a, b] <= measure_limit:
                meas[1, a, b] = _count(PolynomialField(n, t, m, hidden))
            meas[2, a, b] = _count(HigherOrderCell(ElmanField(m, hidden, state_size=t * hidden), order=t,
                                                   method="Euler")) if t > 1 else _count(ElmanField(m, hidden))
            meas[3, a, b] = _count(nn.LSTM(m, hidden))
    return xr.Dataset(
        {"measured": (("model", "t", "input_size"), meas), "formula": (("model", "t", "input_size"), form)},
        coords={"model": models, "t": ts, "input_size": ms},
        attrs=provenance(experiment="param_counts", n_qubits=n_qubits, hidden=hidden, degree_n=n, t_ref=t_ref,
                         m_ref=m_ref, note="cells outside the slices t=t_ref, input_size=m_ref are NaN"),
    )


# -- (d) QUNN memory task -------------------------------------------------------------------------------

def _recall_data(n: int, delay: int, K: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    sym = torch.randint(0, K, (n,), generator=g)
    x = torch.zeros(delay + 2, n, K + 1, dtype=D)
    x[0, torch.arange(n), sym] = 1.0
    x[-1, :, K] = 1.0
    return x, sym


def _adding_data(n: int, T: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    v = torch.rand(T, n, generator=g, dtype=D)
    mk = torch.zeros(T, n, dtype=D)
    i = torch.randint(0, T // 2, (n,), generator=g)
    j = torch.randint(T // 2, T, (n,), generator=g)
    mk[i, torch.arange(n)] = 1.0
    mk[j, torch.arange(n)] = 1.0
    return torch.stack([v, mk], -1), (v * mk).sum(0)


class _LSTMBaseline(nn.Module):
    def __init__(self, m: int, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(m, hidden, dtype=D)
        self.output_size = hidden

    def forward(self, x: Tensor) -> tuple[Tensor, Any]:
        return self.lstm(x)


def qunn_memory_experiment(task: str = "recall", n_qubits: int = 3, memory: int = 2, delay: int = 20,
                           n_symbols: int = 4, seq_len: int = 20, n_iter: int = 300, batch: int = 64,
                           n_test: int = 1000, lr: float = 0.05, integrator: str = "cayley",
                           output: str = "probabilities", seed: int = 0, model: str = "qunn",
                           lstm_hidden: int = 3) -> dict[str, Any]:
    """Train a QUNN + linear read-out on a memory task and measure it against chance.

    ``task="recall"``: one of ``n_symbols`` symbols at step 0, ``delay`` blank steps, a query
    step; classify the symbol from the final measurement (chance 1/n_symbols).
    ``task="adding"``: the adding problem of length ``seq_len`` (chance = MSE of the best
    constant, ≈ 1/6).  Returns a dict of the numbers (accuracy or mse, chance, parameters, time).
    ``model="lstm"`` trains an ``nn.LSTM(hidden=lstm_hidden)`` baseline on the same data instead.
    """
    if task not in ("recall", "adding"):
        raise ValueError(f"task: expected 'recall' or 'adding', got {task!r}")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    m_in = n_symbols + 1 if task == "recall" else 2
    if model not in ("qunn", "lstm"):
        raise ValueError(f"model: expected 'qunn' or 'lstm', got {model!r}")
    q: nn.Module = (QUNNCell(m_in, n_qubits, memory=memory, integrator=integrator, output=output)
                    if model == "qunn" else _LSTMBaseline(m_in, lstm_hidden))
    n_out = n_symbols if task == "recall" else 1
    head = nn.Linear(q.output_size, n_out, dtype=D)
    opt = torch.optim.Adam(list(q.parameters()) + list(head.parameters()), lr=lr)
    t0 = time.perf_counter()
    losses = []
    for _ in range(n_iter):
        if task == "recall":
            x, y = _recall_data(batch, delay, n_symbols, g)
            loss = nn.functional.cross_entropy(head(q(x)[0][-1]), y)
        else:
            x, y = _adding_data(batch, seq_len, g)
            loss = nn.functional.mse_loss(head(q(x)[0][-1]).squeeze(-1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    gt = torch.Generator().manual_seed(seed + 10_000)
    res: dict[str, Any] = {"task": task, "model": model, "n_iter": n_iter,
                           "params": _count(q), "readout_params": _count(head),
                           "final_train_loss": float(np.mean(losses[-10:]))}
    with torch.no_grad():
        if task == "recall":
            x, y = _recall_data(n_test, delay, n_symbols, gt)
            res["accuracy"] = float((head(q(x)[0][-1]).argmax(-1) == y).double().mean())
            res["chance"] = 1.0 / n_symbols
            res["delay"] = delay
        else:
            x, y = _adding_data(n_test, seq_len, gt)
            res["mse"] = float(((head(q(x)[0][-1]).squeeze(-1) - y) ** 2).mean())
            res["chance"] = float(((y - y.mean()) ** 2).mean())
            res["seq_len"] = seq_len
    res["train_seconds"] = time.perf_counter() - t0
    if model == "qunn":
        res.update(n_qubits=n_qubits, memory=memory)
    else:
        res.update(hidden=lstm_hidden)
    return res


# -- figures and the driver -------------------------------------------------------------------------

def _figure(ncols: int, figsize: tuple[float, float]) -> tuple[Any, Any]:
    """A pyplot-free figure (no backend switch, nothing left open) with ``ncols`` axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(1, ncols)


def _plot_gradients(ds: Any, path: Path) -> None:
    fig, ax = _figure(1, (6, 4))
    for i, m in enumerate(ds.method.values):
        line, = ax.semilogy(ds.step, ds.grad_norm[i], label=f"{m} (max|R|={float(ds.max_abs_R[i]):.6f})")
        ax.semilogy(ds.step, ds.predicted[i], "--", color=line.get_color(), lw=0.8)
    ax.set(xlabel="step k", ylabel="‖∂h_k/∂h_0‖₂", title=f"skew-symmetric field, dt·ρ = {ds.attrs['dt'] * ds.attrs['spectral_radius']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def _plot_threshold(ds: Any, path: Path) -> None:
    fig, axes = _figure(2, (10, 4))
    for i, f in enumerate(ds.factor.values):
        lab = (f"dt = {f}·dt* ({float(ds.dt[i]):.4f}); predicted "
               f"{'diverge' if int(ds.predicted_divergence[i]) else 'stable'}, "
               f"{'diverged' if int(ds.diverged[i]) else 'stable'}")
        axes[0].semilogy(ds.iteration, ds.loss[i], "o-", ms=3, label=lab)
        axes[1].plot(ds.check, ds.monitor_max_abs_R[i], "o-", label=f"{f}·dt*")
    axes[0].set(xlabel="iteration", ylabel="training loss", title=f"{ds.attrs['method']}, dt* = {ds.attrs['dt_star']:.4f}")
    axes[0].legend(fontsize=7)
    axes[1].axhline(1.0, color="k", lw=0.8)
    axes[1].set(xlabel="iteration", ylabel="monitor max|R(dt λ)|")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def _plot_counts(ds: Any, path: Path) -> None:
    fig, axes = _figure(2, (10, 4))
    t_ref, m_ref = ds.attrs["t_ref"], ds.attrs["m_ref"]
    for i, m in enumerate(ds.model.values):
        axes[0].loglog(ds.t, ds.formula[i].sel(input_size=m_ref), label=str(m))
        axes[0].loglog(ds.t, ds.measured[i].sel(input_size=m_ref), "k.", ms=3)
        axes[1].loglog(ds.input_size, ds.formula[i].sel(t=t_ref), label=str(m))
        axes[1].loglog(ds.input_size, ds.measured[i].sel(t=t_ref), "k.", ms=3)
    axes[0].set(xlabel="memory t", ylabel="trained parameters", title=f"input size {m_ref} (dots: measured)")
    axes[1].set(xlabel="input size m", ylabel="trained parameters", title=f"t = {t_ref}")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def run_experiments(out: str | Path, fast: bool = False, seed: int = 0, log: Any = print) -> dict[str, Any]:
    """Run experiments (a)–(d); write ``*.nc`` (via :func:`odernn_bridge.io.to_netcdf`) and ``*.png``
    into ``out``; return a summary dict.  ``fast`` shrinks every experiment (seconds, not minutes)."""
    import json

    import xarray as xr

    from ..io import atomic_write_text, provenance, to_netcdf

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {}

    t0 = time.perf_counter()
    ga = gradient_norm_experiment(steps=1000, seed=seed)
    to_netcdf(ga, out / "gradient_norms.nc")
    _plot_gradients(ga, out / "gradient_norms.png")
    summary["gradient_norms"] = {str(m): {"norm_at_1000": float(ga.grad_norm.values[i, -1]),
                                          "predicted_at_1000": float(ga.predicted.values[i, -1]),
                                          "max_abs_R": float(ga.max_abs_R.values[i])}
                                 for i, m in enumerate(ga.method.values)}
    log(f"(a) gradient norms ({time.perf_counter() - t0:.1f}s): " +
        ", ".join(f"{m}: {v['norm_at_1000']:.4g}" for m, v in summary["gradient_norms"].items()))

    t0 = time.perf_counter()
    tb = dt_threshold_experiment(n_iter=30 if fast else 100, seq_len=100 if fast else 200, seed=seed)
    to_netcdf(tb, out / "dt_threshold.nc")
    _plot_threshold(tb, out / "dt_threshold.png")
    summary["dt_threshold"] = {"dt_star": tb.attrs["dt_star"], "factors": [float(f) for f in tb.factor.values],
                               "predicted_divergence": tb.predicted_divergence.values.tolist(),
                               "diverged": tb.diverged.values.tolist(), "agreement": int(tb.agreement)}
    log(f"(b) dt threshold ({time.perf_counter() - t0:.1f}s): {summary['dt_threshold']}")

    t0 = time.perf_counter()
    pc = param_count_experiment(ts=range(1, 65, 7) if fast else range(1, 65))
    to_netcdf(pc, out / "param_counts.nc")
    _plot_counts(pc, out / "param_counts.png")
    table = pc.sel(input_size=pc.attrs["m_ref"]).formula.to_pandas().T.astype("int64")
    atomic_write_text(out / "param_counts.csv", table.to_csv())
    summary["param_counts_match"] = bool(np.all((pc.measured == pc.formula) | np.isnan(pc.measured)))
    log(f"(c) parameter counts ({time.perf_counter() - t0:.1f}s): measured == formula: {summary['param_counts_match']}")

    t0 = time.perf_counter()
    rec = qunn_memory_experiment("recall", delay=15 if fast else 30, n_iter=60 if fast else 300, seed=seed)
    add = qunn_memory_experiment("adding", memory=4, seq_len=20, n_iter=100 if fast else 600, lr=0.03, seed=seed)
    add_lstm = qunn_memory_experiment("adding", seq_len=20, n_iter=100 if fast else 600, lr=0.03, seed=seed,
                                      model="lstm", lstm_hidden=3)
    summary["qunn_memory"] = {"recall": rec, "adding": add, "adding_lstm_baseline": add_lstm}
    mem = xr.Dataset({k: ((), v) for k, v in [("recall_accuracy", rec["accuracy"]), ("recall_chance", rec["chance"]),
                                                ("adding_mse", add["mse"]), ("adding_chance_mse", add["chance"]),
                                                ("adding_lstm_mse", add_lstm["mse"])]},
                     attrs=provenance(experiment="qunn_memory", recall=json.dumps(rec), adding=json.dumps(add),
                                      adding_lstm=json.dumps(add_lstm)))
    to_netcdf(mem, out / "qunn_memory.nc")
    log(f"(d) QUNN memory ({time.perf_counter() - t0:.1f}s): recall accuracy {rec['accuracy']:.3f} "
        f"(chance {rec['chance']:.3f}); adding MSE {add['mse']:.4f} with {add['params']} parameters "
        f"(chance {add['chance']:.4f}; LSTM baseline with {add_lstm['params']}: {add_lstm['mse']:.4f})")
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=float))
    return summary
