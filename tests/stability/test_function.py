"""The stability function R(z) = P(z)/Q(z) of Runge–Kutta methods."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

import odernn_bridge as ob
from odernn_bridge.stability import internal_stability_functions, stage_stability_functions

from .conftest import catalogue_method

F = Fraction


def _direct(m, z, weights=None):
    """1 + z bᵀ(I − zA)⁻¹𝟙 by a dense solve per point (the definition)."""
    b = m.b if weights is None else weights
    s = m.stages
    out = []
    for zz in np.ravel(z):
        x = np.linalg.solve(np.eye(s) - zz * m.A, np.ones(s))
        out.append(1 + zz * b @ x)
    return np.array(out).reshape(np.shape(z))


def _sample_points():
    rng = np.random.default_rng(1)
    return rng.uniform(-4, 1, 25) + 1j * rng.uniform(-3, 3, 25)


def test_rk4_coefficients_are_exact_taylor_coefficients():
    R = ob.stability_function("RK4")
    assert R.exact == ((F(1), F(1), F(1, 2), F(1, 6), F(1, 24)), (F(1),))
    np.testing.assert_array_equal(R.numerator, [1, 1, 0.5, 1 / 6, 1 / 24])
    assert R.degree == (4, 0) and R.at_infinity == float("inf")


def test_euler_is_one_plus_z():
    R = ob.stability_function("Euler")
    assert R.exact == ((F(1), F(1)), (F(1),))


def test_radau2_exact_rational_function(radau2):
    # Hairer–Wanner IV.5: R(z) = (1 + z/3) / (1 − 2z/3 + z²/6)
    R = ob.stability_function(radau2)
    assert R.exact == ((F(1), F(1, 3)), (F(1), F(-2, 3), F(1, 6)))
    assert R.at_infinity == 0.0


@pytest.mark.parametrize("name", ["RK4", "Midpoint", "Euler"])
def test_matches_dense_solve_explicit(name):
    m = ob.get_method(name)
    z = _sample_points()
    # Horner vs a dense solve: both float64, |R| ≤ ~50 on the sample -> 1e-12 relative
    np.testing.assert_allclose(ob.stability_function(m)(z), _direct(m, z), rtol=1e-12)


def test_matches_dense_solve_implicit(radau2, implicit_midpoint, sdirk_crouzeix):
    z = _sample_points()
    for m in (radau2, implicit_midpoint, sdirk_crouzeix):
        np.testing.assert_allclose(ob.stability_function(m)(z), _direct(m, z), rtol=1e-12)


def test_algebraic_tableau_with_irrational_R(sdirk_crouzeix):
    R = ob.stability_function(sdirk_crouzeix)
    assert R.exact is None and "mpmath" in R.arithmetic
    # Q(z) = (1 − γz)², γ = 1/2 + √3/6: the coefficient of z is −2γ to 1e-15
    g = 0.5 + np.sqrt(3) / 6
    np.testing.assert_allclose(R.denominator, [1, -2 * g, g * g], rtol=1e-15)


def test_gauss_R_is_recognised_rational():
    m = catalogue_method("GL4")  # 2-stage Gauss, coefficients 1/4 ± √3/6
    R = ob.stability_function(m)
    # the (2,2) Padé approximant of exp
    assert R.exact == ((F(1), F(1, 2), F(1, 12)), (F(1), F(-1, 2), F(1, 12)))
    assert "recognised" in R.arithmetic


def test_decimal_tableau_gives_float_coefficients():
    m = ob.ButcherTableau([[0, 0], [0.66666666666666666666667, 0]], [0.25, 0.75], name="my_Ralston_dec")
    R = ob.stability_function(m)
    assert R.exact is None
    np.testing.assert_allclose(R.numerator, [1, 1, 0.5], rtol=1e-15)


def test_implicit_midpoint_is_unimodular_on_imaginary_axis(implicit_midpoint):
    y = np.linspace(-50, 50, 2001)
    vals = np.abs(ob.stability_function(implicit_midpoint)(1j * y))
    # |(1 + iy/2)/(1 − iy/2)| = 1 exactly; float rounding only
    assert np.max(np.abs(vals - 1)) < 1e-14


def test_embedded_stability_function(heun_euler):
    Re = ob.stability_function(heun_euler, embedded=True)
    assert Re.exact == ((F(1), F(1)), (F(1),))
    assert ob.stability_function(heun_euler).exact == ((F(1), F(1), F(1, 2)), (F(1),))
    with pytest.raises(ValueError, match="embedded"):
        ob.stability_function("RK4", embedded=True)


def test_embedded_of_catalogue_method():
    m = catalogue_method("DP5")
    z = _sample_points()
    np.testing.assert_allclose(ob.stability_function(m, embedded=True)(z),
                               _direct(m, z, m.b_embedded), rtol=1e-11)


def test_stage_and_internal_functions_match_definitions(radau2):
    z = _sample_points()
    A, b = radau2.A, radau2.b
    stages = stage_stability_functions(radau2)
    internal = internal_stability_functions(radau2)
    for k, zz in enumerate(z):
        M = np.linalg.inv(np.eye(2) - zz * A)
        for i in range(2):
            assert abs(stages[i](zz) - (M @ np.ones(2))[i]) < 1e-12 * (1 + abs(stages[i](zz)))
            assert abs(internal[i](zz) - zz * (b @ M)[i]) < 1e-12 * (1 + abs(internal[i](zz)))


def test_internal_polynomials_of_rk4_have_decreasing_degree():
    # explicit: Q_j has degree s − j (j from 0), Ketcheson–Lóczi–Parsani 2014
    degs = [f.degree[0] for f in internal_stability_functions("RK4")]
    assert degs == [4, 3, 2, 1]


def test_scalar_and_array_calls():
    R = ob.stability_function("RK4")
    assert isinstance(R(-1.0), float) or np.ndim(R(-1.0)) == 0
    assert R(np.zeros((3, 4))).shape == (3, 4)
    with pytest.raises(TypeError, match="z"):
        R(np.array(["a"]))


def test_lmm_stability_function_is_root_modulus(bdf2):
    f = ob.stability_function(bdf2)
    z = -0.7 + 0.3j
    roots = np.roots((np.asarray(bdf2.alpha) - z * np.asarray(bdf2.beta))[::-1])
    assert abs(f(z) - np.max(np.abs(roots))) < 1e-13


def test_bad_method_argument():
    with pytest.raises(TypeError, match="method"):
        ob.stability_function(3.0)
    with pytest.raises(ob.UnknownMethodError):
        ob.stability_function("NoSuchMethod")


def test_stability_package_imports_without_torch_and_matplotlib():
    code = ("import sys, odernn_bridge.stability as s; s.real_stability_interval('RK4'); "
            "bad = [m for m in ('torch', 'matplotlib') if m in sys.modules]; "
            "sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_lazy_top_level_exports_resolve():
    import odernn_bridge.stability as st

    names = [k for k, v in ob._LAZY.items() if v == "odernn_bridge.stability"]
    assert len(names) == 12
    for k in names:
        assert getattr(ob, k) is getattr(st, k)


def test_embedded_region(heun_euler):
    r = ob.stability_region(heun_euler, real=(-2, 0), imag=(-1, 1), resolution=21, embedded=True)
    z = r["real"].values[None, :] + 1j * r["imag"].values[:, None]
    np.testing.assert_allclose(r.values, np.abs(1 + z), rtol=1e-15)  # the embedded Euler
    assert r.attrs["method"] == "my_HeunEuler [embedded]"


def test_cached_stability_function_keeps_each_methods_name():
    # tableaux with equal coefficients are equal (and hash alike); the cache must still give
    # each its own name
    heun = ob.get_method("Heun")
    renamed = heun.with_name("MyHeun")
    assert ob.stability_function(heun).name == "Heun"
    assert ob.stability_function(renamed).name == "MyHeun"
    np.testing.assert_array_equal(ob.stability_function(renamed).numerator, ob.stability_function(heun).numerator)
