"""Every stability-interval endpoint of the catalogue lies inside the stability region.

The check is independent of the library's analysis: R(z) = 1 + z bᵀ(I − zA)⁻¹𝟙 is evaluated
directly from the *stored* coefficients at 100 digits (forward substitution for explicit
tableaux, an LU solve otherwise), and multistep endpoints by the roots of ρ − zσ at 60 digits.

Allowed excess of |R| over 1:
* exact (rational/algebraic) tableaux and multistep methods: 1e-25 — the endpoint is rounded
  into the region, so only the high-precision evaluation's rounding remains;
* published decimals with d significant digits: what a relative change of one unit in the
  last digit of R's coefficients (10^(1−d)) can change |R| by at z,
  10^(1−d)·(Σ|p_k||z|^k + Σ|q_k||z|^k)/|Q(z)|.
Before the fix SSPRK83's real endpoint had |R| − 1 = 1.4e-7 (bound there: 6e-11).
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

import odernn_bridge as ob
from odernn_bridge.methods.exact import decimal_digits, to_mpf
from odernn_bridge.methods.multistep import LinearMultistep

_DPS = 100


def _R_direct(m: ob.ButcherTableau, z: complex) -> mpmath.mpc:
    co = m.coefficients
    s = m.stages
    with mpmath.workdps(_DPS):
        A = [[to_mpf(x) for x in row] for row in co.A]
        b = [to_mpf(x) for x in co.b]
        zz = mpmath.mpc(mpmath.mpf(z.real), mpmath.mpf(z.imag))
        if m.kind == "explicit":
            y: list = []
            for i in range(s):
                y.append(1 + zz * mpmath.fsum(A[i][j] * y[j] for j in range(i)))
        else:
            M = mpmath.eye(s) - zz * mpmath.matrix(A)
            sol = mpmath.lu_solve(M, mpmath.matrix([1] * s))
            y = [sol[i] for i in range(s)]
        return 1 + zz * mpmath.fsum(b[i] * y[i] for i in range(s))


def _allowed_excess(m: ob.ButcherTableau, z: complex) -> float:
    digits = [d for d in (decimal_digits(x) for x in m.coefficients._all()) if d is not None]
    if not digits:
        return 1e-25
    R = ob.stability_function(m)
    r = abs(z)
    pabs = float(np.polyval(np.abs(R.numerator[::-1]), r))
    qabs = float(np.polyval(np.abs(R.denominator[::-1]), r))
    q = abs(complex(np.polyval(R.denominator[::-1], z)))
    return 1.01 * 10.0 ** (1 - min(digits)) * (pabs + qabs) / q + 1e-25


def _lmm_max_root(m: LinearMultistep, z: complex) -> mpmath.mpf:
    with mpmath.workdps(60):
        zz = mpmath.mpc(mpmath.mpf(z.real), mpmath.mpf(z.imag))
        c = [to_mpf(a) - zz * to_mpf(b) for a, b in zip(m.alpha_exact, m.beta_exact)]
        if len(c) == 2:
            return abs(c[0] / c[1])
        return max(abs(x) for x in mpmath.polyroots(c[::-1], maxsteps=300, extraprec=300))


def test_every_interval_endpoint_is_inside_the_region() -> None:
    checked, worst = 0, []
    for name in ob.list_methods():
        m = ob.get_method(name)
        for label, d in (("real", -1.0), ("imag", 1j)):
            r = ob.real_stability_interval(m) if label == "real" else ob.imag_stability_interval(m)
            if not 0 < r < math.inf:
                continue
            z = complex(r * d)
            if isinstance(m, LinearMultistep):
                excess, allowed = float(_lmm_max_root(m, z) - 1), 1e-25
            else:
                excess, allowed = float(abs(_R_direct(m, z)) - 1), _allowed_excess(m, z)
            checked += 1
            if excess > allowed:
                worst.append((name, label, r, excess, allowed))
    # 145 methods: 131 finite positive endpoints at the time of writing
    assert checked >= 120
    assert not worst, worst


@pytest.mark.parametrize("name, real", [("SSPRK83", 10.98619163), ("SSPRK53", 6.21361183), ("Calvo6", 4.46337701)])
def test_decimal_tableaux_intervals_end_at_the_crossing(name: str, real: float) -> None:
    # the crossing |R(-x)| = 1 of the stored coefficients, to the 9 digits quoted (SSPRK83
    # used to report 10.98619172: the tolerance was relative to the squared coefficient sum)
    assert ob.real_stability_interval(name) == pytest.approx(real, abs=1e-8)
