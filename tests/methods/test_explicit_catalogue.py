"""Explicit Runge–Kutta methods of the catalogue (``methods/data/explicit_*.json``).

Tolerances:

* order conditions are checked by ``verify_order`` itself: exact for rational tableaux,
  1e-40 at 60 digits for algebraic ones, 10**-(digits-8) for published decimals;
* float64 arrays against the stored coefficients evaluated independently at 50 digits:
  one ulp of the exact value (the arrays are the correctly rounded images of the exact
  coefficients; SymPy's 30-digit evaluation of algebraic entries can add at most half an ulp);
* c against the row sums of A at 50 digits: 1e-25 (zero for exact tableaux and for rows
  whose c was stored as the exact decimal row sum; published decimal nodes carry >= 30
  digits, i.e. agree with the row sums of the >= 30-digit A to ~1e-29);
* SciPy cross-check: 1e-15 absolute.  SciPy's RK23/RK45 literals are quotients of small
  integers (``44/45``) evaluated as one correctly rounded float division, and DOP853's are
  the same 30-digit decimals we store, parsed to the nearest double; our arrays are the
  correctly rounded images of the same real numbers, so both sides are expected to agree
  bit for bit.  The coefficients compared are O(1)..O(50), so 1e-15 is below one ulp for
  the larger ones: any transcription or rounding difference fails the check.
"""

from __future__ import annotations

import time
from decimal import Decimal
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from scipy.integrate import DOP853, RK23, RK45

import odernn_bridge as ob
from odernn_bridge.methods import method_from_dict

EXPLICIT = ob.list_methods("explicit")

#: names the issue asks for explicitly
REQUIRED = {
    "Euler", "Midpoint", "Heun", "Ralston", "Ralston3", "Ralston4", "Kutta3", "RK4", "RK438Rule",
    "SSPRK22", "SSPRK33", "SSPRK43", "SSPRK104", "SSPRK53", "SSPRK63", "SSPRK73", "SSPRK83", "SSPRK54",
    "BS3", "BS5", "RKF5", "CashKarp", "DP5", "Tsit5", "OwrenZen3", "OwrenZen4", "OwrenZen5",
    "Vern6", "Vern7", "Vern8", "Vern9", "DP8", "Feagin10", "Merson4", "Zonneveld4", "Fehlberg78",
}

#: published stage counts
STAGES = {
    "Euler": 1, "Heun": 2, "RK4": 4, "BS3": 4, "RKF5": 6, "CashKarp": 6, "DP5": 7, "Tsit5": 7,
    "BS5": 8, "OwrenZen5": 8, "Vern6": 9, "Vern7": 10, "Vern8": 13, "Vern9": 16, "DP8": 12,
    "Feagin10": 17, "Feagin12": 25, "Feagin14": 35, "Fehlberg78": 13, "SSPRK104": 10, "RKV76IIa": 10,
}

#: first-same-as-last flags (derived by the tableau from its structure)
FSAL = {
    "BS3": True, "DP5": True, "Tsit5": True, "BS5": True, "OwrenZen3": True, "OwrenZen4": True,
    "OwrenZen5": True, "Vern6": True, "Vern7": False, "Vern8": False, "Vern9": False,
    "RK4": False, "RKF5": False, "CashKarp": False, "DP8": False, "Feagin10": False,
    "Feagin14": False,
}


def _mp(x: object) -> mpmath.mpf:
    """Independent 50-digit evaluation of one stored coefficient."""
    if isinstance(x, Fraction):
        return mpmath.mpf(x.numerator) / x.denominator
    if isinstance(x, Decimal):
        return mpmath.mpf(str(x))
    import sympy

    return mpmath.mpf(str(sympy.N(x, 50)))


def _ulp(x: float) -> float:
    return float(np.spacing(abs(x))) if x != 0 else 0.0


def test_catalogue_has_the_requested_explicit_methods() -> None:
    missing = REQUIRED - set(EXPLICIT)
    assert not missing, f"missing explicit methods: {sorted(missing)}"
    assert len(EXPLICIT) >= 45


def test_aliases_resolve_to_canonical_names() -> None:
    expected = {"RKF45": "RKF5", "Fehlberg45": "RKF5", "DOP853": "DP8", "RK45": "DP5", "RK23": "BS3",
                "Merson43": "Merson4", "Zonneveld43": "Zonneveld4", "RKF78": "Fehlberg78",
                "VernerEfficient6": "Vern6", "Verner7": "Vern7", "tsit5": "Tsit5"}
    for alias, name in expected.items():
        assert ob.get_method(alias).name == name


@pytest.mark.parametrize("name", EXPLICIT)
def test_claimed_orders_verify(name: str) -> None:
    m = ob.get_method(name)
    assert m.kind == "explicit"
    assert ob.method_info(name)["kind"] == "explicit"  # the data file's "kind" matches the tableau
    assert ob.verify_order(m, max_order=m.order) == m.order
    if m.b_embedded is not None:
        assert ob.verify_embedded_order(m, max_order=m.embedded_order) == m.embedded_order
        assert m.embedded_order < m.order
    else:
        assert m.embedded_order is None
    assert m.citation.strip() and m.description.strip()


@pytest.mark.parametrize("name", EXPLICIT)
def test_float_arrays_match_exact_coefficients(name: str) -> None:
    m = ob.get_method(name)
    co = m.coefficients
    s = m.stages
    assert m.A.shape == (s, s) and m.b.shape == (s,) and m.c.shape == (s,)
    assert np.all(np.triu(m.A) == 0.0)  # strictly lower triangular, exactly
    with mpmath.workdps(50):
        pairs = [(m.A[i, j], co.A[i][j]) for i in range(s) for j in range(i)]
        pairs += list(zip(m.b, co.b)) + list(zip(m.c, co.c))
        if m.b_embedded is not None:
            pairs += list(zip(m.b_embedded, co.b_embedded))
        for value, exact in pairs:
            ex = _mp(exact)
            assert abs(mpmath.mpf(float(value)) - ex) <= _ulp(float(ex)), (name, value, exact)
        # c is the row sum of A (to the precision of the coefficients)
        for i in range(s):
            rs = sum((_mp(a) for a in co.A[i]), mpmath.mpf(0))
            assert abs(rs - _mp(co.c[i])) <= mpmath.mpf("1e-25"), (name, i)


@pytest.mark.parametrize("name", EXPLICIT)
def test_every_stage_is_used(name: str) -> None:
    """A transcription that drops a row or column shows up as a dead stage."""
    m = ob.get_method(name)
    used = np.any(m.A != 0, axis=0) | (m.b != 0)
    if m.b_embedded is not None:
        used |= m.b_embedded != 0
    if m.fsal:  # the last stage of an FSAL method is the next step's first
        used[-1] = True
    assert used.all(), f"{name}: stages {np.flatnonzero(~used) + 1} never used"


@pytest.mark.parametrize("name,stages", sorted(STAGES.items()))
def test_stage_counts_as_published(name: str, stages: int) -> None:
    assert ob.get_method(name).stages == stages


@pytest.mark.parametrize("name,fsal", sorted(FSAL.items()))
def test_fsal_flags(name: str, fsal: bool) -> None:
    m = ob.get_method(name)
    assert m.fsal is fsal
    if fsal:
        assert np.array_equal(m.A[-1], m.b) and m.b[-1] == 0.0 and m.c[-1] == 1.0


# -- SciPy cross-check -------------------------------------------------------------------------

def _exact_float(values) -> np.ndarray:
    """Correctly rounded float64 image of exact/decimal coefficients."""
    with mpmath.workdps(50):
        return np.array([float(_mp(v)) for v in values])


@pytest.mark.parametrize("solver,name", [(RK23, "BS3"), (RK45, "DP5")])
def test_scipy_rk23_rk45_tableaux(solver, name: str) -> None:
    m = ob.get_method(name)
    n = solver.n_stages  # SciPy stores the FSAL stage only through E (length n + 1)
    assert m.stages == n + 1 and m.fsal
    k = solver.A.shape[1]  # SciPy drops the all-zero last column of A (RK45: 6 x 5)
    assert np.max(np.abs(m.A[:n, :k] - solver.A)) <= 1e-15 and np.all(m.A[:n, k:] == 0.0)
    assert np.max(np.abs(m.b[:n] - solver.B)) <= 1e-15 and m.b[n] == 0.0
    assert np.max(np.abs(m.c[:n] - solver.C)) <= 1e-15 and m.c[n] == 1.0
    assert np.max(np.abs(m.A[n, :n] - solver.B)) <= 1e-15  # FSAL row
    # SciPy's E is the difference embedded - main solution (b_hat - b), over n + 1 stages
    co = m.coefficients
    with mpmath.workdps(50):
        diff = np.array([float(_mp(be) - _mp(b)) for be, b in zip(co.b_embedded, co.b)])
    assert diff.shape == solver.E.shape
    assert np.max(np.abs(diff - solver.E)) <= 1e-15


def test_scipy_dop853_tableau() -> None:
    m = ob.get_method("DP8")
    n = DOP853.n_stages
    assert m.stages == n == 12
    assert np.max(np.abs(m.A - DOP853.A)) <= 1e-15
    assert np.max(np.abs(m.b - DOP853.B)) <= 1e-15
    assert np.max(np.abs(m.c - DOP853.C)) <= 1e-15
    # DOP853 has two estimators over n + 1 stages (the last is the FSAL evaluation, unused
    # by both): E5 = b - b_hat5 (our b_embedded) and E3 = b - b_hat3 (not represented).
    co = m.coefficients
    with mpmath.workdps(50):
        e5 = np.array([float(_mp(b) - _mp(be)) for b, be in zip(co.b, co.b_embedded)])
    assert DOP853.E5[n] == 0.0 and DOP853.E3[n] == 0.0
    assert np.max(np.abs(e5 - DOP853.E5[:n])) <= 1e-15
    # the estimator we do not store is a 3rd-order solution: documented, not lost by mistake
    third = ob.ButcherTableau(m.A, m.b, m.c, m.b - DOP853.E3[:n], name="DOP853-E3", verify=False)
    assert ob.verify_embedded_order(third, max_order=5) == 3
    assert "3rd-order" in m.description


def test_claimed_orders_are_sharp_and_verify_quickly() -> None:
    """Without ``max_order`` the search goes one order past each claim, so every claimed
    (embedded) order is sharp -- except at ``MAX_VERIFIED_ORDER`` = 14, where it stops:
    Feagin14 is confirmed at order 14 without evaluating the 87811 trees of order 15.
    The whole pass takes about 5 s on one core (Feagin14: 35 stages, 60-digit decimals,
    53k trees up to order 14 in fixed-point arithmetic: about 3 s, its order-12 embedded
    solution checked to 13 about 1 s; Feagin12 about 0.3 s; everything else well under
    0.1 s each).  The 60 s bound is generous for a loaded CI machine but catches an
    accidental blow-up of the order-condition code.
    """
    t0 = time.perf_counter()
    for name in EXPLICIT:
        m = ob.get_method(name)
        assert ob.verify_order(m) == m.order, name
        if m.b_embedded is not None:
            assert ob.verify_embedded_order(m) == m.embedded_order, name
    assert time.perf_counter() - t0 < 60.0


def test_feagin14_is_a_14_12_pair_and_perturbations_are_caught() -> None:
    """Feagin14's published 60-digit coefficients satisfy every condition up to order 14
    (tolerance 1e-52); its error estimate h/1000 (k_2 - k_34) is a true embedded solution
    of order 12 (not 13).  Moving 1e-40 between two entries of one row of A (far below
    float64, far above the tolerance; row sums and c unchanged) changes the order-3
    condition sum b_i a_ij c_j by b_20 * 1e-40 * (c_13 - c_12), about 5e-42: the
    verified order drops to 2.
    """
    import decimal

    from odernn_bridge.methods.order import MAX_VERIFIED_ORDER

    m = ob.get_method("Feagin14")
    assert MAX_VERIFIED_ORDER == 14
    assert ob.verify_order(m) == 14  # capped: order 15 is not searched
    assert ob.verify_embedded_order(m, max_order=13) == 12
    co = m.coefficients
    # one of the antisymmetric pairs of Feagin's construction (exact comparison of the decimals)
    assert Fraction(co.A[28][15]) == -Fraction(co.A[28][23]) != 0
    A = [list(r) for r in co.A]
    with decimal.localcontext() as ctx:
        ctx.prec = 100  # the stored entries have 60 digits: add without rounding
        eps = Decimal("1e-40")
        A[20][13] = Decimal(A[20][13]) + eps
        A[20][12] = Decimal(A[20][12]) - eps
    bad = ob.ButcherTableau(A, list(co.b), list(co.c), name="Feagin14-perturbed", verify=False)
    assert ob.verify_order(bad, max_order=14) == 2
