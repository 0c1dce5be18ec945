"""The order-condition manifold of explicit tableaux: residuals, Jacobian, Gauss–Newton projection."""

from __future__ import annotations

from math import factorial

import numpy as np
import pytest

import odernn_bridge as ob
from odernn_bridge.methods.manifold import ExplicitOrderConditions, max_explicit_order
from odernn_bridge.methods.order import order_residuals
from odernn_bridge.methods.trees import trees_up_to

# (method, stages, order): catalogue methods whose order is verified exactly
ON_MANIFOLD = [("RK4", 4, 4), ("RK438Rule", 4, 4), ("BS3", 4, 3), ("Merson4", 5, 4), ("CashKarp", 6, 5)]


def theta_of(name: str, oc: ExplicitOrderConditions) -> np.ndarray:
    m = ob.get_method(name)
    return oc.pack(m.A, m.b)


@pytest.mark.parametrize("name,s,p", ON_MANIFOLD)
def test_residuals_vanish_on_catalogue_methods(name: str, s: int, p: int) -> None:
    oc = ExplicitOrderConditions(s, p)
    assert len(oc.trees) == len(trees_up_to(p))
    # the coefficients are float64 roundings of exact values: residuals are rounding errors only
    assert np.abs(oc.residual(theta_of(name, oc))).max() < 1e-14
    # ... and agree with the library's tree evaluation of the order p+1 conditions, which fail
    if s > p:
        oc1 = ExplicitOrderConditions(s, p + 1) if p + 1 <= max_explicit_order(s) else None
        if oc1 is not None:
            r = oc1.residual(theta_of(name, oc1))[len(oc.trees):]
            ref = [v for _, v in order_residuals(ob.get_method(name), p + 1)]
            np.testing.assert_allclose(r, ref, atol=1e-14)


def test_residuals_are_the_tree_conditions() -> None:
    # Heun's 3rd-order method (3 stages) padded is not order 4: compare every residual of
    # order 4 with verify_order's evaluator (exact Fractions)
    oc = ExplicitOrderConditions(4, 4)
    m = ob.get_method("Heun3")
    A = np.zeros((4, 4))
    A[:3, :3] = m.A
    b = np.r_[m.b, 0.0]
    r = oc.residual(oc.pack(A, b))
    ref = [v for _, v in order_residuals(m, 4)]
    np.testing.assert_allclose(r[4:], ref, atol=1e-15)
    assert np.abs(r[:4]).max() < 1e-15 and np.abs(r[4:]).max() > 1e-3


@pytest.mark.parametrize("s,p", [(4, 4), (6, 5)])
def test_jacobian_matches_central_differences(s: int, p: int) -> None:
    oc = ExplicitOrderConditions(s, p)
    x = np.random.default_rng(1).standard_normal(oc.n_params) * 0.5
    _, J = oc.residual_and_jacobian(x)
    eps = 1e-6
    fd = np.stack([(oc.residual(x + eps * e) - oc.residual(x - eps * e)) / (2 * eps)
                   for e in np.eye(oc.n_params)], axis=1)
    # central differences: O(eps²)·|r'''| ≈ 1e-12 truncation plus 1e-16/eps ≈ 1e-10 rounding
    np.testing.assert_allclose(J, fd, atol=1e-8)


@pytest.mark.parametrize("name,s,p", ON_MANIFOLD)
def test_projection_lands_on_the_conditions(name: str, s: int, p: int) -> None:
    oc = ExplicitOrderConditions(s, p)
    rng = np.random.default_rng(0)
    base = theta_of(name, oc)
    for _ in range(5):
        # 0.005 per coefficient: the size of an Adam step at lr 5e-3
        start = base + 0.005 * rng.standard_normal(oc.n_params)
        proj = oc.project(start)
        assert proj.converged and proj.residual < 1e-12 and proj.start_residual > 1e-5
        assert np.abs(oc.residual(proj.theta)).max() < 1e-12
        # close to an orthogonal projection: it moves no farther than back to the start point
        # (measured ratio ≤ 1.08 over 50 draws each), not along the manifold
        assert proj.distance < 1.5 * np.linalg.norm(start - base)


def test_projection_of_perturbed_rk4_recovers_an_order_4_tableau() -> None:
    oc = ExplicitOrderConditions(4, 4)
    rk4 = theta_of("RK4", oc)
    start = rk4 + 1e-2 * np.random.default_rng(3).standard_normal(oc.n_params)
    proj = oc.project(start)
    assert proj.converged and proj.iterations <= 8  # quadratic convergence from 1e-2 away (4-5 seen)
    A, b = oc.unpack(proj.theta)
    tab = ob.ButcherTableau(A.tolist(), b.tolist(), order=4)
    assert ob.verify_order(tab, tol=1e-12) == 4
    assert 1e-4 < np.abs(proj.theta - rk4).max() < 0.05  # a new method, near RK4


def test_projection_reports_a_stall() -> None:
    oc = ExplicitOrderConditions(4, 4)
    proj = oc.project(np.full(oc.n_params, 50.0), maxiter=5)
    assert not proj.converged and proj.residual > 1e-12


def test_stability_polynomial() -> None:
    oc = ExplicitOrderConditions(4, 3)
    alpha = oc.stability_polynomial(theta_of("RK4", oc))
    np.testing.assert_allclose(alpha, [1 / factorial(k) for k in range(5)], rtol=1e-15)
    bs3 = ob.get_method("BS3")
    num = ob.stability_function(bs3).numerator
    np.testing.assert_allclose(oc.stability_polynomial(oc.pack(bs3.A, bs3.b)), np.r_[num, [0] * (5 - len(num))],
                               atol=1e-15)


def test_max_explicit_order_and_bad_arguments() -> None:
    assert [max_explicit_order(s) for s in (1, 4, 5, 6, 7, 9, 11)] == [1, 4, 4, 5, 6, 7, 8]
    with pytest.raises(ValueError, match="stages: expected a positive integer"):
        ExplicitOrderConditions(0, 1)
    with pytest.raises(ValueError, match="order 5 needs at least 6 stages"):
        ExplicitOrderConditions(5, 5)
    with pytest.raises(ValueError, match="order: expected an order of at most 5"):
        ExplicitOrderConditions(7, 6)
    with pytest.raises(ValueError, match="stages: expected at most 12"):
        ExplicitOrderConditions(13, 4)
    oc = ExplicitOrderConditions(4, 4)
    with pytest.raises(ValueError, match="theta: expected 10 coefficients"):
        oc.residual(np.zeros(9))
    with pytest.raises(ValueError, match="theta: contains NaN"):
        oc.project(np.full(10, np.nan))
    with pytest.raises(ValueError, match="strictly lower triangular"):
        oc.pack(np.eye(4), np.ones(4) / 4)
    with pytest.raises(ValueError, match="tol"):
        oc.project(np.zeros(10), tol=0)


def test_verify_order_tolerance_argument() -> None:
    rk4 = ob.get_method("RK4")
    b = rk4.b + np.array([1e-10, -1e-10, 0.0, 0.0])  # sums to 1; breaks order 2 by 1e-10
    tab = ob.ButcherTableau(rk4.A.tolist(), b.tolist())
    assert ob.verify_order(tab) == 4  # published-digits tolerance (1e-9 for 17-digit floats)
    assert ob.verify_order(tab, tol=1e-12) == 1
    assert ob.verify_order(rk4, tol=1e-3) == 4  # exact tableaux are checked exactly
    with pytest.raises(ValueError, match="tol"):
        ob.verify_order(tab, tol=-1.0)
