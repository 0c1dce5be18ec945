r"""The order-condition manifold of explicit Runge–Kutta tableaux (float64, NumPy only).

The free coefficients of an explicit ``s``-stage tableau are packed into one vector

    θ = (a_10, a_20, a_21, a_30, …, a_{s-1,s-2}, b_0, …, b_{s-1})      (s(s-1)/2 + s entries)

(strictly lower triangle of A row by row, then b; ``c = A𝟙`` is implied).  Order ``p`` is
the set ``{θ : r(θ) = 0}`` with one residual per rooted tree ``t``, ``|t| ≤ p``:

    r_t(θ) = Φ_t(θ) − 1/γ(t),   Φ_t = bᵀ Ψ_t(A)

(:mod:`odernn_bridge.methods.trees`).  Every condition is linear in ``b`` for fixed ``A``
(the quadrature conditions ``bᵀc^{k-1} = 1/k`` among them); the ones of trees with more
than one level are nonlinear in ``A``.  :class:`ExplicitOrderConditions` evaluates all
residuals and their Jacobian ``∂r/∂θ`` in one forward-mode pass over the trees (each
subtree's ``A Ψ`` and its derivative computed once), and :meth:`~ExplicitOrderConditions.project`
maps a point onto the manifold by Gauss–Newton steps of minimum norm
(``Δθ = −J⁺ r``).  The first such step is the exact orthogonal projection onto the
linearised conditions; on the linear ones (all of them, for fixed A) it is exact.

>>> import numpy as np
>>> oc = ExplicitOrderConditions(stages=4, order=4)
>>> from odernn_bridge import get_method
>>> theta = oc.pack(get_method("RK4").A, get_method("RK4").b)
>>> bool(np.abs(oc.residual(theta)).max() < 1e-15)  # RK4's floats: rounding only
True
>>> res = oc.project(theta + 0.01)
>>> res.converged, bool(np.abs(oc.residual(res.theta)).max() < 1e-13)
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._checks import check_positive_int
from .trees import Tree, tree_density, trees_up_to

__all__ = ["ExplicitOrderConditions", "Projection", "max_explicit_order", "MAX_LEARNABLE_ORDER",
           "MAX_LEARNABLE_STAGES"]

#: highest order a learnable tableau may be constrained to (17 trees up to order 5).  Order 6
#: is left out: its 37 conditions on 7 stages are dependent (the Jacobian at Butcher's
#: order-6 methods has rank 23 < 37), Gauss–Newton converges only linearly there.
MAX_LEARNABLE_ORDER = 5
#: most stages of a learnable tableau
MAX_LEARNABLE_STAGES = 12

# Butcher's barriers for explicit methods: order p needs at least this many stages
_MIN_STAGES = {1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 7, 7: 9, 8: 11}


def max_explicit_order(stages: int) -> int:
    """Highest order an explicit method with ``stages`` stages can have (Butcher's barriers,
    known up to order 8: 5 needs 6 stages, 6 needs 7, 7 needs 9, 8 needs 11).

    >>> [max_explicit_order(s) for s in range(1, 8)]
    [1, 2, 3, 4, 4, 5, 6]
    """
    s = check_positive_int(stages, "stages")
    return max(p for p, need in _MIN_STAGES.items() if need <= s)


@dataclass(frozen=True)
class Projection:
    """Result of :meth:`ExplicitOrderConditions.project`.

    ``theta``: the projected point (the last iterate when not converged); ``residual``: max
    |r| there; ``start_residual``: max |r| at the starting point; ``iterations``: Gauss–Newton
    steps taken; ``converged``: ``residual <= tol``; ``distance``: ‖θ_out − θ_in‖₂.
    """

    theta: np.ndarray
    residual: float
    start_residual: float
    iterations: int
    converged: bool
    distance: float


class ExplicitOrderConditions:
    """Residuals ``Φ_t − 1/γ(t)`` of all trees ``|t| ≤ order`` for explicit ``stages``-stage
    tableaux, as functions of the packed coefficient vector θ (see the module docstring).

    Args:
        stages: number of stages ``s`` (1 … ``MAX_LEARNABLE_STAGES`` = 12).
        order: order ``p`` (1 … ``MAX_LEARNABLE_ORDER`` = 5, and reachable with ``s`` explicit
            stages: see :func:`max_explicit_order`).
    """

    def __init__(self, stages: int, order: int) -> None:
        s = check_positive_int(stages, "stages")
        p = check_positive_int(order, "order")
        if s > MAX_LEARNABLE_STAGES:
            raise ValueError(f"stages: expected at most {MAX_LEARNABLE_STAGES} stages, got {s}")
        if p > MAX_LEARNABLE_ORDER:
            raise ValueError(f"order: expected an order of at most {MAX_LEARNABLE_ORDER} "
                             f"(the number of trees grows quickly), got {p}")
        if p > max_explicit_order(s):
            need = _MIN_STAGES[p]
            raise ValueError(f"order: an explicit method with {s} stage(s) has order at most "
                             f"{max_explicit_order(s)}; order {p} needs at least {need} stages")
        self.stages, self.order = s, p
        self.trees: list[Tree] = trees_up_to(p)
        self.targets = np.array([1.0 / tree_density(t) for t in self.trees])
        rows, cols = np.tril_indices(s, -1)
        self._rows, self._cols = rows, cols
        self.n_a = len(rows)
        self.n_params = self.n_a + s

    # -- packing -------------------------------------------------------------------------
    def pack(self, A: Any, b: Any) -> np.ndarray:
        """θ from a strictly lower triangular ``A`` (s×s) and ``b`` (s)."""
        A = np.asarray(A, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        s = self.stages
        if A.shape != (s, s) or b.shape != (s,):
            raise ValueError(f"A, b: expected shapes ({s}, {s}) and ({s},), got {A.shape} and {b.shape}")
        if np.any(np.triu(A) != 0):
            raise ValueError("A: expected a strictly lower triangular (explicit) matrix")
        return np.concatenate([A[self._rows, self._cols], b])

    def unpack(self, theta: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(A, b)`` from θ."""
        theta = self._check_theta(theta)
        s = self.stages
        A = np.zeros((s, s))
        A[self._rows, self._cols] = theta[: self.n_a]
        return A, theta[self.n_a:].copy()

    def _check_theta(self, theta: Any) -> np.ndarray:
        theta = np.asarray(theta, dtype=np.float64)
        if theta.shape != (self.n_params,):
            raise ValueError(f"theta: expected {self.n_params} coefficients, got shape {theta.shape}")
        if not np.all(np.isfinite(theta)):
            raise ValueError("theta: contains NaN or Inf")
        return theta

    # -- residuals -------------------------------------------------------------------------
    def residual(self, theta: Any) -> np.ndarray:
        """``r(θ)``, one entry per tree (in :attr:`trees` order)."""
        return self.residual_and_jacobian(theta, jacobian=False)[0]

    def residual_and_jacobian(self, theta: Any, jacobian: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """``r(θ)`` and ``J = ∂r/∂θ`` (n_trees × n_params), by forward-mode differentiation
        of the tree recursion ``Ψ([t1…tm]) = ∏ A Ψ(t_i)``, ``Φ = bᵀΨ``."""
        theta = self._check_theta(theta)
        s, m, na = self.stages, self.n_params, self.n_a
        A = np.zeros((s, s))
        A[self._rows, self._cols] = theta[:na]
        b = theta[na:]
        ones, zeros = np.ones(s), np.zeros((s, m))
        cache: dict[Tree, tuple[np.ndarray, np.ndarray | None]] = {}

        def apsi(t: Tree) -> tuple[np.ndarray, np.ndarray | None]:
            hit = cache.get(t)
            if hit is None:
                psi, dpsi = stage_weights(t)
                v = A @ psi
                dv = None
                if jacobian:
                    dv = A @ dpsi
                    dv[self._rows, np.arange(na)] += psi[self._cols]  # ∂(AΨ)_i/∂a_ij = Ψ_j
                hit = cache[t] = (v, dv)
            return hit

        def stage_weights(t: Tree) -> tuple[np.ndarray, np.ndarray]:
            if not t:
                return ones, zeros
            p, dp = apsi(t[0])
            for ch in t[1:]:
                q, dq = apsi(ch)
                if jacobian:
                    dp = p[:, None] * dq + q[:, None] * dp
                p = p * q
            return p, dp

        r = np.empty(len(self.trees))
        J = np.zeros((len(self.trees), m)) if jacobian else None
        for k, t in enumerate(self.trees):
            psi, dpsi = stage_weights(t)
            r[k] = b @ psi - self.targets[k]
            if J is not None:
                J[k] = b @ dpsi
                J[k, na:] += psi
        return r, J

    # -- projection ------------------------------------------------------------------------
    def project(self, theta: Any, tol: float = 1e-13, maxiter: int = 50) -> Projection:
        """Gauss–Newton steps of minimum norm, ``Δθ = −Jᵀ(JJᵀ + μI)⁻¹ r``, from ``theta``
        until ``max|r| <= tol``, with Levenberg–Marquardt damping ``μ``.

        ``μ`` shrinks tenfold after each step that reduces ‖r‖₂ (so near the manifold the
        steps become the undamped minimum-norm Newton steps ``−J⁺r`` and converge
        quadratically) and grows tenfold after a rejected one.  The damping keeps the walk
        short where ``J`` is nearly rank deficient (tiny singular values would otherwise
        throw the iterate far along the manifold), so the result stays close to the
        orthogonal projection.  Each iteration costs one residual/Jacobian evaluation and a
        (trees × trees) solve.  ``converged`` is False when it stalls or runs out of
        iterations — callers then keep their previous point.
        """
        theta0 = self._check_theta(theta)
        if not (isinstance(tol, (int, float)) and tol > 0):
            raise ValueError(f"tol: expected a positive number, got {tol!r}")
        check_positive_int(maxiter, "maxiter")
        x = theta0.copy()
        r, J = self.residual_and_jacobian(x)
        start = res = float(np.abs(r).max())
        norm = float(r @ r)
        JJ = J @ J.T
        mu = 1e-8 * float(np.trace(JJ))  # damping: a small trust region at the start
        it = 0
        eye = np.eye(len(r))
        while res > tol and it < maxiter:
            it += 1
            try:
                step = J.T @ np.linalg.solve(JJ + mu * eye, r)
            except np.linalg.LinAlgError:
                step = np.linalg.lstsq(J, r, rcond=None)[0]
            cand = x - step
            rc, Jc = self.residual_and_jacobian(cand) if np.all(np.isfinite(cand)) else (None, None)
            new = float(rc @ rc) if rc is not None and np.all(np.isfinite(rc)) else np.inf
            if new < norm:  # accept; trust the linear model more
                x, r, J, norm = cand, rc, Jc, new
                JJ = J @ J.T
                res = float(np.abs(r).max())
                mu = mu / 10
            else:  # reject; shorter, more gradient-like step
                mu = max(mu, 1e-12 * float(np.trace(JJ))) * 10
                if mu > 1e6 * float(np.trace(JJ)):
                    break  # stalled
        return Projection(x, res, start, it, res <= tol, float(np.linalg.norm(x - theta0)))

    # -- stability polynomial ------------------------------------------------------------
    def stability_polynomial(self, theta: Any) -> np.ndarray:
        """Coefficients ``α_0 … α_s`` (ascending) of ``R(z) = Σ α_k z^k``, ``α_k = bᵀA^{k−1}𝟙``
        (``α_0 = 1``).  An order-p method has ``α_k = 1/k!`` for ``k ≤ p``."""
        A, b = self.unpack(theta)
        out = [1.0]
        v = np.ones(self.stages)
        for _ in range(self.stages):
            out.append(float(b @ v))
            v = A @ v
        return np.array(out)
