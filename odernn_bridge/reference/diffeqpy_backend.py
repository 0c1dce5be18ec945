"""``backend="diffeqpy"``: reference solutions through SciML's diffeqpy (``diffeqpy.ode``).

diffeqpy 2 (``pip install 'odernn_bridge[diffeqpy]'``) runs OrdinaryDiffEq through juliacall;
since 2.6 it declares its Julia packages in its own ``juliapkg.json``, so juliapkg installs
them together with ours, in one environment, during ``odernn julia setup``.  This backend
asks ``diffeqpy.ode`` (Julia's OrdinaryDiffEq module) for what OrdinaryDiffEq v7 exports by
itself — adaptive reference solutions with ``Vern9`` (or ``Vern6``–``Vern8``, ``Tsit5``), in
``Float64`` or ``BigFloat`` — and nothing else:

* **limits**: no named tableaux, no fixed-step stepping of a given (custom) tableau, no
  stability analysis (OrdinaryDiffEq v7 exports neither ``ExplicitRK`` nor the tableau
  packages nor DiffEqDevTools): those need the juliacall route, ``backend="julia"``, and raise
  :class:`~odernn_bridge.UnsupportedOperationError` here.  :meth:`Backend.supports` is
  ``False`` for every method, so ``validate(..., backend="diffeqpy")`` steps the method with
  the NumPy integrator and takes only the references from diffeqpy;
* diffeqpy is imported only where ``julia`` is on PATH (it starts its own Julia installer
  otherwise) and where juliapkg's environment is already resolved (it would ``Pkg.add``
  otherwise): both checked offline, in bounded time, by
  :func:`~odernn_bridge.reference.julia_env.probe_diffeqpy`.

>>> from odernn_bridge.reference.diffeqpy_backend import DiffeqpyBackend
>>> sorted(DiffeqpyBackend.capabilities)
['reference']
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

import numpy as np

from ..errors import JuliaUnavailableError, UnsupportedOperationError
from ..methods.tableau import ButcherTableau
from .backend import Method, Solution
from .julia import (REFERENCE_ALGS, JuliaSessionBackend, cached_detection, reset_cached_detection, to_numpy,
                    translate_error)
from .julia_env import probe_diffeqpy
from .problems import Problem, get_problem

__all__ = ["DiffeqpyBackend", "SOLVE_SRC", "detect_diffeqpy", "reset_detection"]

#: the one Julia function this backend evaluates (a single expression for ``seval``): an
#: ODEProblem and a solve with diffeqpy's OrdinaryDiffEq module ``ode``, states as rows
SOLVE_SRC = """function (ode, f, u0, tspan, p, saveat, abstol, reltol, alg, bigfloat)
    alg in (ALGS) || throw(ArgumentError("alg: unsupported $(alg)"))
    T = bigfloat ? BigFloat : Float64
    prob = ode.ODEProblem(f, T.(collect(u0)), (T(tspan[1]), T(tspan[2])), T.(collect(p)))
    sol = ode.solve(prob, getproperty(ode, Symbol(alg))(); abstol = T(abstol), reltol = T(reltol),
        saveat = T.(collect(saveat)))
    return (Vector{Float64}(Float64.(sol.t)), permutedims(reduce(hcat, [Float64.(u) for u in sol.u])))
end""".replace("ALGS", ", ".join(f'"{a}"' for a in REFERENCE_ALGS))

_STATE: dict[str, Any] = {"checked": False, "reason": None, "session": None, "probe": None}
_LOCK = threading.Lock()


class _Session:
    """diffeqpy loaded: ``ode`` (Julia's OrdinaryDiffEq), ``seval`` (a juliacall host module),
    the compiled :data:`SOLVE_SRC` and ``error_type``."""

    def __init__(self) -> None:
        try:
            from diffeqpy import ode  # noqa: PLC0415 - probe_diffeqpy made sure nothing installs
            import juliacall  # noqa: PLC0415
        except BaseException as exc:  # juliacall/diffeqpy raise Exception, OSError, EOFError...
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise JuliaUnavailableError(f"diffeqpy could not be loaded ({type(exc).__name__}: "
                                        f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
        host = juliacall.newmodule("ODERNNDiffeqpyHost")
        self.ode = ode
        self.seval = host.seval
        self.error_type = getattr(juliacall, "JuliaError", Exception)
        self._solve = host.seval(SOLVE_SRC)
        self._version = host.seval("m -> string(pkgversion(m))")

    def solve_reference(self, f: Any, u0: np.ndarray, tspan: np.ndarray, p: np.ndarray, saveat: np.ndarray, *,
                        abstol: float, reltol: float, alg: str, bigfloat: bool) -> tuple[Any, Any]:
        return self._solve(self.ode, f, u0, tspan, p, saveat, abstol, reltol, alg, bigfloat)

    def versions(self) -> dict[str, str]:
        return {"OrdinaryDiffEq": str(self._version(self.ode))}


def detect_diffeqpy() -> tuple[bool, str]:
    """``(usable, reason)`` for diffeqpy; cached.  Offline checks first (under a second when
    Julia is absent or does not answer), then diffeqpy is imported."""
    return cached_detection(_STATE, _LOCK, probe_diffeqpy, _Session)


def reset_detection() -> None:
    """Forget a cached "unavailable" answer (after ``odernn julia setup --diffeqpy``)."""
    reset_cached_detection(_STATE, _LOCK)


def _diffeqpy_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("diffeqpy")
    except PackageNotFoundError:
        return "unknown"


class DiffeqpyBackend(JuliaSessionBackend):
    """diffeqpy's OrdinaryDiffEq as the source of reference solutions (see module docstring).

    ``session`` injects a loaded diffeqpy (or an in-process stand-in for glue tests).

    >>> DiffeqpyBackend().name
    'diffeqpy'
    """

    name = "diffeqpy"
    capabilities = frozenset({"reference"})

    @staticmethod
    def _detect() -> tuple[bool, str]:
        return detect_diffeqpy()

    @staticmethod
    def _state() -> dict[str, Any]:
        return _STATE

    def version_info(self) -> dict[str, str]:
        info = {"diffeqpy": _diffeqpy_version()}
        info.update({str(k): str(v) for k, v in self.session.versions().items()})
        return info

    # -- what it cannot do --------------------------------------------------------------------
    def _unsupported(self, what: str) -> UnsupportedOperationError:
        return UnsupportedOperationError(
            f"backend='diffeqpy' gives reference solutions only; {what} needs backend='julia' (juliacall route: "
            "OrdinaryDiffEqExplicitRK, the tableau packages, DiffEqDevTools) or backend='scipy'")

    def tableau(self, name: str) -> ButcherTableau:
        raise self._unsupported(f"the tableau {name!r}")

    def supports(self, method: str | Method) -> bool:
        return False

    def step(self, problem: Problem | str, method: str | Method, t: float, u: np.ndarray, dt: float,
             segment: int = 0) -> np.ndarray:
        raise self._unsupported("stepping a given tableau")

    def stability(self, method: str | Method, z: Any) -> np.ndarray:
        raise self._unsupported("the stability function")

    def real_stability_interval(self, method: str | Method) -> float:
        raise self._unsupported("stability intervals")

    def imag_stability_interval(self, method: str | Method) -> float:
        raise self._unsupported("stability intervals")

    # -- references ---------------------------------------------------------------------------
    def _reference(self, prob: Problem, times: np.ndarray, *, alg: str, rtol: float, atol: float,
                   bigfloat: bool) -> np.ndarray:
        f = self._rhs(prob)
        try:
            t, U = self.session.solve_reference(
                f, np.array(prob.u0, dtype=np.float64), np.array(prob.tspan, dtype=np.float64),
                np.array(prob.julia_params, dtype=np.float64), np.ascontiguousarray(times),
                abstol=atol, reltol=rtol, alg=alg, bigfloat=bigfloat)
        except self.session.error_type as exc:
            raise translate_error(exc) from exc
        t, U = to_numpy(t), to_numpy(U).reshape(len(times), -1)
        scale = max(1.0, float(np.max(np.abs(times))))
        if t.shape != times.shape or not np.allclose(t, times, rtol=0, atol=1e-12 * scale):
            raise UnsupportedOperationError(f"diffeqpy saved at {t.tolist()} instead of {times.tolist()}")
        return U

    def solve(self, problem: Problem | str, method: str | Method | None = None, *, dt: float | None = None,
              alg: str | None = None, rtol: float | None = None, atol: float | None = None,
              saveat: Sequence[float] | np.ndarray | None = None) -> Solution:
        """Only the adaptive reference (``method=None``); a method raises
        :class:`~odernn_bridge.UnsupportedOperationError`."""
        prob = get_problem(problem)
        if method is not None:
            if dt is None or not dt > 0:
                raise ValueError(f"dt: a fixed-step solve with a method needs a positive dt, got {dt!r}")
            raise self._unsupported("fixed-step solving with a given method")
        from .scipy_backend import _times

        times = _times(prob, saveat)
        alg = alg or "Vern9"
        if alg not in REFERENCE_ALGS:
            raise ValueError(f"alg: diffeqpy's reference algorithms here are {REFERENCE_ALGS}, got {alg!r}")
        rtol = 1e-14 if rtol is None else float(rtol)
        atol = 1e-14 if atol is None else float(atol)
        U = self._reference(prob, times, alg=alg, rtol=rtol, atol=atol, bigfloat=False)
        return Solution(times, U, self.name, f"diffeqpy.ode.{alg}", alg=alg, rtol=rtol, atol=atol)

    def ground_truth(self, problem: Problem | str, saveat: Sequence[float] | np.ndarray) -> np.ndarray:
        """Vern9 in BigFloat at 1e-25 tolerances (the exact solution where known)."""
        prob = get_problem(problem)
        from .scipy_backend import _times

        times = _times(prob, saveat)
        if prob.exact is not None or not self.bigfloat_ground_truth:
            return self.reference(prob, times)
        return self._reference(prob, times, alg="Vern9", rtol=1e-25, atol=1e-25, bigfloat=True)
