"""Newton solves of implicit stage equations with an implicit-function-theorem backward pass.

Every implicit scheme of the package is written as a fixed point ``K = Φ(K; h, u, θ)``:

* implicit Runge–Kutta: ``K_i = f(h + dt Σ_j a_ij K_j, u_i, t_i)`` (K: the stage derivatives);
* implicit linear multistep: ``y = c + dt β_k f(y, u)``.

The forward pass runs Newton on ``G(K) = K − Φ(K) = 0`` without recording a graph.  The
backward pass uses the implicit function theorem: for an upstream gradient ``v = ∂L/∂K``,
solve ``(I − ∂Φ/∂K)ᵀ w = v`` and return ``wᵀ ∂Φ/∂(h, u, θ)`` — one linear solve and one
vector–Jacobian product, so memory does not grow with the number of Newton iterations.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from ..errors import ConvergenceError

__all__ = ["StageProblem", "NewtonOptions", "solve_fixed_point", "default_newton_tol"]


def default_newton_tol(dtype: torch.dtype) -> float:
    """1e-10 in float64, 1e-5 in float32 (≈ 100 ulp of an O(1) stage value)."""
    return 1e-10 if dtype == torch.float64 else 1e-5 if dtype == torch.float32 else 1e-2


@dataclass
class NewtonOptions:
    tol: float | None = None
    maxiter: int = 20
    on_nonconvergence: str = "raise"  # "raise" | "warn" | "flag"
    #: "full": Jacobian re-evaluated and factorised every iteration (quadratic convergence);
    #: "frozen": simplified Newton — Jacobian at the predictor, LU-factorised once, reused
    jacobian: str = "full"

    def __post_init__(self) -> None:
        if self.tol is not None and not (isinstance(self.tol, (int, float)) and self.tol > 0):
            raise ValueError(f"newton_tol: expected a positive number or None, got {self.tol!r}")
        if isinstance(self.maxiter, bool) or not isinstance(self.maxiter, int) or self.maxiter < 1:
            raise ValueError(f"newton_maxiter: expected a positive integer, got {self.maxiter!r}")
        if self.jacobian not in ("full", "frozen"):
            raise ValueError(f"newton_jacobian: expected 'full' or 'frozen', got {self.jacobian!r}")
        if self.on_nonconvergence not in ("raise", "warn", "flag"):
            raise ValueError("on_nonconvergence: expected 'raise', 'warn' or 'flag', got "
                             f"{self.on_nonconvergence!r}")


@dataclass
class StageProblem:
    """A fixed point ``K = Φ(K; h, us)`` with ``K`` of shape (batch, s, n).

    ``phi(K, h, us)`` evaluates Φ; ``dphi(K, h, us)`` returns ∂Φ/∂K as (batch, s·n, s·n);
    ``blocks`` (optional) is the lower-triangular structure for stage-by-stage solves
    (diagonally implicit methods): ``diag_solve(i, K, h, us)`` then solves stage i alone.
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


def _scaled_residual(G: Tensor, K: Tensor) -> Tensor:
    """Per-sample max|G| / (1 + max|K|) (batch,)."""
    flat_g = G.reshape(G.shape[0], -1).abs().amax(dim=1)
    flat_k = K.reshape(K.shape[0], -1).abs().amax(dim=1)
    return flat_g / (1.0 + flat_k)


def _newton_block(phi_fn: Callable[[Tensor], Tensor], dphi_fn: Callable[[Tensor], Tensor], K: Tensor,
                  tol: float, maxiter: int, frozen: bool = False) -> tuple[Tensor, int, float, bool]:
    """Newton on G(K) = K − Φ(K) with K: (batch, m) → (K, iterations, residual, converged)."""
    iters = 0
    eye = torch.eye(K.shape[1], dtype=K.dtype, device=K.device)
    res = float("inf")
    lu = None
    for _ in range(maxiter + 1):
        G = K - phi_fn(K)
        r = _scaled_residual(G, K)
        res = float(r.max()) if r.numel() else 0.0
        if res <= tol:
            return K, iters, res, True
        if res != res or iters >= maxiter:  # NaN or out of iterations
            break
        if frozen:
            if lu is None:
                lu = torch.linalg.lu_factor(eye - dphi_fn(K))
            K = K - torch.linalg.lu_solve(*lu, G.unsqueeze(-1)).squeeze(-1)
        else:
            K = K - torch.linalg.solve(eye - dphi_fn(K), G.unsqueeze(-1)).squeeze(-1)
        iters += 1
    return K, iters, res, False


class _ImplicitFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, problem: StageProblem, options: NewtonOptions, K0: Tensor, h: Tensor,
                us: Tensor, *params: Tensor) -> Tensor:
        tol = options.tol if options.tol is not None else default_newton_tol(h.dtype)
        B, s, n = K0.shape
        with torch.no_grad():
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

                    Ki, it, res, conv = _newton_block(phi_i, dphi_i, K[:, i].clone(), tol, options.maxiter,
                                                      options.jacobian == "frozen")
                    K[:, i] = Ki
                    total += it
                    worst = max(worst, res)
                    ok = ok and conv
                iters, res, conv = total, worst, ok
            else:
                def phi(Kf: Tensor) -> Tensor:
                    return problem.phi(Kf.view(B, s, n), h, us).reshape(B, s * n)

                def dphi(Kf: Tensor) -> Tensor:
                    return problem.dphi(Kf.view(B, s, n), h, us)

                Kf, iters, res, conv = _newton_block(phi, dphi, K0.reshape(B, s * n), tol, options.maxiter,
                                                     options.jacobian == "frozen")
                K = Kf.view(B, s, n)
        problem.stats.update(newton_iterations=iters, residual=res, converged=conv, newton_tol=tol)
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
        ctx.save_for_backward(K, h, us)
        return K

    @staticmethod
    def backward(ctx: Any, gK: Tensor) -> tuple[Any, ...]:
        K, h, us = ctx.saved_tensors
        params = ctx.params
        problem: StageProblem = ctx.problem
        B, s, n = K.shape
        with torch.no_grad():
            M = problem.dphi(K, h, us)  # (B, sn, sn)
            eye = torch.eye(s * n, dtype=K.dtype, device=K.device)
            w = torch.linalg.solve((eye - M).transpose(1, 2), gK.reshape(B, s * n, 1)).view(B, s, n)
        with torch.enable_grad():
            h_ = h.detach().requires_grad_(True)
            us_ = us.detach().requires_grad_(True)
            out = _phi_with_params(problem, params, K.detach(), h_, us_)
            inputs = [h_, us_, *params]
            need = [ctx.needs_input_grad[3], ctx.needs_input_grad[4], *ctx.needs_input_grad[5:]]
            sel = [x for x, nd in zip(inputs, need) if nd]
            grads = torch.autograd.grad(out, sel, w, allow_unused=True) if sel else ()
        it = iter(grads)
        full = [next(it) if nd else None for nd in need]
        full = [g if g is not None or not nd else torch.zeros_like(x)
                for g, nd, x in zip(full, need, inputs)]
        return (None, None, None, *full)


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


def _phi_with_params(problem: StageProblem, params: Sequence[Tensor], *args: Tensor) -> Tensor:
    mod = problem.module
    if mod is None or not problem.param_names:
        return problem.phi(*args)
    current = dict(mod.named_parameters())
    if all(current.get(n) is p for n, p in zip(problem.param_names, params)):
        return problem.phi(*args)
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
