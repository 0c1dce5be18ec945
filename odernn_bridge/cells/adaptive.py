"""Adaptive Runge–Kutta cells from embedded pairs, with per-sample step sizes.

Each sample of a batch integrates its own interval (``timespans``, ODE-RNN style irregular
gaps) with its own step size; a step is attempted for every still-active sample at once
(batched), then accepted or rejected per sample.

Conventions (chosen to match ``scipy.integrate.solve_ivp``'s RK45/DOP853, see the tests):

* error estimate ``err = dt Σ (b_i − b̂_i) K_i`` (``b̂`` = ``b_embedded``), scaled by
  ``atol + rtol · max(|y_n|, |y_{n+1}|)`` and measured in the RMS norm over components;
  a step is accepted when that norm is < 1;
* step-size factor ``safety · e_n^{−β₁} · e_{n−1}^{β₂}`` clipped to ``[min_factor, max_factor]``
  (PI control as in Hairer's DOPRI5: ``β₂ = 0.2/(q+1)``, ``β₁ = 1/(q+1) − 0.75 β₂`` with q the
  estimator order, i.e. β = (0.17, 0.04) for DP5;
  ``controller="I"`` gives β = (1/(q+1), 0), SciPy's integral controller).  After a
  rejection the factor is ``max(min_factor, safety · e^{−1/(q+1)})`` and the step cannot
  grow again until a step is accepted (SciPy's rule);
* the first step follows Hairer–Nørsett–Wanner's starting-step algorithm (SciPy's
  ``select_initial_step``), one extra field evaluation;
* ``error_estimator="dop853"``: Hairer's DOP853 combination of a 5th- and a 3rd-order
  estimate, ``‖e5‖² / sqrt(‖e5‖² + 0.01 ‖e3‖²)`` (needs ``secondary_weights`` E3);
* FSAL tableaux reuse the last stage as the next first stage (s − 1 evaluations per
  attempt; within one interval the input is constant, so the reuse is exact).

Step sizes are computed from detached values (they are not differentiated); gradients flow
through the accepted steps.  When a sample reaches ``max_steps`` attempts the cell stops
and returns the state reached, with ``last_stats["max_steps_reached"]`` flagging it and, by
default (``on_max_steps="warn"``), a :class:`~odernn_bridge.MaxStepsWarning` giving the
counts (``"raise"`` raises :class:`~odernn_bridge.ConvergenceError`, ``"flag"`` only flags).
A NaN/Inf error estimate (a field returning NaN at a trial stage, overflowing stages) raises
:class:`~odernn_bridge.NonFiniteError`: it used to count as a rejected step, the state never
changed, and after ``max_steps`` attempts the input state came back as if it were the result.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import ConvergenceError, MaxStepsWarning, NonFiniteError
from ._validate import check_dt, check_finite, check_positive_int, check_step_args
from .fields import VectorField
from .rk import check_field, resolve_tableau, sparse_rows

__all__ = ["AdaptiveRKCell"]


def _rms(x: Tensor) -> Tensor:
    return x.pow(2).mean(dim=-1).sqrt()



def _time_gaps(timespans: Tensor, like: Tensor, name: str = "timespans") -> Tensor:
    """``timespans`` detached, on ``like``'s dtype/device; every gap finite and >= 0."""
    spans = timespans.detach().to(dtype=like.dtype, device=like.device)
    if not bool(torch.isfinite(spans).all()) or bool((spans < 0).any()):
        raise ValueError(f"{name}: expected finite time gaps >= 0")
    return spans

class AdaptiveRKCell(nn.Module):
    """Adaptive-step ODE cell driven by an embedded Runge–Kutta pair.

    >>> import torch
    >>> from odernn_bridge import ButcherTableau
    >>> from odernn_bridge.cells import make_field
    >>> heun_euler = ButcherTableau([[0, 0], [1, 0]], ["1/2", "1/2"], b_embedded=[1, 0])
    >>> cell = AdaptiveRKCell(make_field("elman", 3, 4), heun_euler, rtol=1e-4, atol=1e-6)
    >>> cell(torch.zeros(2, 3), torch.zeros(2, 4), timespans=torch.tensor([0.5, 2.0])).shape
    torch.Size([2, 4])
    >>> cell.last_stats["accepted"].shape
    torch.Size([2])
    """

    def __init__(self, field: VectorField, method: Any = "DP5", dt: float = 1.0, *, rtol: float = 1e-3,
                 atol: float = 1e-6, safety: float = 0.9, min_factor: float = 0.2, max_factor: float = 10.0,
                 controller: str | tuple[float, float] = "PI", max_steps: int = 10_000,
                 first_step: float | None = None, max_step: float = float("inf"), on_max_steps: str = "warn",
                 error_estimator: str = "embedded", secondary_weights: Sequence[float] | None = None,
                 estimator_order: int | None = None, record_steps: bool = False,
                 check_finite: bool = True) -> None:
        super().__init__()
        self.field = check_field(field)
        tab = resolve_tableau(method)
        if tab.kind != "explicit":
            raise ValueError(f"method: adaptive cells need an explicit embedded pair, {tab.name} is {tab.kind}")
        if tab.b_embedded is None:
            raise ValueError(f"method: {tab.name} has no embedded weights (b_embedded); pick an embedded pair "
                             "such as DP5, Tsit5 or BS3")
        self.method = tab
        self.dt = check_dt(dt)
        for nm, val in (("rtol", rtol), ("atol", atol)):
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not (val >= 0) or val == float("inf"):
                raise ValueError(f"{nm}: expected a finite number >= 0, got {val!r}")
        if rtol == 0 and atol == 0:
            raise ValueError("rtol, atol: at least one tolerance must be > 0")
        for nm, val in (("safety", safety), ("min_factor", min_factor), ("max_factor", max_factor)):
            if isinstance(val, (int, float)) and not math.isfinite(val):
                raise NonFiniteError(f"{nm}: expected a finite number, got {val!r}")
        if not 0 < safety <= 1:
            raise ValueError(f"safety: expected a number in (0, 1], got {safety!r}")
        if not 0 < min_factor <= 1 <= max_factor:
            raise ValueError(f"min_factor, max_factor: expected 0 < min_factor <= 1 <= max_factor, got "
                             f"{min_factor!r}, {max_factor!r}")
        self.rtol, self.atol = float(rtol), float(atol)
        self.safety, self.min_factor, self.max_factor = float(safety), float(min_factor), float(max_factor)
        self.max_steps = check_positive_int(max_steps, "max_steps")
        self.first_step = None if first_step is None else check_dt(first_step, "first_step")
        self.max_step = float(max_step) if max_step == float("inf") else check_dt(max_step, "max_step")
        if on_max_steps not in ("flag", "warn", "raise"):
            raise ValueError(f"on_max_steps: expected 'flag', 'warn' or 'raise', got {on_max_steps!r}")
        self.on_max_steps = on_max_steps
        if error_estimator not in ("embedded", "dop853"):
            raise ValueError(f"error_estimator: expected 'embedded' or 'dop853', got {error_estimator!r}")
        self.error_estimator = error_estimator
        s = tab.stages
        self._E = (tab.b - tab.b_embedded).astype(np.float64)
        self._E3 = None
        if error_estimator == "dop853":
            if secondary_weights is None or len(secondary_weights) != s:
                raise ValueError(f"secondary_weights: the dop853 estimator needs {s} weights E3")
            self._E3 = np.asarray(secondary_weights, dtype=np.float64)
        q = estimator_order if estimator_order is not None else min(tab.order, tab.embedded_order or tab.order)
        self.estimator_order = check_positive_int(int(q), "estimator_order")
        if controller == "PI":
            # Hairer's DOPRI5 PI controller (beta = 0.04 for q = 4), scaled to the estimator order
            b2 = 0.2 / (q + 1)
            self.beta = (1.0 / (q + 1) - 0.75 * b2, b2)
        elif controller == "I":
            self.beta = (1.0 / (q + 1), 0.0)
        elif isinstance(controller, tuple) and len(controller) == 2:
            self.beta = (float(controller[0]), float(controller[1]))
            if not all(math.isfinite(b) for b in self.beta):
                raise NonFiniteError(f"controller: expected finite gains (beta1, beta2), got {controller!r}")
        else:
            raise ValueError(f"controller: expected 'PI', 'I' or a pair (beta1, beta2), got {controller!r}")
        self.check_finite = bool(check_finite)
        self.record_steps = bool(record_steps)
        self.stages = s
        self._rows = sparse_rows(tab.A)
        self.last_stats: dict[str, Any] = {}

    @property
    def state_size(self) -> int:
        """Width of the integrated state (the field's ``state_size``)."""
        return self.field.state_size

    def extra_repr(self) -> str:
        return (f"method={self.method.name}, rtol={self.rtol}, atol={self.atol}, controller beta={self.beta}, "
                f"max_steps={self.max_steps}")

    # -- API -------------------------------------------------------------------------------
    def forward(self, x: Tensor, h: Tensor, timespans: Tensor | float | None = None,
                t: Tensor | float | None = None, dt0: Tensor | None = None) -> Tensor:
        """Integrate each sample over its own interval ``timespans`` (batch,) (default ``dt``).

        ``dt0`` (batch,) is an initial step-size proposal (e.g. ``last_stats["next_dt"]`` of
        the previous interval); otherwise the starting-step algorithm picks one.
        """
        f = self.field
        check_step_args(f, x, h)
        if self.check_finite:
            check_finite(x, "x")
            check_finite(h, "h")
        spans = self._check_timespans(timespans, h)
        return self.step_projected(f.project_input(x), h, t, spans, dt0)

    step = forward

    def _check_timespans(self, timespans: Any, h: Tensor, name: str = "timespans") -> Tensor:
        B = h.shape[0]
        if timespans is None:
            return h.new_full((B,), self.dt)
        if not isinstance(timespans, Tensor):
            if isinstance(timespans, bool) or not isinstance(timespans, (int, float)):
                raise TypeError(f"{name}: expected a number or a tensor of shape (batch,), "
                                f"got {type(timespans).__name__}")
            timespans = h.new_tensor(float(timespans))  # a gap of 0 is as valid as in a tensor
        if timespans.dim() == 0:
            timespans = timespans.expand(B)
        if timespans.shape != (B,):
            raise ValueError(f"{name}: expected shape (batch={B},), got {tuple(timespans.shape)}")
        return _time_gaps(timespans, h, name)

    # -- engine ----------------------------------------------------------------------------
    def _initial_step(self, y: Tensor, f0: Tensor, u: Tensor, t: Any, span: Tensor) -> Tensor:
        """Hairer–Nørsett–Wanner (II.4) starting step, as scipy's ``select_initial_step``."""
        with torch.no_grad():
            scale = self.atol + y.abs() * self.rtol
            d0, d1 = _rms(y / scale), _rms(f0 / scale)
            h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), torch.full_like(d0, 1e-6), 0.01 * d0 / d1)
            h0 = torch.minimum(h0, span)
            y1 = y + h0.unsqueeze(1) * f0
            f1 = self.field.rhs(y1, u, None if t is None else t + h0)
            d2 = _rms((f1 - f0) / scale) / h0.clamp_min(1e-300)
            dm = torch.maximum(d1, d2)
            h1 = torch.where(dm <= 1e-15, torch.maximum(torch.full_like(h0, 1e-6), h0 * 1e-3),
                             (0.01 / dm.clamp_min(1e-300)) ** (1.0 / (self.estimator_order + 1)))
            out = torch.minimum(torch.minimum(100 * h0, h1), span)
            return out.clamp(max=self.max_step)

    def _error_norm(self, K: list[Tensor], hstep: Tensor, y: Tensor, y_new: Tensor) -> Tensor:
        with torch.no_grad():
            scale = self.atol + torch.maximum(y.abs(), y_new.abs()) * self.rtol
            e5 = sum(float(e) * K[i] for i, e in enumerate(self._E) if e != 0.0)
            if self._E3 is None:
                return _rms(hstep.unsqueeze(1) * e5 / scale)
            e3 = sum(float(e) * K[i] for i, e in enumerate(self._E3) if e != 0.0)
            n5 = (e5 / scale).pow(2).sum(-1)
            n3 = (e3 / scale).pow(2).sum(-1)
            denom = (n5 + 0.01 * n3) * y.shape[-1]
            err = hstep.abs() * n5 / denom.clamp_min(1e-300).sqrt()
            return torch.where((n5 == 0) & (n3 == 0), torch.zeros_like(err), err)

    def step_projected(self, u: Tensor, h: Tensor, t: Tensor | float | None = None,
                       timespans: Tensor | None = None, dt0: Tensor | None = None) -> Tensor:
        """One interval per sample from a projected input ``u``; see :meth:`forward`."""
        y = self._integrate(u, h, t, timespans, dt0)
        if self.last_stats["max_steps_reached"]:
            self._report_max_steps(self.last_stats["message"])
        return y

    def _integrate(self, u: Tensor, h: Tensor, t: Tensor | float | None = None,
                   timespans: Tensor | None = None, dt0: Tensor | None = None) -> Tensor:
        field, tab = self.field, self.method
        B = h.shape[0]
        spans = timespans if timespans is not None else h.new_full((B,), self.dt)
        autonomous = field.autonomous
        t0 = 0.0 if t is None else t
        elapsed = torch.zeros_like(spans)

        def tt(offset: Tensor) -> Any:
            return None if autonomous else t0 + offset

        y = h
        nfev = 0
        f0 = field.rhs(y, u, tt(elapsed))
        nfev += 1
        if dt0 is not None:
            hprop = dt0.detach().to(spans).clamp(max=self.max_step)
            if bool((hprop <= 0).any()):  # e.g. a sample whose previous gap was 0
                init = self._initial_step(y.detach(), f0.detach(), u.detach(), None if autonomous else t0, spans)
                nfev += 1
                hprop = torch.where(hprop > 0, hprop, init)
        elif self.first_step is not None:
            hprop = torch.full_like(spans, self.first_step)
        else:
            hprop = self._initial_step(y.detach(), f0.detach(), u.detach(), None if autonomous else t0, spans)
            nfev += 1
        err_prev = torch.ones_like(spans)
        accepted = torch.zeros(B, dtype=torch.long, device=h.device)
        rejected = torch.zeros_like(accepted)
        rejected_since = torch.zeros(B, dtype=torch.bool, device=h.device)
        attempts = 0
        q1 = 1.0 / (self.estimator_order + 1)
        b1, b2 = self.beta
        k_first = f0
        tiny = 1e-12 * spans.clamp_min(1e-300)
        hit_max = False
        trace: list[tuple[Tensor, Tensor, Tensor]] = []
        while True:
            remaining = spans - elapsed
            active = remaining > tiny
            if not bool(active.any()):
                break
            if attempts >= self.max_steps:
                hit_max = True
                break
            attempts += 1
            hstep = torch.where(active, torch.minimum(hprop, remaining), torch.zeros_like(hprop))
            hcol = hstep.unsqueeze(1)
            K: list[Tensor] = [k_first]
            for i in range(1, tab.stages):
                yi = y
                for j, a in self._rows[i]:
                    yi = yi + (a * hcol) * K[j]
                c_i = float(tab.c[i])
                K.append(field.rhs(yi, u, tt(elapsed + c_i * hstep)))
            nfev += tab.stages - 1
            y_new = y
            for i in range(tab.stages):
                if tab.b[i] != 0.0:
                    y_new = y_new + (float(tab.b[i]) * hcol) * K[i]
            err = self._error_norm(K, hstep, y.detach(), y_new.detach())
            nonfinite = active & ~torch.isfinite(err)
            if bool(nonfinite.any()):
                idx = torch.nonzero(nonfinite).flatten().tolist()
                raise NonFiniteError(
                    f"error estimate: NaN/Inf for sample(s) {idx[:8]} at step size "
                    f"{float(hstep[idx[0]]):.3g} ({float(elapsed[idx[0]]):.3g} into the interval): the field "
                    "returned NaN/Inf at a trial stage or the stages overflowed; check the field, or bound the "
                    "trial steps with max_step/first_step")
            ok = active & (err < 1.0)
            bad = active & ~ok
            if self.record_steps:
                trace.append((hstep.detach().clone(), err.detach().clone(), ok.clone()))
            with torch.no_grad():
                err_safe = err.clamp_min(1e-300)
                fac_acc = torch.where(err == 0, torch.full_like(err, self.max_factor),
                                      self.safety * err_safe.pow(-b1) * err_prev.pow(b2))
                fac_acc = fac_acc.clamp(self.min_factor, self.max_factor)
                fac_acc = torch.where(rejected_since, fac_acc.clamp(max=1.0), fac_acc)
                fac_rej = (self.safety * err_safe.pow(-q1)).clamp(min=self.min_factor, max=1.0)
                hprop = torch.where(ok, hstep * fac_acc, torch.where(bad, hstep * fac_rej, hprop))
                hprop = hprop.clamp(max=self.max_step)
                err_prev = torch.where(ok, err.clamp_min(1e-4), err_prev)
                rejected_since = torch.where(ok, torch.zeros_like(rejected_since), rejected_since | bad)
                accepted += ok.long()
                rejected += bad.long()
                elapsed = torch.where(ok, torch.where(remaining - hstep <= tiny, spans, elapsed + hstep), elapsed)
            okc = ok.unsqueeze(1)
            y = torch.where(okc, y_new, y)
            if tab.fsal:
                k_first = torch.where(okc, K[-1], k_first)
            else:
                k_first = field.rhs(y, u, tt(elapsed))
                nfev += 1
            if self.check_finite:
                check_finite(y, "h (during adaptive integration)")
        unfinished = (spans - elapsed) > tiny
        self.last_stats = {
            "nfev": nfev, "accepted": accepted, "rejected": rejected, "attempts": attempts,
            "next_dt": hprop.detach(), "max_steps_reached": hit_max, "unfinished": unfinished,
            "remaining": (spans - elapsed).clamp_min(0).detach(),
        }
        if self.record_steps:
            self.last_stats["trace"] = trace  # (step size, error norm, accepted) per attempt
        if hit_max:
            n_left = int(unfinished.sum())
            left = (spans - elapsed)[unfinished] / spans[unfinished].clamp_min(1e-300)
            self.last_stats["message"] = (
                f"max_steps: {self.max_steps} step attempts were not enough to cover the interval for {n_left} "
                f"of {B} sample(s) (accepted {int(accepted[unfinished].sum())}, rejected "
                f"{int(rejected[unfinished].sum())}, smallest step proposal {float(hprop[unfinished].min()):.3g}, "
                f"up to {float(left.max()):.0%} of the interval left); the state returned is where integration "
                "stopped — raise max_steps, loosen rtol/atol, or use an implicit method for a stiff field "
                "(details in last_stats)")
        return y

    def _report_max_steps(self, message: str) -> None:
        if self.on_max_steps == "raise":
            raise ConvergenceError(message)
        if self.on_max_steps == "warn":
            warnings.warn(message, MaxStepsWarning, stacklevel=3)

    def run_sequence(self, u_seq: Tensor, h0: Tensor, t0: float = 0.0, timespans: Tensor | None = None) -> Tensor:
        """States after each input; ``timespans`` (seq, batch) per-sample gaps (default ``dt``).

        The step-size proposal carries over from one interval to the next.
        """
        T, B = u_seq.shape[0], h0.shape[0]
        if timespans is not None:
            if not isinstance(timespans, Tensor) or timespans.shape != (T, B):
                raise ValueError(f"timespans: expected a tensor of shape (seq={T}, batch={B}), got "
                                 f"{getattr(timespans, 'shape', type(timespans).__name__)}")
            timespans = _time_gaps(timespans, h0)
        outs, h, dt0 = [], h0, None
        totals = {"nfev": 0, "accepted": 0, "rejected": 0}
        flagged: list[int] = []
        first_message = ""
        tcur: Any = t0
        for k, u in enumerate(u_seq.unbind(0)):  # one unbind: no O(T²) select gradients
            spans = timespans[k] if timespans is not None else h.new_full((B,), self.dt)
            h = self._integrate(u, h, tcur, spans, dt0)
            dt0 = torch.where(spans > 0, self.last_stats["next_dt"], dt0) if dt0 is not None else self.last_stats["next_dt"]
            totals["nfev"] += self.last_stats["nfev"]
            totals["accepted"] = totals["accepted"] + self.last_stats["accepted"]
            totals["rejected"] = totals["rejected"] + self.last_stats["rejected"]
            if self.last_stats["max_steps_reached"]:
                flagged.append(k)
                first_message = first_message or self.last_stats["message"]
            tcur = tcur + spans if not self.field.autonomous else None
            outs.append(h)
        self.last_stats = {**totals, "max_steps_reached": bool(flagged), "max_steps_intervals": flagged,
                           "next_dt": dt0}
        if flagged:
            self._report_max_steps(f"{len(flagged)} of {T} input intervals (first: {flagged[0]}) hit max_steps; "
                                   f"the first: {first_message}")
        return torch.stack(outs, 0)
