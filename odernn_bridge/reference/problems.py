"""Test problems for cross-validation: a float64 NumPy right-hand side, an mpmath one for
ground truth, and a Julia one for the Julia backend.

Right-hand sides are written once, generically (``u[..., 0]``-style indexing that works on
NumPy arrays of shape ``(..., d)`` *and* on lists of ``mpmath.mpf``), so that the
float64 integrators can step a whole batch of states at once (local errors from every
reference state in one vectorised step) and mpmath can integrate the same formula at high
precision.  ``julia_rhs`` is an in-place Julia function expression ``(du, u, p, t) -> …``
with ``p`` the parameter values in the order of :attr:`Problem.params`.

>>> p = get_problem("vanderpol")
>>> p.u0.tolist(), p.tspan
([2.0, 0.0], (0.0, 2.0))
>>> p.f(0.0, p.u0).tolist()
[0.0, -2.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .._checks import check_step_size

__all__ = ["Problem", "get_problem", "list_problems", "register_problem"]

#: generic right-hand side: (t, u, p) -> sequence of components; u indexable by component
GenericRHS = Callable[[Any, Any, Mapping[str, Any]], Sequence[Any]]


def _stack(parts: Sequence[Any], like: np.ndarray) -> np.ndarray:
    if isinstance(parts, np.ndarray) and parts.shape == like.shape:
        return parts if like.dtype == object else parts.astype(np.float64, copy=False)
    out = np.empty(like.shape, dtype=object if like.dtype == object else np.float64)
    for i, part in enumerate(parts):
        out[..., i] = part
    return out


@dataclass(frozen=True)
class Problem:
    """An initial value problem ``u' = f(t, u; params)``, ``u(t0) = u0``.

    ``rhs(t, u, params)`` is the right-hand side written generically (see the module
    docstring; it returns the components, or an array shaped like ``u``); :meth:`f` evaluates
    it in float64 on arrays of shape ``(d,)`` or ``(batch, d)`` (``prob(t, u)`` too).  ``exact(t)`` gives the exact
    solution where known.  ``stiffness`` is a hint (``"nonstiff"``, ``"mild"``,
    ``"stiff"``) used to pick reference solvers.  ``inputs``/``input_dt`` describe a
    piecewise-constant input sequence (segment ``n`` covers ``[t0 + n·input_dt,
    t0 + (n+1)·input_dt]`` and sees ``params["x"] = inputs[n]``); solvers then restart at
    every segment boundary.  ``numpy_rhs`` overrides the generic formula for float64 (e.g. a
    torch field evaluated in float64); ``jac(t, u, params)`` is an optional Jacobian
    ``(..., d, d)`` for Newton iterations; ``autonomous=False`` marks a time-dependent ``f``.

    >>> prob = Problem("decay", rhs=lambda t, u, p: [-p["k"] * u[..., 0]], u0=[1.0], tspan=(0.0, 1.0),
    ...                params={"k": 2.0}, exact=lambda t: np.array([math.exp(-2 * t)]))
    >>> float(prob.f(0.0, prob.u0)[0])
    -2.0
    """

    name: str
    rhs: GenericRHS | None
    u0: Any
    tspan: tuple[float, float]
    params: Mapping[str, float] = field(default_factory=dict)
    exact: Callable[[float], np.ndarray] | None = None
    stiffness: str = "nonstiff"
    julia_rhs: str | None = None
    description: str = ""
    inputs: np.ndarray | None = None
    input_dt: float | None = None
    numpy_rhs: Callable[[float, np.ndarray, Mapping[str, Any]], np.ndarray] | None = None
    jac: Callable[[float, np.ndarray, Mapping[str, Any]], np.ndarray] | None = None
    autonomous: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name: expected a non-empty string, got {self.name!r}")
        u0 = np.array(self.u0, dtype=np.float64).reshape(-1)
        if u0.size == 0 or not np.all(np.isfinite(u0)):
            raise ValueError(f"u0: expected a non-empty vector of finite numbers, got {self.u0!r}")
        u0.setflags(write=False)
        object.__setattr__(self, "u0", u0)
        try:
            t0, t1 = (float(x) for x in self.tspan)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"tspan: expected (t0, t1) numbers, got {self.tspan!r}") from exc
        if not (math.isfinite(t0) and math.isfinite(t1) and t1 > t0):
            raise ValueError(f"tspan: expected finite t0 < t1, got {self.tspan!r}")
        object.__setattr__(self, "tspan", (t0, t1))
        if self.stiffness not in ("nonstiff", "mild", "stiff"):
            raise ValueError(f"stiffness: expected 'nonstiff', 'mild' or 'stiff', got {self.stiffness!r}")
        if self.rhs is None and self.numpy_rhs is None:
            raise ValueError("rhs: a problem needs a right-hand side formula rhs or a numpy_rhs")
        object.__setattr__(self, "params", dict(self.params))
        if self.inputs is not None:
            x = np.array(self.inputs, dtype=np.float64)
            if x.ndim == 1:
                x = x[:, None]
            if x.ndim != 2 or not np.all(np.isfinite(x)):
                raise ValueError("inputs: expected a finite (steps, input_size) array")
            if self.input_dt is None:
                raise ValueError("input_dt: expected a positive step for the input sequence, got None")
            check_step_size(self.input_dt, "input_dt")
            n = int(round((t1 - t0) / self.input_dt))
            if n != x.shape[0] or abs(n * self.input_dt - (t1 - t0)) > 1e-12 * max(1.0, t1 - t0):
                raise ValueError(f"inputs: {x.shape[0]} inputs of input_dt={self.input_dt} do not "
                                 f"cover tspan {self.tspan}")
            x.setflags(write=False)
            object.__setattr__(self, "inputs", x)

    # -- evaluation ---------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.u0.size)

    @property
    def segmented(self) -> bool:
        return self.inputs is not None

    @property
    def n_segments(self) -> int:
        return 1 if self.inputs is None else int(self.inputs.shape[0])

    def segment_bounds(self) -> np.ndarray:
        """Times ``t0 < … < t1`` where the right-hand side may jump (segment ends)."""
        t0, t1 = self.tspan
        if self.inputs is None:
            return np.array([t0, t1])
        return t0 + self.input_dt * np.arange(self.n_segments + 1)

    def params_for(self, segment: int = 0) -> dict[str, Any]:
        p = dict(self.params)
        if self.inputs is not None:
            p["x"] = self.inputs[segment]
        return p

    def f(self, t: float, u: np.ndarray, params: Mapping[str, Any] | None = None) -> np.ndarray:
        """``f(t, u)`` in float64 for ``u`` of shape ``(d,)`` or ``(batch, d)`` (or in mpmath
        precision for object arrays of ``mpf``)."""
        p = self.params_for(0) if params is None else params
        u = np.asarray(u)
        if u.dtype == object:  # mpmath numbers: extended-precision integration
            if self.rhs is None:
                raise ValueError(f"problem {self.name!r} has no generic formula for extended precision")
            import mpmath

            pm = {k: (mpmath.mpf(float(v)) if np.ndim(v) == 0 else v) for k, v in p.items()}
            return _stack(self.rhs(t, u, pm), u)
        u = np.asarray(u, dtype=np.float64)
        if self.numpy_rhs is not None:
            out = np.asarray(self.numpy_rhs(t, u, p), dtype=np.float64)
        else:
            out = _stack(self.rhs(t, u, p), u)
        return out

    def __call__(self, t: float, u: np.ndarray, params: Mapping[str, Any] | None = None) -> np.ndarray:
        return self.f(t, u, params)

    def mp_rhs(self, t: Any, u: Sequence[Any]) -> list[Any]:
        """The generic formula on mpmath numbers (ground truth)."""
        if self.rhs is None:
            raise ValueError(f"problem {self.name!r} has no generic formula for mpmath")
        import mpmath

        p = {k: (mpmath.mpf(float(v)) if np.ndim(v) == 0 else [mpmath.mpf(float(x)) for x in np.ravel(v)])
             for k, v in self.params.items()}
        return list(self.rhs(t, _MPState(u), p))

    def with_params(self, **params: float) -> "Problem":
        """A copy with some parameters changed (``exact`` is dropped unless it stays valid)."""
        bad = set(params) - set(self.params)
        if bad:
            raise ValueError(f"params: unknown parameter(s) {sorted(bad)} for {self.name!r}; "
                             f"known: {sorted(self.params)}")
        return replace(self, params={**self.params, **params}, exact=None)

    def with_tspan(self, tspan: tuple[float, float]) -> "Problem":
        return replace(self, tspan=tuple(tspan))  # type: ignore[arg-type]

    @property
    def julia_params(self) -> list[float]:
        return [float(v) for v in self.params.values()]


class _MPState:
    """Make ``u[..., i]`` work on a plain list (so one formula serves NumPy and mpmath)."""

    __slots__ = ("_u",)

    def __init__(self, u: Sequence[Any]) -> None:
        self._u = u

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, tuple):
            key = key[-1]
        return self._u[key]


# ---------------------------------------------------------------------------------------
# built-in problems
# ---------------------------------------------------------------------------------------

def _linear(t, u, p):
    return [p["lam"] * u[..., 0]]


def _vanderpol(t, u, p):
    x, y = u[..., 0], u[..., 1]
    return [y, p["mu"] * (1 - x * x) * y - x]


def _vanderpol_jac(t, u, p):
    x, y = u[..., 0], u[..., 1]
    J = np.empty(np.shape(u) + (2,), dtype=np.float64)
    J[..., 0, 0] = 0.0
    J[..., 0, 1] = 1.0
    J[..., 1, 0] = -2.0 * p["mu"] * x * y - 1.0
    J[..., 1, 1] = p["mu"] * (1 - x * x)
    return J


def _lorenz(t, u, p):
    x, y, z = u[..., 0], u[..., 1], u[..., 2]
    return [p["sigma"] * (y - x), x * (p["rho"] - z) - y, x * y - p["beta"] * z]


def _lotka(t, u, p):
    x, y = u[..., 0], u[..., 1]
    return [p["a"] * x - p["b"] * x * y, -p["c"] * y + p["d"] * x * y]


def _kepler(t, u, p):
    x, y, vx, vy = u[..., 0], u[..., 1], u[..., 2], u[..., 3]
    r2 = x * x + y * y
    r3 = r2 ** 1.5
    return [vx, vy, -x / r3, -y / r3]


def _kepler_exact(e: float) -> Callable[[float], np.ndarray]:
    """Closed form of the Kepler orbit with eccentricity e, period 2π, started at pericentre."""

    def exact(t: float) -> np.ndarray:
        M = float(t)
        E = M if e < 0.8 else math.pi
        for _ in range(50):  # Newton on Kepler's equation E - e sin E = M
            dE = (E - e * math.sin(E) - M) / (1 - e * math.cos(E))
            E -= dE
            if abs(dE) < 1e-16:
                break
        s = math.sqrt(1 - e * e)
        den = 1 - e * math.cos(E)
        return np.array([math.cos(E) - e, s * math.sin(E), -math.sin(E) / den, s * math.cos(E) / den])

    return exact


_JL_LINEAR = "(du, u, p, t) -> (du[1] = p[1] * u[1]; nothing)"
_JL_VDP = "(du, u, p, t) -> (du[1] = u[2]; du[2] = p[1] * (1 - u[1]^2) * u[2] - u[1]; nothing)"
_JL_LORENZ = ("(du, u, p, t) -> (du[1] = p[1] * (u[2] - u[1]); du[2] = u[1] * (p[2] - u[3]) - u[2]; "
              "du[3] = u[1] * u[2] - p[3] * u[3]; nothing)")
_JL_LOTKA = ("(du, u, p, t) -> (du[1] = p[1] * u[1] - p[2] * u[1] * u[2]; "
             "du[2] = -p[3] * u[2] + p[4] * u[1] * u[2]; nothing)")
_JL_KEPLER = ("(du, u, p, t) -> (r3 = (u[1]^2 + u[2]^2)^(3/2); du[1] = u[3]; du[2] = u[4]; "
              "du[3] = -u[1] / r3; du[4] = -u[2] / r3; nothing)")


def _builtin() -> dict[str, Callable[[], Problem]]:
    e = 0.5
    return {
        "linear": lambda: Problem(
            "linear", _linear, [1.0], (0.0, 1.0), {"lam": -1.0},
            exact=lambda t: np.array([math.exp(-1.0 * t)]),
            julia_rhs=_JL_LINEAR,
            description="Dahlquist's linear test equation u' = λu, λ = -1.",
            jac=lambda t, u, p: np.full(np.shape(u)[:-1] + (1, 1), p["lam"])),
        "vanderpol": lambda: Problem(
            "vanderpol", _vanderpol, [2.0, 0.0], (0.0, 2.0), {"mu": 1.0},
            julia_rhs=_JL_VDP, jac=_vanderpol_jac,
            description="Van der Pol oscillator x'' = μ(1 - x²)x' - x, μ = 1 (smooth, non-stiff)."),
        "vanderpol_mild": lambda: Problem(
            "vanderpol_mild", _vanderpol, [2.0, 0.0], (0.0, 2.0), {"mu": 3.0},
            stiffness="mild", julia_rhs=_JL_VDP, jac=_vanderpol_jac,
            description="Van der Pol with μ = 3 on [0, 2]: mildly stiff (Jacobian eigenvalue ≈ -9 at "
                        "the start)."),
        "lorenz": lambda: Problem(
            "lorenz", _lorenz, [1.0, 0.0, 0.0], (0.0, 1.0),
            {"sigma": 10.0, "rho": 28.0, "beta": 8.0 / 3.0},
            julia_rhs=_JL_LORENZ,
            description="Lorenz system (σ=10, ρ=28, β=8/3) on [0, 1] (before chaos amplifies errors)."),
        "lotka_volterra": lambda: Problem(
            "lotka_volterra", _lotka, [1.0, 1.0], (0.0, 5.0), {"a": 1.5, "b": 1.0, "c": 3.0, "d": 1.0},
            julia_rhs=_JL_LOTKA,
            description="Lotka–Volterra predator–prey model (a=1.5, b=1, c=3, d=1)."),
        "kepler": lambda: Problem(
            "kepler", _kepler, [1 - e, 0.0, 0.0, math.sqrt((1 + e) / (1 - e))], (0.0, 2.0), {"e": e},
            exact=_kepler_exact(e), julia_rhs=_JL_KEPLER,
            description="Two-body (Kepler) orbit, eccentricity 0.5, from pericentre; exact solution "
                        "from Kepler's equation."),
    }


_REGISTRY: dict[str, Callable[[], Problem]] = {}
_ALIASES = {"vdp": "vanderpol", "van_der_pol": "vanderpol", "lotka": "lotka_volterra",
            "lotkavolterra": "lotka_volterra", "twobody": "kepler", "two_body": "kepler",
            "dahlquist": "linear", "test": "linear"}


def list_problems() -> list[str]:
    """Names of the built-in (and registered) problems.

    >>> "kepler" in list_problems()
    True
    """
    if not _REGISTRY:
        _REGISTRY.update(_builtin())
    return sorted(_REGISTRY)


def register_problem(problem: Problem | Callable[[], Problem], name: str | None = None) -> None:
    """Make ``get_problem(name)`` return ``problem`` (or call the factory)."""
    list_problems()
    if isinstance(problem, Problem):
        key = name or problem.name
        _REGISTRY[key] = lambda: problem
    elif callable(problem):
        if not name:
            raise ValueError("name: a factory needs a name")
        _REGISTRY[name] = problem
    else:
        raise TypeError(f"problem: expected a Problem or a factory, got {type(problem).__name__}")


def get_problem(name: str | Problem, **params: float) -> Problem:
    """A built-in problem by name (``"linear"``, ``"vanderpol"``, ``"lorenz"``,
    ``"lotka_volterra"``, ``"kepler"``, ``"vanderpol_mild"``); a Problem is returned as is.

    Keyword arguments change parameters (``get_problem("vanderpol", mu=5.0)``).

    >>> get_problem("kepler").exact(0.0).round(3).tolist()
    [0.5, 0.0, -0.0, 1.732]
    """
    if isinstance(name, Problem):
        return name.with_params(**params) if params else name
    if not isinstance(name, str):
        raise TypeError(f"problem: expected a problem name or a Problem, got {type(name).__name__}")
    names = list_problems()
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        import difflib

        close = difflib.get_close_matches(key, names, n=3, cutoff=0.4)
        raise ValueError(f"problem: unknown problem {name!r}; known problems: {', '.join(names)}"
                         + (f" (closest: {', '.join(close)})" if close else ""))
    prob = _REGISTRY[key]()
    return prob.with_params(**params) if params else prob
