"""Runge–Kutta cells: one generic engine driven by a Butcher tableau.

One input step of length ``dt`` is split into ``substeps`` RK steps of size
``dt / substeps``.  Within a step the (projected) input is held constant by default;
``input_interpolation="linear"`` interpolates it between ``x_k`` and ``x_{k+1}`` at the stage
times ``t_k + c_i·dt`` (non-autonomous stages).

* explicit tableaux: stages are evaluated in order, skipping zero coefficients ``a_ij``,
  and stages that no weight ``b_i`` reaches (the FSAL stage of a fixed-step method has
  ``b_s = 0`` and is never needed, which is cheaper than reusing it);
* diagonally implicit: stage-by-stage Newton on n×n systems;
* fully implicit (Gauss, Radau, Lobatto): Newton on the coupled (s·n)×(s·n) system,
  all stages evaluated in one batched call of the field.

Implicit stages are differentiated by the implicit function theorem
(:mod:`odernn_bridge.cells.implicit`); memory does not depend on the Newton iteration count.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..methods import ButcherTableau, LinearMultistep, get_method
from ._validate import check_dt, check_finite, check_positive_int, check_step_args, check_step_input
from .fields import VectorField, activation_derivative
from .newton_matrix import stage_mix
from .implicit import JacobianCache, NewtonOptions, StageProblem, differentiable_inputs, solve_fixed_point

__all__ = ["RKCell", "resolve_tableau"]


def sparse_rows(A: np.ndarray) -> list[list[tuple[int, float]]]:
    """Rows of a Butcher matrix as ``(j, a_ij)`` pairs for the nonzero entries only, so that
    the stage loops skip zero coefficients."""
    s = A.shape[0]
    return [[(j, float(A[i, j])) for j in range(s) if A[i, j] != 0.0] for i in range(s)]


def resolve_tableau(method: Any, name: str = "method") -> ButcherTableau:
    """A ButcherTableau from a catalogue name or a tableau (LinearMultistep is refused)."""
    m = get_method(method) if isinstance(method, str) else method
    if isinstance(m, LinearMultistep):
        raise TypeError(f"{name}: {m.name} is a linear multistep method; use MultistepCell for it")
    if not isinstance(m, ButcherTableau):
        raise TypeError(f"{name}: expected a method name or a ButcherTableau, got {type(method).__name__}")
    return m


def check_field(field: Any) -> VectorField:
    """A VectorField; any other callable ``fn(h, x)`` / ``fn(h, x, t=...)`` is wrapped in an
    unsized :class:`CallableField` (ARCHITECTURE.md: a vector field is any such callable)."""
    if isinstance(field, VectorField):
        return field
    if callable(field):
        from .fields import CallableField

        return CallableField(field)
    raise TypeError(
        f"field: expected a VectorField (e.g. make_field('elman', input_size, hidden_size)) or a callable "
        f"fn(h, x), got {type(field).__name__}")


#: use the fixed-point predictor of implicit stages below this estimated contraction rate
_PREDICT_BELOW = 0.5


def _only_weight_in_rhs(field: VectorField, W: Tensor) -> bool:
    """Whether the affine-form weight is the only parameter that ``field.rhs`` reads: true for
    the built-in affine fields, whose other parameters (the input projection) act before
    ``rhs``; a subclass that adds parameters keeps the autograd path."""
    from .fields import ElmanField, LeakyField

    if type(field) not in (ElmanField, LeakyField):
        return False
    inside = [q for nm, q in field.named_parameters() if not nm.startswith("U.")]
    return len(inside) == 1 and inside[0] is W


class RKCell(nn.Module):
    """One ODERNN step: integrate ``dh/dt = f(h, x)`` over ``dt`` with a Runge–Kutta method.

    Args:
        field: the :class:`~odernn_bridge.cells.fields.VectorField`.
        method: catalogue name or :class:`~odernn_bridge.methods.ButcherTableau` (any kind).
        dt: time between two inputs (> 0); ``substeps`` RK steps of ``dt/substeps`` each.
        input_interpolation: ``"constant"`` (x held over the step) or ``"linear"``.
        newton_tol, newton_maxiter, on_nonconvergence: Newton settings for implicit
            tableaux (tol default: 1e-12 float64, 1e-5 float32, on the residual scaled by
            1 + max|K|); ``"raise"`` raises :class:`~odernn_bridge.ConvergenceError`,
            ``"flag"`` only records ``last_stats["converged"] = False``.
        newton_jacobian: ``"shared"`` (default: simplified Newton with one Jacobian
            approximation for the batch, Butcher-transformed, reused over steps; falls back
            to ``"full"`` when it does not converge), ``"full"`` (exact per-sample Jacobian
            every iteration — the accurate reference), ``"frozen"`` (per-sample Jacobian at
            the predictor, factorised once per step) or ``"krylov"`` (Jacobian-free
            Newton–GMRES on Jacobian-vector products).  See docs/cells.md for the trade-offs.
        fused: let :meth:`run_sequence` use the fused whole-sequence kernel when the field
            has an affine form and the tableau is explicit.

    >>> import torch, odernn_bridge as ob
    >>> from odernn_bridge.cells import make_field
    >>> cell = RKCell(make_field("elman", 3, 4), "RK4", dt=0.5)
    >>> cell(torch.zeros(2, 3), torch.zeros(2, 4)).shape
    torch.Size([2, 4])
    """

    def __init__(self, field: VectorField, method: Any, dt: float = 1.0, substeps: int = 1, *,
                 input_interpolation: str = "constant", newton_tol: float | None = None,
                 newton_maxiter: int = 20, on_nonconvergence: str = "raise", newton_jacobian: str = "shared",
                 fused: bool = True,
                 check_finite: bool = True) -> None:
        super().__init__()
        self.field = check_field(field)
        self.method = resolve_tableau(method)
        self.dt = check_dt(dt)
        self.substeps = check_positive_int(substeps, "substeps")
        if input_interpolation not in ("constant", "linear"):
            raise ValueError(f"input_interpolation: expected 'constant' or 'linear', got {input_interpolation!r}")
        self.input_interpolation = input_interpolation
        self.newton = NewtonOptions(newton_tol, newton_maxiter, on_nonconvergence, newton_jacobian)
        self._jacobian_cache = JacobianCache()
        self.fused = bool(fused)
        self.check_finite = bool(check_finite)
        self.stages = self.method.stages
        self.last_stats: dict[str, Any] = {}
        tab = self.method
        s = tab.stages
        A, b = tab.A, tab.b
        self._rows = sparse_rows(A)
        needed = {i for i in range(s) if b[i] != 0.0}
        for i in reversed(range(s)):
            if i in needed:
                needed.update(j for j, _ in self._rows[i] if j < i)
        self._needed = sorted(needed)
        self._weights = [(i, float(b[i])) for i in range(s) if b[i] != 0.0]

    # -- properties --------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self.method.kind

    @property
    def step_size(self) -> float:
        """Size of one RK step, ``dt / substeps``."""
        return self.dt / self.substeps

    @property
    def evaluations_per_step(self) -> int:
        """Field evaluations per input step for an explicit tableau (skipped stages excluded)."""
        return len(self._needed) * self.substeps

    @property
    def state_size(self) -> int:
        """Width of the integrated state (the field's ``state_size``)."""
        return self.field.state_size

    def extra_repr(self) -> str:
        return (f"method={self.method.name}, kind={self.kind}, dt={self.dt}, substeps={self.substeps}, "
                f"input_interpolation={self.input_interpolation!r}")

    # -- public single-step API ------------------------------------------------------------
    def forward(self, x: Tensor, h: Tensor, t: Tensor | float | None = None,
                x_next: Tensor | None = None) -> Tensor:
        """Advance ``h`` (batch, state_size) over one input step with input ``x`` (batch, input_size).

        ``x_next`` (the next input) is used by ``input_interpolation="linear"``; ``t`` is
        the start time of the step (default 0) for non-autonomous fields.
        """
        check_step_args(self.field, x, h)
        if x_next is not None:
            check_step_input(x_next, h, self.field.input_size, x_name="x_next")
        if self.check_finite:
            check_finite(x, "x")
            check_finite(h, "h")
        u = self.field.project_input(x)
        u_next = self.field.project_input(x_next) if x_next is not None else None
        self.last_stats = self._new_stats()
        return self.step_projected(u, h, t, u_next)

    def step(self, x: Tensor, h: Tensor, t: Tensor | float | None = None,
             x_next: Tensor | None = None) -> Tensor:
        """Same as ``forward``: the single-step API."""
        return self.forward(x, h, t, x_next)

    # -- engine ----------------------------------------------------------------------------
    def _new_stats(self) -> dict[str, Any]:
        st: dict[str, Any] = {"nfev": 0, "steps": 0}
        if self.kind != "explicit":
            st.update(newton_iterations=0, residual=0.0, converged=True)
        return st

    def _stage_inputs(self, u: Tensor, u_next: Tensor | None, m: int) -> list[Tensor]:
        if u_next is None or self.input_interpolation == "constant":
            return [u] * self.stages
        du = u_next - u
        return [torch.add(u, du, alpha=(m + float(ci)) / self.substeps) for ci in self.method.c]

    def _times(self, t: Any, m: int) -> list[Any]:
        if self.field.autonomous:
            return [None] * self.stages
        t0 = 0.0 if t is None else t
        hs = self.step_size
        return [t0 + (m + float(ci)) * hs for ci in self.method.c]

    def step_projected(self, u: Tensor, h: Tensor, t: Tensor | float | None = None,
                       u_next: Tensor | None = None) -> Tensor:
        """One input step given the projected input ``u = field.project_input(x)`` (no checks)."""
        stats = self.last_stats if self.last_stats else self._new_stats()
        self.last_stats = stats
        for m in range(self.substeps):
            us = self._stage_inputs(u, u_next, m)
            ts = self._times(t, m)
            if self.kind == "explicit":
                h = self._explicit_substep(h, us, ts, stats)
            else:
                h = self._implicit_substep(h, us, ts, stats)
            stats["steps"] += 1
        return h

    def _explicit_update(self, h: Tensor, us: list[Tensor], ts: list[Any]) -> Tensor:
        """One explicit RK substep (stages whose value is never used are skipped); no side
        effects, so :meth:`compile` can trace it."""
        hs = self.step_size
        rhs = self.field.rhs
        K: list[Tensor | None] = [None] * self.stages
        for i in self._needed:
            y = h
            for j, a in self._rows[i]:
                y = torch.add(y, K[j], alpha=hs * a)  # type: ignore[arg-type]
            K[i] = rhs(y, us[i], ts[i])
        out = h
        for i, bi in self._weights:
            out = torch.add(out, K[i], alpha=hs * bi)  # type: ignore[arg-type]
        return out

    def _explicit_substep(self, h: Tensor, us: list[Tensor], ts: list[Any], stats: dict[str, Any]) -> Tensor:
        stats["nfev"] += len(self._needed)
        return self._explicit_update(h, us, ts)

    def _implicit_substep(self, h: Tensor, us_list: list[Tensor], ts: list[Any], stats: dict[str, Any]) -> Tensor:
        field = self.field
        hs = self.step_size
        s = self.stages
        B, n = h.shape
        hA = hs * self._coefficients(h, "A")
        hA_np = hs * np.asarray(self.method.A, dtype=np.float64)
        hA_rows, hAt_rows = hA_np.tolist(), hA_np.T.tolist()  # Python floats for stage_mix (no sync)
        us = torch.stack(us_list, dim=1)  # (B, s, p)
        p = us.shape[-1]
        autonomous = field.autonomous
        counter = {"nfev": 0}

        def eval_stages(Y: Tensor, us_: Tensor) -> Tensor:  # (B, s, n) -> (B, s, n)
            counter["nfev"] += s
            if autonomous:
                return field.rhs(Y.reshape(B * s, n), us_.reshape(B * s, p)).view(B, s, n)
            return torch.stack([field.rhs(Y[:, i], us_[:, i], ts[i]) for i in range(s)], dim=1)

        def phi(K: Tensor, h_: Tensor, us_: Tensor) -> Tensor:
            Y = h_.unsqueeze(1) + stage_mix(hA_rows, K)
            return eval_stages(Y, us_)

        def dphi(K: Tensor, h_: Tensor, us_: Tensor) -> Tensor:
            Y = h_.unsqueeze(1) + stage_mix(hA_rows, K)
            J = torch.stack([field.jacobian(Y[:, i], us_[:, i], ts[i]) for i in range(s)], dim=1)  # B,s,n,n
            return torch.einsum("ij,bikl->bikjl", hA, J).reshape(B, s * n, s * n)

        def stage_y(i: int, K: Tensor, h_: Tensor) -> Tensor:
            y = h_
            for j in range(i + 1):  # a few scaled adds (cheaper than an einsum of s ≤ 5 terms)
                if hA_rows[i][j] != 0.0:
                    y = torch.add(y, K[:, j], alpha=hA_rows[i][j])
            return y

        def stage_phi(i: int, K: Tensor, h_: Tensor, us_: Tensor) -> Tensor:
            counter["nfev"] += 1
            return field.rhs(stage_y(i, K, h_), us_[:, i], ts[i])

        def stage_dphi(i: int, K: Tensor, h_: Tensor, us_: Tensor) -> Tensor:
            return hA[i, i] * field.jacobian(stage_y(i, K, h_), us_[:, i], ts[i])

        def mean_jacobian(K: Tensor, h_: Tensor, us_: Tensor) -> Tensor:
            Y = h_.unsqueeze(1) + stage_mix(hA_rows, K)
            if autonomous:
                return field.mean_jacobian(Y.reshape(B * s, n), us_.reshape(B * s, p))
            return sum(field.mean_jacobian(Y[:, i], us_[:, i], ts[i]) for i in range(s)) / s

        form = field.affine_form() if autonomous else None
        adjoint = input_grads = None
        if form is not None:
            W, act_name, leak = form

            def adjoint(K: Tensor, h_: Tensor, us_: Tensor, Phi: Tensor) -> Any:
                # (∂Φ/∂K)ᵀ w = Σ_j (hA)_ji J_jᵀ w_j with J_j = diag(act′_j) W − leak I; the
                # activations are read off Φ(K) = act(W Y + u) − leak·Y (no product with W)
                a = Phi
                if leak:
                    a = Phi + leak * (h_.unsqueeze(1) + stage_mix(hA_rows, K))
                D = activation_derivative(act_name, a)

                def vjp(w: Tensor) -> Tensor:
                    g = torch.mm((w * D).reshape(B * s, n), W).view(B, s, n)
                    if leak:
                        g = g - leak * w
                    return stage_mix(hAt_rows, g)
                return vjp

            if us.shape[-1] == n and _only_weight_in_rhs(field, W):
                def input_grads(K: Tensor, h_: Tensor, us_: Tensor, Phi: Tensor, w: Tensor) -> dict[Any, Tensor]:
                    # Φ_i = act(W Y_i + u_i) − leak Y_i, Y_i = h + Σ_j hA_ij K_j:
                    # ∂/∂u_i = D_i w_i, ∂/∂h = Σ_i (D_i w_i) W − leak w_i, ∂/∂W = Σ_i (D_i w_i)ᵀ Y_i
                    Y = h_.unsqueeze(1) + stage_mix(hA_rows, K)
                    a = Phi + leak * Y if leak else Phi
                    g = w * activation_derivative(act_name, a)
                    gsum = g.sum(1)
                    gh = torch.mm(gsum, W)
                    if leak:
                        gh = gh - leak * w.sum(1)
                    gW = torch.mm(g.reshape(B * s, n).t(), Y.reshape(B * s, n))
                    return {"h": gh, "us": g, id(W): gW}

        problem = StageProblem(phi, dphi, s, sequential=self.kind == "diagonally_implicit",
                               stage_phi=stage_phi, stage_dphi=stage_dphi,
                               coupling=hs * self.method.A, mean_jacobian=mean_jacobian,
                               cache=self._jacobian_cache, cache_key=self._cache_key(h, hs), adjoint=adjoint,
                               input_grads=input_grads)
        with torch.no_grad():
            k0 = field.rhs(h, us[:, 0], ts[0])
            counter["nfev"] += 1
            K0 = k0.unsqueeze(1).expand(B, s, n)
            known = self._jacobian_cache.get(problem.cache_key)
            if self.newton.jacobian == "shared" and known is not None and known.picard_rate < _PREDICT_BELOW:
                # non-stiff (the last shared matrix's ρ(dt·A ⊗ J̄) < 1/2): start from one
                # fixed-point step, every stage's derivative at an explicit Euler step to its own
                # time c_i·dt (one batched evaluation) — on RNN fields that saves 1–2 Newton
                # iterations per step.  Stiff fields keep f(h) repeated, which a fixed-point
                # step would throw far off.
                c_np = np.asarray(self.method.c, dtype=np.float64) * hs
                Y0 = h.unsqueeze(1) + torch.tensor(c_np, dtype=h.dtype, device=h.device).view(1, s, 1) * K0
                K0 = eval_stages(Y0, us)
        names, params = differentiable_inputs(field, lambda: field.rhs(h.detach(), us[:, 0].detach(), ts[0]))
        problem.module, problem.param_names = field, names
        K = solve_fixed_point(problem, self.newton, K0, h, us, params)
        st = problem.stats
        stats["newton_iterations"] += st["newton_iterations"]
        stats["residual"] = max(stats["residual"], st["residual"])
        stats["converged"] = stats["converged"] and st["converged"]
        stats["newton_tol"] = st["newton_tol"]
        stats["nfev"] += counter["nfev"]
        stats["jacobian_updates"] = stats.get("jacobian_updates", 0) + st.get("jacobian_updates", 0)
        stats["fallbacks"] = stats.get("fallbacks", 0) + int(bool(st.get("fallback", False)))
        return h + hs * torch.einsum("j,bjn->bn", self._coefficients(h, "b"), K)

    def _cache_key(self, like: Tensor, hs: float) -> tuple[Any, ...]:
        """What a shared Newton matrix depends on besides the states: step, dtype, device and
        the field's parameters (identity and in-place version: an optimiser step invalidates)."""
        return (hs, like.dtype, like.device,
                tuple((id(q), q._version) for q in self.field.parameters()))

    def _coefficients(self, like: Tensor, which: str) -> Tensor:
        """Tableau arrays as tensors of ``like``'s dtype/device (cached)."""
        key = (which, like.dtype, like.device)
        cache = self.__dict__.setdefault("_coef_cache", {})
        if key not in cache:
            cache[key] = torch.tensor(np.array(getattr(self.method, which)), dtype=like.dtype, device=like.device)
        return cache[key]

    # -- torch.compile ------------------------------------------------------------------------
    def _pure_step(self, u: Tensor, h: Tensor) -> Tensor:
        """One input step of an explicit autonomous cell without side effects (compilable)."""
        us, ts = [u] * self.stages, [None] * self.stages
        for _ in range(self.substeps):
            h = self._explicit_update(h, us, ts)
        return h

    def compile(self, **compile_kwargs: Any) -> "RKCell":
        """Use ``torch.compile`` on the per-step function of the generic (unfused) path.

        Only explicit tableaux with constant input interpolation and autonomous fields; the
        sequence loop stays in Python, each step runs one compiled graph (forward and
        backward generated by AOTAutograd).  Returns ``self``.  See benchmarks/bench_cells.py
        for the measured gain.
        """
        if self.kind != "explicit" or self.input_interpolation != "constant" or not self.field.autonomous:
            raise ValueError("compile: only explicit, autonomous cells with constant input interpolation")
        self._compiled_step = torch.compile(self._pure_step, **compile_kwargs)
        self.fused = False
        return self

    # -- sequences ---------------------------------------------------------------------------
    def fused_eligible(self, requires_grad: bool = True) -> bool:
        """Whether :meth:`run_sequence` can use the fused kernel of :mod:`.fused`."""
        return (self.fused and self.kind == "explicit" and self.field.affine_form() is not None
                and self.field.autonomous)

    def run_sequence(self, u_seq: Tensor, h0: Tensor, t0: float = 0.0) -> Tensor:
        """All states (seq, batch, state) for projected inputs ``u_seq`` (seq, batch, p)."""
        self.last_stats = self._new_stats()
        if self.fused_eligible():
            from .fused import fused_explicit_sequence

            out = fused_explicit_sequence(self, u_seq, h0)
            n = u_seq.shape[0]
            self.last_stats.update(nfev=len(self._needed) * self.substeps * n, steps=self.substeps * n,
                                   fused=True)
            return out
        outs = []
        h = h0
        T = u_seq.shape[0]
        # one unbind (one backward node) instead of T selections, each of whose backward
        # passes would write a zero-filled (seq, batch, p) gradient: O(T²) memory traffic
        u_steps = u_seq.unbind(0)
        compiled = getattr(self, "_compiled_step", None)
        if compiled is not None:
            for k in range(T):
                h = compiled(u_steps[k], h)
                outs.append(h)
            self.last_stats.update(nfev=len(self._needed) * self.substeps * T, steps=self.substeps * T)
            return torch.stack(outs, 0)
        linear = self.input_interpolation == "linear"
        for k in range(T):
            u_next = u_steps[k + 1] if linear and k + 1 < T else None
            h = self.step_projected(u_steps[k], h, t0 + k * self.dt, u_next)
            outs.append(h)
        return torch.stack(outs, 0)
