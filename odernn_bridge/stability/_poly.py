"""Polynomial helpers shared by the stability analyses (private).

Polynomials are lists of coefficients in *ascending* powers.  Coefficients live in one
"field" at a time: ``Fraction`` (exact, for rational methods) or ``mpmath.mpf`` at
:data:`MP_DPS` digits (algebraic or published-decimal methods, and complex rays given as
floats).  Sign decisions on the real line — the only thing the interval and step-size
computations need — are made in that field, never in float64.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Callable, Sequence

import mpmath
import numpy as np

from .._mp import workdps

#: working precision (decimal digits) of the high-precision path
MP_DPS = 50

Poly = list  # list[Fraction] | list[mpmath.mpf]


# -- float evaluation (the fast path for grids) ---------------------------------------

def horner(coeffs: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Evaluate ``sum coeffs[k] z**k`` elementwise by Horner's rule (complex or real)."""
    acc = np.full(np.shape(z), coeffs[-1], dtype=np.result_type(z, coeffs, np.float64))
    for c in coeffs[-2::-1]:
        acc *= z
        acc += c
    return acc


def horner_with_derivative(coeffs: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(p(z), p'(z))`` by Horner's rule."""
    dt = np.result_type(z, coeffs, np.float64)
    p = np.full(np.shape(z), coeffs[-1], dtype=dt)
    dp = np.zeros(np.shape(z), dtype=dt)
    for c in coeffs[-2::-1]:
        dp = dp * z + p
        p = p * z + c
    return p, dp


# -- exact / high-precision arithmetic on coefficient lists ---------------------------

def to_mp(x: Any) -> mpmath.mpf:
    if isinstance(x, Fraction):
        return mpmath.mpf(x.numerator) / x.denominator
    return mpmath.mpf(x)


def mp_to_fraction(x: mpmath.mpf) -> Fraction:
    """The exact binary value of an mpf as a Fraction."""
    sign, man, exp, _ = mpmath.mpf(x)._mpf_
    if not man:
        return Fraction(0)
    val = Fraction(int(man)) * (Fraction(2) ** int(exp))
    return -val if sign else val


def field_of(values: Sequence[Any]) -> str:
    return "fraction" if all(isinstance(v, Fraction) for v in values) else "mp"


def padd(a: Poly, b: Poly) -> Poly:
    n = max(len(a), len(b))
    z = 0
    return [(a[i] if i < len(a) else z) + (b[i] if i < len(b) else z) for i in range(n)]


def psub(a: Poly, b: Poly) -> Poly:
    return padd(a, [-x for x in b])


def pmul(a: Poly, b: Poly) -> Poly:
    if not a or not b:
        return []
    out = [a[0] * 0] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        if x == 0:
            continue
        for j, y in enumerate(b):
            out[i + j] = out[i + j] + x * y
    return out


def trim(p: Poly, tol: Any = 0) -> Poly:
    """Drop leading (highest-power) coefficients that are zero (``|c| <= tol``)."""
    p = list(p)
    while p and abs(p[-1]) <= tol:
        p.pop()
    return p


def peval(p: Poly, t: Any) -> Any:
    acc = p[-1] * 1 if p else 0
    for c in p[-2::-1]:
        acc = acc * t + c
    return acc


def peval_abs(p: Poly, t: Any) -> Any:
    """``sum |c_k| |t|^k`` — the scale against which a value of ``p(t)`` is judged."""
    at = abs(t)
    acc = abs(p[-1]) if p else 0
    for c in p[-2::-1]:
        acc = acc * at + abs(c)
    return acc


def ray_real_imag(coeffs: Poly, lam: tuple[Any, Any]) -> tuple[Poly, Poly]:
    """Real and imaginary parts of ``C(t*lam)`` as real polynomials in ``t``."""
    lr, li = lam
    pr, pi = lr * 0 + 1, lr * 0  # lam**0
    re, im = [], []
    for c in coeffs:
        re.append(c * pr)
        im.append(c * pi)
        pr, pi = pr * lr - pi * li, pr * li + pi * lr
    return re, im


def ray_abs2(coeffs: Poly, lam: tuple[Any, Any]) -> Poly:
    """``|C(t*lam)|**2`` as a real polynomial in ``t`` (real coefficients ``C``)."""
    re, im = ray_real_imag(coeffs, lam)
    return padd(pmul(re, re), pmul(im, im))


# -- the first exit of p >= 0 along t > 0 ----------------------------------------------

def first_exit(p: Poly, zero_tol: Any = 0, t_max: float | None = None,
               scales: Poly | None = None, value_tol: Any = None,
               noise: Callable[[Any], Any] | None = None) -> float | None:
    """Smallest ``t* >= 0`` such that ``p < 0`` just after ``t*`` (``p >= 0`` on ``[0, t*]``).

    ``None`` when ``p >= 0`` on all of ``(0, t_max)`` (``t_max=None``: ``(0, inf)``).  The
    coefficients are Fractions (exact) or mpf; with ``zero_tol > 0`` coefficient k counts as
    zero when ``|p_k| <= zero_tol * scales[k]`` (``scales[k]``: the size of the terms summed
    into p_k; by default ``|p_k|``, so that only exact zeros count), and a value p(t) counts
    as non-negative when ``p(t) >= -value_tol * sum_k scales[k] t^k`` (default
    ``value_tol = 10 zero_tol``) or, with ``noise`` given, when the *stored* (not zeroed)
    ``p(t) >= -noise(t)`` (the absolute uncertainty of the value).  Candidate sign changes come from the float roots of
    ``p``; the sign between consecutive candidates is decided in the exact/high-precision
    field, and the crossing is refined by bisection at :data:`MP_DPS` digits.  The result is
    rounded *inward*: the largest float64 at or below the last point decided inside.
    """
    sc = list(scales) if scales is not None else [abs(c) for c in p]
    sc = sc + [0] * (len(p) - len(sc))
    stored, stored_sc = list(p), list(sc)
    p = [c if abs(c) > zero_tol * s else c * 0 for c, s in zip(p, sc)] if zero_tol else list(p)
    p = trim(p, 0)
    if not p:
        return None  # p == 0 identically: the closed region contains the whole ray
    # divide out the factor t**m of the root at t = 0
    m = 0
    while p[m] == 0:
        m += 1
    p = p[m:]
    sc = sc[m:len(p) + m]
    if p[0] < 0:
        return 0.0
    if len(p) == 1:
        return None
    with workdps(MP_DPS):
        pm = [to_mp(c) for c in p]
        scm = [to_mp(s) for s in sc]
        tol_mp = to_mp(zero_tol)
        scale = max(abs(c) for c in pm)
        fl = np.array([float(c / scale) for c in pm], dtype=np.float64)[::-1]
        try:
            roots = np.roots(fl)
        except np.linalg.LinAlgError:  # pragma: no cover - degenerate companion matrix
            roots = np.array([])
        cands = sorted({float(r.real) for r in roots
                        if r.real > 0 and np.isfinite(r.real)
                        and abs(r.imag) <= 1e-3 * abs(r) + 1e-9})
        if t_max is not None:
            cands = [c for c in cands if c < t_max]
        tests: list[float] = []
        prev = 0.0
        for c in cands:
            tests.append(0.5 * (prev + c))
            prev = c
        tests.append(2.0 * prev + 1.0 if t_max is None else 0.5 * (prev + t_max))

        # rounding at MP_DPS digits (exact field) or the coefficient noise (mp field)
        rounding = mpmath.mpf(10) ** (-(MP_DPS - 10))
        if noise is not None:
            # the stored polynomial against its own uncertainty: the zeroed coefficients (defects
            # of order conditions) shape only the start of the ray and the candidates, so the
            # exit found is that of the stored coefficients
            sm = [to_mp(c) for c in stored]
            ssc = [to_mp(x) for x in stored_sc]

            def inside(t: mpmath.mpf) -> bool:
                return peval(sm, t) >= -(noise(t) + rounding * max(peval_abs(sm, t), peval(ssc, abs(t))))
        else:
            eps_rel = max(rounding, 10 * tol_mp if value_tol is None else to_mp(value_tol))

            def inside(t: mpmath.mpf) -> bool:
                return peval(pm, t) >= -eps_rel * max(peval_abs(pm, t), peval(scm, abs(t)))

        lo = mpmath.mpf(0)
        for t in tests:
            tm = mpmath.mpf(t)
            if not inside(tm):
                return float_at_or_below(_refine(pm, lo, tm, inside))
            lo = tm
    return None


def float_at_or_below(x: mpmath.mpf) -> float:
    """The largest float64 ``<= x`` (an exit radius rounded into the region, not out of it)."""
    f = float(x)
    if mp_to_fraction(mpmath.mpf(f)) > mp_to_fraction(x):
        f = float(np.nextafter(f, -np.inf))
    return f


def _refine(pm: Poly, lo: mpmath.mpf, hi: mpmath.mpf, inside) -> mpmath.mpf:
    """Bisect the crossing in ``[lo, hi]`` (inside at lo, outside at hi) to ~1e-18 relative;
    returns the last point decided inside.

    Between ``lo`` and ``hi`` there is a single candidate root, so the predicate changes
    once and bisection is safe; 1e-18 is far below the float64 result's resolution.
    """
    while hi - lo > mpmath.mpf(10) ** -18 * max(1, abs(hi)):
        mid = (lo + hi) / 2
        if inside(mid):
            lo = mid
        else:
            hi = mid
    return lo
