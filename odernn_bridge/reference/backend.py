"""The reference-backend protocol, solutions, and backend selection.

A backend answers the questions cross-validation asks of an outside authority:

* ``tableau(name)`` — the coefficients it knows under that name;
* ``solve(problem, method, dt=…)`` — a fixed-step solution with a given method, or
  ``solve(problem, alg=…, rtol=…, atol=…, saveat=…)`` — a tight adaptive reference;
* ``step(problem, method, t, u, dt)`` — one step from given states (local errors);
* ``stability(method, z)``, ``real_stability_interval``, ``imag_stability_interval``;
* ``available()`` and ``version_info()``.

``get_backend("auto")`` gives the Julia backend where Julia works and the embedded SciPy
backend otherwise (saying so once, through :mod:`logging` and a warning).

>>> b = get_backend("scipy")
>>> b.name, b.available()
('scipy', True)
"""

from __future__ import annotations

import abc
import logging
import threading
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..methods.catalogue import as_method
from ..methods.multistep import LinearMultistep
from ..methods.tableau import ButcherTableau
from .problems import Problem

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

__all__ = ["Backend", "Solution", "get_backend", "available_backends", "BACKENDS",
           "stability_function_values", "real_interval", "imag_interval", "ReferenceFallbackWarning"]

logger = logging.getLogger("odernn_bridge.reference")

Method = ButcherTableau | LinearMultistep


class ReferenceFallbackWarning(UserWarning):
    """backend="auto" fell back to the SciPy backend because Julia is not usable."""


@dataclass
class Solution:
    """Times ``t`` (n,) and states ``u`` (n, d) from a backend, with what produced them."""

    t: np.ndarray
    u: np.ndarray
    backend: str
    method: str
    dt: float | None = None
    alg: str | None = None
    rtol: float | None = None
    atol: float | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.t = np.asarray(self.t, dtype=np.float64).reshape(-1)
        self.u = np.asarray(self.u, dtype=np.float64)
        if self.u.ndim == 1:
            self.u = self.u[:, None]
        if self.u.shape[0] != self.t.shape[0]:
            raise ValueError(f"u: expected {self.t.shape[0]} states for {self.t.shape[0]} times, "
                             f"got shape {self.u.shape}")

    @property
    def final(self) -> np.ndarray:
        return self.u[-1]

    def to_dataset(self) -> "xr.Dataset":
        """``xarray.Dataset`` with ``u(time, component)`` and provenance attrs."""
        import xarray as xr

        from ..io import provenance

        ds = xr.Dataset({"u": (("time", "component"), self.u)},
                        coords={"time": self.t, "component": np.arange(self.u.shape[1])})
        ds.attrs = provenance(backend=self.backend, method=self.method, dt=self.dt, alg=self.alg,
                              rtol=self.rtol, atol=self.atol)
        return ds


_as_method = as_method  # the name the backends import


class Backend(abc.ABC):
    """Base class of reference backends; see the module docstring for the protocol."""

    name: str = "abstract"
    #: what the backend can do ("tableau", "fixed_step", "step", "reference", "stability");
    #: an operation outside it raises :class:`~odernn_bridge.UnsupportedOperationError`
    capabilities: frozenset[str] = frozenset({"tableau", "fixed_step", "step", "reference", "stability"})

    # -- identity ---------------------------------------------------------------------
    @abc.abstractmethod
    def available(self) -> bool:
        """Whether the backend can run here (cheap; never hangs)."""

    @abc.abstractmethod
    def version_info(self) -> dict[str, str]:
        """Versions of what the backend runs on (e.g. ``{"scipy": "1.13.0"}``)."""

    # -- methods ----------------------------------------------------------------------
    @abc.abstractmethod
    def tableau(self, name: str) -> ButcherTableau:
        """The tableau this backend knows as ``name``."""

    def supports(self, method: str | Method) -> bool:
        """Whether :meth:`solve` / :meth:`step` can run ``method`` itself."""
        return True

    def handles(self, problem: Problem | str) -> bool:
        """Whether the backend can evaluate ``problem``'s right-hand side."""
        return True

    # -- solving ----------------------------------------------------------------------
    @abc.abstractmethod
    def solve(self, problem: Problem | str, method: str | Method | None = None, *, dt: float | None = None,
              alg: str | None = None, rtol: float | None = None, atol: float | None = None,
              saveat: Sequence[float] | np.ndarray | None = None) -> Solution:
        """Fixed-step solution with ``method`` (``dt`` required) or, with ``method=None``, a
        tight adaptive reference (``alg``, ``rtol``, ``atol``) saved at ``saveat``."""

    @abc.abstractmethod
    def step(self, problem: Problem | str, method: str | Method, t: float, u: np.ndarray, dt: float,
             segment: int = 0) -> np.ndarray:
        """One step of ``method`` from states ``u`` (``(d,)`` or ``(batch, d)``) at time ``t``."""

    def reference(self, problem: Problem | str, saveat: Sequence[float] | np.ndarray) -> np.ndarray:
        """The backend's tightest routine reference at ``saveat`` (shape ``(len(saveat), d)``)."""
        return self.solve(problem, saveat=saveat).u

    # -- stability ----------------------------------------------------------------------
    @abc.abstractmethod
    def stability(self, method: str | Method, z: Any) -> np.ndarray:
        """The stability function ``R(z)`` of a Runge–Kutta method at complex ``z``."""

    @abc.abstractmethod
    def real_stability_interval(self, method: str | Method) -> float:
        """Largest ``r`` with ``[-r, 0]`` inside ``|R| ≤ 1`` (``inf`` if unbounded)."""

    @abc.abstractmethod
    def imag_stability_interval(self, method: str | Method) -> float:
        """Largest ``r`` with ``[-ir, ir]`` inside ``|R| ≤ 1`` (0 if none)."""

    def intervals(self, method: str | Method) -> dict[str, float]:
        return {"real": self.real_stability_interval(method), "imag": self.imag_stability_interval(method)}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


# ---------------------------------------------------------------------------------------
# stability helpers shared by the embedded backend (independent of odernn_bridge.stability)
# ---------------------------------------------------------------------------------------

def stability_function_values(method: ButcherTableau, z: Any) -> np.ndarray:
    """``R(z) = 1 + z bᵀ (I - zA)⁻¹ 𝟙`` evaluated by linear solves (any tableau).

    >>> from odernn_bridge.methods import get_method
    >>> complex(stability_function_values(get_method("Euler"), -1.0))
    0j
    """
    if not isinstance(method, ButcherTableau):
        raise TypeError(f"method: expected a Runge-Kutta tableau, got {type(method).__name__}")
    z = np.asarray(z, dtype=np.complex128)
    s = method.stages
    flat = z.reshape(-1)
    M = np.eye(s)[None] - flat[:, None, None] * method.A[None]
    with np.errstate(all="ignore"):
        try:
            K = np.linalg.solve(M, np.ones((flat.size, s, 1), dtype=np.complex128))[..., 0]
        except np.linalg.LinAlgError:
            K = np.stack([np.linalg.lstsq(Mi, np.ones(s), rcond=None)[0] for Mi in M])
        R = 1 + flat * (K @ method.b)
    return R.reshape(z.shape)


def _boundary(absR, direction: complex, limit: float = 1e3, tol: float = 1e-13) -> float:
    """Largest r ≤ limit with |R(direction·x)| ≤ 1 for all x in [0, r] (scan + bisection)."""
    grids = np.concatenate([np.linspace(0, 10, 20001)[1:], np.geomspace(10, limit, 4001)[1:]])
    vals = absR(direction * grids)
    bad = np.nonzero(~(vals <= 1 + tol))[0]
    if bad.size == 0:
        return float("inf")
    k = int(bad[0])
    lo = 0.0 if k == 0 else float(grids[k - 1])
    hi = float(grids[k])
    if k == 0:
        # unstable right away? check a tiny neighbourhood of 0
        tiny = absR(direction * np.array([1e-6, 1e-4]))
        if not np.all(tiny <= 1 + tol):
            return 0.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if absR(direction * np.array([mid]))[0] <= 1 + tol:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-14 * max(1.0, hi):
            break
    return lo


def real_interval(method: ButcherTableau) -> float:
    """Length of the real negative stability interval (scan then bisection).

    >>> from odernn_bridge.methods import get_method
    >>> round(real_interval(get_method("RK4")), 10)
    2.7852935634
    """
    return _boundary(lambda z: np.abs(stability_function_values(method, z)), -1.0)


def imag_interval(method: ButcherTableau) -> float:
    """Length of the imaginary stability interval (0 when |R(iy)| > 1 near 0)."""
    return _boundary(lambda z: np.abs(stability_function_values(method, z)), 1j)


# ---------------------------------------------------------------------------------------
# selection
# ---------------------------------------------------------------------------------------

BACKENDS = ("scipy", "julia", "diffeqpy")
_INSTANCES: dict[str, Backend] = {}
_LOCK = threading.Lock()
_FALLBACK_ANNOUNCED = False


def _instance(name: str) -> Backend:
    with _LOCK:
        if name not in _INSTANCES:
            if name == "scipy":
                from .scipy_backend import ScipyBackend

                _INSTANCES[name] = ScipyBackend()
            elif name == "diffeqpy":
                from .diffeqpy_backend import DiffeqpyBackend

                _INSTANCES[name] = DiffeqpyBackend()
            else:
                from .julia import JuliaBackend

                _INSTANCES[name] = JuliaBackend()
        return _INSTANCES[name]


def available_backends() -> list[str]:
    """Names of the backends usable here (``"scipy"`` always; ``"julia"`` / ``"diffeqpy"`` where
    Julia works; checked offline, never installing anything)."""
    return [n for n in BACKENDS if _instance(n).available()]


def get_backend(name: str | Backend = "auto") -> Backend:
    """A reference backend: ``"scipy"``, ``"julia"``, ``"diffeqpy"`` (reference solutions only)
    or ``"auto"`` (Julia if usable, else SciPy — said once through logging and a
    :class:`ReferenceFallbackWarning`).

    ``"julia"`` and ``"diffeqpy"`` without a working Julia raise
    :class:`~odernn_bridge.JuliaUnavailableError` within a second, with what to do.

    >>> get_backend("scipy").name
    'scipy'
    """
    global _FALLBACK_ANNOUNCED
    if isinstance(name, Backend):
        return name
    if not isinstance(name, str):
        raise TypeError(f"backend: expected 'auto', 'scipy', 'julia', 'diffeqpy' or a Backend, "
                        f"got {type(name).__name__}")
    key = name.strip().lower()
    if key == "scipy":
        return _instance("scipy")
    if key in ("julia", "diffeqpy"):
        jb = _instance(key)
        jb.ensure_available()  # type: ignore[attr-defined]
        return jb
    if key == "auto":
        jb = _instance("julia")
        if jb.available():
            return jb
        if not _FALLBACK_ANNOUNCED:
            _FALLBACK_ANNOUNCED = True
            reason = getattr(jb, "unavailable_reason", lambda: "Julia not found")()
            msg = f"backend='auto': Julia is not usable ({reason}); using the SciPy/mpmath reference backend"
            logger.info(msg)
            warnings.warn(msg, ReferenceFallbackWarning, stacklevel=2)
        return _instance("scipy")
    raise ValueError(f"backend: expected one of 'auto', {', '.join(repr(b) for b in BACKENDS)}, got {name!r}")


def _reset_for_tests() -> None:
    """Forget cached backends and the fallback announcement (tests only)."""
    global _FALLBACK_ANNOUNCED
    with _LOCK:
        _INSTANCES.clear()
    _FALLBACK_ANNOUNCED = False
