"""The embedded reference backend: NumPy fixed-step integrators, SciPy ``solve_ivp`` at
tight tolerances, and mpmath's Taylor-series ``odefun`` as high-precision ground truth.

>>> b = ScipyBackend()
>>> sol = b.solve("linear", "RK4", dt=0.1)
>>> bool(abs(sol.final[0] - np.exp(-1.0)) < 1e-6)
True
>>> ref = b.solve("vanderpol", saveat=[2.0])           # DOP853 at rtol 2.5e-14
>>> bool(abs(ref.final[0] - 0.3233166670461620) < 1e-11)
True
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np

from .._checks import check_step_size
from .._mp import workdps
from ..methods.multistep import LinearMultistep
from ..methods.tableau import ButcherTableau
from .backend import Backend, Method, Solution, _as_method, imag_interval, real_interval, stability_function_values
from .integrators import integrate_lmm, integrate_rk, rk_step
from .problems import Problem, get_problem

__all__ = ["ScipyBackend", "REFERENCE_ALGS"]

#: adaptive reference solvers: SciPy's solve_ivp methods and mpmath's odefun
REFERENCE_ALGS = ("DOP853", "Radau", "BDF", "LSODA", "RK45", "mpmath")
_DEFAULT_TOL = {"DOP853": (2.5e-14, 1e-16), "RK45": (1e-12, 1e-14), "Radau": (1e-13, 1e-15),
                "BDF": (1e-12, 1e-14), "LSODA": (1e-12, 1e-14)}


def _grid_steps(span: float, dt: float, what: str) -> int:
    n = int(round(span / dt))
    if n < 1 or abs(n * dt - span) > 1e-9 * span:
        raise ValueError(f"dt: {dt!r} does not divide the {what} {span!r} into whole steps")
    return n


class ScipyBackend(Backend):
    """Float64 NumPy/SciPy + mpmath reference backend (always available)."""

    name = "scipy"

    def available(self) -> bool:
        return True

    def version_info(self) -> dict[str, str]:
        import mpmath
        import scipy

        return {"numpy": np.__version__, "scipy": scipy.__version__, "mpmath": mpmath.__version__}

    def tableau(self, name: str) -> ButcherTableau:
        m = _as_method(name)
        if not isinstance(m, ButcherTableau):
            raise TypeError(f"name: {name!r} is a {type(m).__name__}, not a Runge-Kutta tableau")
        return m

    # -- fixed step ---------------------------------------------------------------------
    def solve(self, problem: Problem | str, method: str | Method | None = None, *, dt: float | None = None,
              alg: str | None = None, rtol: float | None = None, atol: float | None = None,
              saveat: Sequence[float] | np.ndarray | None = None, dps: int | None = None) -> Solution:
        """See :meth:`Backend.solve`; ``dps`` runs a Runge–Kutta method in mpmath at ``dps``
        digits (``Solution.u`` then holds float64 roundings; :meth:`solve_mp` keeps the digits)."""
        prob = get_problem(problem)
        if method is not None:
            if dt is None:
                raise ValueError("dt: a fixed-step solve with a method needs dt")
            if alg is not None:
                raise ValueError("alg: give either a method (fixed step) or alg (adaptive reference), not both")
            return self._fixed(prob, _as_method(method), float(dt), saveat, dps)
        return self._adaptive(prob, alg, rtol, atol, saveat)

    def solve_mp(self, problem: Problem | str, method: str | Method, dt: float, dps: int = 40) -> np.ndarray:
        """Fixed-step states as an object array of ``mpf`` (``dps`` digits), shape ``(n+1, d)``."""
        prob = get_problem(problem)
        m = _as_method(method)
        if not isinstance(m, ButcherTableau) or prob.segmented or prob.rhs is None:
            raise ValueError("method: extended precision runs Runge-Kutta methods on problems with a generic "
                             "formula and no input sequence")
        import mpmath

        t0, t1 = prob.tspan
        n = _grid_steps(t1 - t0, dt, "time span")
        with workdps(int(dps)):
            dt_mp = (mpmath.mpf(t1) - mpmath.mpf(t0)) / n
            u0 = np.array([mpmath.mpf(float(x)) for x in prob.u0], dtype=object)
            p = prob.params_for(0)
            _, U = integrate_rk(m, lambda t, u: prob.f(t, u, p), u0, t0, dt_mp, n, jac=_jac(prob, p),
                                autonomous=prob.autonomous, dps=int(dps))
        return U

    def _fixed(self, prob: Problem, m: Method, dt: float, saveat: Any, dps: int | None = None) -> Solution:
        if dps is not None:
            U = self.solve_mp(prob, m, dt, dps)
            t = prob.tspan[0] + dt * np.arange(U.shape[0])
            return _select(Solution(t, U.astype(np.float64), self.name, m.name, dt=dt, stats={"dps": int(dps)}),
                           saveat)
        check_step_size(dt, "dt")
        t0, t1 = prob.tspan
        ts, us = [np.array([t0])], [prob.u0[None]]
        u = prob.u0
        if isinstance(m, LinearMultistep):
            if prob.segmented:
                raise ValueError("method: multistep methods cannot restart at input-segment boundaries; "
                                 "use a one-step method for problems with an input sequence")
            n = _grid_steps(t1 - t0, dt, "time span")
            k = m.steps
            if n < k:
                raise ValueError(f"dt: {m.name} needs at least {k} steps, the span holds {n}")
            starts = self.reference(prob, t0 + dt * np.arange(k))  # exact starting values
            f = functools.partial(_rhs, prob, prob.params_for(0))
            t, U = integrate_lmm(m, f, starts, t0, dt, n, jac=_jac(prob, prob.params_for(0)))
            return _select(Solution(t, U, self.name, m.name, dt=dt), saveat)
        bounds = prob.segment_bounds()
        for seg in range(prob.n_segments):
            a, b = float(bounds[seg]), float(bounds[seg + 1])
            n = _grid_steps(b - a, dt, "input step" if prob.segmented else "time span")
            p = prob.params_for(seg)
            t, U = integrate_rk(m, functools.partial(_rhs, prob, p), u, a, dt, n, jac=_jac(prob, p),
                                autonomous=prob.autonomous)
            ts.append(t[1:])
            us.append(U[1:])
            u = U[-1]
        return _select(Solution(np.concatenate(ts), np.concatenate(us), self.name, m.name, dt=dt), saveat)

    def step(self, problem: Problem | str, method: str | Method, t: float, u: np.ndarray, dt: float,
             segment: int = 0, dps: int | None = None) -> np.ndarray:
        prob = get_problem(problem)
        m = _as_method(method)
        if not isinstance(m, ButcherTableau):
            raise TypeError(f"method: step() needs a one-step (Runge-Kutta) method, got {type(m).__name__}")
        p = prob.params_for(segment)
        if dps is not None:
            with workdps(int(dps)):
                return rk_step(m, functools.partial(_rhs, prob, p), float(t), np.asarray(u, dtype=object),
                               dt, jac=_jac(prob, p), autonomous=prob.autonomous, dps=int(dps))
        return rk_step(m, functools.partial(_rhs, prob, p), float(t), np.asarray(u, dtype=np.float64), float(dt),
                       jac=_jac(prob, p), autonomous=prob.autonomous)

    # -- adaptive references -------------------------------------------------------------
    def _adaptive(self, prob: Problem, alg: str | None, rtol: float | None, atol: float | None,
                  saveat: Any) -> Solution:
        t0, t1 = prob.tspan
        if alg is None:
            alg = "Radau" if prob.stiffness == "stiff" else "DOP853"
        if alg not in REFERENCE_ALGS:
            raise ValueError(f"alg: expected one of {REFERENCE_ALGS}, got {alg!r}")
        times = _times(prob, saveat)
        if alg == "mpmath":
            U = self.ground_truth(prob, times)
            return Solution(times, U, self.name, "mpmath.odefun", alg="mpmath", stats={"dps": 30})
        drt, dat = _DEFAULT_TOL[alg]
        rtol = drt if rtol is None else float(rtol)
        atol = dat if atol is None else float(atol)
        from scipy.integrate import solve_ivp

        bounds = prob.segment_bounds()
        U = np.empty((times.size, prob.dim))
        u = np.array(prob.u0)
        nfev = 0
        for seg in range(prob.n_segments):
            a, b = float(bounds[seg]), float(bounds[seg + 1])
            p = prob.params_for(seg)
            kwargs: dict[str, Any] = {}
            if alg in ("Radau", "BDF", "LSODA") and prob.jac is not None:
                kwargs["jac"] = lambda t, y, p=p: prob.jac(t, y, p)
            import warnings

            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*rtol.*too small.*")
                sol = solve_ivp(lambda t, y, p=p: prob.f(t, y, p), (a, b), u, method=alg, rtol=rtol, atol=atol,
                                dense_output=True, **kwargs)
            if not sol.success:
                from ..errors import ConvergenceError

                raise ConvergenceError(f"solve_ivp({alg}) failed on {prob.name}: {sol.message}")
            nfev += int(sol.nfev)
            last = seg == prob.n_segments - 1
            inside = (times >= a) & ((times < b) | (last & (times <= b)))
            if seg == 0:
                inside |= times <= a
            if inside.any():
                U[inside] = sol.sol(times[inside]).T
            u = sol.y[:, -1]
            ends = np.isclose(times, b, rtol=0, atol=1e-12 * max(1.0, abs(b)))
            U[ends] = u
            starts_ = np.isclose(times, a, rtol=0, atol=1e-12 * max(1.0, abs(a)))
            if seg == 0:
                U[starts_] = prob.u0
        if not np.all(np.isfinite(U)):
            from ..errors import NonFiniteError

            raise NonFiniteError(f"reference solution of {prob.name} is not finite")
        return Solution(times, U, self.name, f"solve_ivp.{alg}", alg=alg, rtol=rtol, atol=atol,
                        stats={"nfev": nfev})

    def reference(self, problem: Problem | str, saveat: Sequence[float] | np.ndarray) -> np.ndarray:
        """Exact solution where known, else ``solve_ivp`` at its tightest tolerance."""
        prob = get_problem(problem)
        times = _times(prob, saveat)
        if prob.exact is not None and not prob.segmented:
            return np.stack([np.asarray(prob.exact(float(t)), dtype=np.float64) for t in times])
        return self._adaptive(prob, None, None, None, times).u

    def ground_truth(self, problem: Problem | str, saveat: Sequence[float] | np.ndarray, dps: int = 30) -> np.ndarray:
        """High-precision values (mpmath Taylor series at ``dps`` digits) rounded to float64.

        Exact where the problem has a closed form; problems with input sequences or without a
        generic formula fall back to the tight SciPy reference.
        """
        prob = get_problem(problem)
        times = _times(prob, saveat)
        if prob.exact is not None and not prob.segmented:
            return self.reference(prob, times)
        if prob.rhs is None or prob.segmented:
            return self._adaptive(prob, None, None, None, times).u
        import mpmath

        with workdps(dps):
            F = _odefun(prob, dps)
            return np.array([[float(x) for x in F(mpmath.mpf(float(t)))] for t in times], dtype=np.float64)

    def ground_truth_mp(self, problem: Problem | str, saveat: Sequence[float] | np.ndarray, dps: int = 50) -> np.ndarray:
        """Like :meth:`ground_truth` but keeping ``dps`` digits: object array of ``mpf``."""
        prob = get_problem(problem)
        times = _times(prob, saveat)
        import mpmath

        with workdps(dps):
            if prob.exact is not None and prob.rhs is not None:
                F = _odefun(prob, dps)  # exact closed forms are float64 functions: integrate instead
            elif prob.rhs is None or prob.segmented:
                raise ValueError(f"problem: {prob.name!r} has no generic formula for an mpmath ground truth")
            else:
                F = _odefun(prob, dps)
            t0 = mpmath.mpf(prob.tspan[0])
            span = mpmath.mpf(prob.tspan[1]) - t0
            n = times.size - 1
            grid = np.allclose(times, prob.tspan[0] + (prob.tspan[1] - prob.tspan[0]) * np.arange(n + 1) / max(n, 1))
            pts = [t0 + span * j / n for j in range(n + 1)] if grid and n > 0 else [mpmath.mpf(float(t)) for t in times]
            return np.array([list(F(x)) for x in pts], dtype=object)

    # -- stability ----------------------------------------------------------------------
    def stability(self, method: str | Method, z: Any) -> np.ndarray:
        return stability_function_values(self.tableau(method) if isinstance(method, str) else method, z)

    def real_stability_interval(self, method: str | Method) -> float:
        return real_interval(self.tableau(method) if isinstance(method, str) else method)

    def imag_stability_interval(self, method: str | Method) -> float:
        return imag_interval(self.tableau(method) if isinstance(method, str) else method)


_ODEFUNS: dict[tuple, Any] = {}


def _odefun(prob: Problem, dps: int) -> Any:
    """mpmath's Taylor-series solution object (it caches its expansions), one per problem."""
    import mpmath

    key = (prob.name, id(prob.rhs), tuple((k, float(v)) for k, v in prob.params.items() if np.ndim(v) == 0),
           tuple(prob.u0.tolist()), prob.tspan[0], dps)
    if key not in _ODEFUNS:
        if len(_ODEFUNS) > 32:
            _ODEFUNS.clear()
        _ODEFUNS[key] = mpmath.odefun(lambda t, u: prob.mp_rhs(t, u), mpmath.mpf(prob.tspan[0]),
                                      [mpmath.mpf(x) for x in prob.u0.tolist()])
    return _ODEFUNS[key]


def _rhs(prob: Problem, p: dict, t: float, u: np.ndarray) -> np.ndarray:
    return prob.f(t, u, p)


def _jac(prob: Problem, p: dict):
    if prob.jac is None:
        return None
    return lambda t, u: np.asarray(prob.jac(t, u, p), dtype=np.float64)


def _times(prob: Problem, saveat: Any) -> np.ndarray:
    t0, t1 = prob.tspan
    if saveat is None:
        return np.array([t0, t1])
    times = np.atleast_1d(np.asarray(saveat, dtype=np.float64))
    if times.ndim != 1 or times.size == 0:
        raise ValueError("saveat: expected a non-empty 1-D sequence of times")
    tol = 1e-12 * max(1.0, abs(t1))
    if np.any(times < t0 - tol) or np.any(times > t1 + tol) or np.any(np.diff(times) < 0):
        raise ValueError(f"saveat: expected increasing times inside tspan {prob.tspan}")
    return np.clip(times, t0, t1)


def _select(sol: Solution, saveat: Any) -> Solution:
    if saveat is None:
        return sol
    times = np.atleast_1d(np.asarray(saveat, dtype=np.float64))
    idx = np.searchsorted(sol.t, times - 1e-9 * (sol.dt or 1.0))
    idx = np.clip(idx, 0, sol.t.size - 1)
    if not np.allclose(sol.t[idx], times, rtol=0, atol=1e-9 * (sol.dt or 1.0)):
        raise ValueError("saveat: fixed-step solutions can only be saved at grid points t0 + n*dt")
    return Solution(sol.t[idx], sol.u[idx], sol.backend, sol.method, dt=sol.dt, stats=sol.stats)
