"""The Julia reference backend: OrdinaryDiffEq / DiffEqDevTools through juliacall.

Nothing here imports juliacall at module import.  :func:`detect` first runs the offline,
time-bounded checks of :mod:`odernn_bridge.reference.julia_env` (a Julia >= 1.10 that answers
``julia --version`` within half a second, juliacall installed, juliapkg's environment already
resolved) and only then imports juliacall — so detection never downloads Julia, never installs
packages and never hangs; installing is the explicit, online ``odernn julia setup``.  Asking
for the backend where Julia is not usable raises :class:`~odernn_bridge.JuliaUnavailableError`
(within a second when Julia is absent) with what to do.

Once loaded, ``src/ODERNNBridge.jl`` (shipped in wheels as ``odernn_bridge/julia/``) is
``Base.include``-d into a fresh module made with ``juliacall.newmodule("ODERNNBridgeHost")``
(never ``Main``).  Julia errors are translated into the project's exceptions
(:func:`translate_error`), Julia arrays into float64 NumPy arrays (:func:`to_numpy`).

Arrays cross the boundary without transposition: a NumPy argument arrives in Julia as a
``PythonCall.PyArray`` that honours the NumPy strides (``A[i, j]`` is ``A[i, j]`` for a
C-ordered matrix), which ``ODERNNBridge.jl`` copies with ``Matrix{Float64}(A)``; a Julia
``Matrix`` comes back as a ``juliacall.ArrayValue`` whose array interface carries the
column-major strides, so ``np.array`` reads it in the same logical order.  Only what Julia
computes is unpacked in Julia: fields with non-NFKC names such as ``𝒪est`` (Python would
read ``sim.𝒪est`` as ``sim.Oest``) and Symbol-keyed dicts never reach Python.

Catalogue names follow OrdinaryDiffEq's algorithm names; the Julia tableau functions of
OrdinaryDiffEqExplicitTableaus / ImplicitTableaus use other names (``Tsit5`` → ``Tsitouras5``):
:data:`TABLEAU_NAMES` maps them.

>>> tableau_name("Tsit5"), tableau_name("Feagin14"), tableau_name("julia:GL4")
('Tsitouras5', 'Feagin14', 'GL4')
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .._cache import LRUCache, content_key
from ..errors import ConvergenceError, JuliaUnavailableError, OdernnError, UnknownMethodError
from ..methods.tableau import ButcherTableau
from .backend import Backend, Method, Solution, _as_method
from .julia_env import INSTALL_HINT, probe
from .problems import Problem, get_problem

__all__ = ["JuliaBackend", "JuliaSessionBackend", "resolve_method", "detect", "reset_detection", "tableau_name",
           "TABLEAU_NAMES", "INSTALL_HINT", "REFERENCE_ALGS", "julia_source_path", "translate_error", "to_numpy"]

#: adaptive reference algorithms (ODERNNBridge.REFERENCE_ALGORITHMS; OrdinaryDiffEq v7 exports them)
REFERENCE_ALGS = ("Vern9", "Vern8", "Vern7", "Vern6", "Tsit5")

#: catalogue (OrdinaryDiffEq algorithm) name -> OrdinaryDiffEq*Tableaus function name,
#: only where both name the *same* method.  ``DP8`` (DOP853, 12 stages) has no tableau
#: constructor: ``DormandPrince8`` is the different 13-stage RK8(7)13M pair (catalogue name
#: ``DormandPrince8``), so ``DP8`` is deliberately not mapped.
TABLEAU_NAMES: dict[str, str] = {
    "Tsit5": "Tsitouras5",
    "DP5": "DormandPrince",
    "BS3": "BogakiShampine3",
    "BS5": "BogakiShampine5",
    "Vern6": "VernerEfficient6",
    "Vern7": "Verner7",  # constructVernerEfficient7 is a different 7(6) pair (catalogue VernerEfficient7)
    "Vern9": "VernerEfficient9",
    "ImplicitMidpoint": "MidpointRule",
    "Trapezoid": "TrapezoidalRule",
}


def tableau_name(name: str) -> str:
    """The Julia tableau-constructor name for a catalogue or prefixed name."""
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"name: expected a method name, got {name!r}")
    n = name.strip()
    if n.lower().startswith("julia:"):
        n = n[len("julia:"):]
    if n.startswith("construct"):
        n = n[len("construct"):]
    return TABLEAU_NAMES.get(n, n)


def julia_source_path() -> Path:
    """Where ``ODERNNBridge.jl`` is: ``$ODERNN_BRIDGE_JULIA_SRC``, the package's ``julia/``
    folder (a real file in wheels, a link to ``src/`` in the repository), or ``src/``."""
    env = os.environ.get("ODERNN_BRIDGE_JULIA_SRC")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    candidates += [here.parents[1] / "julia" / "ODERNNBridge.jl", here.parents[2] / "src" / "ODERNNBridge.jl"]
    for c in candidates:
        if c.is_file():
            return c
    raise JuliaUnavailableError(f"ODERNNBridge.jl not found (looked in {', '.join(map(str, candidates))}); "
                                "set ODERNN_BRIDGE_JULIA_SRC to its path")


def to_numpy(x: Any, dtype: Any = np.float64) -> np.ndarray:
    """A Julia array (juliacall ArrayValue), sequence or number as a C-ordered NumPy array
    (same logical indices: column-major strides are honoured, never reinterpreted).

    >>> a = to_numpy(np.asfortranarray([[1.0, 2.0], [3.0, 4.0]]))
    >>> float(a[0, 1]), a.flags["C_CONTIGUOUS"]
    (2.0, True)
    """
    arr = np.array(x, dtype=dtype, order="C")
    if not np.all(np.isfinite(arr)):
        from ..errors import NonFiniteError

        raise NonFiniteError("Julia returned NaN or Inf")
    return arr


def translate_error(exc: BaseException) -> OdernnError:
    """Map a Julia exception (juliacall ``JuliaError``) onto the project's exceptions."""
    text = str(exc)
    if "unknown tableau" in text:
        m = re.search(r'unknown tableau "([^"]+)"', text)
        err: OdernnError = UnknownMethodError(f"julia:{m.group(1) if m else '?'}")
        err.args = (f"{err.args[0]} — Julia: {text.splitlines()[0]}",)
        return err
    if "ArgumentError" in text or "DomainError" in text or "DimensionMismatch" in text:
        return _JuliaValueError(f"Julia rejected the input: {text.splitlines()[0] if text else type(exc).__name__}")
    if "Newton" in text or "converge" in text.lower() or "MaxIters" in text or "dt <= dtmin" in text:
        return ConvergenceError(f"Julia solver failed: {text.splitlines()[0]}")
    return _JuliaRuntimeError(f"Julia error: {text.splitlines()[0] if text else type(exc).__name__}")


class _JuliaValueError(OdernnError, ValueError):
    """Julia rejected an argument (ArgumentError, DomainError, DimensionMismatch)."""


class _JuliaRuntimeError(OdernnError, RuntimeError):
    """Any other Julia error."""


# ---------------------------------------------------------------------------------------
# detection and loading
# ---------------------------------------------------------------------------------------

_STATE: dict[str, Any] = {"checked": False, "reason": None, "session": None, "probe": None}
_LOCK = threading.Lock()


class _Session:
    """A loaded Julia: ``seval`` (in the host module), ``mod`` (ODERNNBridge), ``error_type``."""

    def __init__(self, seval: Any, mod: Any, error_type: type[BaseException], juliacall_version: str) -> None:
        self.seval = seval
        self.mod = mod
        self.error_type = error_type
        self.juliacall_version = juliacall_version


def _load_session() -> _Session:
    """Import juliacall and include ODERNNBridge.jl; call only after :func:`julia_env.probe`
    succeeded (juliapkg resolved), so that juliacall neither downloads nor installs."""
    try:
        import juliacall  # noqa: PLC0415 - lazily, on purpose
    except BaseException as exc:  # juliacall raises plain Exception, OSError, URLError, EOFError...
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise JuliaUnavailableError(f"Julia could not be started through juliacall ({type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0] if str(exc) else ''}); {INSTALL_HINT}") from exc
    src = julia_source_path()
    try:
        host = juliacall.newmodule("ODERNNBridgeHost")
        # Base.include(module, path): independent of the `include` that a module made by
        # `module ... end` defines (juliacall < 0.9.14 made bare `Module(name)`s without one)
        host.seval(f"Base.include(@__MODULE__, {_julia_string(str(src))})")
        mod = host.seval("ODERNNBridge")
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise JuliaUnavailableError(f"Julia started but ODERNNBridge.jl failed to load ({str(exc).splitlines()[0]}); "
                                    f"are its packages installed? {INSTALL_HINT}") from exc
    return _Session(host.seval, mod, getattr(juliacall, "JuliaError", Exception),
                    getattr(juliacall, "__version__", "unknown"))


def _julia_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def cached_detection(state: dict[str, Any], lock: threading.Lock, check: Callable[[], Any],
                     load: Callable[[], Any]) -> tuple[bool, str]:
    """``(usable, reason)`` of a Julia route, cached in ``state``: the offline ``check`` first
    (a :class:`~odernn_bridge.reference.julia_env.Probe`), ``load`` only when it passes."""
    with lock:
        if not state["checked"]:
            state["session"] = None
            found = check()
            state["probe"] = found
            state["reason"] = found.reason
            if found.ok:
                try:
                    state["session"] = load()
                    state["reason"] = ""
                except JuliaUnavailableError as exc:
                    state["reason"] = str(exc)
            state["checked"] = True
        return state["session"] is not None, state["reason"]


def reset_cached_detection(state: dict[str, Any], lock: threading.Lock) -> None:
    """Forget a cached "unavailable" answer; a loaded session is kept."""
    with lock:
        if state["session"] is None:
            state.update(checked=False, reason=None, probe=None)


def detect() -> tuple[bool, str]:
    """``(usable, reason)``; cached.  The offline checks of :func:`julia_env.probe` come first
    (under a second when Julia is absent or does not answer); juliacall is imported and the
    module loaded only when they pass."""
    return cached_detection(_STATE, _LOCK, probe, _load_session)


def reset_detection() -> None:
    """Forget a cached "unavailable" answer (after installing Julia or running the setup)."""
    reset_cached_detection(_STATE, _LOCK)


# ---------------------------------------------------------------------------------------
# the backend
# ---------------------------------------------------------------------------------------

class JuliaSessionBackend(Backend):
    """What the two Julia backends share: a session loaded on first use (or injected — an
    in-process stand-in for glue tests), availability from their detection, the problems'
    Julia right-hand sides compiled once, and exact solutions where a problem has one."""

    def __init__(self, session: Any | None = None, *, bigfloat_ground_truth: bool = True) -> None:
        self._session = session
        self._rhs_cache: dict[str, Any] = {}
        self.bigfloat_ground_truth = bigfloat_ground_truth

    # detection of this backend: ``(usable, reason)`` and the cache holding the session
    @staticmethod
    def _detect() -> tuple[bool, str]:
        return detect()

    @staticmethod
    def _state() -> dict[str, Any]:
        return _STATE

    # -- availability -----------------------------------------------------------------
    def available(self) -> bool:
        return self._session is not None or self._detect()[0]

    def unavailable_reason(self) -> str:
        return "" if self.available() else self._detect()[1]

    def ensure_available(self) -> None:
        """Raise :class:`JuliaUnavailableError` (fast) unless the backend is usable."""
        if not self.available():
            reason = self._detect()[1] or f"Julia is not available; {INSTALL_HINT}"
            raise JuliaUnavailableError(reason if self.name == "julia" else f"backend={self.name!r}: {reason}")

    @property
    def session(self) -> Any:
        if self._session is None:
            self.ensure_available()
            self._session = self._state()["session"]
        return self._session

    # -- problems ---------------------------------------------------------------------------
    def handles(self, problem: Problem | str) -> bool:
        prob = get_problem(problem)
        return prob.julia_rhs is not None and not prob.segmented

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

    def reference(self, problem: Problem | str, saveat: Sequence[float] | np.ndarray) -> np.ndarray:
        prob = get_problem(problem)
        if prob.exact is not None:
            return np.stack([np.asarray(prob.exact(float(t)), dtype=np.float64) for t in _saveat(prob, saveat)])
        return self.solve(prob, saveat=saveat).u


class JuliaBackend(JuliaSessionBackend):
    """OrdinaryDiffEq / DiffEqDevTools as the reference (see module docstring).

    ``session`` injects an already loaded Julia (or an in-process stand-in for glue tests);
    by default the shared session is loaded on first use.
    """

    name = "julia"

    def __init__(self, session: Any | None = None, *, bigfloat_ground_truth: bool = True) -> None:
        super().__init__(session, bigfloat_ground_truth=bigfloat_ground_truth)
        self._tab_cache = LRUCache(maxsize=64)  # Julia tableaux by method content (not id())

    def _call(self, fn: str, *args: Any, **kwargs: Any) -> Any:
        s = self.session
        try:
            return getattr(s.mod, fn)(*args, **kwargs)
        except s.error_type as exc:
            raise translate_error(exc) from exc

    def version_info(self) -> dict[str, str]:
        info = {str(k): str(v) for k, v in dict(self._call("versions")).items()}
        info["juliacall"] = str(getattr(self.session, "juliacall_version", "unknown"))
        return info

    # -- methods --------------------------------------------------------------------------
    def tableau(self, name: str) -> ButcherTableau:
        jname = tableau_name(name)
        A, b, c, bemb, order, emb_order, kind, source = self._call("export_tableau", jname)
        A, b, c = to_numpy(A), to_numpy(b), to_numpy(c)
        bemb = to_numpy(bemb)
        if A.ndim != 2 or A.shape != (b.size, b.size) or c.shape != b.shape:
            raise _JuliaValueError(f"tableau {jname}: inconsistent shapes from Julia A{A.shape} b{b.shape} c{c.shape}")
        has_emb = bemb.size == b.size and int(emb_order) > 0
        label = name.strip()
        label = label if label.lower().startswith("julia:") else f"julia:{label}"
        return ButcherTableau(A, b, c, bemb if has_emb else None, order=int(order), name=label,
                              embedded_order=int(emb_order) if has_emb else None,
                              description=f"exported from Julia {source}", check_row_sums=False, verify=False)

    def supports(self, method: str | Method) -> bool:
        m = _as_method(method)
        return isinstance(m, ButcherTableau) and m.kind == "explicit"

    def _jl_tableau(self, method: Method) -> Any:
        if not isinstance(method, ButcherTableau):
            raise TypeError(f"method: the Julia backend runs Runge-Kutta tableaux, got {type(method).__name__}")
        emb_order = int(method.embedded_order or 0) if method.b_embedded is not None else None

        def build() -> Any:
            kw: dict[str, Any] = {}
            if method.b_embedded is not None:
                kw = {"b_embedded": np.ascontiguousarray(method.b_embedded), "embedded_order": emb_order}
            return self._call("tableau_from_arrays", np.ascontiguousarray(method.A), np.ascontiguousarray(method.b),
                              np.ascontiguousarray(method.c), int(method.order), **kw)

        return self._tab_cache.get_or_compute((content_key(method), int(method.order), emb_order), build)

    def _args(self, prob: Problem) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
        return (self._rhs(prob), np.array(prob.u0, dtype=np.float64), np.array(prob.tspan, dtype=np.float64),
                np.array(prob.julia_params, dtype=np.float64))

    # -- solving ----------------------------------------------------------------------------
    def solve(self, problem: Problem | str, method: str | Method | None = None, *, dt: float | None = None,
              alg: str | None = None, rtol: float | None = None, atol: float | None = None,
              saveat: Sequence[float] | np.ndarray | None = None) -> Solution:
        prob = get_problem(problem)
        f, u0, tspan, p = self._args(prob)
        if method is not None:
            if dt is None or not dt > 0:
                raise ValueError(f"dt: a fixed-step solve with a method needs a positive dt, got {dt!r}")
            m = _as_method(method)
            if not self.supports(m):
                raise ValueError(f"method: the Julia backend steps explicit tableaux with ExplicitRK; "
                                 f"{m.name} is {getattr(m, 'kind', 'multistep')}")
            t, U = self._call("solve_fixed", f, u0, tspan, p, self._jl_tableau(m), float(dt))
            t, U = to_numpy(t), to_numpy(U)
            n = int(round((prob.tspan[1] - prob.tspan[0]) / dt))
            if t.size != n + 1:
                raise _JuliaRuntimeError(f"ExplicitRK took {t.size - 1} steps where {n} were expected")
            sol = Solution(t, U.reshape(t.size, -1), self.name, m.name, dt=float(dt), alg="ExplicitRK")
            if saveat is not None:
                from .scipy_backend import _select

                sol = _select(sol, saveat)
            return sol
        times = _saveat(prob, saveat)
        alg = alg or "Vern9"
        if alg not in REFERENCE_ALGS:
            raise ValueError(f"alg: the Julia backend's reference algorithms are {REFERENCE_ALGS}, got {alg!r}")
        rtol = 1e-14 if rtol is None else float(rtol)
        atol = 1e-14 if atol is None else float(atol)
        t, U = self._call("solve_reference", f, u0, tspan, p, times, abstol=atol, reltol=rtol, alg=alg)
        return Solution(to_numpy(t), to_numpy(U).reshape(len(times), -1), self.name, f"OrdinaryDiffEq.{alg}",
                        alg=alg, rtol=rtol, atol=atol)

    def step(self, problem: Problem | str, method: str | Method, t: float, u: np.ndarray, dt: float,
             segment: int = 0) -> np.ndarray:
        prob = get_problem(problem)
        m = _as_method(method)
        if not self.supports(m):
            raise ValueError(f"method: the Julia backend steps explicit tableaux only, got {m.name}")
        u = np.asarray(u, dtype=np.float64)
        U = np.ascontiguousarray(u.reshape(-1, prob.dim))
        f, _, _, p = self._args(prob)
        out = to_numpy(self._call("step_many", f, U, float(t), float(dt), p, self._jl_tableau(m)))
        return out.reshape(u.shape)

    def ground_truth(self, problem: Problem | str, saveat: Sequence[float] | np.ndarray) -> np.ndarray:
        """Vern9 in BigFloat at 1e-25 tolerances (exact solution where known)."""
        prob = get_problem(problem)
        times = _saveat(prob, saveat)
        if prob.exact is not None:
            return self.reference(prob, times)
        if not self.bigfloat_ground_truth:
            return self.reference(prob, times)
        f, u0, tspan, p = self._args(prob)
        t, U = self._call("solve_reference", f, u0, tspan, p, times, abstol=1e-25, reltol=1e-25, bigfloat=True)
        return to_numpy(U).reshape(len(times), -1)

    def convergence(self, problem: Problem | str, method: str | Method, dts: Sequence[float]) -> tuple[np.ndarray, float]:
        """DiffEqDevTools' ``analyticless_test_convergence`` (Vern9 reference): final errors and
        estimated order.  DiffEqDevTools' ``𝒪est`` assumes that ``dts`` halve (or double); for
        other ratios the order is recomputed here as the mean of
        ``log(e[k+1]/e[k]) / log(dt[k+1]/dt[k])``."""
        steps = np.asarray(dts, dtype=np.float64).reshape(-1)
        if steps.size < 2 or not np.all(np.isfinite(steps)) or np.any(steps <= 0):
            raise ValueError(f"dts: expected at least two positive finite step sizes, got {dts!r}")
        prob = get_problem(problem)
        f, u0, tspan, p = self._args(prob)
        errs, order = self._call("convergence", f, u0, tspan, p, self._jl_tableau(_as_method(method)),
                                 np.ascontiguousarray(steps))
        errs = to_numpy(errs)
        ratios = steps[1:] / steps[:-1]
        if not (np.allclose(ratios, 0.5, rtol=1e-9, atol=0) or np.allclose(ratios, 2.0, rtol=1e-9, atol=0)):
            with np.errstate(divide="ignore", invalid="ignore"):
                order = float(np.mean(np.log(errs[1:] / errs[:-1]) / np.log(ratios)))
        return errs, float(order)

    # -- stability ------------------------------------------------------------------------------
    def _tab_for_stability(self, method: str | Method) -> Any:
        if isinstance(method, str):
            try:
                return self._jl_tableau(_as_method(method))
            except UnknownMethodError:
                return self._call("find_tableau", tableau_name(method))
        return self._jl_tableau(method)

    def stability(self, method: str | Method, z: Any) -> np.ndarray:
        z = np.asarray(z, dtype=np.complex128)
        out = to_numpy(self._call("stability", self._tab_for_stability(method), np.ascontiguousarray(z.reshape(-1))),
                       dtype=np.complex128)
        return out.reshape(z.shape)

    def real_stability_interval(self, method: str | Method) -> float:
        return float(self._call("real_stability_interval", self._tab_for_stability(method)))

    def imag_stability_interval(self, method: str | Method) -> float:
        return float(self._call("imag_stability_interval", self._tab_for_stability(method)))


def _saveat(prob: Problem, saveat: Any) -> np.ndarray:
    from .scipy_backend import _times

    return _times(prob, saveat)


def resolve_method(name: str) -> ButcherTableau:
    """Catalogue plugin for ``"julia:NAME"``: the tableau Julia knows as NAME.

    Raises :class:`~odernn_bridge.JuliaUnavailableError` (within a second) without Julia.
    """
    start = time.perf_counter()
    backend = JuliaBackend()
    if not backend.available():
        raise JuliaUnavailableError(f"julia:{name} needs the Julia backend ({detect()[1]}) "
                                    f"[checked in {time.perf_counter() - start:.2f}s]")
    return backend.tableau(name)

