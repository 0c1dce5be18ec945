"""An in-process stand-in for the loaded Julia session (``ODERNNBridge`` + ``seval``).

It mimics the *interface* of ``src/ODERNNBridge.jl`` as seen through juliacall — tuples
of column-major arrays, Julia-style error messages, the tableau-name lookup — and of
``diffeqpy.ode`` as the diffeqpy backend uses it, so that the Python glue can be tested
where Julia is absent.  Glue tests prove nothing about Julia
itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.integrate import solve_ivp

import odernn_bridge as ob
from odernn_bridge.reference import julia as jlglue
from odernn_bridge.reference.backend import imag_interval, real_interval, stability_function_values
from odernn_bridge.reference.problems import get_problem, list_problems


class FakeJuliaError(Exception):
    """Plays juliacall.JuliaError."""


class JlArray:
    """Plays ``juliacall.ArrayValue``: not an ndarray, only the NumPy array interface of a
    column-major Julia array (``strides = (8, 8 * rows)`` for a matrix)."""

    def __init__(self, a: Any) -> None:
        self._a = np.asfortranarray(np.asarray(a, dtype=float))

    @property
    def __array_interface__(self) -> dict:
        return self._a.__array_interface__


class _Tab:
    """Plays a DiffEqBase.ExplicitRKTableau / ImplicitRKTableau handle."""

    def __init__(self, A: Any, b: Any, c: Any, order: int, bemb: Any = None, emb_order: int = 0) -> None:
        self.A = np.asfortranarray(np.asarray(A, dtype=float))   # Julia arrays are column-major
        self.b = np.asarray(b, dtype=float)
        self.c = np.asarray(c, dtype=float)
        self.order = order
        self.bemb = np.zeros(0) if bemb is None else np.asarray(bemb, dtype=float)
        self.emb_order = emb_order

    @property
    def tableau(self) -> ob.ButcherTableau:
        return ob.ButcherTableau(self.A, self.b, self.c, order=self.order, verify=False, check_row_sums=False)


# DiffEqDevTools-style constructor names -> catalogue names used to build the stand-in tableaux
_REVERSE = {v: k for k, v in jlglue.TABLEAU_NAMES.items()}
# OrdinaryDiffEq *algorithm* names that no tableau constructor carries (Julia knows Tsit5's
# tableau as Tsitouras5, and DOP853 = DP8 not at all): the stand-in must not find them either
_NOT_TABLEAU_NAMES = set(jlglue.TABLEAU_NAMES) | {"DP8"}


def _as_pyarray(x: Any, ndim: int, what: str) -> np.ndarray:
    """What ``Matrix{Float64}(x)`` / ``Vector{Float64}(x)`` makes of an argument from Python: a
    NumPy array arrives as a ``PyArray`` (logical elements, strides honoured), a list as a
    ``PyList`` (an ``AbstractVector``: fine for vectors only); anything else is a MethodError."""
    if ndim == 1 and isinstance(x, list):
        x = np.asarray(x, dtype=float)
    if not isinstance(x, np.ndarray) or x.ndim != ndim:
        raise FakeJuliaError(f"MethodError: no method matching Array{{Float64, {ndim}}}(::{type(x).__name__}) "
                             f"for {what}")
    return np.asfortranarray(x, dtype=float)


class _Module:
    """Plays ``ODERNNBridge``."""

    def __init__(self, modules: list[str]) -> None:
        self._modules = modules
        self.calls: list[str] = []
        self.received_A: np.ndarray | None = None

    # tableau lookup -----------------------------------------------------------------------
    def tableau_modules(self) -> list[str]:
        return list(self._modules)

    def find_constructor(self, name: str) -> tuple[str, str]:
        catalogue = _REVERSE.get(name, name)
        try:
            if name in _NOT_TABLEAU_NAMES or not name:
                raise ob.UnknownMethodError(name)
            m = ob.get_method(catalogue)
        except ob.UnknownMethodError:
            raise FakeJuliaError(f'ArgumentError: unknown tableau "{name}": no function {name}() in '
                                 f'{", ".join(self._modules)}') from None
        module = self._modules[0] if m.kind == "explicit" else self._modules[1]
        return catalogue, f"{module}.{name}"

    def find_tableau(self, name: str) -> _Tab:
        catalogue, _ = self.find_constructor(name)
        m = ob.get_method(catalogue)
        return _Tab(m.A, m.b, m.c, m.order)

    def export_tableau(self, name: str) -> tuple:
        self.calls.append(f"export_tableau({name})")
        catalogue, qualified = self.find_constructor(name)
        m = ob.get_method(catalogue)
        bemb = m.b_embedded if m.b_embedded is not None else np.zeros(0)
        kind = "explicit" if m.kind == "explicit" else "implicit"
        return (JlArray(m.A), JlArray(m.b), JlArray(m.c), JlArray(bemb), m.order, m.embedded_order or 0, kind,
                qualified)

    def tableau_from_arrays(self, A: Any, b: Any, c: Any, order: int, *, b_embedded: Any = None,
                            embedded_order: int = 0) -> _Tab:
        A = _as_pyarray(A, 2, "A")
        b = _as_pyarray(b, 1, "b")
        c = _as_pyarray(c, 1, "c")
        self.received_A = A
        s = b.size
        if A.shape != (s, s) or c.size != s:
            raise FakeJuliaError(f"DimensionMismatch: A must be {s}×{s} and c of length {s} (length(b)), "
                                 f"got A {A.shape}, c {c.size}")
        if b_embedded is not None and np.size(b_embedded) and _as_pyarray(b_embedded, 1, "b_embedded").size != s:
            raise FakeJuliaError(f"DimensionMismatch: b_embedded must have length {s}")
        return _Tab(A, b, c, order, b_embedded, embedded_order)

    # solving ------------------------------------------------------------------------------
    @staticmethod
    def _rk(tab: _Tab, f: Any, u: np.ndarray, t: float, dt: float, p: np.ndarray) -> np.ndarray:
        A, b, c = tab.A, tab.b, tab.c
        s = b.size
        K = np.zeros((s, u.size))
        du = np.zeros_like(u)
        for i in range(s):
            y = u + dt * (A[i, :i] @ K[:i])
            f(du, y, p, t + c[i] * dt)
            K[i] = du
        return u + dt * (b @ K)

    def solve_fixed(self, f: Any, u0: Any, tspan: Any, p: Any, tab: _Tab, dt: float) -> tuple:
        self.calls.append("solve_fixed")
        t0, t1 = float(tspan[0]), float(tspan[1])
        n = int(round((t1 - t0) / dt))
        U = np.zeros((n + 1, len(u0)), order="F")
        U[0] = u0
        for k in range(n):
            U[k + 1] = self._rk(tab, f, U[k], t0 + k * dt, dt, np.asarray(p))
        return (t0 + dt * np.arange(n + 1), U)

    def step_many(self, f: Any, U: Any, t: float, dt: float, p: Any, tab: _Tab) -> np.ndarray:
        U = np.asarray(U, dtype=float)
        return JlArray(np.stack([self._rk(tab, f, row, t, dt, np.asarray(p)) for row in U]))

    def solve_reference(self, f: Any, u0: Any, tspan: Any, p: Any, saveat: Any, *, abstol: float = 1e-14,
                        reltol: float = 1e-14, bigfloat: bool = False, alg: str = "Vern9") -> tuple:
        if alg not in jlglue.REFERENCE_ALGS:
            raise FakeJuliaError(f"ArgumentError: alg: expected one of {', '.join(sorted(jlglue.REFERENCE_ALGS))}, "
                                 f"got {alg!r}")

        def rhs(t: float, y: np.ndarray) -> np.ndarray:
            du = np.zeros_like(y)
            f(du, y, np.asarray(p), t)
            return du

        sol = solve_ivp(rhs, (float(tspan[0]), float(tspan[1])), np.asarray(u0, dtype=float), method="DOP853",
                        rtol=max(reltol, 2.5e-14), atol=max(abstol, 1e-16), t_eval=np.asarray(saveat))
        return (sol.t, np.asfortranarray(sol.y.T))

    def stability(self, tab: _Tab, z: Any) -> np.ndarray:
        return stability_function_values(tab.tableau, np.asarray(z))

    def real_stability_interval(self, tab: _Tab) -> float:
        return real_interval(tab.tableau)

    def imag_stability_interval(self, tab: _Tab) -> float:
        return imag_interval(tab.tableau)

    def convergence(self, f: Any, u0: Any, tspan: Any, p: Any, tab: _Tab, dts: Any) -> tuple:
        dts = _as_pyarray(dts, 1, "dts")
        if dts.size < 2:
            raise FakeJuliaError(f"ArgumentError: dts: need at least two step sizes, got {dts.size}")
        ref = self.solve_reference(f, u0, tspan, p, [float(tspan[1])])[1][-1]
        errs = np.array([np.linalg.norm(self.solve_fixed(f, u0, tspan, p, tab, dt)[1][-1] - ref) for dt in dts])
        # DiffEqDevTools' 𝒪est[:final]: |mean(log2(e[k+1] / e[k]))| -- assumes halving dts
        return (errs, float(abs(np.mean(np.log2(errs[1:] / errs[:-1])))))

    def versions(self) -> dict[str, str]:
        return {"julia": "1.11.0-standin", "OrdinaryDiffEq": "7.0.0-standin", "OrdinaryDiffEqExplicitRK": "2.0.1-standin",
                "DiffEqDevTools": "3.1.2-standin"}


class StandInSession:
    """Plays the loaded session: ``seval`` (Julia source -> callable), ``mod``, ``error_type``."""

    def __init__(self) -> None:
        self.mod = _Module(["OrdinaryDiffEqExplicitTableaus", "OrdinaryDiffEqImplicitTableaus"])
        self.error_type = FakeJuliaError
        self.juliacall_version = "0.9.99-standin"
        self.sevaled: list[str] = []

    def seval(self, src: str) -> Any:
        """Only the right-hand sides of the built-in problems are 'understood'."""
        self.sevaled.append(src)
        for name in list_problems():
            prob = get_problem(name)
            if prob.julia_rhs == src:
                keys = list(prob.params)

                def f(du: np.ndarray, u: np.ndarray, p: np.ndarray, t: float, prob: Any = prob, keys: Any = keys) -> None:
                    du[:] = prob.f(t, np.asarray(u, dtype=float), dict(zip(keys, p)))

                return f
        raise FakeJuliaError(f"ParseError: cannot evaluate {src[:40]!r} in the stand-in")


class DiffeqpyStandInSession(StandInSession):
    """Plays the diffeqpy session of ``backend="diffeqpy"``: ``seval`` of the problems'
    Julia right-hand sides and ``solve_reference`` (what ``SOLVE_SRC`` does with
    ``diffeqpy.ode``), here with SciPy's DOP853."""

    def solve_reference(self, f: Any, u0: Any, tspan: Any, p: Any, saveat: Any, *, abstol: float, reltol: float,
                        alg: str, bigfloat: bool) -> tuple:
        self.mod.calls.append(f"diffeqpy.solve({alg}, bigfloat={bigfloat})")
        return self.mod.solve_reference(f, u0, tspan, p, saveat, abstol=abstol, reltol=reltol, alg=alg)

    def versions(self) -> dict[str, str]:
        return {"OrdinaryDiffEq": "7.0.0-standin"}
