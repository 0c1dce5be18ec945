"""Linear multistep cells (Adams–Bashforth/Moulton, BDF): memory t = number of steps.

A k-step method in the ascending convention ``Σ α_j y_{n+1-k+j} = dt Σ β_j f_{n+1-k+j}``
(α_k = 1) needs the states ``y_{n+1-k} … y_n`` and derivatives ``f_{n+1-k} … f_{n-1}``
(``f_n`` is evaluated at the step).  The cell carries them in an augmented state

    state = [y_n, y_{n-1}, …, y_{n-k+1}, f_{n-1}, …, f_{n-k+1}, count]     (width (2k−1)·n + 1)

where ``count`` (a float column, 0 … k−1) says how many past steps are valid.  While
``count < k−1`` the cell takes a start-up step with a Runge–Kutta method (default RK4) and
fills the history; a plain ``(batch, n)`` state is treated as a fresh start.  ``f_m`` is
evaluated with the input of the step that starts at ``t_m`` (input held constant over a step).
Implicit methods (Adams–Moulton, BDF) solve ``y = c + dt β_k f(y, u)`` by Newton with an
implicit-function-theorem backward pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..methods import LinearMultistep, get_method
from ._validate import check_dt, check_finite, check_step_input, check_tensor, field_dtype_device
from .fields import VectorField
from .implicit import JacobianCache, NewtonOptions, StageProblem, differentiable_inputs, solve_fixed_point
from .rk import RKCell, check_field

__all__ = ["MultistepCell"]


class MultistepCell(nn.Module):
    """A linear multistep ODE cell with its history in the state.

    >>> import torch
    >>> from odernn_bridge.methods import LinearMultistep
    >>> from odernn_bridge.cells import make_field
    >>> ab2 = LinearMultistep([0, -1, 1], ["-1/2", "3/2", 0], name="AB2")
    >>> cell = MultistepCell(make_field("elman", 3, 4), ab2, dt=0.1)
    >>> cell.state_size
    13
    >>> cell(torch.zeros(2, 3), torch.zeros(2, 4)).shape
    torch.Size([2, 13])
    """

    def __init__(self, field: VectorField, method: Any, dt: float = 1.0, *, startup: Any = "RK4",
                 startup_substeps: int = 1, newton_tol: float | None = None, newton_maxiter: int = 20,
                 on_nonconvergence: str = "raise", newton_jacobian: str = "shared",
                 check_finite: bool = True) -> None:
        super().__init__()
        self.field = check_field(field)
        if self.field.state_size is None:
            raise ValueError("field: a multistep cell needs a sized field (CallableField(fn, input_size, hidden_size))")
        m = get_method(method) if isinstance(method, str) else method
        if not isinstance(m, LinearMultistep):
            raise TypeError(f"method: expected a linear multistep method, got {type(m).__name__}; "
                            "use RKCell for Runge–Kutta tableaux")
        self.method = m
        self.dt = check_dt(dt)
        self.steps = m.steps
        self.stages = 1
        self.newton = NewtonOptions(newton_tol, newton_maxiter, on_nonconvergence, newton_jacobian)
        self._jacobian_cache = JacobianCache()
        self.check_finite = bool(check_finite)
        # start-up steps share the field (and so its parameters)
        self.starter = RKCell(field, startup, dt=dt, substeps=startup_substeps, newton_tol=newton_tol,
                              newton_maxiter=newton_maxiter, on_nonconvergence=on_nonconvergence,
                              check_finite=False)
        self.last_stats: dict[str, Any] = {}

    @property
    def state_size(self) -> int:
        n, k = self.field.state_size, self.steps
        return (2 * k - 1) * n + 1

    def extra_repr(self) -> str:
        return f"method={self.method.name}, steps={self.steps}, dt={self.dt}, startup={self.starter.method.name}"

    def expand_state(self, h: Tensor) -> Tensor:
        """A fresh augmented state (empty history) from a plain state (batch, n)."""
        B = h.shape[0]
        return torch.cat([h, h.new_zeros(B, self.state_size - h.shape[1])], dim=1)

    def readout(self, state: Tensor) -> Tensor:
        return self.field.readout(state[..., : self.field.state_size])

    def _split(self, state: Tensor) -> tuple[list[Tensor], list[Tensor], Tensor]:
        n, k = self.field.state_size, self.steps
        ys = [state[:, i * n:(i + 1) * n] for i in range(k)]
        fs = [state[:, (k + i) * n:(k + i + 1) * n] for i in range(k - 1)]
        return ys, fs, state[:, -1]

    def forward(self, x: Tensor, h: Tensor, t: Tensor | float | None = None) -> Tensor:
        """One step; ``h`` is the augmented state (batch, state_size) or a fresh (batch, n)."""
        dtype, device = field_dtype_device(self.field)
        check_tensor(h, "h", ndim=2, dtype=dtype, device=device)
        if h.shape[1] == self.field.state_size and self.state_size != h.shape[1]:
            h = self.expand_state(h)
        if h.shape[1] != self.state_size:
            raise ValueError(f"h: expected last dimension state_size={self.state_size} (augmented) or "
                             f"{self.field.state_size} (fresh start), got shape {tuple(h.shape)}")
        check_step_input(x, h, self.field.input_size)
        if self.check_finite:
            check_finite(x, "x")
            check_finite(h, "h")
        self.last_stats = {"nfev": 0, "startup_steps": 0, "newton_iterations": 0}
        return self.step_projected(self.field.project_input(x), h, t)

    step = forward

    def step_projected(self, u: Tensor, state: Tensor, t: Tensor | float | None = None) -> Tensor:
        if not self.last_stats:
            self.last_stats = {"nfev": 0, "startup_steps": 0, "newton_iterations": 0}
        k = self.steps
        ys, fs, count = self._split(state)
        f_n = self.field.rhs(ys[0], u, t)
        self.last_stats["nfev"] += 1
        ready = count >= k - 1
        all_ready = bool(ready.all()) if k > 1 else True
        # an empty batch: the multistep branch runs on nothing and returns an empty state
        none_ready = (not bool(ready.any())) if k > 1 and state.shape[0] > 0 else False
        y_lmm = y_rk = None
        if not none_ready:
            y_lmm = self._lmm_step(ys, fs, f_n, u, t)
        if not all_ready:
            self.starter.last_stats = self.starter._new_stats()
            y_rk = self.starter.step_projected(u, ys[0], t)
            self.last_stats["nfev"] += self.starter.last_stats["nfev"]
            self.last_stats["startup_steps"] += 1
        if y_lmm is None:
            y_new = y_rk
        elif y_rk is None:
            y_new = y_lmm
        else:
            y_new = torch.where(ready.unsqueeze(1), y_lmm, y_rk)
        new_count = torch.clamp(count + 1, max=float(k - 1)).unsqueeze(1)
        parts = [y_new, *ys[:-1]]
        if k > 1:
            parts += [f_n, *fs[:-1]]
        return torch.cat(parts + [new_count], dim=1)

    def _lmm_step(self, ys: list[Tensor], fs: list[Tensor], f_n: Tensor, u: Tensor, t: Any) -> Tensor:
        k, dt = self.steps, self.dt
        alpha, beta = self.method.alpha, self.method.beta
        # index j (ascending) ↔ state y_{n+1-k+j}: ys[k-1-j] for j < k; f likewise (f_n for j = k-1)
        hist_f = [f_n, *fs]
        c = None
        for j in range(k):
            y_j = ys[k - 1 - j]
            f_j = hist_f[k - 1 - j]
            term = None
            if alpha[j] != 0.0:
                term = -float(alpha[j]) * y_j
            if beta[j] != 0.0:
                bt = dt * float(beta[j]) * f_j
                term = bt if term is None else term + bt
            if term is not None:
                c = term if c is None else c + term
        assert c is not None
        if self.method.explicit:
            return c
        field, bk = self.field, dt * float(beta[k])
        B, n = c.shape

        def phi(K: Tensor, c_: Tensor, us_: Tensor) -> Tensor:
            return (c_ + bk * field.rhs(K[:, 0], us_[:, 0], t)).unsqueeze(1)

        def dphi(K: Tensor, c_: Tensor, us_: Tensor) -> Tensor:
            return bk * field.jacobian(K[:, 0], us_[:, 0], t)

        def mean_jacobian(K: Tensor, c_: Tensor, us_: Tensor) -> Tensor:
            return field.mean_jacobian(K[:, 0], us_[:, 0], t)

        problem = StageProblem(phi, dphi, 1, coupling=np.array([[bk]]), mean_jacobian=mean_jacobian,
                               cache=self._jacobian_cache,
                               cache_key=(bk, c.dtype, c.device,
                                          tuple((id(q), q._version) for q in field.parameters())))
        y0 = ys[0] + dt * f_n  # explicit Euler predictor
        names, params = differentiable_inputs(field, lambda: field.rhs(y0.detach(), u.detach(), t))
        problem.module, problem.param_names = field, names
        y = solve_fixed_point(problem, self.newton, y0.unsqueeze(1), c, u.unsqueeze(1), params)[:, 0]
        self.last_stats["newton_iterations"] += problem.stats["newton_iterations"]
        self.last_stats["residual"] = problem.stats["residual"]
        self.last_stats["converged"] = problem.stats["converged"]
        self.last_stats["fallbacks"] = self.last_stats.get("fallbacks", 0) + int(bool(problem.stats.get("fallback")))
        return y

    def run_sequence(self, u_seq: Tensor, h0: Tensor, t0: float = 0.0) -> Tensor:
        """All augmented states (seq, batch, state_size) for projected inputs ``u_seq``."""
        if h0.shape[-1] != self.state_size:
            h0 = self.expand_state(h0)
        self.last_stats = {"nfev": 0, "startup_steps": 0, "newton_iterations": 0}
        outs, h = [], h0
        for k, u in enumerate(u_seq.unbind(0)):  # one unbind: no O(T²) select gradients
            h = self.step_projected(u, h, t0 + k * self.dt)
            outs.append(h)
        return torch.stack(outs, 0)
