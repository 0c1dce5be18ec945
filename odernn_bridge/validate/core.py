"""Step-by-step cross-validation and observed convergence order.

For each step size ``dt`` the method (or cell) integrates the problem with fixed steps; the
reference backend supplies the reference trajectory on the same grid.  Recorded per step:

* the **global error** ``‖u_n − u_ref(t_n)‖∞``;
* the **local error** ``‖Φ_dt(u_ref(t_{n−1})) − u_ref(t_n)‖∞`` — one step from the reference
  state (all steps at once, as a batch).

The **observed order** is the least-squares slope of ``log(final error)`` against
``log(dt)``; the verdict compares it with the method's nominal order (± ``tolerance``).
``dts=None`` halves ``dt`` from a coarse grid until the error reaches round-off territory
and keeps the finest levels whose errors lie in the asymptotic window
``[floor, ceiling]`` (relative to the solution's size).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from .._checks import check_step_size
from ..io import provenance
from ..methods.catalogue import get_method
from ..methods.multistep import LinearMultistep
from ..methods.tableau import ButcherTableau
from ..reference.backend import Backend, get_backend
from ..reference.problems import Problem, get_problem
from .steppers import CellStepper, MethodStepper, Stepper, field_problem, is_cell

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

__all__ = ["validate", "validate_sweep", "observed_order", "verdict", "verdict_reason", "DEFAULT_TOLERANCE"]

logger = logging.getLogger("odernn_bridge.validate")

DEFAULT_TOLERANCE = 0.3
_FLOOR = 1e-12        # errors below floor·scale are round-off/reference territory
_CEILING = 1e-2       # errors above ceiling·scale are pre-asymptotic
_MAX_STEPS = 8192


def observed_order(dts: Sequence[float], errors: Sequence[float]) -> float:
    """Least-squares slope of ``log(error)`` against ``log(dt)`` (NaN with < 2 usable points).

    >>> round(observed_order([0.1, 0.05, 0.025], [1e-4, 6.25e-6, 3.90625e-7]), 6)
    4.0
    """
    d = np.asarray(dts, dtype=float)
    e = np.asarray(errors, dtype=float)
    ok = np.isfinite(e) & (e > 0) & np.isfinite(d) & (d > 0)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(d[ok]), np.log(e[ok]), 1)[0])


#: pairwise orders spreading more than this are not asymptotic (no verdict)
SETTLED_SPREAD = 0.5
#: a failing verdict needs the last two pairwise orders this close (a settled order) ...
_FAIL_LAST_PAIRS = 0.1
#: ... and no drift of the pairwise orders towards the nominal order larger than this
_FAIL_DRIFT = 0.05


def verdict(observed: float, nominal: int, tolerance: float = DEFAULT_TOLERANCE, levels: int = 3,
            spread: float = 0.0, pairwise: Sequence[float] | None = None) -> str:
    """``"pass"`` when ``|observed - nominal| ≤ tolerance``; ``"fail: order too low/high"``;
    ``"inconclusive"`` with fewer than 3 levels, or when the pairwise orders between successive
    levels still spread by more than :data:`SETTLED_SPREAD` (not in the asymptotic range:
    pre-asymptotic, or round-off reached).

    With the ``pairwise`` orders given (``validate`` gives them), a failing verdict also needs
    evidence that the range is asymptotic; otherwise the verdict is ``"inconclusive"``
    (:func:`verdict_reason` says why): the last two pairwise orders agree within 0.1, they do
    not drift towards the nominal order (by more than 0.05), and the observed order is within
    ``tolerance`` of an integer — an asymptotic order is one (e^h ~ C h^p).

    >>> verdict(3.9, 4), verdict(3.2, 4), verdict(float("nan"), 4), verdict(6.3, 5, spread=0.9)
    ('pass', 'fail: order too low', 'inconclusive', 'inconclusive')
    >>> verdict(4.66, 5, pairwise=[4.62, 4.70])  # RKF5 in float64: still rising towards 5
    'inconclusive'
    """
    return verdict_reason(observed, nominal, tolerance, levels, spread, pairwise)[0]


def verdict_reason(observed: float, nominal: int, tolerance: float = DEFAULT_TOLERANCE, levels: int = 3,
                   spread: float = 0.0, pairwise: Sequence[float] | None = None) -> tuple[str, str]:
    """``(verdict, reason)``: :func:`verdict` and a sentence explaining it.

    >>> verdict_reason(4.66, 5, pairwise=[4.62, 4.70])[1]
    'not yet asymptotic: the pairwise orders still rise towards the nominal order 5 (4.62 -> 4.70)'
    """
    if levels < 3:
        return "inconclusive", f"only {levels} step sizes (3 or more are needed)"
    if not math.isfinite(observed):
        return "inconclusive", "no finite observed order"
    if not spread <= SETTLED_SPREAD:
        return "inconclusive", (f"not asymptotic: the pairwise orders spread by {spread:.2f} "
                                f"(> {SETTLED_SPREAD})")
    if abs(observed - nominal) <= tolerance:
        return "pass", f"observed order {observed:.2f} within {tolerance} of the nominal {nominal}"
    low = observed < nominal
    fail = "fail: order too low" if low else "fail: order too high"
    q = [float(x) for x in (pairwise if pairwise is not None else []) if math.isfinite(x)]
    if pairwise is not None:
        towards = 1.0 if low else -1.0
        if len(q) >= 2 and (q[-1] - q[0]) * towards > _FAIL_DRIFT:
            return "inconclusive", (f"not yet asymptotic: the pairwise orders still {'rise' if low else 'fall'} "
                                    f"towards the nominal order {nominal} ({q[0]:.2f} -> {q[-1]:.2f})")
        if len(q) < 2 or abs(q[-1] - q[-2]) > _FAIL_LAST_PAIRS:
            return "inconclusive", ("not asymptotic: the last pairwise orders have not settled ("
                                    + ", ".join(f"{x:.2f}" for x in q[-2:]) + ")")
        if abs(observed - round(observed)) > tolerance:
            return "inconclusive", (f"not asymptotic: the observed order {observed:.2f} is not near an "
                                    "integer (pre-asymptotic, e.g. a tiny principal error coefficient)")
    return fail, f"observed order {observed:.2f}, nominal {nominal} (tolerance {tolerance})"


@dataclass
class _Level:
    dt: float
    n: int
    U: np.ndarray       # (n+1, d)
    final_error: float


#: reference grids of built-in problems, shared across calls (sweeps validate many methods
#: on the same problem and grids); keyed by backend, problem identity and precision
_SHARED_REFERENCES: dict[tuple, dict[int, np.ndarray]] = {}
#: final states (ground truth where asked) of the same problems, keyed like the grids + ground_truth
_SHARED_FINALS: dict[tuple, np.ndarray] = {}
_SHAREABLE = ("linear", "vanderpol", "vanderpol_mild", "lorenz", "lotka_volterra", "kepler")


def _coefficient_floor(method: Any) -> float:
    """Relative error floor implied by coefficients published as decimals (their digits)."""
    from ..methods.exact import decimal_digits

    co = getattr(method, "coefficients", None)
    if co is None:
        return 0.0
    digits = [decimal_digits(x) for x in co._all()]
    digits = [d for d in digits if d]
    return 10.0 ** (-(min(digits) - 2)) if digits else 0.0


class _ReferenceGrid:
    """Reference states on ``t0 + j·T/N`` grids, computed once on the finest grid and sliced."""

    def __init__(self, backend: Backend, prob: Problem, ground_truth: bool, dps: int | None = None) -> None:
        self.backend = backend
        self.prob = prob
        self.ground_truth = ground_truth
        self.dps = dps
        self._cache: dict[int, np.ndarray] = {}
        self._final: np.ndarray | None = None

    def _key(self) -> tuple:
        p = self.prob
        params = tuple((k, float(v)) for k, v in p.params.items() if np.ndim(v) == 0)
        return (self.backend.name, p.name, id(p.rhs), id(p.numpy_rhs), params, tuple(p.u0.tolist()), p.tspan,
                p.inputs.tobytes() if p.inputs is not None else None, self.dps)

    def grid(self, n: int) -> np.ndarray:
        for N, U in self._cache.items():
            if N % n == 0:
                return U[:: N // n]
        shared = _SHARED_REFERENCES.get(self._key(), {})
        for N, U in shared.items():
            if N % n == 0:
                self._cache[N] = U
                return U[:: N // n]
        t0, t1 = self.prob.tspan
        times = t0 + (t1 - t0) * np.arange(n + 1) / n
        if self.dps is not None:
            U = self.backend.ground_truth_mp(self.prob, times, self.dps + 10)  # type: ignore[attr-defined]
        else:
            U = np.asarray(self.backend.reference(self.prob, times))
        self._cache[n] = U
        if self.shareable:
            if len(_SHARED_REFERENCES) > 16:
                _SHARED_REFERENCES.clear()
            _SHARED_REFERENCES.setdefault(self._key(), {})[n] = U
        return U

    @property
    def shareable(self) -> bool:
        """Built-in problems, whose references are shared across calls (and sweep workers)."""
        return self.prob.name in _SHAREABLE and self.prob.numpy_rhs is None

    def export(self, n: int) -> dict[str, Any]:
        """The reference on the ``n``-step grid and the final state, for :meth:`install` elsewhere."""
        return {"n": int(n), "grid": self.grid(n), "final": self.final(), "ground_truth": self.ground_truth}

    def install(self, shared: Mapping[str, Any]) -> None:
        """Make :meth:`export`'s values (computed once, maybe in another process) the shared ones."""
        if not self.shareable or shared["ground_truth"] != self.ground_truth:
            return
        if len(_SHARED_REFERENCES) > 16:
            _SHARED_REFERENCES.clear()
        _SHARED_REFERENCES.setdefault(self._key(), {}).setdefault(shared["n"], shared["grid"])
        _SHARED_FINALS.setdefault((self._key(), self.ground_truth), shared["final"])

    def prefetch(self, n: int) -> None:
        self.grid(n)

    def final(self) -> np.ndarray:
        if self._final is None and self.dps is not None:
            self._final = self.grid(1)[-1]
        if self._final is None and self.shareable:
            self._final = _SHARED_FINALS.get((self._key(), self.ground_truth))
        if self._final is None:
            t1 = self.prob.tspan[1]
            gt = getattr(self.backend, "ground_truth", None)
            if self.ground_truth and gt is not None:
                self._final = np.asarray(gt(self.prob, [t1]))[-1]
            else:
                self._final = self.grid(1)[-1]
            if self.shareable:
                if len(_SHARED_FINALS) > 16:
                    _SHARED_FINALS.clear()
                _SHARED_FINALS[(self._key(), self.ground_truth)] = self._final
        return self._final


def _resolve(method_or_cell: Any, prob: Problem, backend: Backend, dps: int | None = None) -> Stepper:
    if is_cell(method_or_cell):
        if dps is not None:
            raise ValueError("precision: torch cells run in float64; use precision='float64'")
        return CellStepper(method_or_cell, prob)
    if isinstance(method_or_cell, (str, ButcherTableau, LinearMultistep)):
        return MethodStepper(get_method(method_or_cell), backend, dps=dps)
    raise TypeError("method_or_cell: expected a method name, a ButcherTableau/LinearMultistep or an RK cell, "
                    f"got {type(method_or_cell).__name__}")


def _resolve_problem(problem: Any, method_or_cell: Any, *, steps: int = 8) -> Problem:
    if isinstance(problem, str) and problem.strip().lower() in ("field", "cell", "own"):
        if not is_cell(method_or_cell):
            raise ValueError("problem: 'field' validates a cell on its own field; pass an RK cell")
        cell = method_or_cell
        return field_problem(cell.field, input_dt=float(cell.dt), steps=steps)
    return get_problem(problem)


def _units(prob: Problem) -> tuple[float, int]:
    """(span, base number of steps): grids must fit the input segments."""
    t0, t1 = prob.tspan
    return t1 - t0, (prob.n_segments if prob.segmented else 1)


def _run_level(stepper: Stepper, prob: Problem, ref: _ReferenceGrid, n: int) -> _Level:
    span, _ = _units(prob)
    dt = span / n
    U = stepper.trajectory(prob, dt)
    if U.shape[0] != n + 1:
        raise RuntimeError(f"stepper returned {U.shape[0]} states for {n} steps")
    finite = np.all(np.isfinite(np.asarray(U[-1], dtype=np.float64)))
    err = float(np.max(np.abs(U[-1] - ref.final()))) if finite else float("inf")
    return _Level(dt, n, U, err)


def _settled(levels: list[_Level], n_dts: int, floor: float, ceiling: float, spread: float = 0.25) -> bool:
    """Enough levels in the window and the last pairwise orders agree (asymptotic regime)."""
    tail = levels[-n_dts:]
    if len(tail) < n_dts or not all(floor <= lv.final_error <= ceiling for lv in tail):
        return False
    orders = [math.log(a.final_error / b.final_error) / math.log(a.dt / b.dt) for a, b in zip(tail, tail[1:])]
    return max(orders) - min(orders) <= spread


def _settled_tail(window: list[_Level], n_dts: int, spread: float = 0.25) -> list[_Level]:
    """The longest run of finest levels (≤ n_dts) whose pairwise orders agree within spread."""
    best: list[_Level] = []
    for k in range(2, min(n_dts, len(window)) + 1):
        tail = window[-k:]
        orders = [math.log(a.final_error / b.final_error) / math.log(a.dt / b.dt) for a, b in zip(tail, tail[1:])]
        if max(orders) - min(orders) <= spread:
            best = tail
        elif k > 2:
            break
    return best


def _auto_levels(stepper: Stepper, prob: Problem, ref: _ReferenceGrid, n_dts: int, floor: float,
                 ceiling: float, max_steps: int) -> list[_Level]:
    span, base = _units(prob)
    n = base * (1 if prob.segmented else 4)
    # a k-step method needs at least k steps on the coarsest grid (AB6 on 4 steps used to raise)
    while n < getattr(stepper.method, "steps", 1):
        n *= 2
    levels: list[_Level] = []
    while n <= max_steps:
        try:
            lv = _run_level(stepper, prob, ref, n)
        except (FloatingPointError, ArithmeticError, RuntimeError) as exc:  # blew up at a coarse dt
            logger.debug("dt=%g failed: %s", span / n, exc)
            n *= 2
            continue
        levels.append(lv)
        if lv.final_error < floor:
            break
        if _settled(levels, n_dts, floor, ceiling):
            break
        n *= 2
    usable = [lv for lv in levels if math.isfinite(lv.final_error) and lv.final_error >= floor]
    window = [lv for lv in usable if lv.final_error <= ceiling]
    settled = _settled_tail(window, n_dts)
    if len(settled) >= 3:
        return settled
    if len(window) < n_dts:
        # low orders reach the ceiling late: add the next coarser levels (error ≤ 100·ceiling)
        extra = [lv for lv in usable if ceiling < lv.final_error <= 100 * ceiling]
        window = (extra + window)[-n_dts:] if window else usable[-n_dts:]
    return window[-n_dts:]


def validate(method_or_cell: Any, problem: str | Problem = "vanderpol", dts: Sequence[float] | None = None,
             backend: str | Backend = "auto", *, n_dts: int = 6, tolerance: float = DEFAULT_TOLERANCE,
             floor: float = _FLOOR, ceiling: float = _CEILING, max_steps: int = _MAX_STEPS,
             ground_truth: bool = True, field_steps: int = 8, precision: str = "auto",
             dps: int = 40) -> "xr.Dataset":
    """Cross-validate a method or an RK cell against a reference backend.

    Args:
        method_or_cell: catalogue name, ``ButcherTableau``/``LinearMultistep``, or an
            :class:`~odernn_bridge.cells.RKCell` (stepped by torch, in float64).
        problem: a problem name (:func:`~odernn_bridge.reference.list_problems`), a
            :class:`~odernn_bridge.reference.Problem`, or ``"field"`` — a cell's own field
            driven by a seeded input sequence of ``field_steps`` steps of ``cell.dt``.
        dts: step sizes (each must divide the time span, or the input step); ``None`` picks
            ``n_dts`` halving steps in the asymptotic range.
        backend: ``"auto"`` | ``"scipy"`` | ``"julia"`` | a Backend.
        tolerance: allowed ``|observed − nominal|`` order.
        floor, ceiling: asymptotic window for the final error, relative to ``max|u_ref|``.
        ground_truth: use the backend's high-precision ground truth (mpmath) for the final
            value where it has one.
        precision: ``"float64"``, ``"mp"`` or ``"auto"`` (default).  ``"mp"`` runs a
            Runge–Kutta method in mpmath at ``dps`` digits against an mpmath reference at
            ``dps + 10`` digits (embedded backend).  In float64 the asymptotic range of methods
            of order ≥ 5 often lies below round-off (their leading error terms are small by
            design); ``"mp"`` lowers the floor to ``10^-(dps-8)``.  ``"auto"`` runs float64 and,
            when that is inconclusive for a catalogue method with automatic ``dts``, repeats
            in mpmath on the first eighth of the time span (attr ``precision_fallback``).

    Returns:
        ``xarray.Dataset`` with dims ``dt``, ``step``, ``component``: ``time(dt, step)``,
        ``global_error(dt, step)``, ``local_error(dt, step)``, ``final_error(dt)``,
        ``pairwise_order(dt)``, ``solution_final(dt, component)``,
        ``reference_final(component)``, scalars ``observed_order``, ``observed_local_order``,
        ``nominal_order``, ``order_ok``; attrs name the method, problem, stepper, backend and
        versions, tolerances and the ``verdict``.

    >>> ds = validate("RK4", "linear", dts=[0.1, 0.05, 0.025], backend="scipy")
    >>> round(float(ds.observed_order), 1), ds.attrs["verdict"]
    (4.0, 'pass')
    """
    if precision not in ("float64", "mp", "auto"):
        raise ValueError(f"precision: expected 'float64', 'mp' or 'auto', got {precision!r}")
    kwargs = dict(n_dts=n_dts, tolerance=tolerance, floor=floor, ceiling=ceiling, max_steps=max_steps,
                  ground_truth=ground_truth, field_steps=field_steps, dps=dps)
    if precision != "auto":
        return _validate_once(method_or_cell, problem, dts, backend, precision=precision, **kwargs)
    ds = _validate_once(method_or_cell, problem, dts, backend, precision="float64", **kwargs)
    if (ds.attrs.get("verdict") != "inconclusive" or dts is not None or is_cell(method_or_cell)
            or (isinstance(problem, str) and problem.strip().lower() in ("field", "cell", "own"))
            or not isinstance(get_method(method_or_cell), ButcherTableau)):  # mpmath runs RK methods only
        return ds
    prob = _resolve_problem(problem, method_or_cell, steps=field_steps)
    t0, t1 = prob.tspan
    short = prob.with_tspan((t0, t0 + (t1 - t0) / 8))
    logger.info("validate: float64 inconclusive for %s on %s; repeating in mpmath on [%g, %g]",
                ds.attrs.get("method"), prob.name, short.tspan[0], short.tspan[1])
    ds_mp = _validate_once(method_or_cell, short, None, backend, precision="mp", **kwargs)
    ds_mp.attrs["precision_fallback"] = (f"float64 on [{t0:g}, {t1:g}] was inconclusive "
                                         f"({ds.attrs.get('verdict_reason')}); repeated in mpmath "
                                         f"({dps} digits) on [{short.tspan[0]:g}, {short.tspan[1]:g}]")
    return ds_mp


def _validate_once(method_or_cell: Any, problem: str | Problem, dts: Sequence[float] | None,
                   backend: str | Backend, *, n_dts: int, tolerance: float, floor: float, ceiling: float,
                   max_steps: int, ground_truth: bool, field_steps: int, precision: str,
                   dps: int) -> "xr.Dataset":
    be = get_backend(backend)
    mp_dps = int(dps) if precision == "mp" else None
    if mp_dps is not None:
        if mp_dps < 20:
            raise ValueError(f"dps: expected at least 20 digits for precision='mp', got {dps!r}")
        be = get_backend("scipy") if be.name != "scipy" else be
        floor = min(floor, 10.0 ** (-(mp_dps - 8)))
    if not isinstance(n_dts, int) or n_dts < 2:
        raise ValueError(f"n_dts: expected an integer >= 2, got {n_dts!r}")
    if not (isinstance(tolerance, (int, float)) and tolerance > 0):
        raise ValueError(f"tolerance: expected a positive number, got {tolerance!r}")
    prob = _resolve_problem(problem, method_or_cell, steps=field_steps)
    if not be.handles(prob):
        logger.info("backend %s cannot evaluate problem %s; using the SciPy backend for it", be.name, prob.name)
        be = get_backend("scipy")
    stepper = _resolve(method_or_cell, prob, be, mp_dps)
    floor = max(floor, _coefficient_floor(stepper.method), 1e-300)
    ref = _ReferenceGrid(be, prob, ground_truth, mp_dps)
    scale = max(1.0, float(np.max(np.abs(np.asarray(ref.final(), dtype=np.float64)))))
    span, base = _units(prob)
    if dts is None:
        levels = _auto_levels(stepper, prob, ref, n_dts, floor * scale, ceiling * scale, max_steps)
        if not levels:
            raise RuntimeError(f"validate: no step size in the asymptotic range for {stepper.method.name} "
                               f"on {prob.name} (errors below the floor or above the ceiling everywhere)")
    else:
        dts_arr = np.atleast_1d(np.asarray(dts, dtype=np.float64))
        if dts_arr.ndim != 1 or dts_arr.size < 1 or not np.all(np.isfinite(dts_arr)) or np.any(dts_arr <= 0):
            raise ValueError(f"dts: expected a 1-D sequence of positive step sizes, got {dts!r}")
        for i, dt in enumerate(dts_arr.tolist()):
            check_step_size(dt, f"dts[{i}]")
        if np.unique(dts_arr).size != dts_arr.size:  # equal steps would give a 0/0 pairwise order
            raise ValueError(f"dts: expected distinct step sizes, got {dts!r}")
        levels = []
        unit = span / base
        for dt in sorted(dts_arr.tolist(), reverse=True):
            m = int(round(unit / dt))
            if m < 1 or abs(m * dt - unit) > 1e-9 * unit:
                raise ValueError(f"dts: {dt!r} does not divide {'the input step' if prob.segmented else 'the time span'} "
                                 f"{unit!r} into whole steps")
            levels.append(_run_level(stepper, prob, ref, m * base))
    return _assemble(stepper, prob, be, ref, levels, tolerance, floor * scale, ceiling * scale,
                     auto=dts is None)


def _assemble(stepper: Stepper, prob: Problem, be: Backend, ref: _ReferenceGrid, levels: list[_Level],
              tolerance: float, floor: float, ceiling: float, auto: bool) -> "xr.Dataset":
    import xarray as xr

    from ..io import provenance

    m = stepper.method
    nmax = max(lv.n for lv in levels)
    L, d = len(levels), prob.dim
    # reference on the union of grids: one reference solve on a common refinement
    lcm = 1
    for lv in levels:
        lcm = lcm * lv.n // math.gcd(lcm, lv.n)
    if lcm <= 4 * nmax:
        ref.prefetch(lcm)
    time = np.full((L, nmax + 1), np.nan)
    gerr = np.full((L, nmax + 1), np.nan)
    lerr = np.full((L, nmax + 1), np.nan)
    finals = np.empty((L, d))
    k = getattr(m, "steps", 1) if isinstance(m, LinearMultistep) else 1
    t0 = prob.tspan[0]
    for i, lv in enumerate(levels):
        R = ref.grid(lv.n)
        t = t0 + lv.dt * np.arange(lv.n + 1)
        time[i, : lv.n + 1] = t
        gerr[i, : lv.n + 1] = np.max(np.abs(lv.U - R), axis=1).astype(np.float64)
        gerr[i, lv.n] = lv.final_error  # against the ground truth
        if lv.n >= k:
            if isinstance(m, LinearMultistep):
                hist = np.stack([R[j: lv.n - k + 1 + j] for j in range(k)])  # (k, n-k+1, d)
                one = stepper.local_steps(prob, t[: lv.n - k + 1], R[: lv.n - k + 1], lv.dt, history=hist)
            else:
                one = stepper.local_steps(prob, t[:-1], R[:-1], lv.dt)
            lerr[i, k: lv.n + 1] = np.max(np.abs(one - R[k:]), axis=1).astype(np.float64)
        finals[i] = np.asarray(lv.U[-1], dtype=np.float64)
    dts = np.array([lv.dt for lv in levels])
    fe = np.array([lv.final_error for lv in levels])
    obs = observed_order(dts, fe)
    local_max = np.nanmax(lerr, axis=1)
    obs_local = observed_order(dts, local_max)
    pair = np.full(L, np.nan)
    for i in range(1, L):
        if fe[i] > 0 and fe[i - 1] > 0:
            pair[i] = math.log(fe[i - 1] / fe[i]) / math.log(dts[i - 1] / dts[i])
    in_window = int(np.sum((fe >= floor) & (fe <= ceiling)))
    nominal = int(m.order)
    finite_pairs = pair[np.isfinite(pair)]
    spread = float(np.ptp(finite_pairs)) if finite_pairs.size else float("nan")
    # orders still moving towards the nominal one (e.g. the superconvergent pre-asymptotic regime of
    # methods with small principal error coefficients, cut off by round-off) give no failure
    v, reason = verdict_reason(obs, nominal, tolerance, levels=L, spread=spread if L >= 3 else 0.0,
                               pairwise=finite_pairs.tolist())
    hint = ""
    if v == "inconclusive" and ref.dps is None and isinstance(m, ButcherTableau) and m.order >= 5:
        hint = ("float64 leaves no asymptotic range above round-off for this method here; "
                "try precision='mp' (mpmath) and/or a shorter time span")
    versions = be.version_info()
    ds = xr.Dataset(
        {
            "time": (("dt", "step"), time, {"long_name": "time of the step", "units": "1"}),
            "global_error": (("dt", "step"), gerr, {"long_name": "max-norm global error u_n - u_ref(t_n)"}),
            "local_error": (("dt", "step"), lerr,
                            {"long_name": "max-norm error of one step from the reference state"}),
            "final_error": ("dt", fe, {"long_name": "max-norm error at the final time"}),
            "pairwise_order": ("dt", pair, {"long_name": "order between this and the previous dt"}),
            "solution_final": (("dt", "component"), finals),
            "reference_final": ("component", np.asarray(ref.final(), dtype=np.float64)),
            "observed_order": ((), obs, {"long_name": "least-squares slope of log final error vs log dt"}),
            "observed_local_order": ((), obs_local,
                                     {"long_name": "least-squares slope of log max local error vs log dt"}),
            "nominal_order": ((), nominal),
            "order_ok": ((), v == "pass"),
        },
        coords={"dt": dts, "step": np.arange(nmax + 1), "component": np.arange(d)},
    )
    ds.attrs = provenance(
        method=m.name, method_kind=getattr(m, "kind", "multistep"), problem=prob.name,
        problem_description=prob.description, tspan=list(prob.tspan), stepper=stepper.name,
        backend=be.name, backend_versions=", ".join(f"{k}={v}" for k, v in versions.items()),
        reference=("exact solution" if prob.exact is not None and not prob.segmented else
                   f"{be.name} tight-tolerance reference" + (" + ground truth at t1" if ref.ground_truth else "")),
        tolerance=float(tolerance), floor=float(floor), ceiling=float(ceiling),
        levels_in_window=in_window, dts_chosen="auto" if auto else "given", verdict=v, verdict_reason=reason,
        pairwise_order_spread=spread, hint=hint or None,
        precision="float64" if ref.dps is None else f"mpmath {ref.dps} digits (reference {ref.dps + 10})",
    )
    for k_, v_ in versions.items():
        ds.attrs[f"version_{k_}"] = v_
    return ds


def _label_of(method: Any) -> str:
    return method if isinstance(method, str) else get_method(method).name


def _describe_problem(prob: Problem) -> list[Any]:
    """What identifies a problem's results for resuming a sweep (its functions cannot be hashed)."""
    params = {k: float(v) for k, v in prob.params.items() if np.ndim(v) == 0}
    return [prob.name, list(map(float, prob.tspan)), np.asarray(prob.u0, dtype=np.float64).tolist(), params,
            None if prob.inputs is None else np.asarray(prob.inputs, dtype=np.float64).tolist()]


def _sweep_reference_grid(problem: str, problems: dict[str, Any], backend: Any,
                          options: dict[str, Any]) -> _ReferenceGrid:
    """The float64 reference ``validate`` builds for a sweep's ``problem`` (same backend choice)."""
    prob = get_problem(problems[problem])
    be = get_backend(backend)
    if not be.handles(prob):
        be = get_backend("scipy")
    return _ReferenceGrid(be, prob, bool(options.get("ground_truth", True)))


def _sweep_reference(problem: str, *, methods: dict[str, Any], problems: dict[str, Any],
                     dts: Sequence[float] | None, backend: Any, n_dts: int,
                     options: dict[str, Any]) -> dict[str, Any] | None:
    """Shared work of :func:`validate_sweep`'s cells on ``problem``: its float64 reference on
    the finest grid the cells' levels divide (automatic ``dts``: every power-of-two level up
    to ``max_steps``; given ``dts``: their common refinement, as ``_assemble`` uses) and its
    final state (the mpmath ground truth where there is one).  ``None`` when the problem's
    references are not shared or ``dts`` do not fit (each cell then reports or computes its own)."""
    ref = _sweep_reference_grid(problem, problems, backend, options)
    if not ref.shareable:
        return None
    span, base = _units(ref.prob)
    max_steps = int(options.get("max_steps", _MAX_STEPS))
    if dts is None:
        n = base * (1 if ref.prob.segmented else 4)
        if n > max_steps:
            return None
        while 2 * n <= max_steps:
            n *= 2
    else:
        ns = []
        for dt in dts:
            m = int(round(span / base / float(dt))) if float(dt) > 0 else 0
            if m < 1 or abs(m * float(dt) - span / base) > 1e-9 * span / base:
                return None  # validate raises the argument error in every cell
            ns.append(m * base)
        n = 1
        for k in ns:
            n = n * k // math.gcd(n, k)
        if n > 4 * max(ns):
            n = max(ns)
    return ref.export(n)


def _sweep_cell(method: str, problem: str, precision: str, *, methods: dict[str, Any], problems: dict[str, Any],
                dts: Sequence[float] | None, backend: Any, n_dts: int, options: dict[str, Any],
                shared: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One cell of :func:`validate_sweep`: the figures of ``validate`` it gathers (``shared``:
    :func:`_sweep_reference` of its problem, installed where ``validate`` looks it up)."""
    if shared is not None:
        _sweep_reference_grid(problem, problems, backend, options).install(shared)
    ds = validate(methods[method], problems[problem], dts, backend, n_dts=n_dts, precision=precision, **options)
    a = ds.attrs
    return {"dt": ("level", ds.dt.values), "final_error": ("level", ds.final_error.values),
            "observed_order": float(ds.observed_order), "observed_local_order": float(ds.observed_local_order),
            "nominal_order": int(ds.nominal_order), "verdict": a["verdict"], "precision_used": a["precision"],
            "stepper": a["stepper"], "backend_name": a["backend"], "backend_versions": a["backend_versions"],
            "tolerance": float(a["tolerance"])}


def validate_sweep(methods: Iterable[Any] | None = None, problem: Any = "vanderpol",
                   dts: Sequence[float] | None = None, backend: str | Backend = "auto", *,
                   progress: bool = True, n_dts: int = 6, precision: str | Sequence[str] = "auto",
                   workers: int | None = None, scheduler: Any = None, out: Any = None, resume: bool = True,
                   **kwargs: Any) -> "xr.Dataset":
    """Validate many methods on one or more problems and precisions; one Dataset out.

    The grid is ``method × problem × precision``; each cell is one :func:`validate` call over
    the step sizes ``dts`` (or ``n_dts`` automatic ones), recorded along the dim ``level``.
    ``methods=None`` sweeps every explicit catalogue method.  ``problem`` (``precision``) given
    as a single name keeps that dim out of the result (it goes into the attrs); a list makes
    it a dim.  The result has ``dt(…, level)``, ``final_error(…, level)``,
    ``observed_order``, ``observed_local_order``, ``nominal_order``, ``verdict``, ``status``
    and ``error`` (a cell that raised is ``status="failed"``, the others are kept).

    Execution (see :func:`odernn_bridge.distributed.run_grid`): serial in this process by
    default (``workers=None``/``0``; a tqdm bar with ``progress``); ``workers=N`` runs the
    cells on a local dask cluster of ``N`` processes, ``scheduler=ADDRESS`` (or the
    ``ODERNN_SCHEDULER`` environment variable) on an existing one — same numbers either way.
    ``out``: the Dataset is written there atomically, finished cells are kept in
    ``<out>.partial/`` meanwhile and an interrupted sweep rerun with the same ``out`` resumes.

    >>> ds = validate_sweep(["Euler", "RK4"], "linear", dts=[0.1, 0.05, 0.025], backend="scipy",
    ...                     progress=False)
    >>> ds.observed_order.round(0).values.tolist(), ds.status.values.tolist()
    ([1.0, 4.0], ['ok', 'ok'])
    >>> ds = validate_sweep(["RK4"], ["linear", "kepler"], dts=[0.1, 0.05], backend="scipy",
    ...                     precision="float64", progress=False)
    >>> dict(ds.final_error.sizes)
    {'method': 1, 'problem': 2, 'level': 2}
    """
    from ..distributed import run_grid
    from ..methods.catalogue import list_methods
    from ..reference.backend import BACKENDS

    be = get_backend(backend)
    method_list = list(list_methods("explicit") if methods is None else methods)
    if not method_list:
        raise ValueError("methods: expected at least one method")
    method_map: dict[str, Any] = {}
    for m in method_list:
        label = _label_of(m)  # unknown names raise here, before any work
        if label in method_map:
            raise ValueError(f"methods: {label!r} is listed twice")
        method_map[label] = get_method(m).name if isinstance(m, str) else m
    single_problem = isinstance(problem, (str, Problem))
    problem_map: dict[str, Any] = {}
    for p in ([problem] if single_problem else list(problem)):
        prob = get_problem(p)
        if prob.name in problem_map:
            raise ValueError(f"problem: {prob.name!r} is listed twice")
        # built-in problems travel by name: workers rebuild them and share reference solutions
        problem_map[prob.name] = p.strip() if isinstance(p, str) else prob
    if not problem_map:
        raise ValueError("problem: expected at least one problem")
    single_precision = isinstance(precision, str)
    precisions = [precision] if single_precision else list(precision)
    for pr in precisions:
        if pr not in ("float64", "mp", "auto"):
            raise ValueError(f"precision: expected 'float64', 'mp' or 'auto' (or a list of them), got {pr!r}")
    grid = {"method": list(method_map), "problem": list(problem_map), "precision": precisions}
    signature = {
        "function": "validate_sweep", "dts": None if dts is None else [float(d) for d in dts],
        "backend": be.name, "n_dts": n_dts, "options": kwargs,
        "problems": {k: _describe_problem(get_problem(v)) for k, v in problem_map.items()},
        "methods": {k: v if isinstance(v, str) else [np.asarray(v.A).tolist(), np.asarray(v.b).tolist()]
                    for k, v in method_map.items()
                    if not isinstance(v, str) or k != v},
    }
    fixed = dict(methods=method_map, problems=problem_map, dts=None if dts is None else list(dts),
                 backend=be.name if be.name in BACKENDS else be, n_dts=n_dts, options=kwargs)
    label = "/".join(problem_map) if len(problem_map) <= 3 else f"{len(problem_map)} problems"
    squeeze = [d for d, single in (("problem", single_problem), ("precision", single_precision)) if single]

    def finish(ds: "xr.Dataset") -> "xr.Dataset":
        return _finish_sweep(ds, squeeze, problem_map, precisions, be.name)

    # each problem's float64 reference is computed once (one task per problem when distributed)
    # and handed to its cells, instead of once per worker
    needs_reference = any(pr != "mp" for pr in precisions)
    return run_grid(_sweep_cell, grid, fixed=fixed, signature=signature, workers=workers, scheduler=scheduler,
                    progress=progress, resume=resume, out=out, desc=f"validate {label}", postprocess=finish,
                    cost=lambda cell: _cell_cost(method_map[cell["method"]], cell["precision"]),
                    shared=_sweep_reference if needs_reference else None,
                    shared_dims=("problem",) if needs_reference else (),
                    # one task per method (every problem and precision): a worker prepares a
                    # method's coefficients once, and 72 tasks schedule cheaper than 432
                    batch_dims=("method",))


def _finish_sweep(ds: "xr.Dataset", squeeze: list[str], problems: dict[str, Any], precisions: list[str],
                  backend: str) -> "xr.Dataset":
    """Per-cell constants into attrs, ``verdict="error"`` for failed cells, single dims dropped."""
    ok = ds.status.values == "ok"
    first: dict[str, Any] = {}
    if ok.any():
        idx = tuple(np.argwhere(ok)[0])
        first = {k: str(ds[k].values[idx]) for k in ("stepper", "backend_versions")}
        first["tolerance"] = float(ds.tolerance.values[idx])
    ds = ds.drop_vars([v for v in ("stepper", "backend_name", "backend_versions", "tolerance") if v in ds])
    if "verdict" not in ds:  # every cell failed: the variables exist, all NaN
        ds["verdict"] = (ds.status.dims, np.full(ds.status.shape, "", dtype=object))
        for name in ("dt", "final_error"):
            ds[name] = ((*ds.status.dims, "level"), np.full((*ds.status.shape, 1), np.nan))
        for name in ("observed_order", "observed_local_order", "nominal_order"):
            ds[name] = (ds.status.dims, np.full(ds.status.shape, np.nan))
    ds["verdict"] = ds.verdict.where(ds.status == "ok", "error")
    ds = ds.isel({d: 0 for d in squeeze}, drop=True)
    run = ds.attrs
    ds.attrs = provenance(problem=", ".join(problems), backend=backend, **first, precision=", ".join(precisions),
                          passed=int((ds.verdict.values == "pass").sum()), methods=int(ds.sizes["method"]),
                          cells=run["cells"], cells_failed=run["cells_failed"], cells_resumed=run["cells_resumed"],
                          execution=run["execution"])
    return ds


def _cell_cost(method: Any, precision: str) -> float:
    """Rough relative cost of validating a method (stage count; mpmath is far slower)."""
    m = method if not isinstance(method, str) else get_method(method)
    return float(getattr(m, "stages", getattr(m, "steps", 1))) * (50.0 if precision == "mp" else 1.0)
