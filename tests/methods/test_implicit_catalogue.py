"""Implicit and diagonally implicit Runge–Kutta methods of the catalogue.

Families (Gauss, Radau, Lobatto) are generated exactly in ``methods/families.py``; the
SDIRK/ESDIRK methods are transcribed in ``methods/data/dirk.json``.  Tolerances:

* order conditions are checked by ``verify_order`` itself (exact for rationals, 1e-40 at 60
  digits for algebraic coefficients, 10**-(digits-8) for published decimals);
* nodes against NumPy/SciPy quadrature: 1e-14 (SciPy's Golub–Welsch roots are accurate to a
  few ulp, our nodes are exact);
* float64 arrays against an independent 40-digit mpmath solve of the simplifying
  assumptions: 4.5e-16 * max(1, |a|) (2 ulp; the arrays are rounded from 30-digit values).
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from numpy.polynomial.legendre import leggauss
from scipy.special import roots_jacobi

import odernn_bridge as ob
from odernn_bridge.methods import families

IMPLICIT = ob.list_methods("implicit") + ob.list_methods("diagonally_implicit")

#: transcribed methods whose published coefficients are decimals / rational approximations
PUBLISHED_DECIMALS = {"Kvaerno4", "Kvaerno5", "KenCarp3", "KenCarp5", "KenCarp47", "KenCarp58",
                      "ESDIRK436L2SA2", "ESDIRK437L2SA", "ESDIRK547L2SA2"}

#: (constructor, stages, claimed stage order) for the generated families
FAMILY_STAGE_ORDER = (
    [(f"GL{2 * s}", s, s) for s in range(1, 6)]
    + [(f"RadauIIA{2 * s - 1}", s, s) for s in range(1, 6)]
    + [(f"RadauIA{2 * s - 1}", s, s - 1) for s in range(1, 6)]
    + [(f"LobattoIIIA{2 * s - 2}", s, s) for s in range(2, 6)]
    + [(f"LobattoIIIB{2 * s - 2}", s, s - 2) for s in range(2, 6)]
    + [(f"LobattoIIIC{2 * s - 2}", s, s - 1) for s in range(2, 6)]
)


def test_catalogue_has_the_requested_implicit_methods() -> None:
    wanted = {f"GL{p}" for p in (2, 4, 6, 8, 10)}
    wanted |= {f"RadauIIA{p}" for p in (1, 3, 5, 7, 9)} | {f"RadauIA{p}" for p in (1, 3, 5, 7, 9)}
    wanted |= {f"Lobatto{v}{p}" for v in ("IIIA", "IIIB", "IIIC") for p in (2, 4, 6, 8)}
    wanted |= {"ImplicitEuler", "ImplicitMidpoint", "Trapezoid", "SDIRK2", "SDIRK3", "SDIRK4", "TRBDF2",
               "Kvaerno3", "Kvaerno4", "Kvaerno5", "KenCarp3", "KenCarp4", "KenCarp5"}
    assert wanted <= set(IMPLICIT)
    assert len(IMPLICIT) >= 48


@pytest.mark.parametrize("name", IMPLICIT)
def test_claimed_orders_verify(name: str) -> None:
    m = ob.get_method(name)
    assert m.kind in ("implicit", "diagonally_implicit")
    assert ob.method_info(name)["kind"] == m.kind  # declared catalogue kind matches the tableau
    assert ob.verify_order(m, max_order=m.order) == m.order
    if m.b_embedded is not None:
        assert ob.verify_embedded_order(m, max_order=m.embedded_order) == m.embedded_order
    assert m.citation
    assert np.all(np.isfinite(m.A)) and np.all(np.isfinite(m.b)) and np.all(np.isfinite(m.c))


@pytest.mark.parametrize("name", [n for n in IMPLICIT if ob.get_method(n).stages <= 4])
def test_order_is_not_higher_than_claimed(name: str) -> None:
    # the claimed order is sharp: some tree of order p+1 fails (cheap for s <= 4)
    m = ob.get_method(name)
    assert ob.verify_order(m, max_order=m.order + 1) == m.order


@pytest.mark.parametrize("name", IMPLICIT)
def test_coefficients_are_exact_unless_published_as_decimals(name: str) -> None:
    m = ob.get_method(name)
    if name in PUBLISHED_DECIMALS:
        assert m.coefficient_kind == "decimal" and m.exact is None
    else:
        assert m.exact is not None and m.coefficient_kind in ("rational", "algebraic")


# -- nodes and weights against independent quadrature routines ---------------------------

@pytest.mark.parametrize("s", range(1, 6))
def test_gauss_nodes_and_weights_match_leggauss(s: int) -> None:
    m = ob.get_method(f"GL{2 * s}")
    x, w = leggauss(s)
    np.testing.assert_allclose(m.c, (x + 1) / 2, rtol=0, atol=1e-14)
    np.testing.assert_allclose(m.b, w / 2, rtol=0, atol=1e-14)


@pytest.mark.parametrize("s", range(1, 6))
def test_radau_nodes_match_jacobi_roots(s: int) -> None:
    # right Radau points: zeros of P^(1,0)_{s-1} and the endpoint 1; left: P^(0,1)_{s-1} and 0
    right = np.sort(np.append((roots_jacobi(s - 1, 1, 0)[0] + 1) / 2 if s > 1 else [], 1.0))
    left = np.sort(np.append((roots_jacobi(s - 1, 0, 1)[0] + 1) / 2 if s > 1 else [], 0.0))
    np.testing.assert_allclose(ob.get_method(f"RadauIIA{2 * s - 1}").c, right, rtol=0, atol=1e-14)
    np.testing.assert_allclose(ob.get_method(f"RadauIA{2 * s - 1}").c, left, rtol=0, atol=1e-14)
    np.testing.assert_allclose(ob.get_method(f"RadauIA{2 * s - 1}").c, 1 - right[::-1], rtol=0, atol=1e-14)


@pytest.mark.parametrize("s", range(2, 6))
@pytest.mark.parametrize("variant", ["IIIA", "IIIB", "IIIC"])
def test_lobatto_nodes_match_jacobi_roots(variant: str, s: int) -> None:
    inner = (roots_jacobi(s - 2, 1, 1)[0] + 1) / 2 if s > 2 else np.array([])
    expected = np.concatenate([[0.0], np.sort(inner), [1.0]])
    m = ob.get_method(f"Lobatto{variant}{2 * s - 2}")
    np.testing.assert_allclose(m.c, expected, rtol=0, atol=1e-14)
    assert m.stages == s


# -- simplifying assumptions and stage orders -----------------------------------------------

@pytest.mark.parametrize("name,s,q", FAMILY_STAGE_ORDER)
def test_family_stage_orders(name: str, s: int, q: int) -> None:
    m = ob.get_method(name)
    assert m.stages == s
    assert m.stage_order == q
    assert ob.verify_stage_order(m) == q


def _mp_A(m, how: str) -> mpmath.matrix:
    """A at 40 digits from the defining linear conditions (independent of families.py's
    Lagrange/field arithmetic; only the exact nodes are shared)."""
    from odernn_bridge.methods.exact import to_mpf

    with mpmath.workdps(40):
        c = [to_mpf(x) for x in m.coefficients.c]
        s = len(c)
        V = mpmath.matrix(s, s)  # V[k, j] = c_j^k
        for k in range(s):
            for j in range(s):
                V[k, j] = c[j] ** k
        b = mpmath.lu_solve(V, mpmath.matrix([mpmath.mpf(1) / (k + 1) for k in range(s)]))
        A = mpmath.matrix(s, s)
        if how == "C":  # sum_j a_ij c_j^k = c_i^(k+1)/(k+1)
            for i in range(s):
                row = mpmath.lu_solve(V, mpmath.matrix([c[i] ** (k + 1) / (k + 1) for k in range(s)]))
                for j in range(s):
                    A[i, j] = row[j]
        elif how == "D":  # sum_i b_i c_i^k a_ij = b_j (1 - c_j^(k+1))/(k+1)
            for j in range(s):
                col = mpmath.lu_solve(V, mpmath.matrix([b[j] * (1 - c[j] ** (k + 1)) / (k + 1) for k in range(s)]))
                for i in range(s):
                    A[i, j] = col[i] / b[i]
        else:  # Lobatto IIIC: a_i1 = b_1 and C(s-1)
            W = mpmath.matrix(s - 1, s - 1)
            for k in range(s - 1):
                for j in range(1, s):
                    W[k, j - 1] = c[j] ** k
            for i in range(s):
                rhs = mpmath.matrix([c[i] ** (k + 1) / (k + 1) - (b[0] if k == 0 else 0) for k in range(s - 1)])
                row = mpmath.lu_solve(W, rhs)
                A[i, 0] = b[0]
                for j in range(1, s):
                    A[i, j] = row[j - 1]
        return A, b


_HOW = (
    [(f"GL{2 * s}", "C") for s in range(1, 6)]
    + [(f"RadauIIA{2 * s - 1}", "C") for s in range(1, 6)]
    + [(f"RadauIA{2 * s - 1}", "D") for s in range(2, 6)]
    + [(f"LobattoIIIA{2 * s - 2}", "C") for s in range(2, 6)]
    + [(f"LobattoIIIB{2 * s - 2}", "D") for s in range(2, 6)]
    + [(f"LobattoIIIC{2 * s - 2}", "IIIC") for s in range(2, 6)]
)


@pytest.mark.parametrize("name,how", _HOW)
def test_float_arrays_match_independent_high_precision_solve(name: str, how: str) -> None:
    m = ob.get_method(name)
    A, b = _mp_A(m, how)
    A_ref = np.array([[float(A[i, j]) for j in range(m.stages)] for i in range(m.stages)])
    b_ref = np.array([float(x) for x in b])
    tol = 4.5e-16 * np.maximum(1.0, np.abs(A_ref))
    assert np.all(np.abs(m.A - A_ref) <= tol), np.max(np.abs(m.A - A_ref))
    assert np.all(np.abs(m.b - b_ref) <= 4.5e-16)


def test_radau_ia1_is_the_published_degenerate_tableau() -> None:
    # Hairer–Wanner II Table 5.5: 0 | 1 || 1 (c differs from the row sum on purpose)
    m = ob.get_method("RadauIA1")
    assert m.A.tolist() == [[1.0]] and m.c.tolist() == [0.0] and m.b.tolist() == [1.0]


@pytest.mark.parametrize("s", range(2, 6))
def test_structure_of_the_families(s: int) -> None:
    A = ob.get_method(f"LobattoIIIA{2 * s - 2}")
    assert np.all(A.A[0] == 0) and np.array_equal(A.A[-1], A.b)
    B = ob.get_method(f"LobattoIIIB{2 * s - 2}")
    assert np.all(B.A[:, -1] == 0)
    C = ob.get_method(f"LobattoIIIC{2 * s - 2}")
    assert np.all(C.A[:, 0] == C.b[0])
    np.testing.assert_allclose(C.A[-1], C.b, rtol=0, atol=1e-15)
    R = ob.get_method(f"RadauIIA{2 * s - 1}")
    np.testing.assert_allclose(R.A[-1], R.b, rtol=0, atol=1e-15)  # stiffly accurate
    G = ob.get_method(f"GL{2 * s}")
    # symmetry of Gauss methods: a_ij + a_{s+1-i, s+1-j} = b_j
    np.testing.assert_allclose(G.A + G.A[::-1, ::-1], np.tile(G.b, (s, 1)), rtol=0, atol=1e-15)


# -- stability at infinity (numerical, no dependency on the stability layer) ------------------

def _R(m, z: complex) -> complex:
    s = m.stages
    return complex(1 + z * m.b @ np.linalg.solve(np.eye(s) - z * m.A, np.ones(s)))


L_STABLE = ["ImplicitEuler", "SDIRK2", "SDIRK3", "SDIRK4", "Hairer42", "TRBDF2", "Kvaerno3", "Kvaerno5",
            "KenCarp4", "KenCarp5", "RadauIIA5", "RadauIIA9", "RadauIA5", "LobattoIIIC4",
            "LobattoIIIC8", "KenCarp3", "KenCarp47", "KenCarp58", "ESDIRK436L2SA2", "ESDIRK437L2SA",
            "ESDIRK547L2SA2"]
A_NOT_L = ["ImplicitMidpoint", "Trapezoid", "GL4", "GL10", "LobattoIIIA4", "LobattoIIIB6"]


@pytest.mark.parametrize("name", L_STABLE)
def test_l_stable_methods_damp_infinity(name: str) -> None:
    m = ob.get_method(name)
    # |R(-1e8)| ~ C/1e8 for an L-stable method (C <= 60 for these methods)
    assert abs(_R(m, -1e8)) < 1e-6
    assert all(abs(_R(m, 1j * y)) <= 1 + 1e-12 for y in (0.5, 2.0, 10.0, 100.0))


def test_kvaerno4_embedded_is_the_l_stable_solution() -> None:
    # with the published coefficients (gamma = 0.4358665215) the order-3 embedded solution is
    # L-stable and the order-4 advancing one only A-stable: R(-inf) ~ 0.7175
    m = ob.get_method("Kvaerno4")
    s = m.stages
    R_emb = 1 - 1e8 * m.b_embedded @ np.linalg.solve(np.eye(s) + 1e8 * m.A, np.ones(s))
    assert abs(R_emb) < 1e-6
    assert abs(_R(m, -1e8)) == pytest.approx(0.7175, abs=1e-3)
    assert all(abs(_R(m, 1j * y)) <= 1 + 1e-12 for y in np.logspace(-2, 4, 50))


@pytest.mark.parametrize("name", A_NOT_L)
def test_symmetric_methods_have_modulus_one_on_the_imaginary_axis(name: str) -> None:
    m = ob.get_method(name)
    assert abs(abs(_R(m, -1e8)) - 1) < 1e-6
    for y in (0.5, 2.0, 10.0):
        assert abs(abs(_R(m, 1j * y)) - 1) < 1e-12


# -- transcribed SDIRK / ESDIRK specifics -----------------------------------------------------

def test_sdirk2_gamma_and_sdirk3_gamma() -> None:
    assert ob.get_method("SDIRK2").A[0, 0] == pytest.approx(1 - 1 / np.sqrt(2), abs=1e-16)
    g = ob.get_method("SDIRK3").A[0, 0]
    assert 6 * g**3 - 18 * g**2 + 9 * g - 1 == pytest.approx(0, abs=1e-14)
    assert g == pytest.approx(0.4358665215084590, abs=1e-15)
    assert ob.get_method("Kvaerno3").A[1, 1] == g  # same exact gamma
    gc = ob.get_method("Crouzeix3").A[0, 0]
    assert gc == pytest.approx(0.5 + np.sqrt(3) / 6, abs=1e-16)


def test_trbdf2_embedded_is_the_solution_not_the_difference() -> None:
    m = ob.get_method("TRBDF2")
    r2 = np.sqrt(2)
    # OrdinaryDiffEq's btilde = bhat - b = [(1 - sqrt2)/3, 1/3, (sqrt2 - 2)/3]
    np.testing.assert_allclose(m.b_embedded - m.b, [(1 - r2) / 3, 1 / 3, (r2 - 2) / 3], rtol=0, atol=1e-15)
    np.testing.assert_allclose(m.c, [0, 2 - r2, 1], rtol=0, atol=1e-15)
    assert (m.order, m.embedded_order) == (2, 3)


@pytest.mark.parametrize("name", ["SDIRK2", "SDIRK3", "SDIRK4", "Hairer42", "Kvaerno3", "Kvaerno4", "Kvaerno5",
                                  "KenCarp3", "KenCarp4", "KenCarp5", "KenCarp47", "KenCarp58", "TRBDF2",
                                  "ESDIRK436L2SA2", "ESDIRK437L2SA", "ESDIRK547L2SA2"])
def test_singly_diagonally_implicit_structure(name: str) -> None:
    m = ob.get_method(name)
    d = np.diag(m.A)
    explicit_first = d[0] == 0
    gamma = d[1] if explicit_first else d[0]
    np.testing.assert_allclose(d[1:] if explicit_first else d, gamma, rtol=0, atol=0)
    assert m.kind == "diagonally_implicit"
    if name not in ("SDIRK2", "SDIRK3", "Crouzeix3"):
        assert m.stiffly_accurate


def test_kencarp4_known_coefficients() -> None:
    # Kennedy & Carpenter (2003), ARK4(3)6L[2]SA implicit part: gamma = 1/4, c = (0, 1/2, 83/250, 31/50, 17/20, 1)
    m = ob.get_method("KenCarp4")
    np.testing.assert_allclose(m.c, [0, 0.5, 83 / 250, 31 / 50, 17 / 20, 1], rtol=0, atol=1e-16)
    assert m.b[1] == 0 and m.b_embedded[1] == 0


def test_exact_coefficients_round_trip_through_json() -> None:
    for name in ("RadauIIA7", "SDIRK3", "GL6"):
        m = ob.get_method(name)
        back = ob.loads_method(ob.dumps_method(m))
        assert np.array_equal(back.A, m.A) and np.array_equal(back.b, m.b) and np.array_equal(back.c, m.c)
        assert back.order == m.order and back.exact is not None


def test_family_factories_reject_bad_stage_counts() -> None:
    with pytest.raises(ValueError, match="s:"):
        families.gauss_legendre(6)
    with pytest.raises(ValueError, match="s:"):
        families.lobatto("IIIA", 1)
    with pytest.raises(ValueError, match="variant"):
        families.lobatto("IIID", 3)
