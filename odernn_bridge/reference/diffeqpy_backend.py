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
from .backend import Backend, Method, Solution
from .julia import REFERENCE_ALGS, to_numpy, translate_error
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

_STATE: dict[str, Any] = {"checked": False, "reason": None, "session": None}
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
    with _LOCK:
        if not _STATE["checked"]:
            found = probe_diffeqpy()
            _STATE["session"] = None
            _STATE["reason"] = found.reason
            if found.ok:
                try:
                    _STATE["session"] = _Session()
                    _STATE["reason"] = ""
                except JuliaUnavailableError as exc:
                    _STATE["reason"] = str(exc)
            _STATE["checked"] = True
        return _STATE["session"] is not None, _STATE["reason"]


def reset_detection() -> None:
    """Forget a cached "unavailable" answer (after ``odernn julia setup --diffeqpy``)."""
    with _LOCK:
        if _STATE["session"] is None:
            _STATE.update(checked=False, reason=None)


def _diffeqpy_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("diffeqpy")
    except PackageNotFoundError:
        return "unknown"


class DiffeqpyBackend(Backend):
    """diffeqpy's OrdinaryDiffEq as the source of reference solutions (see module docstring).

    ``session`` injects a loaded diffeqpy (or an in-process stand-in for glue tests).

    >>> DiffeqpyBackend().name
    'diffeqpy'
    """

    name = "diffeqpy"
    capabilities = frozenset({"reference"})

    def __init__(self, session: Any | None = None, *, bigfloat_ground_truth: bool = True) -> None:
        self._session = session
        self._rhs_cache: dict[str, Any] = {}
        self.bigfloat_ground_truth = bigfloat_ground_truth

    # -- availability -----------------------------------------------------------------------
    def available(self) -> bool:
        return self._session is not None or detect_diffeqpy()[0]

    def unavailable_reason(self) -> str:
        return "" if self.available() else detect_diffeqpy()[1]

    def ensure_available(self) -> None:
        """Raise :class:`JuliaUnavailableError` (fast) unless diffeqpy is usable."""
        if not self.available():
            raise JuliaUnavailableError(f"backend='diffeqpy': {detect_diffeqpy()[1]}")

    @property
    def session(self) -> Any:
        if self._session is None:
            self.ensure_available()
            self._session = _STATE["session"]
        return self._session

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

    def handles(self, problem: Problem | str) -> bool:
        prob = get_problem(problem)
        return prob.julia_rhs is not None and not prob.segmented

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
    def _rhs(self, prob: Problem) -> Any:
        if not self.handles(prob):
            raise ValueError(f"problem: {prob.name!r} has no Julia right-hand side (julia_rhs) or has an input "
                             "sequence; use the SciPy backend for it")
        src = prob.julia_rhs
        if src not in self._rhs_cache:
            try:
                self._rhs_cache[src] = self.session.seval(src)
            except self.session.error_type as exc:
                raise translate_error(exc) from exc
        return self._rhs_cache[src]

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
        if t.shape != times.shape or not np.allclose(t, times, rtol=0, atol=1e-12 * max(1.0, float(np.max(np.abs(times))))):
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

    def reference(self, problem: Problem | str, saveat: Sequence[float] | np.ndarray) -> np.ndarray:
        prob = get_problem(problem)
        from .scipy_backend import _times

        times = _times(prob, saveat)
        if prob.exact is not None:
            return np.stack([np.asarray(prob.exact(float(t)), dtype=np.float64) for t in times])
        return self.solve(prob, saveat=times).u

    def ground_truth(self, problem: Problem | str, saveat: Sequence[float] | np.ndarray) -> np.ndarray:
        """Vern9 in BigFloat at 1e-25 tolerances (the exact solution where known)."""
        prob = get_problem(problem)
        from .scipy_backend import _times

        times = _times(prob, saveat)
        if prob.exact is not None or not self.bigfloat_ground_truth:
            return self.reference(prob, times)
        return self._reference(prob, times, alg="Vern9", rtol=1e-25, atol=1e-25, bigfloat=True)
