"""An independent float64 NumPy fixed-step integrator for any tableau or multistep method.

Deliberately *not* the torch code of :mod:`odernn_bridge.cells`: it is the yardstick the
cells are checked against.  Explicit Runge–Kutta stages are evaluated in order; implicit
tableaux (diagonally or fully implicit) solve the stage equations
``K_i = f(t + c_i dt, u + dt Σ_j a_ij K_j)`` with Newton's method on the whole stage
vector (Jacobian from the problem or by central differences), iterated to round-off.
States may carry leading batch axes, ``u`` of shape ``(..., d)``: one call steps many
states at once, which is how local errors from every reference state are computed.

>>> from odernn_bridge.methods import get_method
>>> f = lambda t, u: -u
>>> t, U = integrate_rk(get_method("RK4"), f, np.array([1.0]), 0.0, 0.1, 10)
>>> bool(abs(U[-1, 0] - np.exp(-1.0)) < 1e-6)
True
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .._cache import LRUCache, content_key
from .._checks import check_step_size
from .._mp import workdps
from ..errors import ConvergenceError, NonFiniteError
from ..methods.multistep import LinearMultistep
from ..methods.tableau import ButcherTableau

__all__ = ["rk_step", "integrate_rk", "lmm_step", "integrate_lmm", "fd_jacobian", "tableau_arrays"]

RHS = Callable[[float, np.ndarray], np.ndarray]
Jacobian = Callable[[float, np.ndarray], np.ndarray]

_NEWTON_TOL = 4e-16
_NEWTON_MAXITER = 40


def fd_jacobian(f: RHS, t: float, y: np.ndarray) -> np.ndarray:
    """Central-difference Jacobian ``∂f/∂u`` of shape ``(..., d, d)`` at ``y`` (``(..., d)``);
    all 2d perturbed states go through ``f`` in one vectorised call."""
    d = y.shape[-1]
    h = 1e-6 * np.maximum(1.0, np.abs(y))                     # (..., d)
    E = np.eye(d).reshape((d,) + (1,) * (y.ndim - 1) + (d,)) * h   # (d, ..., d)
    Y = np.concatenate([y + E, y - E])                        # (2d, ..., d)
    F = f(t, Y)
    D = (F[:d] - F[d:]) / (2 * np.moveaxis(h, -1, 0)[..., None])   # (d, ..., d): column k
    return np.moveaxis(D, 0, -1)


def _check_finite(x: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(x)):
        raise NonFiniteError(f"{what}: NaN or Inf produced by the integrator (step too large or "
                             "the solution blew up)")


#: mpf coefficient arrays per (method content, digits); keyed on the coefficients, not id()
_COEFFS = LRUCache(maxsize=64)


def tableau_arrays(method: ButcherTableau, dps: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(A, b, c)`` as float64 arrays, or (``dps`` given) object arrays of ``mpmath.mpf``
    computed from the exact coefficients at ``dps`` digits."""
    if dps is None:
        return method.A, method.b, method.c

    def compute() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from ..methods.exact import to_mpf

        with workdps(int(dps)):
            co = method.coefficients
            A = np.array([[to_mpf(x) for x in row] for row in co.A], dtype=object)
            b = np.array([to_mpf(x) for x in co.b], dtype=object)
            c = np.array([to_mpf(x) for x in co.c], dtype=object)
        return A, b, c

    return _COEFFS.get_or_compute((content_key(method), int(dps)), compute)


def rk_step(method: ButcherTableau, f: RHS, t: float, u: np.ndarray, dt: float, *,
            jac: Jacobian | None = None, autonomous: bool = False, dps: int | None = None) -> np.ndarray:
    """One Runge–Kutta step of size ``dt`` from ``(t, u)``; ``u`` of shape ``(..., d)``.

    ``f`` must accept states with extra leading axes; ``autonomous=True`` lets implicit stages
    be evaluated in one call (the time argument is then ignored by ``f``).

    >>> from odernn_bridge.methods import get_method
    >>> float(rk_step(get_method("Euler"), lambda t, u: 2 * u, 0.0, np.array([1.0]), 0.5)[0])
    2.0
    """
    if not isinstance(method, ButcherTableau):
        raise TypeError(f"method: expected a ButcherTableau, got {type(method).__name__}")
    if dps is None:
        u = np.asarray(u, dtype=np.float64)
    else:
        import mpmath

        u = np.asarray(u, dtype=object)
        dt = mpmath.mpf(dt)
    A, b, c = tableau_arrays(method, dps)
    if method.kind == "explicit":
        K = _explicit_stages(A, c, f, t, u, dt)
    else:
        K = _implicit_stages(method, A, c, f, t, u, dt, jac, autonomous, dps)
    return u + dt * np.tensordot(b, K, axes=1)


def _explicit_stages(A: np.ndarray, c: np.ndarray, f: RHS, t: float, u: np.ndarray, dt: Any) -> np.ndarray:
    s = A.shape[0]
    K = np.empty((s,) + u.shape, dtype=u.dtype)
    flat = K.reshape(s, -1)
    for i in range(s):
        if i == 0 or not A[i, :i].any():
            y = u
        else:
            y = u + dt * (A[i, :i] @ flat[:i]).reshape(u.shape)
        K[i] = f(t + c[i] * dt, y)
    return K


def _newton_matrix(A: np.ndarray, Js: np.ndarray, dt: float, batch: tuple[int, ...]) -> np.ndarray:
    """``M[..., (i,a), (j,b)] = δ_ij δ_ab - dt A_ij J_i[a, b]`` from stage Jacobians ``Js (s, ..., d, d)``."""
    s, d = A.shape[0], Js.shape[-1]
    Jb = np.moveaxis(Js, 0, -3)                                   # (..., s, d, d)
    blocks = -dt * A[:, :, None, None] * Jb[..., :, None, :, :]    # (..., s, s, d, d)
    return np.swapaxes(blocks, -3, -2).reshape(batch + (s * d, s * d)) + np.eye(s * d)


def _implicit_stages(m: ButcherTableau, A: np.ndarray, c: np.ndarray, f: RHS, t: float, u: np.ndarray, dt: Any,
                     jac: Jacobian | None, autonomous: bool, dps: int | None) -> np.ndarray:
    """Stage derivatives ``K`` (s, ..., d) of an implicit tableau by Newton's method.

    Simplified Newton first (one Jacobian at ``u``, one inverse, reused), which converges in a
    few iterations for the step sizes of convergence studies; full Newton (stage Jacobians
    refreshed every iteration) when that stalls.
    """
    s = m.stages
    d = u.shape[-1]
    batch = u.shape[:-1]
    # Newton matrices are built and inverted in float64 (an approximate Jacobian suffices:
    # the iteration converges to the precision of the residual, float64 or mpmath)
    u64 = u.astype(np.float64)
    dt64 = float(dt)
    tol = _NEWTON_TOL if dps is None else 10.0 ** (-(int(dps) - 3))
    mp = dps is not None

    def f64(tt: float, y: np.ndarray) -> np.ndarray:
        return np.asarray(f(tt, y), dtype=np.float64)

    def as_work(M: np.ndarray) -> np.ndarray:
        if not mp:
            return M
        import mpmath

        return np.vectorize(mpmath.mpf, otypes=[object])(M)

    def stages_f(K: np.ndarray) -> np.ndarray:
        Y = u + dt * np.tensordot(A, K, axes=1)
        if autonomous:
            return f(t, Y)
        return np.stack([f(t + c[i] * dt, Y[i]) for i in range(s)])

    def solve(Minv: np.ndarray, G: np.ndarray) -> np.ndarray:
        rhs = -np.moveaxis(G, 0, -2).reshape(batch + (s * d, 1))
        delta = (Minv @ rhs)[..., 0]
        return np.moveaxis(delta.reshape(batch + (s, d)), -2, 0)

    A64, c64 = m.A, m.c
    f0 = f(t, u)
    K = np.broadcast_to(f0, (s,) + u.shape).copy()
    J0 = jac(t, u64) if jac is not None else fd_jacobian(f64, t, u64)
    Minv = as_work(np.linalg.inv(_newton_matrix(A64, np.broadcast_to(J0, (s,) + J0.shape), dt64, batch)))
    prev = np.inf
    for full in (False, True):
        for _ in range(_NEWTON_MAXITER):
            G = K - stages_f(K)
            if full:
                Y = (u + dt * np.tensordot(A, K, axes=1)).astype(np.float64)
                Js = np.stack([(jac(t + c64[i] * dt64, Y[i]) if jac is not None
                                else fd_jacobian(f64, t + c64[i] * dt64, Y[i])) for i in range(s)])
                Minv = as_work(np.linalg.inv(_newton_matrix(A64, Js, dt64, batch)))
            delta = solve(Minv, G)
            K = K + delta
            _check_finite(np.asarray(K, dtype=np.float64), "stages")
            size = float(np.max(np.abs(delta)))
            scale = 1.0 + float(np.max(np.abs(K)))
            if size <= tol * scale:
                return K
            if size <= 1e3 * tol * scale and size >= 0.5 * prev:  # stalled at round-off level
                return K
            if size > 0.9 * prev and size > 1e3 * tol * scale:   # not contracting: go to full Newton
                prev = np.inf
                break
            prev = size
        else:
            if prev <= 1e5 * tol * (1.0 + float(np.max(np.abs(K)))):
                return K
    raise ConvergenceError(f"Newton iteration for the stages of {m.name} did not converge "
                           f"(last update {prev:.3g}); try a smaller dt")


def integrate_rk(method: ButcherTableau, f: RHS, u0: np.ndarray, t0: float, dt: float, n_steps: int, *,
                 jac: Jacobian | None = None, autonomous: bool = False,
                 dps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n_steps`` steps of size ``dt``; returns times ``(n+1,)`` and states ``(n+1, ..., d)``
    (float64, or object arrays of ``mpf`` at ``dps`` digits)."""
    if n_steps < 0 or int(n_steps) != n_steps:
        raise ValueError(f"n_steps: expected a non-negative integer, got {n_steps!r}")
    check_step_size(float(dt), "dt")
    if dps is None:
        u = np.asarray(u0, dtype=np.float64)
        step = dt
    else:
        import mpmath

        u = np.asarray(u0, dtype=object)
        step = mpmath.mpf(dt)
    U = np.empty((int(n_steps) + 1,) + u.shape, dtype=u.dtype)
    U[0] = u
    for n in range(int(n_steps)):
        u = rk_step(method, f, t0 + n * dt, u, step, jac=jac, autonomous=autonomous, dps=dps)
        U[n + 1] = u
    _check_finite(np.asarray(U, dtype=np.float64), "solution")
    return t0 + dt * np.arange(int(n_steps) + 1), U


def lmm_step(method: LinearMultistep, f: RHS, t: float, history: np.ndarray, dt: float, *,
             f_history: np.ndarray | None = None, jac: Jacobian | None = None) -> np.ndarray:
    """The state after the ``k`` states ``history`` (oldest first, shape ``(k, ..., d)``),
    at time ``t + k·dt`` where ``t`` is the time of ``history[0]``."""
    k = method.steps
    if history.shape[0] != k:
        raise ValueError(f"history: {method.name} needs {k} previous states, got {history.shape[0]}")
    a, bt = method.alpha, method.beta
    if f_history is None:
        f_history = np.stack([f(t + j * dt, history[j]) for j in range(k)])
    r = -np.tensordot(a[:k], history, axes=1) + dt * np.tensordot(bt[:k], f_history, axes=1)
    tk = t + k * dt
    if bt[k] == 0.0:
        return r
    y = r + dt * bt[k] * f_history[-1]  # predictor
    d = y.shape[-1]
    prev = np.inf
    for _ in range(_NEWTON_MAXITER):
        G = y - dt * bt[k] * f(tk, y) - r
        J = jac(tk, y) if jac is not None else fd_jacobian(f, tk, y)
        M = np.eye(d) - dt * bt[k] * J
        delta = np.linalg.solve(M, -G[..., None])[..., 0]
        y = y + delta
        _check_finite(y, "state")
        size = float(np.max(np.abs(delta)))
        scale = 1.0 + float(np.max(np.abs(y)))
        if size <= _NEWTON_TOL * scale or (size <= 1e-12 * scale and size >= 0.5 * prev):
            return y
        prev = size
    raise ConvergenceError(f"Newton iteration of {method.name} did not converge; try a smaller dt")


def integrate_lmm(method: LinearMultistep, f: RHS, starts: np.ndarray, t0: float, dt: float, n_steps: int,
                  *, jac: Jacobian | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Multistep integration from the ``k`` starting values ``starts`` (at ``t0 + j·dt``)."""
    k = method.steps
    starts = np.asarray(starts, dtype=np.float64)
    if starts.shape[0] != k:
        raise ValueError(f"starts: {method.name} needs {k} starting values, got {starts.shape[0]}")
    if n_steps < k - 1:
        raise ValueError(f"n_steps: expected at least {k - 1} steps for {method.name}")
    U = np.empty((int(n_steps) + 1,) + starts.shape[1:])
    U[:k] = starts
    F = [f(t0 + j * dt, starts[j]) for j in range(k)]
    for n in range(int(n_steps) + 1 - k):
        y = lmm_step(method, f, t0 + n * dt, U[n:n + k], dt, f_history=np.stack(F[-k:]), jac=jac)
        U[n + k] = y
        F.append(f(t0 + (n + k) * dt, y))
    _check_finite(U, "solution")
    return t0 + dt * np.arange(int(n_steps) + 1), U
