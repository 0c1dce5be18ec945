r"""Figures of merit: stability intervals, A-/L-/A(α)-stability, the largest stable step.

Everything here is one question asked along rays from the origin: for a direction
λ ≠ 0, how far does the segment {s·λ : 0 < s ≤ r} stay inside the closed stability
region S?  The *ray exit* is

    r*(λ) = sup{ r ≥ 0 : s·λ ∈ S for all s ∈ (0, r] }     (in units of |λ|·s)

— the first exit along the ray, so regions need not be star-shaped.  Then

* ``real_stability_interval = r*(−1)``  (largest r with [−r, 0] ⊂ S),
* ``imag_stability_interval = r*(i)``   (largest r with [−ir, ir] ⊂ S; real coefficients
  make S symmetric about the real axis),
* ``max_stable_dt(method, λs) = min_λ r*(λ/|λ|)/|λ|`` over λ ≠ 0.

Runge–Kutta methods: along z = tλ the region is ``|Q(tλ)|² − |P(tλ)|² ≥ 0``, a real
polynomial in t with exact (Fraction) or 50-digit coefficients; its first sign change is
found from candidate roots and exact sign tests (:func:`._poly.first_exit`).

Multistep methods: membership changes only where the ray crosses the boundary locus,
i.e. at roots ζ on the unit circle of the degree-2k polynomial
ζ^k·Im(ρ(ζ)σ(1/ζ)·conj(λ)); the crossing candidates are sorted and classified by the
root condition between them, and the exit crossing is polished by Newton's method on θ
at 30 digits.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np

from .._cache import LRUCache, content_key
from .._mp import mp_guarded, workdps
from ..methods.multistep import LinearMultistep
from ..methods.tableau import ButcherTableau
from . import _poly
from .function import StabilityFunction, as_method, stability_function
from .multistep import ROOT_TOL, _locus_points, _rk_locus_points, max_root_modulus, root_condition

__all__ = [
    "ray_exit",
    "real_stability_interval",
    "imag_stability_interval",
    "is_A_stable",
    "is_L_stable",
    "A_alpha_angle",
    "max_stable_dt",
]


# -- Runge–Kutta rays -------------------------------------------------------------------

def _rk_ray_exit(R: StabilityFunction, lam: complex) -> float:
    num, den = R.coefficients
    if R.field == "fraction":
        lr, li = Fraction(lam.real), Fraction(lam.imag)
        p = _poly.psub(_poly.ray_abs2(list(den), (lr, li)), _poly.ray_abs2(list(num), (lr, li)))
        t = _poly.first_exit(p, 0)
    else:
        with workdps(_poly.MP_DPS + 40):
            lr, li = mpmath.mpf(lam.real), mpmath.mpf(lam.imag)
            nm = [_poly.to_mp(c) for c in num]
            dm = [_poly.to_mp(c) for c in den]
            pp, qq = _poly.ray_abs2(nm, (lr, li)), _poly.ray_abs2(dm, (lr, li))  # |P(tλ)|², |Q(tλ)|²
            p = _poly.psub(qq, pp)
            # size of the terms summed into each coefficient (|λ| = 1): the coefficient
            # uncertainty is relative to these
            an, ad = [abs(c) for c in nm], [abs(c) for c in dm]
            scales = _poly.padd(_poly.pmul(an, an), _poly.pmul(ad, ad))
            # coefficients within coefficient_tol (relative) of zero are zeros (defects of
            # order conditions in published decimals)
            tol = _poly.to_mp(R.coefficient_tol)
            vt = _poly.to_mp(R.value_tol)

            def noise(t: Any) -> Any:
                # first-order uncertainty of |Q|² − |P|² when every coefficient of P and Q
                # is uncertain by value_tol relative: 2(|P| Σ|p_k|t^k + |Q| Σ|q_k|t^k)
                return 2 * vt * (mpmath.sqrt(abs(_poly.peval(pp, t))) * _poly.peval(an, t)
                                 + mpmath.sqrt(abs(_poly.peval(qq, t))) * _poly.peval(ad, t))

            t = _poly.first_exit(p, tol, scales=scales, noise=noise)
    return math.inf if t is None else t


def _rk_ray_exit_estimate(R: StabilityFunction, d: complex) -> float:
    """float64 version of :func:`_rk_ray_exit` (a pre-pass that ranks directions)."""
    powers = d ** np.arange(max(len(R.numerator), len(R.denominator)))

    def abs2(c: np.ndarray) -> np.ndarray:
        w = c * powers[:len(c)]
        return np.convolve(w.real, w.real) + np.convolve(w.imag, w.imag)

    qa, pa = abs2(R.denominator), abs2(R.numerator)
    n = max(len(qa), len(pa))
    p = np.zeros(n)
    p[:len(qa)] += qa
    p[:len(pa)] -= pa
    scale = np.zeros(n)
    scale[:len(qa)] += np.abs(qa)
    scale[:len(pa)] += np.abs(pa)
    p[np.abs(p) <= 1e-13 * np.maximum(scale, 1e-300)] = 0.0
    nz = np.nonzero(p)[0]
    if nz.size == 0:
        return math.inf
    p = p[nz[0]:nz[-1] + 1]
    if p[0] < 0:
        return 0.0
    roots = np.roots(p[::-1]) if len(p) > 1 else np.array([])
    cands = np.sort(np.unique(roots.real[(roots.real > 0) & (np.abs(roots.imag) <= 1e-3 * np.abs(roots) + 1e-9)]))
    edges = np.concatenate([[0.0], cands])
    tests = np.concatenate([0.5 * (edges[:-1] + edges[1:]), [2 * edges[-1] + 1]])
    with np.errstate(all="ignore"):
        out = np.abs(R(tests * d)) > 1 + 1e-12
    if not np.any(out):
        return math.inf
    return float(edges[int(np.argmax(out))])


# -- multistep rays ---------------------------------------------------------------------

_LMM_DPS = 40


def _lmm_mp_coefficients(m: LinearMultistep) -> tuple[list[Any], list[Any]]:
    """α, β as mpf at the current precision (call inside ``workdps``): exact ones when known."""
    if m.exact is not None:
        return [_poly.to_mp(x) for x in m.alpha_exact], [_poly.to_mp(x) for x in m.beta_exact]
    return [mpmath.mpf(float(x)) for x in m.alpha], [mpmath.mpf(float(x)) for x in m.beta]


def _lmm_inside(m: LinearMultistep, z: complex) -> bool:
    """Root condition at z, decided at 40 digits (the principal root differs from the unit
    circle by only ~C|z|^(p+1) near z = 0, far below float64 resolution)."""
    with workdps(_LMM_DPS):  # the coefficients too: at 15 digits 1/12 is off by 1e-17
        alpha, beta = _lmm_mp_coefficients(m)
        zz = mpmath.mpc(z.real, z.imag)
        c = [a - zz * b for a, b in zip(alpha, beta)]
        scale = max(abs(x) for x in c)
        if abs(c[-1]) <= mpmath.mpf(10) ** -35 * scale:
            return False  # α_k − zβ_k = 0: a root at infinity
        if len(c) == 2:
            roots = [-c[0] / c[1]]
        else:
            try:
                roots = mpmath.polyroots(c[::-1], maxsteps=200, extraprec=2 * _LMM_DPS)
            except mpmath.libmp.NoConvergence:
                return bool(max_root_modulus(m, np.array([z]))[0] <= 1 + ROOT_TOL)
        return bool(max(abs(r) for r in roots) <= 1 + mpmath.mpf(10) ** -30)


def _lmm_ray_exit(m: LinearMultistep, lam: complex, estimate: bool = False) -> float:
    """Exact exit radius (``estimate=True``: float64 membership tests, no polishing)."""
    if estimate:
        def inside(z: complex) -> bool:
            return bool(max_root_modulus(m, np.array([z]))[0] <= 1 + ROOT_TOL)
    else:
        def inside(z: complex) -> bool:
            return _lmm_inside(m, z)
    a = np.asarray(m.alpha, dtype=np.float64)
    b = np.asarray(m.beta, dtype=np.float64)
    k = len(a) - 1
    # ζ^k ρ(ζ)σ(1/ζ) = Σ α_j β_l ζ^{j-l+k};  ζ^k ρ(1/ζ)σ(ζ) = Σ α_j β_l ζ^{l-j+k}
    F = np.zeros(2 * k + 1)
    G = np.zeros(2 * k + 1)
    for j in range(k + 1):
        for l in range(k + 1):
            F[j - l + k] += a[j] * b[l]
            G[l - j + k] += a[j] * b[l]
    W = (np.conj(lam) * F - lam * G) / 2j  # ζ^k Im(ρσ̄λ̄) on |ζ| = 1, up to the factor ζ^k
    unit = lam / abs(lam)
    cands: list[float] = []
    if np.max(np.abs(W)) > 1e-13 * np.max(np.abs(F) + np.abs(G)):
        nz = np.nonzero(np.abs(W) > 1e-15 * np.max(np.abs(W)))[0]
        roots = np.roots(W[nz[0]:nz[-1] + 1][::-1])
        for r in roots:
            if abs(abs(r) - 1) > 1e-5:
                continue
            th = float(np.angle(r))
            z = complex(_locus_points(m, np.array([th]))[0])
            if not np.isfinite(z):
                continue
            t = (z * np.conj(unit)).real
            if t > 1e-12 and abs((z * np.conj(unit)).imag) <= 1e-6 * max(1.0, abs(z)):
                cands.append(t)
        cands = sorted(set(cands))
        tests = []
        prev = 0.0
        for c in cands:
            tests.append(0.5 * (prev + c))
            prev = c
        tests.append(2 * prev + 1.0)
        prev = 0.0
        for t, c in zip(tests, cands + [math.inf]):
            if not inside(t * unit):
                if prev <= 0:
                    return 0.0
                return prev if estimate else _lmm_inward(m, unit, max(_polish_lmm(m, unit, prev), 0.0))
            prev = c
        return math.inf  # inside beyond the last crossing: no further crossing exists
    # the ray runs along the locus (e.g. the trapezoidal rule on the imaginary axis)
    for t in np.geomspace(1e-3, 1e3, 61):
        if not inside(t * unit):
            return float(_bisect_lmm(m, unit, 0.0, float(t)))
    return math.inf


def _bisect_lmm(m: LinearMultistep, unit: complex, lo: float, hi: float) -> float:
    for _ in range(200):
        if hi - lo <= 1e-15 * max(1.0, hi):
            break
        mid = 0.5 * (lo + hi)
        if _lmm_inside(m, mid * unit):
            lo = mid
        else:
            hi = mid
    return lo


def _lmm_inward(m: LinearMultistep, unit: complex, t: float, max_ulps: int = 64) -> float:
    """``t`` moved down by whole ulps until ``t·unit`` satisfies the root condition at 40
    digits: the polished crossing is rounded to the nearest float, which can lie just outside
    (by ~1e-8 in |ζ| where two unit roots collide, as for Milne's methods on the imaginary
    axis: |ζ| − 1 grows like the square root of the overshoot)."""
    for _ in range(max_ulps):
        if t <= 0 or _lmm_inside(m, t * unit):
            return t
        t = float(np.nextafter(t, 0.0))
    return t


def _polish_lmm(m: LinearMultistep, unit: complex, t0: float) -> float:
    """Newton on θ for Im(z(θ)·conj(unit)) = 0 near the crossing t0·unit, at 30 digits."""
    z0 = t0 * unit
    # the root of ρ − z0σ on the unit circle gives the starting angle
    roots = np.roots((np.asarray(m.alpha) - z0 * np.asarray(m.beta))[::-1])
    r = roots[np.argmin(np.abs(np.abs(roots) - 1))]
    with workdps(30):
        alpha, beta = _lmm_mp_coefficients(m)
        u = mpmath.mpc(unit.real, unit.imag)

        def zf(th):
            e = mpmath.expjpi(th / mpmath.pi)
            return mpmath.polyval(alpha[::-1], e) / mpmath.polyval(beta[::-1], e)

        try:
            th = mpmath.findroot(lambda th: mpmath.im(zf(th) * mpmath.conj(u)), float(np.angle(r)))
            t = mpmath.re(zf(th) * mpmath.conj(u))
            if abs(t - t0) <= 1e-6 * max(1.0, t0):
                return float(t)
        except (ValueError, ZeroDivisionError, mpmath.libmp.NoConvergence):  # pragma: no cover
            pass
    return t0


# -- public API ------------------------------------------------------------------------------

@mp_guarded
def ray_exit(method: Any, direction: complex) -> float:
    """``sup{r ≥ 0 : s·d ∈ S for all 0 < s ≤ r}`` with ``d = direction/|direction|``.

    ``inf`` when the whole ray lies in the stability region S, 0 when it leaves at once.

    >>> round(ray_exit("RK4", 1j), 12) == round(2 * 2 ** 0.5, 12)
    True
    """
    m = as_method(method)
    d = complex(direction)
    if not np.isfinite(d) or d == 0:
        raise ValueError(f"direction: expected a finite nonzero complex number, got {direction!r}")
    d = d / abs(d)
    # the region is symmetric about the real axis: use the upper half-plane
    d = complex(d.real, abs(d.imag))
    if isinstance(m, LinearMultistep):
        return _RAY_EXITS.get_or_compute((content_key(m), d), lambda: _lmm_ray_exit(m, d))
    return _RAY_EXITS.get_or_compute((content_key(m), d), lambda: _rk_ray_exit(stability_function(m), d))


#: exact ray exits by (method coefficients, direction): intervals and step sizes are asked
#: for repeatedly (monitors, tables, figures)
_RAY_EXITS = LRUCache(maxsize=4096)


def real_stability_interval(method: Any) -> float:
    """Largest r with [−r, 0] inside the stability region (``inf`` if unbounded).

    >>> round(real_stability_interval("RK4"), 10)
    2.7852935634
    >>> real_stability_interval("Euler")
    2.0
    """
    return ray_exit(method, -1.0)


def imag_stability_interval(method: Any) -> float:
    """Largest r with [−ir, ir] inside the stability region (0 if none, ``inf`` if all).

    >>> imag_stability_interval("Euler")
    0.0
    >>> round(imag_stability_interval("RK4") ** 2, 10)
    8.0
    """
    return ray_exit(method, 1j)


def _rk_poles_right(R: StabilityFunction) -> bool:
    if R.is_polynomial:
        return True
    poles = np.roots(R.denominator[::-1])
    return bool(np.all(poles.real > 1e-12 * np.maximum(1.0, np.abs(poles))))


def _lmm_locus_in_right_half(m: LinearMultistep) -> bool:
    """Re z(θ) ≥ 0 for every θ: N(x) = Σ α_j β_l T_|j−l|(x) ≥ 0 on [−1, 1], exactly."""
    alpha = list(m.alpha_exact)
    beta = list(m.beta_exact)
    if m.exact is None:
        alpha = [_poly.to_mp(x) if not isinstance(x, Fraction) else x for x in alpha]
        beta = [_poly.to_mp(x) if not isinstance(x, Fraction) else x for x in beta]
    k = len(alpha) - 1
    # Chebyshev T_n(x) as ascending integer coefficient lists
    T = [[1], [0, 1]]
    for n in range(2, k + 1):
        T.append(_poly.psub([0] + [2 * c for c in T[n - 1]], T[n - 2]))
    N: list[Any] = [0 * alpha[0]]
    for j in range(k + 1):
        for l in range(k + 1):
            N = _poly.padd(N, [alpha[j] * beta[l] * c for c in T[abs(j - l)]])
    # x = 1 − t, t ∈ [0, 2]
    Nt: list[Any] = [0 * alpha[0]]
    one_minus_t = [1, -1]
    power: list[Any] = [1]
    for c in N:
        Nt = _poly.padd(Nt, [c * q for q in power])
        power = _poly.pmul(power, one_minus_t)
    tol = 0 if m.exact is not None else mpmath.mpf(10) ** -30
    t = _poly.first_exit(Nt, tol, t_max=2.0)
    return t is None or t >= 2.0


@mp_guarded
def is_A_stable(method: Any) -> bool:
    """Whether the closed left half-plane Re z ≤ 0 lies in the stability region.

    Runge–Kutta: |R(iy)| ≤ 1 for all real y (exact polynomial test) and no pole with
    Re z ≤ 0 (maximum principle).  Multistep: zero-stable, the boundary locus never enters
    Re z < 0 (exact test on a Chebyshev polynomial) and z = −1 lies in the region.

    >>> is_A_stable("RK4")
    False
    """
    m = as_method(method)
    if isinstance(m, LinearMultistep):
        return bool(root_condition(m) and _lmm_locus_in_right_half(m) and _lmm_inside(m, -1.0))
    R = stability_function(m)
    return bool(_rk_ray_exit(R, 1j) == math.inf and _rk_poles_right(R)
                and _rk_ray_exit(R, -1.0) == math.inf)


@mp_guarded
def is_L_stable(method: Any) -> bool:
    """A-stable and ``R(z) → 0`` as z → ∞ (deg P < deg Q).

    For a multistep method: A-stable and every root of σ lies strictly inside the unit
    circle (the roots of ρ − zσ tend to those of σ as z → ∞; BDF1/BDF2 qualify, the
    trapezoidal rule does not).

    >>> is_L_stable("RK4")
    False
    """
    m = as_method(method)
    if not is_A_stable(m):
        return False
    if isinstance(m, LinearMultistep):
        beta = np.asarray(m.beta, dtype=np.float64)
        nz = np.nonzero(beta)[0]
        roots = np.roots(beta[nz[0]:nz[-1] + 1][::-1]) if len(nz) > 1 else np.array([])
        # σ has the root 0 with multiplicity nz[0] and these others
        return bool(np.all(np.abs(roots) < 1 - ROOT_TOL))
    R = stability_function(m)
    return R.at_infinity == 0.0


def _min_angle(fun, lo: float, hi: float, n: int) -> float:
    from scipy.optimize import minimize_scalar

    th = np.linspace(lo, hi, n)
    vals = np.array([fun(t) for t in th])
    i = int(np.nanargmin(vals))
    best = float(vals[i])
    a, b = th[max(i - 1, 0)], th[min(i + 1, n - 1)]
    if b > a:
        res = minimize_scalar(fun, bounds=(a, b), method="bounded", options={"xatol": 1e-13})
        if res.success and np.isfinite(res.fun):
            best = min(best, float(res.fun))
    return best


def _angle_from_negative_axis(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z)
    out = np.abs(np.angle(-z))
    return np.where(np.isfinite(z) & (np.abs(z) > 1e-9), out, np.inf)


@mp_guarded
def A_alpha_angle(method: Any, *, degrees: bool = True) -> float:
    """The largest α such that the sector |arg(−z)| ≤ α lies in the stability region.

    90° for A-stable methods; 0 when not even the whole negative real axis is inside
    (a finite real stability interval).  Otherwise α is the smallest |arg(−z)| over the
    boundary locus (z ≠ 0), minimised over θ to ~1e-12 rad — a supremum: it can be 90 for
    a method that is A(α)-stable for every α < 90° without being A-stable (a boundary
    tangent to the imaginary axis at 0 from the left).

    >>> A_alpha_angle("RK4")
    0.0
    """
    m = as_method(method)
    if is_A_stable(m):
        alpha = math.pi / 2
    elif ray_exit(m, -1.0) != math.inf:
        alpha = 0.0
    elif isinstance(m, LinearMultistep):
        if not root_condition(m):
            alpha = 0.0
        else:
            f = lambda th: float(_angle_from_negative_axis(_locus_points(m, np.array([th])))[0])  # noqa: E731
            alpha = min(math.pi / 2, _min_angle(f, 1e-9, math.pi, 4001))
    else:
        f = lambda th: float(np.min(_angle_from_negative_axis(  # noqa: E731
            _rk_locus_points(m, np.array([th]))[0])))
        alpha = min(math.pi / 2, _min_angle(f, -math.pi, math.pi, 2049))
    return math.degrees(alpha) if degrees else alpha


#: directions whose float64 exit estimate is within this factor of the best exact value are
#: computed exactly as well (the estimate only ranks them)
_ESTIMATE_MARGIN = 0.05


@mp_guarded
def max_stable_dt(method: Any, eigenvalues: Any) -> float:
    """The largest step size dt for which every dt·λ stays in the stability region.

    Defined as ``sup{dt : s·λ ∈ S for all s ∈ (0, dt] and all λ}``: the first exit of each
    ray s·λ from the closed region S (so non-star-shaped regions are handled).  λ = 0
    imposes nothing; the result is ``inf`` if every ray stays inside (e.g. an A-stable
    method and Re λ ≤ 0) and 0 if some ray leaves at once (e.g. explicit Euler with an
    imaginary λ, or any Re λ > 0).  Each distinct direction is ranked by a float64
    estimate of its exit; those within 5% of the best are computed exactly (RK: exact
    polynomial sign tests), so the result is exact to ~1e-12 relative.  Tiny (even subnormal)
    and huge |λ| are handled by exact power-of-two scaling; a result beyond the float64 range
    (|λ| below ~1e-308 binding) is a ``ValueError``, not an overflow.

    >>> round(max_stable_dt("RK4", [-1.0, -2.0]), 12)  # 2.785293563405.../2
    1.392646781703
    >>> max_stable_dt("Euler", [1j])
    0.0
    """
    if isinstance(eigenvalues, (str, ButcherTableau, LinearMultistep)):
        raise TypeError("method: expected the method first — the signature is "
                        "max_stable_dt(method, eigenvalues)")
    m = as_method(method)
    try:
        lam = np.asarray(eigenvalues, dtype=np.complex128).ravel()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"eigenvalues: expected an array of complex numbers ({exc})") from exc
    if lam.size == 0:
        raise ValueError("eigenvalues: expected at least one eigenvalue, got an empty array")
    if not np.all(np.isfinite(lam)):
        raise ValueError("eigenvalues: contains NaN or Inf")
    lam = lam[lam != 0]
    if lam.size == 0:
        return math.inf
    # directions and magnitudes without overflow or precision loss for tiny (subnormal) or
    # huge λ: scale each by a power of two (exact) so that its larger component is in [0.5, 1);
    # |λ| = smod·2^e
    _, e = np.frexp(np.maximum(np.abs(lam.real), np.abs(lam.imag)))
    scaled = np.ldexp(lam.real, -e) + 1j * np.ldexp(lam.imag, -e)
    smod = np.abs(scaled)
    d = scaled / smod
    if np.any(d.real > 0):
        # consistency: |R(z)| = |e^z| + O(z²) (the principal root ζ ≈ e^z for multistep
        # methods), so a ray into Re z > 0 leaves the region at once
        return 0.0
    # one exit radius per direction (conjugates share it: real coefficients); the largest
    # |λ| of a direction is the binding one
    d = d.real + 1j * np.abs(d.imag)
    keys = np.round(d.real, 15) + 1j * np.round(d.imag, 15)
    log2_mod = e + np.log2(smod)
    uniq: dict[complex, tuple[complex, float, int, float]] = {}
    for key, dd, sm, ee, lm in zip(keys.tolist(), d.tolist(), smod.tolist(), e.tolist(), log2_mod.tolist()):
        if key not in uniq or lm > uniq[key][3]:
            uniq[key] = (dd, sm, int(ee), lm)
    items = list(uniq.values())
    overflow = False

    def per_lambda(r: float, sm: float, ee: int) -> float:
        """``r/|λ|`` = ``(r/smod)·2^-e``; a step beyond the float64 range is flagged."""
        nonlocal overflow
        if r == 0.0 or math.isinf(r):
            return r
        try:
            return math.ldexp(r / sm, -ee)
        except OverflowError:
            overflow = True
            return math.inf

    # rank the directions by a float64 estimate; compute exactly those that can bind
    if isinstance(m, LinearMultistep):
        est = [per_lambda(_lmm_ray_exit(m, dd, estimate=True), sm, ee) for dd, sm, ee, _ in items]
    else:
        R = stability_function(m)
        est = [per_lambda(_rk_ray_exit_estimate(R, dd), sm, ee) for dd, sm, ee, _ in items]
    overflow = False  # only the exact values below decide
    best = math.inf
    for i in np.argsort(est, kind="stable"):
        if est[i] > best * (1 + _ESTIMATE_MARGIN):
            break
        dd, sm, ee, _ = items[i]
        best = min(best, per_lambda(ray_exit(m, dd), sm, ee))
        if best == 0.0:
            break
    if overflow and best == math.inf:
        smallest = 2.0 ** min(lm for *_, lm in items)
        raise ValueError(f"eigenvalues: the largest stable step exceeds the float64 range (|λ| as small as "
                         f"{smallest:.3g}); rescale the time unit of the problem")
    return best
