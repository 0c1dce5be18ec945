"""Newton solves of implicit stage equations with an implicit-function-theorem backward pass.

Every implicit scheme of the package is written as a fixed point ``K = Φ(K; h, u, θ)``:

* implicit Runge–Kutta: ``K_i = f(h + dt Σ_j a_ij K_j, u_i, t_i)`` (K: the stage derivatives);
* implicit linear multistep: ``y = c + dt β_k f(y, u)``.

The forward pass solves ``G(K) = K − Φ(K) = 0`` without recording a graph, by one of four
Newton variants (``NewtonOptions.jacobian``):

``"shared"`` (default)
    simplified Newton as stiff solvers do it (Hairer–Wanner IV.8): the Newton matrix
    ``I − C ⊗ J̄`` uses one Jacobian approximation ``J̄`` shared by the whole batch (the batch
    mean of ∂f/∂h; ``diag(mean act′) W − leak I`` for fields ``act(W h + u) − leak h``),
    inverted through Butcher's transformation (:mod:`.newton_matrix`: s systems of size n, a
    complex pair as one 2n×2n real block, instead of one of size s·n) and **reused over
    steps** while Newton contracts fast; it is refreshed at the current iterate when the
    contraction rate degrades.  If it does not converge (a batch too heterogeneous for one
    shared Jacobian), the step falls back to ``"full"``;
``"full"``
    Newton with the exact per-sample Jacobian, re-evaluated and factorised every iteration
    (quadratic convergence; a dense (batch, s·n, s·n) solve per iteration) — the accurate
    reference path;
``"frozen"``
    per-sample simplified Newton: exact Jacobian at the predictor, LU-factorised once;
``"krylov"``
    Jacobian-free Newton–Krylov: each Newton system solved by batched GMRES on
    Jacobian-vector products (forward-mode AD), for fields without exploitable structure.

Whatever the variant, a step is accepted only when the stage residual satisfies the tolerance.

The backward pass uses the implicit function theorem: for an upstream gradient ``v = ∂L/∂K``,
solve ``(I − ∂Φ/∂K)ᵀ w = v`` and return ``wᵀ ∂Φ/∂(h, u, θ)`` — memory does not grow with
the number of Newton iterations.  The transposed system is solved with the forward pass's
own factorisation: preconditioned iterative refinement ``w ← w + (I − C⊗J̄)⁻ᵀ (v − (I −
∂Φ/∂K)ᵀ w)`` with exact vector–Jacobian products (``"shared"``), GMRES on vector–Jacobian
products (``"krylov"``), or a dense solve (``"full"``/``"frozen"``, and the fallback).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import ConvergenceError
from .newton_matrix import SharedNewtonMatrix

__all__ = ["StageProblem", "NewtonOptions", "JacobianCache", "solve_fixed_point", "default_newton_tol",
           "NEWTON_JACOBIANS", "batched_gmres"]

NEWTON_JACOBIANS = ("shared", "full", "frozen", "krylov")

#: a shared Newton matrix built at an earlier step is rebuilt when the observed contraction
#: rate exceeds max(_REFRESH_RATE, 2 × the rate it had when fresh): a rebuild (the mean
#: Jacobian and the block inverses) costs about as much as a few iterations, so a matrix is
#: kept while it still gains more than half a digit per iteration
_REFRESH_RATE = 0.25
#: forcing term of the inexact (Krylov) Newton solves: ‖linear residual‖ ≤ η ‖G‖
_KRYLOV_FORCING = 1e-3


def default_newton_tol(dtype: torch.dtype) -> float:
    """1e-12 in float64, 1e-5 in float32 (≈ 100 ulp of an O(1) stage value), 1e-2 otherwise.

    The float64 value makes a converged step agree with the exact solution of the stage
    equations to ≈ 1e-12 (issue 10); 1e-10 saved about one Newton iteration per step and
    agreed only to ≈ 1e-11.
    """
    return 1e-12 if dtype == torch.float64 else 1e-5 if dtype == torch.float32 else 1e-2


@dataclass
class NewtonOptions:
    tol: float | None = None
    maxiter: int = 20
    on_nonconvergence: str = "raise"  # "raise" | "warn" | "flag"
    #: "shared" | "full" | "frozen" | "krylov" (see the module docstring)
    jacobian: str = "shared"

    def __post_init__(self) -> None:
        if self.tol is not None and (isinstance(self.tol, bool) or not isinstance(self.tol, (int, float))
                                     or not self.tol > 0 or self.tol != self.tol or self.tol == float("inf")):
            raise ValueError(f"newton_tol: expected a positive finite number or None, got {self.tol!r}")
        if isinstance(self.maxiter, bool) or not isinstance(self.maxiter, int) or self.maxiter < 1:
            raise ValueError(f"newton_maxiter: expected a positive integer, got {self.maxiter!r}")
        if self.jacobian not in NEWTON_JACOBIANS:
            raise ValueError(f"newton_jacobian: expected one of {', '.join(map(repr, NEWTON_JACOBIANS))}, "
                             f"got {self.jacobian!r}")
        if self.on_nonconvergence not in ("raise", "warn", "flag"):
            raise ValueError("on_nonconvergence: expected 'raise', 'warn' or 'flag', got "
                             f"{self.on_nonconvergence!r}")


class JacobianCache:
    """The shared Newton matrix kept between steps (and calls) of one cell.

    ``key`` identifies what the matrix was built for (coupling, dtype, device and the
    field's parameters with their in-place version counters), so a matrix is never reused
    after an optimiser step; within a sequence it is reused while Newton contracts fast.
    A stale matrix could only slow convergence — every step is checked on the exact residual.
    """

    def __init__(self) -> None:
        self.key: Any = None
        self.matrix: SharedNewtonMatrix | None = None
        self.fresh_rate: float | None = None  # contraction rate observed in the step that built it

    def get(self, key: Any) -> SharedNewtonMatrix | None:
        return self.matrix if key == self.key else None

    def put(self, key: Any, matrix: SharedNewtonMatrix) -> None:
        self.key, self.matrix, self.fresh_rate = key, matrix, None

    def clear(self) -> None:
        self.key = self.matrix = self.fresh_rate = None


@dataclass
class StageProblem:
    """A fixed point ``K = Φ(K; h, us)`` with ``K`` of shape (batch, s, n).

    ``phi(K, h, us)`` evaluates Φ; ``dphi(K, h, us)`` returns ∂Φ/∂K as (batch, s·n, s·n);
    ``sequential`` marks a lower-triangular structure (diagonally implicit methods):
    ``stage_phi(i, K, h, us)`` then evaluates stage i alone and ``stage_dphi`` its block.
    For the ``"shared"`` Newton variant, ``coupling`` (s×s NumPy) is C in ∂Φ/∂K = C ⊗ J and
    ``mean_jacobian(K, h, us)`` returns the batch-shared approximation J̄ (n×n) at an iterate;
    ``cache``/``cache_key`` let the matrix be reused over steps.
    """

    phi: Callable[[Tensor, Tensor, Tensor], Tensor]
    dphi: Callable[[Tensor, Tensor, Tensor], Tensor]
    stages: int
    sequential: bool = False
    stage_phi: Callable[[int, Tensor, Tensor, Tensor], Tensor] | None = None
    stage_dphi: Callable[[int, Tensor, Tensor, Tensor], Tensor] | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    #: the module whose parameters Φ uses, and their names (so that the backward pass
    #: re-evaluates Φ with the very tensors of the forward pass, e.g. under functional_call)
    module: Any = None
    param_names: Sequence[str] = ()
    coupling: np.ndarray | None = None
    mean_jacobian: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None
    cache: JacobianCache | None = None
    cache_key: Any = None
    #: optional ``adjoint(K, h, us, Φ(K)) -> (w ↦ (∂Φ/∂K)ᵀ w)`` in closed form (fields with an
    #: affine form); otherwise the backward pass takes vector–Jacobian products through autograd
    adjoint: Callable[[Tensor, Tensor, Tensor, Tensor], Callable[[Tensor], Tensor]] | None = None
    #: optional ``input_grads(K, h, us, Φ(K), w) -> {"h": ∂, "us": ∂, id(param): ∂}``: the
    #: products ``wᵀ ∂Φ/∂(h, us, params)`` in closed form (fields with an affine form, whose
    #: only parameter inside Φ is the recurrent weight); otherwise autograd through Φ
    input_grads: Callable[..., dict[Any, Tensor]] | None = None


def _scaled_residual(G: Tensor, K: Tensor) -> Tensor:
    """Per-sample max|G| / (1 + max|K|) (batch,)."""
    flat_g = G.reshape(G.shape[0], -1).abs().amax(dim=1)
    flat_k = K.reshape(K.shape[0], -1).abs().amax(dim=1)
    return flat_g / (1.0 + flat_k)


def _singular(what: str, exc: Exception) -> ConvergenceError:
    return ConvergenceError(f"{what} is singular ({exc}); the implicit stage equations have no unique "
                            "solution near the iterate — reduce dt or check the field for NaN/huge weights")


# -- dense per-sample Newton ("full", "frozen", and the fallback) ------------------------------
def _newton_block(phi_fn: Callable[[Tensor], Tensor], dphi_fn: Callable[[Tensor], Tensor], K: Tensor,
                  tol: float, maxiter: int, frozen: bool = False) -> tuple[Tensor, int, float, bool]:
    """Newton on G(K) = K − Φ(K) with K: (batch, m) → (K, iterations, residual, converged)."""
    iters = 0
    eye = torch.eye(K.shape[1], dtype=K.dtype, device=K.device)
    res = float("inf")
    lu = None
    try:
        for _ in range(maxiter + 1):
            G = K - phi_fn(K)
            r = _scaled_residual(G, K)
            res = float(r.max())
            if res <= tol:
                return K, iters, res, True
            if res != res or iters >= maxiter:  # NaN or out of iterations
                break
            if frozen:
                if lu is None:
                    LU, piv, info = torch.linalg.lu_factor_ex(eye - dphi_fn(K))
                    if bool((info != 0).any()):
                        raise torch.linalg.LinAlgError(f"U is exactly singular for {int((info != 0).sum())} "
                                                       "sample(s) of the batch")
                    lu = (LU, piv)
                K = K - torch.linalg.lu_solve(*lu, G.unsqueeze(-1)).squeeze(-1)
            else:
                K = K - torch.linalg.solve(eye - dphi_fn(K), G.unsqueeze(-1)).squeeze(-1)
            iters += 1
    except torch.linalg.LinAlgError as exc:
        raise _singular("newton_jacobian: the Newton matrix I − ∂Φ/∂K", exc) from exc
    return K, iters, res, False


def _dense_solve(problem: StageProblem, K0: Tensor, h: Tensor, us: Tensor, tol: float, maxiter: int,
                 frozen: bool) -> tuple[Tensor, int, float, bool]:
    B, s, n = K0.shape
    if problem.sequential:
        K = K0.clone()
        total, worst, ok = 0, 0.0, True
        for i in range(s):
            def phi_i(Ki: Tensor, i: int = i) -> Tensor:
                K[:, i] = Ki
                return problem.stage_phi(i, K, h, us)  # type: ignore[misc]

            def dphi_i(Ki: Tensor, i: int = i) -> Tensor:
                K[:, i] = Ki
                return problem.stage_dphi(i, K, h, us)  # type: ignore[misc]

            Ki, it, res, conv = _newton_block(phi_i, dphi_i, K[:, i].clone(), tol, maxiter, frozen)
            K[:, i] = Ki
            total += it
            worst = max(worst, res)
            ok = ok and conv
        return K, total, worst, ok

    def phi(Kf: Tensor) -> Tensor:
        return problem.phi(Kf.view(B, s, n), h, us).reshape(B, s * n)

    def dphi(Kf: Tensor) -> Tensor:
        return problem.dphi(Kf.view(B, s, n), h, us)

    Kf, iters, res, conv = _newton_block(phi, dphi, K0.reshape(B, s * n), tol, maxiter, frozen)
    return Kf.view(B, s, n), iters, res, conv


# -- shared-Jacobian simplified Newton ------------------------------------------------------------
class _SharedSolver:
    """Simplified Newton with the batch-shared matrix ``I − C⊗J̄`` (reused across steps)."""

    def __init__(self, problem: StageProblem, h: Tensor, us: Tensor, tol: float, maxiter: int) -> None:
        self.problem, self.h, self.us, self.tol, self.maxiter = problem, h, us, tol, maxiter
        cache = problem.cache
        self.matrix = cache.get(problem.cache_key) if cache is not None else None
        self.fresh = False  # built in this step
        self.builds = 0
        self.fresh_rate = cache.fresh_rate if cache is not None and self.matrix is not None else None

    def build(self, K: Tensor) -> SharedNewtonMatrix:
        p = self.problem
        J = p.mean_jacobian(K, self.h, self.us)  # type: ignore[misc]
        self.matrix = SharedNewtonMatrix(p.coupling, J, lower=p.sequential)  # type: ignore[arg-type]
        self.fresh, self.builds, self.fresh_rate = True, self.builds + 1, None
        if p.cache is not None:
            p.cache.put(p.cache_key, self.matrix)
        return self.matrix

    def _rate_check(self, rate: float) -> str:
        """'ok', 'refresh' (stale matrix, slow) or 'diverge' (fresh matrix, no contraction)."""
        if self.fresh:
            if self.fresh_rate is None:
                self.fresh_rate = rate
                if self.problem.cache is not None:
                    self.problem.cache.fresh_rate = rate
            return "diverge" if rate >= 1.0 else "ok"
        if rate > max(_REFRESH_RATE, 2.0 * (self.fresh_rate or 0.0)):
            return "refresh"
        return "ok"

    def _iterate(self, residual_fn: Callable[[Tensor], Tensor], update_fn: Callable[[Tensor], Tensor],
                 Kf: Tensor, rebuild: Callable[[], None]) -> tuple[Tensor, int, float, bool]:
        iters, res, prev = 0, float("inf"), None
        for _ in range(self.maxiter + 1):
            G = residual_fn(Kf)
            r = _scaled_residual(G, Kf)
            res = float(r.max())
            if res <= self.tol:
                return Kf, iters, res, True
            if res != res or iters >= self.maxiter:
                break
            if self.matrix is None:
                rebuild()
            if prev is not None:
                # contraction of the samples not yet converged (0 when none is left): one sync
                rate = float(torch.where(prev > self.tol, r / prev.clamp_min(self.tol), 0.0).max())
                verdict = self._rate_check(rate)
                if verdict == "refresh":
                    rebuild()
                elif verdict == "diverge":
                    break
            prev = r
            Kf = Kf - update_fn(G)
            iters += 1
        return Kf, iters, res, False

    def solve(self, K0: Tensor) -> tuple[Tensor, int, float, bool]:
        p, h, us = self.problem, self.h, self.us
        if not p.sequential:
            def rebuild() -> None:
                self.build(state["K"])

            state = {"K": K0}

            def residual(K: Tensor) -> Tensor:
                state["K"] = K
                return K - p.phi(K, h, us)

            return self._iterate(residual, lambda G: self.matrix.solve(G), K0, rebuild)  # type: ignore[union-attr]
        K = K0.clone()
        total, worst, ok = 0, 0.0, True
        for i in range(p.stages):
            def residual_i(Ki: Tensor, i: int = i) -> Tensor:
                K[:, i] = Ki
                return Ki - p.stage_phi(i, K, h, us)  # type: ignore[misc]

            def rebuild_i() -> None:
                self.build(K)

            Ki, it, res, conv = self._iterate(residual_i, lambda G, i=i: self.matrix.solve_stage(i, G),  # type: ignore[union-attr]
                                              K[:, i].clone(), rebuild_i)
            K[:, i] = Ki
            total += it
            worst = max(worst, res)
            ok = ok and conv
            if not ok:
                break
        return K, total, worst, ok


# -- Jacobian-free Newton–Krylov ----------------------------------------------------------------
def batched_gmres(matvec: Callable[[Tensor], Tensor], b: Tensor, rtol: float, restart: int = 30,
                  max_restarts: int = 5, x0: Tensor | None = None) -> tuple[Tensor, bool, int]:
    """GMRES on independent systems ``A_b x_b = b_b`` (rows of ``b``: (batch, m)).

    ``matvec`` maps (batch, m) → (batch, m).  Stops when every ‖b − A x‖₂ ≤ rtol ‖b‖₂.
    Returns (x, converged, matvecs).

    >>> import torch
    >>> A = torch.tensor([[[2.0, 1.0], [0.0, 3.0]]]).repeat(2, 1, 1)
    >>> x, ok, _ = batched_gmres(lambda v: (A @ v.unsqueeze(-1)).squeeze(-1), torch.ones(2, 2), 1e-6)
    >>> ok, torch.allclose(x[0], torch.tensor([1 / 3, 1 / 3]))
    (True, True)
    """
    B, m = b.shape
    k_max = max(1, min(restart, m))
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    bnorm = torch.linalg.vector_norm(b, dim=1)
    target = rtol * bnorm
    tiny = torch.finfo(b.dtype).tiny
    matvecs = 0
    for cycle in range(max_restarts):
        if cycle == 0 and x0 is None:
            r = b.clone()
        else:
            r = b - matvec(x)
            matvecs += 1
        beta = torch.linalg.vector_norm(r, dim=1)
        if bool((beta <= target).all()):
            return x, True, matvecs
        V = [r / beta.clamp_min(tiny).unsqueeze(1)]
        H = b.new_zeros(B, k_max + 1, k_max)
        e1 = b.new_zeros(B, k_max + 1)
        e1[:, 0] = beta
        y = None
        for j in range(k_max):
            w = matvec(V[j])
            matvecs += 1
            for i in range(j + 1):  # modified Gram–Schmidt, per sample
                hij = (V[i] * w).sum(1)
                H[:, i, j] = hij
                w = w - hij.unsqueeze(1) * V[i]
            hn = torch.linalg.vector_norm(w, dim=1)
            H[:, j + 1, j] = hn
            V.append(w / hn.clamp_min(tiny).unsqueeze(1))
            Hj, rhs = H[:, : j + 2, : j + 1], e1[:, : j + 2]
            y = torch.linalg.lstsq(Hj, rhs.unsqueeze(-1)).solution.squeeze(-1)
            res = torch.linalg.vector_norm(rhs - (Hj @ y.unsqueeze(-1)).squeeze(-1), dim=1)
            if bool((res <= target).all()):
                break
        assert y is not None
        x = x + (torch.stack(V[: y.shape[1]], dim=2) @ y.unsqueeze(-1)).squeeze(-1)
        if bool((res <= target).all()):
            return x, True, matvecs
    r = b - matvec(x)
    return x, bool((torch.linalg.vector_norm(r, dim=1) <= target * 10).all()), matvecs + 1


def _jvp_fn(fn: Callable[[Tensor], Tensor], K: Tensor) -> Callable[[Tensor], Tensor]:
    """v ↦ (∂fn/∂K) v by forward-mode AD (torch.func.jvp)."""
    def jvp(v: Tensor) -> Tensor:
        return torch.func.jvp(fn, (K,), (v,))[1]
    return jvp


def _krylov_solve(problem: StageProblem, K0: Tensor, h: Tensor, us: Tensor, tol: float,
                  maxiter: int) -> tuple[Tensor, int, float, bool, int]:
    B, s, n = K0.shape
    K, iters, res, matvecs = K0, 0, float("inf"), 0

    def phi(Kf: Tensor) -> Tensor:
        return problem.phi(Kf.view(B, s, n), h, us).reshape(B, s * n)

    Kf = K.reshape(B, s * n)
    for _ in range(maxiter + 1):
        G = Kf - phi(Kf)
        res = float(_scaled_residual(G, Kf).max())
        if res <= tol or res != res or iters >= maxiter:
            break
        jvp = _jvp_fn(phi, Kf)
        d, _, mv = batched_gmres(lambda v: v - jvp(v), -G, _KRYLOV_FORCING, restart=min(s * n, 40))
        matvecs += mv
        Kf = Kf + d
        iters += 1
    return Kf.view(B, s, n), iters, res, res <= tol, matvecs


# -- the autograd Function ---------------------------------------------------------------------------
class _ImplicitFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, problem: StageProblem, options: NewtonOptions, K0: Tensor, h: Tensor,
                us: Tensor, *params: Tensor) -> Tensor:
        tol = options.tol if options.tol is not None else default_newton_tol(h.dtype)
        B = K0.shape[0]
        mode = options.jacobian
        matrix = None
        extra: dict[str, Any] = {"newton_jacobian": mode}
        with torch.no_grad():
            if B == 0:  # an empty batch: nothing to solve, an empty result
                K, iters, res, conv = K0.clone(), 0, 0.0, True
            elif mode == "shared" and problem.coupling is not None and problem.mean_jacobian is not None:
                solver = _SharedSolver(problem, h, us, tol, options.maxiter)
                try:
                    K, iters, res, conv = solver.solve(K0)
                except torch.linalg.LinAlgError:
                    K, iters, res, conv = K0, 0, float("inf"), False
                extra.update(jacobian_updates=solver.builds, fallback=False)
                matrix = solver.matrix
                if not conv and res == res:
                    # one shared Jacobian does not fit this batch (or maxiter too small): full Newton
                    K2, it2, res, conv = _dense_solve(problem, K0, h, us, tol, options.maxiter, False)
                    K, iters, matrix = K2, iters + it2, None
                    extra["fallback"] = True
                    if problem.cache is not None:
                        problem.cache.clear()
            elif mode == "krylov":
                K, iters, res, conv, mv = _krylov_solve(problem, K0, h, us, tol, options.maxiter)
                extra["krylov_matvecs"] = mv
            else:
                K, iters, res, conv = _dense_solve(problem, K0, h, us, tol, options.maxiter, mode == "frozen")
        problem.stats.update(newton_iterations=iters, residual=res, converged=conv, newton_tol=tol, **extra)
        if not conv:
            msg = (f"newton_maxiter: Newton iterations for the implicit stages did not converge to "
                   f"newton_tol={tol:g} within newton_maxiter={options.maxiter} iterations "
                   f"(scaled residual {res:.3e}); reduce dt, raise newton_maxiter/newton_tol, or pass "
                   "on_nonconvergence='flag'")
            if options.on_nonconvergence == "raise":
                raise ConvergenceError(msg)
            if options.on_nonconvergence == "warn":
                warnings.warn(msg, RuntimeWarning, stacklevel=4)
        ctx.problem = problem
        ctx.params = params  # leaves (module parameters): kept by reference
        ctx.matrix = matrix
        ctx.mode = mode
        ctx.tol = tol
        ctx.maxiter = options.maxiter
        ctx.save_for_backward(K, h, us)
        return K

    @staticmethod
    def backward(ctx: Any, gK: Tensor) -> tuple[Any, ...]:
        K, h, us = ctx.saved_tensors
        params = ctx.params
        problem: StageProblem = ctx.problem
        B, s, n = K.shape
        inputs = [h, us, *params]
        need = [ctx.needs_input_grad[3], ctx.needs_input_grad[4], *ctx.needs_input_grad[5:]]
        if B == 0:
            return (None, None, None, *[torch.zeros_like(x) if nd else None for x, nd in zip(inputs, need)])
        closed = problem.adjoint is not None and _module_params_current(problem, params)
        if closed and problem.input_grads is not None:
            # everything in closed form: no graph of Φ is built or differentiated
            with torch.no_grad():
                Phi = problem.phi(K, h, us)
                vjp = problem.adjoint(K, h, us, Phi)
                w = _adjoint_solve(ctx, problem, K, h, us, gK.contiguous(), vjp)
                by = problem.input_grads(K, h, us, Phi, w)
            keys: list[Any] = ["h", "us", *[id(p) for p in params]]
            full = [(by.get(k) if by.get(k) is not None else torch.zeros_like(x)) if nd else None
                    for k, nd, x in zip(keys, need, inputs)]
            return (None, None, None, *full)
        with torch.enable_grad():
            K_ = K.detach().requires_grad_(not closed)
            h_ = h.detach().requires_grad_(True)
            us_ = us.detach().requires_grad_(True)
            out = _phi_with_params(problem, params, K_, h_, us_)
            if closed:
                with torch.no_grad():
                    vjp = problem.adjoint(K, h, us, out.detach())  # type: ignore[misc]
            else:
                def vjp(w: Tensor) -> Tensor:
                    g = torch.autograd.grad(out, K_, w, retain_graph=True, allow_unused=True)[0]
                    return torch.zeros_like(w) if g is None else g

            w = _adjoint_solve(ctx, problem, K, h, us, gK.contiguous(), vjp)
            inputs_ = [h_, us_, *params]
            sel = [x for x, nd in zip(inputs_, need) if nd]
            grads = torch.autograd.grad(out, sel, w, allow_unused=True) if sel else ()
        it = iter(grads)
        full = [next(it) if nd else None for nd in need]
        full = [g if g is not None or not nd else torch.zeros_like(x)
                for g, nd, x in zip(full, need, inputs)]
        return (None, None, None, *full)


def _adjoint_solve(ctx: Any, problem: StageProblem, K: Tensor, h: Tensor, us: Tensor, v: Tensor,
                   vjp: Callable[[Tensor], Tensor]) -> Tensor:
    """w with (I − ∂Φ/∂K)ᵀ w = v, by the forward pass's factorisation where there is one."""
    B, s, n = K.shape
    tol = ctx.tol
    with torch.no_grad():
        vnorm = v.reshape(B, -1).abs().amax(dim=1)
        if ctx.matrix is not None:
            M: SharedNewtonMatrix = ctx.matrix
            w = M.solve(v, transpose=True)
            prev = None
            for _ in range(2 * ctx.maxiter + 10):
                R = v - w + vjp(w)
                r = R.reshape(B, -1).abs().amax(dim=1) / vnorm.clamp_min(torch.finfo(v.dtype).tiny)
                rmax = float(r.max())
                if rmax <= tol:
                    return w
                if rmax != rmax or (prev is not None and rmax >= prev):
                    break  # not contracting: fall back below
                prev = rmax
                w = w + M.solve(R, transpose=True)
        elif ctx.mode == "krylov":
            x, ok, _ = batched_gmres(lambda x: x - vjp(x.view(B, s, n)).reshape(B, -1), v.reshape(B, -1),
                                     max(tol, torch.finfo(v.dtype).eps * 10), restart=min(s * n, 40))
            if ok:
                return x.view(B, s, n)
        try:
            Jm = problem.dphi(K, h, us)  # (B, sn, sn)
            eye = torch.eye(s * n, dtype=K.dtype, device=K.device)
            return torch.linalg.solve((eye - Jm).transpose(1, 2), v.reshape(B, s * n, 1)).view(B, s, n)
        except torch.linalg.LinAlgError as exc:
            raise _singular("backward: the transposed Newton matrix (I − ∂Φ/∂K)ᵀ", exc) from exc


def graph_leaves(out: Tensor, known: Sequence[Tensor] = ()) -> list[Tensor]:
    """Leaf tensors requiring grad in the graph of ``out`` that are not among ``known``."""
    known_ids = {id(k) for k in known}
    found: dict[int, Tensor] = {}
    seen: set[Any] = set()
    stack = [out.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        var = getattr(fn, "variable", None)
        if var is not None and id(var) not in known_ids:
            found[id(var)] = var
        stack.extend(f for f, _ in fn.next_functions)
    return list(found.values())


class _Apply(torch.nn.Module):
    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, fn: Callable[..., Tensor], *args: Tensor) -> Tensor:
        return fn(*args)


def _module_params_current(problem: StageProblem, params: Sequence[Tensor]) -> bool:
    """Whether the module still holds the very parameter tensors of the forward pass."""
    mod = problem.module
    if mod is None or not problem.param_names:
        return True
    current = dict(mod.named_parameters())
    return all(current.get(n) is p for n, p in zip(problem.param_names, params))


def _phi_with_params(problem: StageProblem, params: Sequence[Tensor], *args: Tensor) -> Tensor:
    if _module_params_current(problem, params):
        return problem.phi(*args)
    mod = problem.module
    from torch.func import functional_call

    swap = {"module." + n: p for n, p in zip(problem.param_names, params)}
    return functional_call(_Apply(mod), swap, (problem.phi, *args), strict=False)


def differentiable_inputs(field: torch.nn.Module, probe: Callable[[], Tensor]) -> tuple[list[str], list[Tensor]]:
    """Names and tensors Φ must be differentiated against: the field's parameters, plus —
    for a :class:`CallableField` wrapping a plain function — tensors its closure captured
    (found by evaluating ``probe()`` once with a graph)."""
    named = [(nm, q) for nm, q in field.named_parameters() if q.requires_grad]
    names, params = [nm for nm, _ in named], [q for _, q in named]
    if getattr(field, "captures_closure", False) and torch.is_grad_enabled():
        with torch.enable_grad():
            out = probe()
        if out.requires_grad:
            params += graph_leaves(out, params)
    return names, params


@torch.compiler.disable
def solve_fixed_point(problem: StageProblem, options: NewtonOptions, K0: Tensor, h: Tensor, us: Tensor,
                      params: Sequence[Tensor]) -> Tensor:
    """Solve ``K = Φ(K; h, us)`` by Newton; differentiable by the implicit function theorem.

    Opaque to ``torch.compile`` (data-dependent Newton loop, hand-written backward)."""
    return _ImplicitFunction.apply(problem, options, K0.detach(), h, us, *params)
